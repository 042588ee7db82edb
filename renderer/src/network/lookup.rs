//! The per-address work behind [`super::LocalNetworks`]: parsing a textual address and finding
//! the most specific network containing it.
//!
//! Every connection end of every rendered row asks, so both are kept to a few tens of
//! nanoseconds. The common spellings of an address are parsed here byte by byte (the standard
//! parser costs several times more), anything else falls back to the standard parser, so the
//! answers are the standard library's. The networks of a set are flattened into disjoint
//! address ranges, sorted, each labelled with the most specific network covering it, so a
//! lookup is one binary search in a flat array per family.
//!
//! Std only, no other dependency: kept that way so it can be compiled on its own.

use std::{cmp::Reverse, net::IpAddr};

/// A parsed address; IPv4-mapped IPv6 addresses (`::ffff:a.b.c.d`) are IPv4.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Addr {
    V4(u32),
    V6(u128),
}

impl Addr {
    /// Parses a textual address, as `IpAddr`'s parser would, after trimming whitespace and
    /// dropping an IPv6 zone (`%eth0`).
    pub fn parse(text: &str) -> Option<Self> {
        parse_fast(text.as_bytes()).or_else(|| {
            let text = text.trim();
            let text = text.split_once('%').map_or(text, |(addr, _zone)| addr);
            text.parse::<IpAddr>().ok().map(Self::from)
        })
    }

    pub fn is_loopback(self) -> bool {
        match self {
            Addr::V4(v4) => v4 >> 24 == 127,
            Addr::V6(v6) => v6 == 1,
        }
    }

    fn from_v6(v6: u128) -> Self {
        // ::ffff:0:0/96
        if v6 >> 32 == 0xffff {
            Addr::V4(v6 as u32)
        } else {
            Addr::V6(v6)
        }
    }
}

impl From<IpAddr> for Addr {
    fn from(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(v4) => Addr::V4(v4.to_bits()),
            IpAddr::V6(v6) => Addr::from_v6(v6.to_bits()),
        }
    }
}

impl From<Addr> for IpAddr {
    fn from(addr: Addr) -> Self {
        match addr {
            Addr::V4(v4) => IpAddr::V4(v4.into()),
            Addr::V6(v6) => IpAddr::V6(v6.into()),
        }
    }
}

/// The usual spellings, up to a `%` (an IPv6 zone, ignored): dotted IPv4, and IPv6 groups with
/// at most one `::` and an optional trailing dotted IPv4. Returns only what the standard parser
/// would return for the text before the `%`; `None` leaves the decision to it (and to trimming).
fn parse_fast(text: &[u8]) -> Option<Addr> {
    match parse_v4(text) {
        Some(v4) => Some(Addr::V4(v4)),
        None => parse_v6(text).map(Addr::from_v6),
    }
}

/// Four decimal octets of one to three digits, no leading zero (the standard parser refuses
/// them as possibly octal), up to the end or a `%`.
fn parse_v4(text: &[u8]) -> Option<u32> {
    let (mut value, mut octet, mut digits, mut dots) = (0u32, 0u32, 0u32, 0u32);
    let mut leading_zero = false;
    // One pass with no look-ahead: the branches stay few and predictable.
    for &c in text {
        let digit = c.wrapping_sub(b'0');
        if digit < 10 {
            if digits == 0 {
                leading_zero = digit == 0;
            }
            digits += 1;
            octet = octet * 10 + u32::from(digit);
            if digits > 3 {
                return None;
            }
        } else if c == b'.' {
            if dots == 3 || !valid_octet(octet, digits, leading_zero) {
                return None;
            }
            value = (value << 8) | octet;
            (octet, digits, dots) = (0, 0, dots + 1);
        } else if c == b'%' {
            break;
        } else {
            return None;
        }
    }
    (dots == 3 && valid_octet(octet, digits, leading_zero)).then_some((value << 8) | octet)
}

fn valid_octet(octet: u32, digits: u32, leading_zero: bool) -> bool {
    digits > 0 && octet <= 255 && !(digits > 1 && leading_zero)
}

/// Each byte's value as a hex digit, or `NOT_HEX`.
const HEX: [u8; 256] = {
    let mut table = [NOT_HEX; 256];
    let mut i = 0;
    while i < 16 {
        table[b"0123456789abcdef"[i] as usize] = i as u8;
        table[b"0123456789ABCDEF"[i] as usize] = i as u8;
        i += 1;
    }
    table
};
const NOT_HEX: u8 = 0xff;

