//! Phase 4: network membership, the lookup behind `scope_is_local` and `scope_local_network`.
//!
//! Every connection end of every rendered row asks which local network (if any) its address
//! is in. This phase times that question for `--membership-addresses` addresses (IPv4 and
//! IPv6, some IPv4-mapped, some in no network, a few not addresses at all) against
//! `--membership-networks` networks of mixed prefix lengths, some nested in others, as the
//! renderer loads them (`Networks::from_rows`, one snapshot):
//!
//! 1. `LocalNetworks::network_of` (the networks as sorted address ranges) for each address;
//! 2. the SQL functions themselves on an Arrow array of the addresses, as a projection calls
//!    them (`scope_local_network(snapshot_time, addr)`, `scope_is_local(snapshot_time, addr)`);
//! 3. the baseline: a linear scan over the same networks for the most specific one containing
//!    the address. It costs a pass over every network per address, so it runs on an evenly
//!    spread sample (`--membership-scan-sample`), and its answers are checked against
//!    `network_of`'s for the same addresses.
//!
//! The figures are throughputs (addresses per second) and their ratio to the linear scan,
//! measured in the same run on the same addresses.

use std::hint::black_box;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use arrow::array::{Array, ArrayRef, BooleanArray, Int64Array, StringArray};
use scope_renderer::network::{self, IpNetwork, Networks};

use crate::config::LoadArgs;
use crate::report::{Figure, Report, Value, thousands};
use crate::workload::Rng;

/// The snapshot the networks belong to.
const SNAPSHOT_US: i64 = 1_700_000_000_000_000;
/// How much faster than the linear scan `network_of` must be (issues 8 and 21).
const TARGET_RATIO: f64 = 100.0;

/// One timed lookup method.
#[derive(Clone, Copy, Debug)]
pub struct Timing {
    pub addresses: usize,
    pub elapsed: Duration,
}