/// Groups of one to four hex digits separated by `:`, at most one `::` standing for one group
/// or more, and possibly a dotted IPv4 address as the last two groups; up to the end or a `%`.
fn parse_v6(text: &[u8]) -> Option<u128> {
    // Groups before and after the `::`, each with its count.
    let mut parts = [(0u128, 0u32); 2];
    let mut gap = text.starts_with(b"::");
    let mut at = if gap { 2 } else { 0 };
    while at < text.len() && text[at] != b'%' {
        let start = at;
        let mut group = 0u32;
        while let Some(&c) = text.get(at) {
            let digit = HEX[usize::from(c)];
            if digit == NOT_HEX {
                break;
            }
            group = (group << 4) | u32::from(digit);
            at += 1;
        }
        let (bits, groups) = if text.get(at) == Some(&b'.') {
            // A dotted IPv4 address: the rest of the text.
            at = text.len();
            (u128::from(parse_v4(&text[start..])?), 2)
        } else if at == start || at - start > 4 {
            return None;
        } else {
            (u128::from(group), 1)
        };
        let part = &mut parts[usize::from(gap)];
        *part = ((part.0 << (16 * groups)) | bits, part.1 + groups);
        if parts[0].1 + parts[1].1 > 8 {
            return None;
        }
        match text.get(at) {
            None | Some(b'%') => break,
            Some(b':') => at += 1,
            Some(_) => return None,
        }
        match text.get(at) {
            Some(b':') if !gap => {
                gap = true;
                at += 1;
            }
            None | Some(b':' | b'%') => return None,
            Some(_) => {}
        }
    }
    let [(head, head_groups), (tail, tail_groups)] = parts;
    let groups = head_groups + tail_groups;
    // A `::` stands for at least one group.
    if (gap && groups > 7) || (!gap && groups != 8) {
        return None;
    }
    let head = head.checked_shl(16 * (8 - head_groups)).unwrap_or(0);
    Some(head | tail)
}

/// The networks of one family as disjoint ranges of addresses, sorted, each labelled with the
/// most specific network covering it; addresses in no range are in no network.
#[derive(Debug)]
pub struct Ranges<T> {
    /// First address of each range, ascending: what the search reads.
    starts: Vec<T>,
    /// Last address of each range.
    ends: Vec<T>,
    labels: Vec<usize>,
    /// How many leading bits of an address pick its bucket.
    bucket_bits: u32,
    /// Per bucket, the index of its first range in `starts` (and one past the last bucket):
    /// the binary search runs inside one bucket, a handful of ranges when the networks are
    /// spread, and never more than all of them.
    buckets: Vec<u32>,
}

/// An address of one family as an unsigned integer.
pub trait Bits: Copy + Ord {
    /// The leading `bits` bits (fewer than the width).
    fn bucket(self, bits: u32) -> usize;
}

impl Bits for u32 {
    fn bucket(self, bits: u32) -> usize {
        self.checked_shr(32 - bits).unwrap_or(0) as usize
    }
}

impl Bits for u128 {
    fn bucket(self, bits: u32) -> usize {
        self.checked_shr(128 - bits).unwrap_or(0) as usize
    }
}

impl<T: Bits> Ranges<T> {
    /// `networks` as `(first address, last address, label)`, in one family, each either
    /// inside another or apart from it (as prefixes are); `narrow` converts the family's
    /// addresses from `u128`.
    pub fn new(networks: Vec<(u128, u128, usize)>, narrow: impl Fn(u128) -> T) -> Self {
        let flat = flatten(networks);
        let starts: Vec<T> = flat.iter().map(|&(start, _, _)| narrow(start)).collect();
        // About one range per bucket; 2^16 buckets at most (256 KiB), whatever the count.
        let bucket_bits = starts.len().next_power_of_two().trailing_zeros().min(16);
        let mut buckets = Vec::with_capacity((1 << bucket_bits) + 1);
        let mut first = 0;
        for bucket in 0..=(1usize << bucket_bits) {
            while starts
                .get(first)
                .is_some_and(|start| start.bucket(bucket_bits) < bucket)
            {
                first += 1;
            }
            buckets.push(first as u32);
        }
        Ranges {
            starts,
            ends: flat.iter().map(|&(_, end, _)| narrow(end)).collect(),
            labels: flat.iter().map(|&(_, _, label)| label).collect(),
            bucket_bits,
            buckets,
        }
    }

    /// The label of the most specific network containing `addr`.
    pub fn find(&self, addr: T) -> Option<usize> {
        let bucket = addr.bucket(self.bucket_bits);
        let (first, end) = (
            self.buckets[bucket] as usize,
            self.buckets[bucket + 1] as usize,
        );
        // Ranges before the bucket start below `addr`, ranges after it above.
        let index = first + self.starts[first..end].partition_point(|&start| start <= addr);
        let index = index.checked_sub(1)?;
        (addr <= self.ends[index]).then(|| self.labels[index])
    }
}