impl Timing {
    pub fn per_second(&self) -> f64 {
        self.addresses as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// Figures of phase 4.
#[derive(Debug)]
pub struct Membership {
    pub networks: usize,
    pub ipv4_networks: usize,
    pub addresses: usize,
    pub ipv6_addresses: usize,
    /// Addresses inside some network (loopback included).
    pub matched: usize,
    pub network_of: Timing,
    pub udf_network: Timing,
    pub udf_is_local: Timing,
    pub scan: Timing,
    /// Time to parse the CIDRs and build the lookup structures.
    pub build: Duration,
}

impl Membership {
    pub fn ratio(&self) -> f64 {
        self.network_of.per_second() / self.scan.per_second()
    }

    pub fn report(&self, report: &mut Report) {
        let scan = self.scan.per_second();
        let what = format!(
            "{} addresses ({} IPv6, {:.1}% in a network) against {} networks ({} IPv4, {} IPv6)",
            thousands(self.addresses as f64),
            thousands(self.ipv6_addresses as f64),
            100.0 * self.matched as f64 / self.addresses.max(1) as f64,
            thousands(self.networks as f64),
            thousands(self.ipv4_networks as f64),
            thousands((self.networks - self.ipv4_networks) as f64),
        );
        let row = |report: &mut Report, name: &str, t: Timing, detail: String| {
            report.add(Figure::new(
                name,
                Value::Text(format!(
                    "{} addresses/s, {:.0}x the linear scan",
                    thousands(t.per_second()),
                    t.per_second() / scan
                )),
                format!(
                    "{} addresses in {:.3} s; {detail}",
                    thousands(t.addresses as f64),
                    t.elapsed.as_secs_f64()
                ),
            ));
        };
        row(
            report,
            "4. membership: LocalNetworks::network_of (sorted ranges)",
            self.network_of,
            what,
        );
        row(
            report,
            "4. membership: scope_local_network(snapshot_time, addr), Arrow array",
            self.udf_network,
            "the SQL function on one array, CIDR strings out".into(),
        );
        row(
            report,
            "4. membership: scope_is_local(snapshot_time, addr), Arrow array",
            self.udf_is_local,
            "the SQL function on one array, booleans out".into(),
        );
        report.add(Figure::new(
            "4. membership: linear scan over the networks (baseline)",
            Value::Text(format!("{} addresses/s", thousands(scan))),
            format!(
                "{} addresses (every {}th) in {:.3} s, most specific of {} networks each; \
                 answers equal to network_of's",
                thousands(self.scan.addresses as f64),
                self.addresses / self.scan.addresses.max(1),
                self.scan.elapsed.as_secs_f64(),
                thousands(self.networks as f64),
            ),
        ));
        let ratio = self.ratio();
        report.add(Figure::new(
            "4. membership: network_of / linear scan",
            Value::Text(format!("{ratio:.0}x")),
            format!(
                "target >= {TARGET_RATIO:.0}x: {}",
                if ratio >= TARGET_RATIO {
                    "met"
                } else {
                    "NOT met"
                }
            ),
        ));
        report.note(format!(
            "phase 4 parsed the {} CIDRs and built the lookup structures in {:.0} ms",
            thousands(self.networks as f64),
            self.build.as_secs_f64() * 1000.0
        ));
    }
}

/// Runs phase 4: generates the networks and addresses, then times every method.
pub fn run(args: &LoadArgs) -> anyhow::Result<Membership> {
    let mut rng = Rng(args.seed);
    let nets = generate_networks(&mut rng, args.membership_networks as usize);
    let addrs = generate_addresses(&mut rng, &nets, args.membership_addresses as usize);

    let started = Instant::now();
    let rows = nets.iter().map(|n| (SNAPSHOT_US, n.to_string()));
    let (networks, rejected) = Networks::from_rows(rows, &[]);
    if !rejected.is_empty() {
        bail!("generated CIDRs rejected: {rejected:?}");
    }
    let networks = Arc::new(networks);
    let build = started.elapsed();
    let set = networks.at(SNAPSHOT_US);

    // 1. `network_of`, address by address.
    let started = Instant::now();
    let found: Vec<Option<IpNetwork>> = addrs.iter().map(|a| set.network_of(a)).collect();
    let network_of = Timing {
        addresses: addrs.len(),
        elapsed: started.elapsed(),
    };
    let found = black_box(found);
    let matched = found.iter().filter(|n| n.is_some()).count();

    // 2. The SQL functions on arrays, as a projection over a snapshot calls them.
    let addr_array: ArrayRef = Arc::new(StringArray::from_iter_values(&addrs));
    let times: ArrayRef = Arc::new(Int64Array::from(vec![SNAPSHOT_US; addrs.len()]));
    let args2 = [Arc::clone(&times), Arc::clone(&addr_array)];
    let udf = network::local_network_udf(Arc::clone(&networks));
    let started = Instant::now();
    let cidrs = network::invoke(&udf, &args2).context("scope_local_network")?;
    let udf_network = Timing {
        addresses: addrs.len(),
        elapsed: started.elapsed(),
    };
    let udf = network::is_local_udf(Arc::clone(&networks));
    let started = Instant::now();
    let local = network::invoke(&udf, &args2).context("scope_is_local")?;
    let udf_is_local = Timing {
        addresses: addrs.len(),
        elapsed: started.elapsed(),
    };
    check_udf_answers(&found, &cidrs, &local)?;

    // 3. The linear scan, on every `step`th address.
    let sample = (args.membership_scan_sample as usize).clamp(1, addrs.len().max(1));
    let step = (addrs.len() / sample).max(1);
    let sampled: Vec<usize> = (0..addrs.len()).step_by(step).take(sample).collect();
    let list = set.networks();
    let started = Instant::now();
    let scanned: Vec<Option<IpNetwork>> = sampled
        .iter()
        .map(|&i| linear_scan(list, &addrs[i]))
        .collect();
    let scan = Timing {
        addresses: sampled.len(),
        elapsed: started.elapsed(),
    };
    for (&i, by_scan) in sampled.iter().zip(black_box(&scanned)) {
        if *by_scan != found[i] {
            bail!(
                "{:?}: network_of says {:?}, the linear scan {:?}",
                addrs[i],
                found[i].map(|n| n.to_string()),
                by_scan.map(|n| n.to_string())
            );
        }
    }

    Ok(Membership {
        networks: nets.len(),
        ipv4_networks: nets.iter().filter(|n| !n.v6).count(),
        addresses: addrs.len(),
        ipv6_addresses: addrs.iter().filter(|a| a.contains(':')).count(),
        matched,
        network_of,
        udf_network,
        udf_is_local,
        scan,
        build,
    })
}

/// What a lookup without a search structure does: every network, keeping the longest prefix.
fn linear_scan(networks: &[IpNetwork], addr: &str) -> Option<IpNetwork> {
    let ip = network::parse_addr(addr)?;
    networks
        .iter()
        .filter(|n| n.contains(ip))
        .max_by_key(|n| n.netmask())
        .copied()
}

fn check_udf_answers(
    found: &[Option<IpNetwork>],
    cidrs: &ArrayRef,
    local: &ArrayRef,
) -> anyhow::Result<()> {
    let (Some(cidrs), Some(local)) = (
        cidrs.as_any().downcast_ref::<StringArray>(),
        local.as_any().downcast_ref::<BooleanArray>(),
    ) else {
        bail!("the SQL functions returned unexpected types");
    };
    for (row, expected) in found.iter().enumerate() {
        let cidr = cidrs.is_valid(row).then(|| cidrs.value(row));
        if cidr.map(str::to_owned) != expected.map(|n| n.to_string())
            || local.value(row) != expected.is_some()
        {
            bail!("row {row}: the SQL functions disagree with LocalNetworks::network_of");
        }
    }
    Ok(())
}

/// A generated network: its address bits (IPv4 in the low 32) and prefix length.
#[derive(Clone, Copy, Debug)]
struct Net {
    v6: bool,
    bits: u128,
    len: u32,
}

impl Net {
    fn width(v6: bool) -> u32 {
        if v6 { 128 } else { 32 }
    }

    fn mask(v6: bool, len: u32) -> u128 {
        let width = Self::width(v6);
        let all = if v6 { u128::MAX } else { u128::from(u32::MAX) };
        if len == 0 {
            0
        } else {
            (all << (width - len)) & all
        }
    }

    /// A random address inside the network.
    fn address(&self, rng: &mut Rng) -> u128 {
        let all = Self::mask(self.v6, Self::width(self.v6));
        (self.bits & Self::mask(self.v6, self.len))
            | (rng.u128() & !Self::mask(self.v6, self.len) & all)
    }
}

impl std::fmt::Display for Net {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", format_addr(self.v6, self.bits), self.len)
    }
}

fn format_addr(v6: bool, bits: u128) -> String {
    if v6 {
        Ipv6Addr::from(bits).to_string()
    } else {
        Ipv4Addr::from(bits as u32).to_string()
    }
}

/// Half IPv4, half IPv6; about a third nested inside an earlier network of the same family
/// (so the most specific match matters), the rest anywhere with a prefix length drawn from
/// those interfaces and routes have. IPv4 prefixes are mostly long so that most of the space
/// stays outside every network.
fn generate_networks(rng: &mut Rng, count: usize) -> Vec<Net> {
    const V4_LENGTHS: [u32; 10] = [12, 16, 20, 22, 24, 24, 24, 26, 28, 32];
    const V6_LENGTHS: [u32; 10] = [32, 40, 48, 56, 64, 64, 64, 80, 112, 128];
    let mut nets: Vec<Net> = Vec::with_capacity(count);
    let mut by_family: [Vec<usize>; 2] = [Vec::new(), Vec::new()];
    for i in 0..count {
        let v6 = i % 2 == 1;
        let family = &by_family[usize::from(v6)];
        let width = Net::width(v6);
        let parent = (!family.is_empty() && rng.fraction() < 0.3)
            .then(|| nets[family[rng.below(family.len() as u64) as usize]])
            .filter(|p| p.len < width);
        let net = match parent {
            Some(p) => {
                let len = p.len + 1 + rng.below(u64::from(width - p.len)) as u32;
                let bits = p.address(rng) & Net::mask(v6, len);
                Net { v6, bits, len }
            }
            None => {
                let lengths = if v6 { &V6_LENGTHS } else { &V4_LENGTHS };
                let len = lengths[rng.below(lengths.len() as u64) as usize];
                let bits = rng.u128() & Net::mask(v6, len);
                Net { v6, bits, len }
            }
        };
        by_family[usize::from(v6)].push(nets.len());
        nets.push(net);
    }
    nets
}

/// 90% inside a random network (2% of the IPv4 ones written IPv4-mapped), 9.5% random
/// addresses (mostly misses), 0.5% not addresses.
fn generate_addresses(rng: &mut Rng, nets: &[Net], count: usize) -> Vec<String> {
    const GARBAGE: [&str; 5] = ["", "not-an-address", "10.0.0.256", "fe80::zz", "1.2.3"];
    (0..count)
        .map(|_| {
            let roll = rng.fraction();
            if roll < 0.005 || nets.is_empty() {
                GARBAGE[rng.below(GARBAGE.len() as u64) as usize].to_owned()
            } else if roll < 0.1 {
                let v6 = rng.below(2) == 1;
                format_addr(v6, rng.u128())
            } else {
                let net = nets[rng.below(nets.len() as u64) as usize];
                let addr = net.address(rng);
                if !net.v6 && rng.fraction() < 0.02 {
                    format!("::ffff:{}", format_addr(false, addr))
                } else {
                    format_addr(net.v6, addr)
                }
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use clap::Parser;
    use scope_renderer::network::LocalNetworks;

    use super::*;

    #[test]
    fn a_small_run_agrees_with_the_scan_and_reports_every_figure() {
        let args = LoadArgs::parse_from([
            "scope-load",
            "--membership-addresses",
            "20000",
            "--membership-networks",
            "500",
            "--membership-scan-sample",
            "2000",
        ]);
        let result = run(&args).unwrap();
        assert_eq!(result.addresses, 20_000);
        assert_eq!(result.networks, 500);
        assert_eq!(result.scan.addresses, 2_000);
        assert!(result.ipv6_addresses > 5_000 && result.ipv6_addresses < 15_000);
        // 90% are drawn inside a network; random ones rarely land in one.
        assert!(
            result.matched > 17_000 && result.matched < 19_500,
            "{}",
            result.matched
        );
        let mut report = Report::default();
        result.report(&mut report);
        let table = report.to_markdown();
        assert!(table.contains("network_of / linear scan"), "{table}");
        assert!(
            table.contains("scope_local_network(snapshot_time, addr)"),
            "{table}"
        );
    }

    #[test]
    fn generated_networks_nest_and_parse() {
        let mut rng = Rng(7);
        let nets = generate_networks(&mut rng, 1_000);
        let (set, rejected) = LocalNetworks::from_cidrs(nets.iter().map(|n| n.to_string()));
        assert!(rejected.is_empty(), "{rejected:?}");
        // Duplicates fold; loopback is added.
        assert!(set.networks().len() > 900, "{}", set.networks().len());
        let nested = nets
            .iter()
            .filter(|n| {
                nets.iter().any(|p| {
                    p.v6 == n.v6 && p.len < n.len && (n.bits & Net::mask(p.v6, p.len)) == p.bits
                })
            })
            .count();
        assert!(nested > 150, "{nested}");
    }
}