/// Disjoint ranges, ascending, each of the innermost network covering it. `networks` must be
/// laminar (any two are nested or apart).
fn flatten(mut networks: Vec<(u128, u128, usize)>) -> Vec<(u128, u128, usize)> {
    // By first address, the wider first: an enclosing network comes before what it encloses.
    networks.sort_unstable_by_key(|&(start, end, _)| (start, Reverse(end)));
    let mut flat = Vec::with_capacity(networks.len() * 2);
    // The networks around the current address, innermost last, as (last address, label).
    let mut open: Vec<(u128, usize)> = Vec::new();
    // The first address not yet in `flat`, while `open` is not empty.
    let mut next = 0u128;
    for (start, end, label) in networks {
        while let Some(&(outer_end, outer)) = open.last() {
            if outer_end >= start {
                break;
            }
            if next <= outer_end {
                flat.push((next, outer_end, outer));
            }
            // `outer_end < start`: no overflow.
            next = outer_end + 1;
            open.pop();
        }
        if let Some(&(_, outer)) = open.last()
            && next < start
        {
            flat.push((next, start - 1, outer));
        }
        open.push((end, label));
        next = start;
    }
    while let Some((end, label)) = open.pop() {
        if next <= end {
            flat.push((next, end, label));
        }
        match end.checked_add(1) {
            Some(after) => next = after,
            // Ends at the family's last address, so does everything around it.
            None => break,
        }
    }
    flat
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// A small deterministic generator (xorshift), so a failure repeats.
    pub(crate) struct Rng(pub(crate) u64);

    impl Rng {
        pub(crate) fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }

        pub(crate) fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }

        pub(crate) fn u128(&mut self) -> u128 {
            (u128::from(self.next()) << 64) | u128::from(self.next())
        }
    }

    /// What the fast parser must agree with: the standard parser on the text before a `%`.
    fn std_parse(text: &str) -> Option<Addr> {
        let addr = text.split_once('%').map_or(text, |(addr, _zone)| addr);
        addr.parse::<IpAddr>().ok().map(Addr::from)
    }

    /// A random address spelt as the standard library writes it, or in one of the other ways
    /// hosts report addresses (mapped, uncompressed, upper case, a zone).
    fn spelling(rng: &mut Rng) -> String {
        let v6 = rng.u128();
        // Some groups zero, so that `::` appears in various places.
        let zero_groups = rng.next();
        let zeros = (0..8)
            .filter(|group| (zero_groups >> group) & 1 == 1)
            .fold(v6, |v6, group| v6 & !(0xffff << (16 * group)));
        match rng.below(7) {
            0 | 1 => std::net::Ipv4Addr::from(rng.next() as u32).to_string(),
            2 => std::net::Ipv6Addr::from(v6).to_string(),
            3 => std::net::Ipv6Addr::from(zeros).to_string(),
            4 => format!("::ffff:{}", std::net::Ipv4Addr::from(rng.next() as u32)),
            5 => {
                let groups: Vec<String> = (0..8)
                    .map(|i| format!("{:X}", (v6 >> (16 * (7 - i))) as u16))
                    .collect();
                groups.join(":")
            }
            _ => format!("{}%eth0", std::net::Ipv6Addr::from(zeros)),
        }
    }

    /// `text` with a few characters replaced, inserted or removed.
    fn mutate(rng: &mut Rng, text: &str) -> String {
        const ALPHABET: &[u8] = b"0123456789abcdefABCDEFgz:.% /-";
        let mut bytes = text.as_bytes().to_vec();
        for _ in 0..=rng.below(3) {
            let at = rng.below(bytes.len() as u64 + 1) as usize;
            let c = ALPHABET[rng.below(ALPHABET.len() as u64) as usize];
            match rng.below(3) {
                0 if at < bytes.len() => bytes[at] = c,
                1 if at < bytes.len() => {
                    bytes.remove(at);
                }
                _ => bytes.insert(at, c),
            }
        }
        String::from_utf8(bytes).expect("ASCII")
    }

    #[test]
    fn the_fast_parser_agrees_with_the_standard_one() {
        let mut rng = Rng(0x5eed);
        for _ in 0..200_000 {
            let text = spelling(&mut rng);
            let expected = std_parse(&text);
            assert!(expected.is_some(), "{text:?}");
            // The usual spellings never fall back to the standard parser.
            assert_eq!(parse_fast(text.as_bytes()), expected, "{text:?}");
            assert_eq!(Addr::parse(&text), expected, "{text:?}");

            let mutated = mutate(&mut rng, &text);
            let fast = parse_fast(mutated.as_bytes());
            assert!(
                fast.is_none() || fast == std_parse(&mutated),
                "{mutated:?}: {fast:?} but the standard parser says {:?}",
                std_parse(&mutated)
            );
        }
    }

    #[test]
    fn the_fast_parser_takes_what_the_standard_one_takes() {
        for text in [
            "0.0.0.0",
            "255.255.255.255",
            "::",
            "::1",
            "1::",
            "1:2:3:4:5:6:7::",
            "::2:3:4:5:6:7:8",
            "1:2:3:4:5:6:1.2.3.4",
            "::1.2.3.4",
            "1::1.2.3.4",
            "::ffff:10.0.0.1",
            "FD00::aB",
            "0000:0000:0000:0000:0000:0000:0000:0001",
        ] {
            assert_eq!(parse_fast(text.as_bytes()), std_parse(text), "{text:?}");
            assert!(std_parse(text).is_some(), "{text:?}");
        }
        for text in [
            "",
            "1.2.3",
            "1.2.3.4.5",
            "01.2.3.4",
            "1.2.3.256",
            "1234.1.1.1",
            ":",
            ":::",
            "1:::2",
            "::1::",
            ":1:2:3:4:5:6:7",
            "1:2:3:4:5:6:7:",
            "1:2:3:4:5:6:7::8",
            "1:2:3:4:5:6:7:8:9",
            "1:2:3:4:5:6:7",
            "12345::",
            "1:2:3:4:5:6:7:1.2.3.4",
            "::1.2.3.4:1",
            "1.2.3.4::",
            "g::",
            " 1.2.3.4",
        ] {
            assert_eq!(parse_fast(text.as_bytes()), None, "{text:?}");
            assert_eq!(std_parse(text), None, "{text:?}");
        }
    }

    /// A random network of `width` bits: about half nested in an earlier one.
    fn networks(rng: &mut Rng, width: u32, count: usize) -> Vec<(u128, u128, u32)> {
        let all = u128::MAX >> (128 - width);
        let mut nets: Vec<(u128, u32)> = Vec::new();
        for _ in 0..count {
            // Inside an earlier network, or anywhere; any prefix length, so that wide networks
            // with much inside them come up too.
            let (base, outer_len) = match nets.len() {
                n if n > 0 && rng.below(2) == 0 => nets[rng.below(n as u64) as usize],
                _ => (0, 0),
            };
            let len = outer_len + rng.below(u64::from(width - outer_len) + 1) as u32;
            let outer_host = all.checked_shr(outer_len).unwrap_or(0);
            let host = all.checked_shr(len).unwrap_or(0);
            nets.push(((base | (rng.u128() & outer_host)) & !host, len));
        }
        let mut nets: Vec<(u128, u128, u32)> = nets
            .into_iter()
            .map(|(start, len)| (start, start | all.checked_shr(len).unwrap_or(0), len))
            .collect();
        nets.sort_unstable();
        nets.dedup();
        nets
    }

    fn linear(nets: &[(u128, u128, u32)], addr: u128) -> Option<usize> {
        nets.iter()
            .enumerate()
            .filter(|&(_, &(start, end, _))| start <= addr && addr <= end)
            .max_by_key(|&(_, &(_, _, len))| len)
            .map(|(i, _)| i)
    }

    #[test]
    fn ranges_answer_as_a_linear_scan_does() {
        let mut rng = Rng(0xfeed);
        for round in 0..300 {
            let width = if round % 2 == 0 { 32 } else { 128 };
            // Mostly small sets, now and then one large enough for many buckets.
            let count = 1 + rng.below(if round % 10 == 0 { 2_000 } else { 40 }) as usize;
            let nets = networks(&mut rng, width, count);
            let labelled = nets
                .iter()
                .enumerate()
                .map(|(i, &(start, end, _))| (start, end, i))
                .collect();
            let ranges = Ranges::new(labelled, |x| x);
            let all = u128::MAX >> (128 - width);
            for _ in 0..200 {
                // Near a boundary as often as anywhere: off-by-ones live there.
                let (start, end, _) = nets[rng.below(nets.len() as u64) as usize];
                let addr = match rng.below(5) {
                    0 => start,
                    1 => end,
                    2 => start.wrapping_sub(1) & all,
                    3 => end.wrapping_add(1) & all,
                    _ => rng.u128() & all,
                };
                assert_eq!(
                    ranges.find(addr),
                    linear(&nets, addr),
                    "{addr:#x} in {nets:x?}"
                );
            }
        }
    }

    #[test]
    fn ranges_reach_the_ends_of_the_space() {
        let whole = Ranges::new(vec![(0, u128::from(u32::MAX), 0), (5, 5, 1)], |x| x as u32);
        assert_eq!(whole.find(0), Some(0));
        assert_eq!(whole.find(5), Some(1));
        assert_eq!(whole.find(6), Some(0));
        assert_eq!(whole.find(u32::MAX), Some(0));
        let last = Ranges::new(vec![(u128::MAX, u128::MAX, 7)], |x| x);
        assert_eq!(last.find(u128::MAX), Some(7));
        assert_eq!(last.find(u128::MAX - 1), None);
        assert_eq!(Ranges::<u32>::new(Vec::new(), |x| x as u32).find(0), None);
    }
}
