//! NAT resolution through the kernel's conntrack table, over ctnetlink.
//!
//! A client connecting to a DNAT'ed virtual address (a Kubernetes service, a Docker published
//! port) holds a socket whose remote is the virtual address, while the backend's socket names
//! the client: the renderer cannot pair the two ends from `/proc/net/tcp` alone. Conntrack
//! knows the translation: the entry whose ORIGINAL tuple is (TCP, local → virtual) has a
//! REPLY tuple whose source is the real backend.
//!
//! Entries are asked for one at a time (`IPCTNL_MSG_CT_GET` with the original tuple, not a
//! dump of the table), over a `NETLINK_NETFILTER` socket whose messages are encoded and
//! decoded here with nothing but `libc`. Conntrack tables are per network namespace and a
//! netlink socket talks to the namespace it was created in, so the socket for namespace N is
//! created on a short-lived helper thread that first `setns`es into N through
//! `/proc/<pid>/ns/net` of a process living there; the calling thread never changes
//! namespace. One socket per namespace is cached. The collector's own namespace is asked too,
//! because kube-proxy translates pod traffic in the host's namespace, not the pod's.
//!
//! Nothing here fails the collector: a namespace that cannot be entered, a timeout or a
//! malformed reply is logged at debug and answered with `None` (no translation known).

use std::{
    collections::{HashMap, HashSet},
    fs::File,
    io,
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
    os::{
        fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd},
        unix::fs::MetadataExt,
    },
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

/// How many namespaces' sockets are kept open; beyond it one is closed for each new one.
const MAX_SOCKETS: usize = 1024;
/// How long a destination found untranslated is believed to stay so. A DNAT rule added for it
/// meanwhile is seen this much later.
const UNTRANSLATED_TTL: Duration = Duration::from_secs(10);
const MAX_UNTRANSLATED: usize = 16 * 1024;
/// `SO_RCVTIMEO` of every socket: one `recv` never waits longer than this.
const RECV_TIMEOUT: Duration = Duration::from_millis(100);
/// Upper bound of one lookup, even if stale replies keep arriving.
const LOOKUP_DEADLINE: Duration = Duration::from_millis(200);
/// Receive buffer; one conntrack entry is a few hundred bytes.
const RECV_BUFFER: usize = 16 * 1024;

// Netlink (include/uapi/linux/netlink.h).
const NLMSG_HDRLEN: usize = 16;
const NLA_HDRLEN: usize = 4;
const NLA_TYPE_MASK: u16 = !((libc::NLA_F_NESTED | libc::NLA_F_NET_BYTEORDER) as u16);
const NLMSG_ERROR: u16 = libc::NLMSG_ERROR as u16;

// nfnetlink and ctnetlink (include/uapi/linux/netfilter/{nfnetlink,nfnetlink_conntrack}.h).
const NFNL_SUBSYS_CTNETLINK: u16 = 1;
const IPCTNL_MSG_CT_NEW: u16 = 0;
const IPCTNL_MSG_CT_GET: u16 = 1;
const NFNETLINK_V0: u8 = 0;
const NFGENMSG_LEN: usize = 4;
const CTA_TUPLE_ORIG: u16 = 1;
const CTA_TUPLE_REPLY: u16 = 2;
const CTA_TUPLE_IP: u16 = 1;
const CTA_TUPLE_PROTO: u16 = 2;
const CTA_IP_V4_SRC: u16 = 1;
const CTA_IP_V4_DST: u16 = 2;
const CTA_IP_V6_SRC: u16 = 3;
const CTA_IP_V6_DST: u16 = 4;
const CTA_PROTO_NUM: u16 = 1;
const CTA_PROTO_SRC_PORT: u16 = 2;
const CTA_PROTO_DST_PORT: u16 = 3;
const IPPROTO_TCP: u8 = libc::IPPROTO_TCP as u8;

/// Conntrack lookups across network namespaces, with one cached netlink socket per namespace.
///
/// Blocking (a lookup waits at most a few hundred milliseconds): call it from the spy's
/// blocking thread, not from an async task.
#[derive(Debug)]
pub struct Conntrack {
    /// Where `<pid>/ns/net` of other processes is found (the host's `/proc`).
    proc_root: PathBuf,
    /// Inode of the collector's own network namespace; `None` when it could not be read.
    own_netns: Option<u64>,
    /// Netlink sockets by network namespace inode, each created inside its namespace.
    sockets: HashMap<u64, OwnedFd>,
    /// Destinations found untranslated, by namespace, and when: not asked again for
    /// [`UNTRANSLATED_TTL`], so a busy client of one plain server costs one lookup, not one per
    /// connection. Translated destinations are always asked: each connection may get another
    /// backend.
    untranslated: HashMap<(u64, SocketAddr), Instant>,
    /// Namespaces the collector is not allowed to enter (no CAP_SYS_ADMIN): not tried again,
    /// so a collector without the privilege does not spawn a thread per connection.
    forbidden: HashSet<u64>,
    /// Sequence number of the last request; replies carrying another one are stale.
    seq: u32,
    /// Receive buffer, kept between lookups.
    buf: Vec<u8>,
}

impl Conntrack {
    /// Lookups entering other namespaces through `<proc_root>/<pid>/ns/net`. The collector's
    /// own namespace is the one of `/proc/self`, wherever `proc_root` points.
    pub fn new(proc_root: PathBuf) -> Self {
        let own_netns = match std::fs::metadata("/proc/self/ns/net") {
            Ok(meta) => Some(meta.ino()),
            Err(error) => {
                tracing::debug!(%error, "could not read the collector's network namespace; conntrack lookups skip it");
                None
            }
        };
        Self {
            proc_root,
            own_netns,
            sockets: HashMap::new(),
            forbidden: HashSet::new(),
            untranslated: HashMap::new(),
            seq: 0,
            buf: vec![0; RECV_BUFFER],
        }
    }

    /// The real remote of a connection opened from `local` to `remote` in network namespace
    /// `netns` (entered through /proc/<pid>/ns/net of `pid`), when conntrack translated it;
    /// None when not translated, not tracked, or the namespace can't be entered (log at
    /// debug, never panic).
    ///
    /// The socket's own namespace is asked first, then the collector's (where kube-proxy
    /// DNATs pod traffic) when the first gave no translation. Only an entry whose ORIGINAL
    /// tuple is (local → remote) counts: the kernel also matches a REPLY tuple, which is the
    /// accepting end of a connection and has nothing to translate. IPv4-mapped IPv6 addresses
    /// are looked up, and answered, as IPv4.
    pub fn destination(
        &mut self,
        netns: u64,
        pid: Option<i32>,
        local: SocketAddr,
        remote: SocketAddr,
    ) -> Option<SocketAddr> {
        let orig = Tuple::new(local, remote)?;
        let now = Instant::now();
        if self
            .untranslated
            .get(&(netns, remote))
            .is_some_and(|at| now.duration_since(*at) < UNTRANSLATED_TTL)
        {
            return None;
        }
        let found = self.lookup_everywhere(netns, pid, &orig);
        if found.is_none() {
            if self.untranslated.len() >= MAX_UNTRANSLATED {
                self.untranslated
                    .retain(|_, at| now.duration_since(*at) < UNTRANSLATED_TTL);
                if self.untranslated.len() >= MAX_UNTRANSLATED {
                    self.untranslated.clear();
                }
            }
            self.untranslated.insert((netns, remote), now);
        }
        found
    }

    /// The socket's own namespace first, then the collector's.
    fn lookup_everywhere(
        &mut self,
        netns: u64,
        pid: Option<i32>,
        orig: &Tuple,
    ) -> Option<SocketAddr> {
        if Some(netns) != self.own_netns {
            if let Some(pid) = pid {
                let ns_path = self.proc_root.join(pid.to_string()).join("ns/net");
                if let Some(found) = self.translated(netns, &ns_path, orig) {
                    return Some(found);
                }
            } else {
                tracing::trace!(
                    netns,
                    "no process known in this network namespace; only the collector's is asked"
                );
            }
        }
        let own = self.own_netns?;
        self.translated(own, Path::new("/proc/self/ns/net"), orig)
    }

    /// The reply source of `orig`'s entry in namespace `netns`, when it is not `orig.dst`.
    fn translated(&mut self, netns: u64, ns_path: &Path, orig: &Tuple) -> Option<SocketAddr> {
        if self.forbidden.contains(&netns) {
            return None;
        }
        let fd = match socket(&mut self.sockets, netns, ns_path) {
            Ok(fd) => fd,
            Err(error) if error.raw_os_error() == Some(libc::EPERM) => {
                tracing::debug!(netns, %error, "not allowed to enter this network namespace; its connections are not NAT-resolved");
                if self.forbidden.len() >= MAX_SOCKETS {
                    self.forbidden.clear();
                }
                self.forbidden.insert(netns);
                return None;
            }
            Err(error) => {
                tracing::debug!(netns, path = %ns_path.display(), %error, "could not open a conntrack socket in this network namespace");
                return None;
            }
        };
        self.seq = self.seq.wrapping_add(1);
        let seq = self.seq;
        match lookup(fd, &mut self.buf, seq, orig) {
            Ok(Some(entry)) if entry.orig == *orig => {
                (entry.reply.src != orig.dst).then_some(entry.reply.src)
            }
            Ok(Some(entry)) => {
                tracing::trace!(netns, orig = ?entry.orig, "conntrack entry matched in its reply direction; not a translation");
                None
            }
            Ok(None) => None,
            Err(LookupError::Io(error)) => {
                tracing::debug!(netns, %error, "conntrack lookup failed; dropped the namespace's socket");
                self.sockets.remove(&netns);
                None
            }
            Err(LookupError::Kernel(errno)) => {
                let error = io::Error::from_raw_os_error(errno);
                tracing::debug!(netns, %error, "conntrack refused a lookup");
                None
            }
            Err(LookupError::Malformed(why)) => {
                tracing::debug!(netns, why, "malformed conntrack reply");
                None
            }
        }
    }
}

/// The cached socket of `netns`, created (and cached) when there is none.
fn socket<'a>(
    sockets: &'a mut HashMap<u64, OwnedFd>,
    netns: u64,
    ns_path: &Path,
) -> io::Result<BorrowedFd<'a>> {
    if !sockets.contains_key(&netns) {
        let fd = open_in_netns(ns_path.to_owned(), netns)?;
        if sockets.len() >= MAX_SOCKETS
            && let Some(&evicted) = sockets.keys().next()
        {
            sockets.remove(&evicted);
        }
        sockets.insert(netns, fd);
    }
    let fd = sockets.get(&netns).ok_or(io::ErrorKind::NotFound)?;
    Ok(fd.as_fd())
}

/// A TCP connection's direction as conntrack keys it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Tuple {
    src: SocketAddr,
    dst: SocketAddr,
}

impl Tuple {
    /// Both ends in one family (IPv4-mapped IPv6 as IPv4); `None` when the families differ.
    fn new(src: SocketAddr, dst: SocketAddr) -> Option<Self> {
        let src = SocketAddr::new(src.ip().to_canonical(), src.port());
        let dst = SocketAddr::new(dst.ip().to_canonical(), dst.port());
        (src.is_ipv4() == dst.is_ipv4()).then_some(Self { src, dst })
    }

    fn family(&self) -> u8 {
        if self.src.is_ipv4() {
            libc::AF_INET as u8
        } else {
            libc::AF_INET6 as u8
        }
    }
}

/// Both directions of one conntrack entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Entry {
    orig: Tuple,
    reply: Tuple,
}

#[derive(Debug)]
enum LookupError {
    /// The socket failed or timed out; it is dropped.
    Io(io::Error),
    /// The kernel answered with this errno (other than `ENOENT`).
    Kernel(i32),
    Malformed(&'static str),
}

/// Creates a ctnetlink socket inside the namespace at `ns_path`, on a helper thread so the
/// caller's thread keeps its namespace. The namespace must have inode `netns`: a pid reused
/// by a process elsewhere is refused rather than queried.
fn open_in_netns(ns_path: PathBuf, netns: u64) -> io::Result<OwnedFd> {
    std::thread::Builder::new()
        .name("conntrack-netns".into())
        .spawn(move || {
            let ns = File::open(&ns_path)?;
            let ino = ns.metadata()?.ino();
            if ino != netns {
                return Err(io::Error::other(format!(
                    "the namespace is {ino}, not {netns} (pid reused?)"
                )));
            }
            // SAFETY: `ns` is an open namespace file; setns only changes this helper
            // thread's network namespace, and the thread ends right after.
            if unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                return Err(io::Error::last_os_error());
            }
            open_socket()
        })?
        .join()
        .map_err(|_| io::Error::other("the conntrack namespace thread panicked"))?
}

/// A `NETLINK_NETFILTER` socket in the calling thread's network namespace.
fn open_socket() -> io::Result<OwnedFd> {
    // SAFETY: plain socket(2); the result is checked before use.
    let raw = unsafe {
        libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            libc::NETLINK_NETFILTER,
        )
    };
    if raw < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `raw` is a fresh descriptor that nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    let timeout = libc::timeval {
        tv_sec: 0,
        tv_usec: RECV_TIMEOUT.as_micros() as libc::suseconds_t,
    };
    // SAFETY: the option value points to a timeval of the given size.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            (&raw const timeout).cast(),
            size_of::<libc::timeval>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(fd)
}

/// Asks the kernel for the entry of `orig`: `Ok(None)` when there is none (`ENOENT`).
fn lookup(
    fd: BorrowedFd<'_>,
    buf: &mut [u8],
    seq: u32,
    orig: &Tuple,
) -> Result<Option<Entry>, LookupError> {
    let request = encode_get(seq, orig);
    let kernel = sockaddr_nl();
    // SAFETY: the buffer and address are valid for the lengths given.
    let sent = unsafe {
        libc::sendto(
            fd.as_raw_fd(),
            request.as_ptr().cast(),
            request.len(),
            0,
            (&raw const kernel).cast(),
            size_of::<libc::sockaddr_nl>() as libc::socklen_t,
        )
    };
    if sent < 0 {
        return Err(LookupError::Io(io::Error::last_os_error()));
    }
    let deadline = Instant::now() + LOOKUP_DEADLINE;
    let mut found: Option<Result<Entry, &'static str>> = None;
    loop {
        if Instant::now() > deadline {
            return Err(LookupError::Io(io::ErrorKind::TimedOut.into()));
        }
        let mut from = sockaddr_nl();
        let mut from_len = size_of::<libc::sockaddr_nl>() as libc::socklen_t;
        // SAFETY: the buffer and address are valid for the lengths given; MSG_TRUNC makes
        // the return value the datagram's full length, checked against the buffer below.
        let n = unsafe {
            libc::recvfrom(
                fd.as_raw_fd(),
                buf.as_mut_ptr().cast(),
                buf.len(),
                libc::MSG_TRUNC,
                (&raw mut from).cast(),
                &mut from_len,
            )
        };
        if n < 0 {
            let error = io::Error::last_os_error();
            if error.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(LookupError::Io(error));
        }
        if from.nl_pid != 0 {
            continue; // not from the kernel
        }
        let n = n as usize;
        if n > buf.len() {
            return Err(LookupError::Malformed("a reply was larger than the buffer"));
        }
        for message in messages(&buf[..n]).map_err(LookupError::Malformed)? {
            if message.seq != seq {
                continue; // the late answer of an earlier, timed-out lookup
            }
            match message.kind {
                NLMSG_ERROR => {
                    let code = message
                        .payload
                        .first_chunk::<4>()
                        .map(|b| i32::from_ne_bytes(*b))
                        .ok_or(LookupError::Malformed("short netlink error message"))?;
                    return match code {
                        0 => match found {
                            Some(Ok(entry)) => Ok(Some(entry)),
                            Some(Err(why)) => Err(LookupError::Malformed(why)),
                            None => Err(LookupError::Malformed("acknowledged without an entry")),
                        },
                        code if code == -libc::ENOENT => Ok(None),
                        code => Err(LookupError::Kernel(code.saturating_neg())),
                    };
                }
                kind if kind == ctnetlink_type(IPCTNL_MSG_CT_NEW) => {
                    found = Some(decode_entry(message.payload).and_then(|(_, orig, reply)| {
                        Ok(Entry {
                            orig: orig.ok_or("entry without an original tuple")?,
                            reply: reply.ok_or("entry without a reply tuple")?,
                        })
                    }));
                }
                _ => {}
            }
        }
    }
}

/// The kernel's netlink address.
fn sockaddr_nl() -> libc::sockaddr_nl {
    // SAFETY: sockaddr_nl is plain data for which all zeroes is valid.
    let mut addr: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
    addr.nl_family = libc::AF_NETLINK as libc::sa_family_t;
    addr
}

/// The attributes of a TCP tuple (addresses, protocol, ports), inside a tuple nest.
fn put_tuple(buf: &mut Vec<u8>, t: &Tuple) {
    nest(buf, CTA_TUPLE_IP, |buf| match (t.src.ip(), t.dst.ip()) {
        (IpAddr::V4(src), IpAddr::V4(dst)) => {
            attr(buf, CTA_IP_V4_SRC, &src.octets());
            attr(buf, CTA_IP_V4_DST, &dst.octets());
        }
        (src, dst) => {
            attr(buf, CTA_IP_V6_SRC, &v6(src).octets());
            attr(buf, CTA_IP_V6_DST, &v6(dst).octets());
        }
    });
    nest(buf, CTA_TUPLE_PROTO, |buf| {
        attr(buf, CTA_PROTO_NUM, &[IPPROTO_TCP]);
        attr(buf, CTA_PROTO_SRC_PORT, &t.src.port().to_be_bytes());
        attr(buf, CTA_PROTO_DST_PORT, &t.dst.port().to_be_bytes());
    });
}

fn ctnetlink_type(message: u16) -> u16 {
    (NFNL_SUBSYS_CTNETLINK << 8) | message
}

/// An `IPCTNL_MSG_CT_GET` request (with an acknowledgement) for the entry of `orig`.
fn encode_get(seq: u32, orig: &Tuple) -> Vec<u8> {
    let mut buf = Vec::with_capacity(128);
    buf.extend_from_slice(&0u32.to_ne_bytes()); // nlmsg_len, patched below
    buf.extend_from_slice(&ctnetlink_type(IPCTNL_MSG_CT_GET).to_ne_bytes());
    buf.extend_from_slice(&((libc::NLM_F_REQUEST | libc::NLM_F_ACK) as u16).to_ne_bytes());
    buf.extend_from_slice(&seq.to_ne_bytes());
    buf.extend_from_slice(&0u32.to_ne_bytes()); // nlmsg_pid: the kernel fills it in
    buf.extend_from_slice(&[orig.family(), NFNETLINK_V0, 0, 0]); // nfgenmsg, res_id 0
    nest(&mut buf, CTA_TUPLE_ORIG, |buf| put_tuple(buf, orig));
    let len = buf.len() as u32;
    buf[..4].copy_from_slice(&len.to_ne_bytes());
    buf
}

fn v6(ip: IpAddr) -> Ipv6Addr {
    match ip {
        IpAddr::V4(ip) => ip.to_ipv6_mapped(),
        IpAddr::V6(ip) => ip,
    }
}

fn align4(len: usize) -> usize {
    (len + 3) & !3
}

fn attr(buf: &mut Vec<u8>, kind: u16, payload: &[u8]) {
    buf.extend_from_slice(&((NLA_HDRLEN + payload.len()) as u16).to_ne_bytes());
    buf.extend_from_slice(&kind.to_ne_bytes());
    buf.extend_from_slice(payload);
    buf.resize(align4(buf.len()), 0);
}

fn nest(buf: &mut Vec<u8>, kind: u16, fill: impl FnOnce(&mut Vec<u8>)) {
    let start = buf.len();
    buf.extend_from_slice(&[0; NLA_HDRLEN]);
    fill(buf);
    let len = (buf.len() - start) as u16;
    buf[start..start + 2].copy_from_slice(&len.to_ne_bytes());
    buf[start + 2..start + 4].copy_from_slice(&(kind | libc::NLA_F_NESTED as u16).to_ne_bytes());
}

/// One netlink message of a datagram.
#[derive(Debug)]
struct Message<'a> {
    kind: u16,
    seq: u32,
    /// What follows the header.
    payload: &'a [u8],
}

/// Splits a datagram into its netlink messages.
fn messages(mut buf: &[u8]) -> Result<Vec<Message<'_>>, &'static str> {
    let mut out = Vec::new();
    while !buf.is_empty() {
        let header = buf
            .first_chunk::<NLMSG_HDRLEN>()
            .ok_or("truncated netlink header")?;
        let len = u32::from_ne_bytes([header[0], header[1], header[2], header[3]]) as usize;
        if len < NLMSG_HDRLEN || len > buf.len() {
            return Err("netlink message length out of bounds");
        }
        out.push(Message {
            kind: u16::from_ne_bytes([header[4], header[5]]),
            seq: u32::from_ne_bytes([header[8], header[9], header[10], header[11]]),
            payload: &buf[NLMSG_HDRLEN..len],
        });
        buf = &buf[align4(len).min(buf.len())..];
    }
    Ok(out)
}

/// Splits attributes into (type without flags, payload).
fn attributes(mut buf: &[u8]) -> Result<Vec<(u16, &[u8])>, &'static str> {
    let mut out = Vec::new();
    while !buf.is_empty() {
        let header = buf
            .first_chunk::<NLA_HDRLEN>()
            .ok_or("truncated attribute header")?;
        let len = u16::from_ne_bytes([header[0], header[1]]) as usize;
        if len < NLA_HDRLEN || len > buf.len() {
            return Err("attribute length out of bounds");
        }
        let kind = u16::from_ne_bytes([header[2], header[3]]) & NLA_TYPE_MASK;
        out.push((kind, &buf[NLA_HDRLEN..len]));
        buf = &buf[align4(len).min(buf.len())..];
    }
    Ok(out)
}

/// The nfgenmsg family and the tuples of a ctnetlink message payload (a request or an entry).
type Decoded = (u8, Option<Tuple>, Option<Tuple>);

fn decode_entry(payload: &[u8]) -> Result<Decoded, &'static str> {
    let family = *payload.first().ok_or("missing nfgenmsg")?;
    let attrs = payload.get(NFGENMSG_LEN..).ok_or("truncated nfgenmsg")?;
    let (mut orig, mut reply) = (None, None);
    for (kind, value) in attributes(attrs)? {
        match kind {
            CTA_TUPLE_ORIG => orig = Some(decode_tuple(value)?),
            CTA_TUPLE_REPLY => reply = Some(decode_tuple(value)?),
            _ => {}
        }
    }
    Ok((family, orig, reply))
}

fn decode_tuple(buf: &[u8]) -> Result<Tuple, &'static str> {
    let (mut src_ip, mut dst_ip, mut proto, mut src_port, mut dst_port) =
        (None, None, None, None, None);
    for (kind, value) in attributes(buf)? {
        match kind {
            CTA_TUPLE_IP => {
                for (kind, value) in attributes(value)? {
                    match kind {
                        CTA_IP_V4_SRC => src_ip = Some(ipv4(value)?),
                        CTA_IP_V4_DST => dst_ip = Some(ipv4(value)?),
                        CTA_IP_V6_SRC => src_ip = Some(ipv6(value)?),
                        CTA_IP_V6_DST => dst_ip = Some(ipv6(value)?),
                        _ => {}
                    }
                }
            }
            CTA_TUPLE_PROTO => {
                for (kind, value) in attributes(value)? {
                    match kind {
                        CTA_PROTO_NUM => proto = value.first().copied(),
                        CTA_PROTO_SRC_PORT => src_port = Some(port(value)?),
                        CTA_PROTO_DST_PORT => dst_port = Some(port(value)?),
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    if proto != Some(IPPROTO_TCP) {
        return Err("tuple is not TCP");
    }
    let src = SocketAddr::new(
        src_ip.ok_or("tuple without source")?,
        src_port.ok_or("tuple without source port")?,
    );
    let dst = SocketAddr::new(
        dst_ip.ok_or("tuple without destination")?,
        dst_port.ok_or("tuple without destination port")?,
    );
    Tuple::new(src, dst).ok_or("tuple mixes address families")
}

fn ipv4(value: &[u8]) -> Result<IpAddr, &'static str> {
    let octets: [u8; 4] = value
        .try_into()
        .map_err(|_| "IPv4 address is not 4 bytes")?;
    Ok(IpAddr::V4(Ipv4Addr::from(octets)))
}

fn ipv6(value: &[u8]) -> Result<IpAddr, &'static str> {
    let octets: [u8; 16] = value
        .try_into()
        .map_err(|_| "IPv6 address is not 16 bytes")?;
    Ok(IpAddr::V6(Ipv6Addr::from(octets)))
}

fn port(value: &[u8]) -> Result<u16, &'static str> {
    let bytes: [u8; 2] = value.try_into().map_err(|_| "port is not 2 bytes")?;
    Ok(u16::from_be_bytes(bytes))
}

#[cfg(test)]
mod tests {
    use std::{
        io::{BufRead, BufReader, Write},
        process::{Child, Command, Stdio},
        sync::mpsc,
    };

    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    fn tuple(src: &str, dst: &str) -> Tuple {
        Tuple::new(addr(src), addr(dst)).unwrap()
    }

    #[test]
    fn conntrack_request_round_trips() {
        for (orig, family) in [
            (tuple("10.0.0.1:40000", "10.96.0.10:80"), libc::AF_INET),
            (
                tuple("[fd00::1]:40000", "[fd00:96::10]:443"),
                libc::AF_INET6,
            ),
        ] {
            let request = encode_get(7, &orig);
            assert_eq!(request.len() % 4, 0);
            let len = u32::from_ne_bytes(request[..4].try_into().unwrap()) as usize;
            assert_eq!(len, request.len());
            let flags = u16::from_ne_bytes([request[6], request[7]]);
            assert_eq!(flags, (libc::NLM_F_REQUEST | libc::NLM_F_ACK) as u16);
            let nested = u16::from_ne_bytes([request[22], request[23]]);
            assert_eq!(nested, CTA_TUPLE_ORIG | libc::NLA_F_NESTED as u16);

            let messages = messages(&request).unwrap();
            assert_eq!(messages.len(), 1);
            assert_eq!(messages[0].kind, 0x0101, "IPCTNL_MSG_CT_GET of ctnetlink");
            assert_eq!(messages[0].seq, 7);
            let decoded = decode_entry(messages[0].payload).unwrap();
            assert_eq!(decoded, (family as u8, Some(orig), None));
        }
    }

    #[test]
    fn conntrack_ports_are_big_endian() {
        let request = encode_get(1, &tuple("10.0.0.1:258", "10.0.0.2:80"));
        // ... CTA_PROTO_SRC_PORT: len 6, type 2, then 0x0102 in network order.
        let needle = [6, 0, 2, 0, 0x01, 0x02];
        assert!(request.windows(6).any(|w| w == needle), "{request:?}");
    }

    /// A datagram as the kernel answers a GET: the entry, then the acknowledgement.
    fn reply(seq: u32, family: u8, orig: &Tuple, reply: &Tuple) -> Vec<u8> {
        fn header(buf: &mut Vec<u8>, kind: u16, seq: u32) -> usize {
            let start = buf.len();
            buf.extend_from_slice(&0u32.to_ne_bytes());
            buf.extend_from_slice(&kind.to_ne_bytes());
            buf.extend_from_slice(&0u16.to_ne_bytes());
            buf.extend_from_slice(&seq.to_ne_bytes());
            buf.extend_from_slice(&1234u32.to_ne_bytes());
            start
        }
        fn patch(buf: &mut [u8], start: usize) {
            let len = (buf.len() - start) as u32;
            buf[start..start + 4].copy_from_slice(&len.to_ne_bytes());
        }
        fn put_entry_tuple(buf: &mut Vec<u8>, kind: u16, t: &Tuple) {
            nest(buf, kind, |buf| {
                put_tuple(buf, t);
                attr(buf, 3, &0u16.to_be_bytes()); // CTA_TUPLE_ZONE, ignored
            });
        }
        let mut buf = Vec::new();
        let start = header(&mut buf, ctnetlink_type(IPCTNL_MSG_CT_NEW), seq);
        buf.extend_from_slice(&[family, NFNETLINK_V0, 0, 0]);
        put_entry_tuple(&mut buf, CTA_TUPLE_ORIG, orig);
        put_entry_tuple(&mut buf, CTA_TUPLE_REPLY, reply);
        attr(&mut buf, 3, &0x18eu32.to_be_bytes()); // CTA_STATUS
        nest(&mut buf, 4, |buf| nest(buf, 1, |buf| attr(buf, 1, &[3]))); // CTA_PROTOINFO
        attr(&mut buf, 8, &[0xab, 0xcd, 0xef]); // an odd length, padded
        patch(&mut buf, start);
        let start = header(&mut buf, NLMSG_ERROR, seq);
        buf.extend_from_slice(&0i32.to_ne_bytes());
        buf.extend_from_slice(&[0; NLMSG_HDRLEN]);
        patch(&mut buf, start);
        buf
    }

    #[test]
    fn conntrack_decodes_a_reply() {
        for (family, orig, back) in [
            (
                libc::AF_INET,
                tuple("10.0.0.1:40000", "10.96.0.10:80"),
                tuple("10.244.1.5:8080", "10.0.0.1:40000"),
            ),
            (
                libc::AF_INET6,
                tuple("[fd00::1]:40000", "[fd00:96::10]:80"),
                tuple("[fd00:244::5]:8080", "[fd00::1]:40000"),
            ),
        ] {
            let datagram = reply(9, family as u8, &orig, &back);
            let messages = messages(&datagram).unwrap();
            assert_eq!(messages.len(), 2);
            assert_eq!(messages[0].kind, ctnetlink_type(IPCTNL_MSG_CT_NEW));
            assert_eq!(
                decode_entry(messages[0].payload).unwrap(),
                (family as u8, Some(orig), Some(back))
            );
            assert_eq!(messages[1].kind, NLMSG_ERROR);
            assert_eq!(messages[1].seq, 9);
        }
    }

    #[test]
    fn conntrack_malformed_replies_are_errors_not_panics() {
        let datagram = reply(
            1,
            libc::AF_INET as u8,
            &tuple("10.0.0.1:40000", "10.96.0.10:80"),
            &tuple("10.244.1.5:8080", "10.0.0.1:40000"),
        );
        for len in 0..datagram.len() {
            if let Ok(messages) = messages(&datagram[..len]) {
                for m in messages {
                    let _ = decode_entry(m.payload);
                }
            }
        }
        // Every byte flipped in turn: never a panic.
        for i in 0..datagram.len() {
            let mut bad = datagram.clone();
            bad[i] ^= 0xff;
            if let Ok(messages) = messages(&bad) {
                for m in messages {
                    let _ = decode_entry(m.payload);
                }
            }
        }
        assert!(
            attributes(&[8, 0, 1, 0, 0]).is_err(),
            "longer than the buffer"
        );
        assert!(
            attributes(&[2, 0, 1, 0]).is_err(),
            "shorter than its header"
        );
        assert!(messages(&[0; 8]).is_err(), "truncated header");
        let mut wrong_ip = Vec::new();
        nest(&mut wrong_ip, CTA_TUPLE_IP, |b| {
            attr(b, CTA_IP_V4_SRC, &[1, 2, 3])
        });
        assert!(decode_tuple(&wrong_ip).is_err());
        let mut udp = Vec::new();
        nest(&mut udp, CTA_TUPLE_IP, |b| {
            attr(b, CTA_IP_V4_SRC, &[1, 2, 3, 4]);
            attr(b, CTA_IP_V4_DST, &[1, 2, 3, 5]);
        });
        nest(&mut udp, CTA_TUPLE_PROTO, |b| {
            attr(b, CTA_PROTO_NUM, &[17]);
            attr(b, CTA_PROTO_SRC_PORT, &[0, 53]);
            attr(b, CTA_PROTO_DST_PORT, &[0, 53]);
        });
        assert_eq!(decode_tuple(&udp), Err("tuple is not TCP"));
    }

    #[test]
    fn conntrack_tuples_use_one_family() {
        let mapped = tuple("[::ffff:10.0.0.1]:1", "[::ffff:10.0.0.2]:2");
        assert_eq!(mapped, tuple("10.0.0.1:1", "10.0.0.2:2"));
        assert_eq!(mapped.family(), libc::AF_INET as u8);
        assert!(Tuple::new(addr("10.0.0.1:1"), addr("[fd00::2]:2")).is_none());
    }

    /// Network namespaces, deleted (with their veths) on drop.
    struct Namespaces(Vec<String>);

    impl Drop for Namespaces {
        fn drop(&mut self) {
            for name in &self.0 {
                let _ = Command::new("ip").args(["netns", "del", name]).status();
            }
        }
    }

    fn run(args: &[&str]) {
        let out = Command::new(args[0]).args(&args[1..]).output().unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn nft(netns: &str, rules: &str) {
        let mut child = Command::new("ip")
            .args(["netns", "exec", netns, "nft", "-f", "-"])
            .stdin(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(rules.as_bytes())
            .unwrap();
        assert!(child.wait().unwrap().success(), "nft: {rules}");
    }

    /// A python3 process in a namespace, its stdout read line by line; killed on drop.
    struct Python {
        child: Child,
        lines: mpsc::Receiver<String>,
    }

    impl Python {
        fn spawn(netns: &str, script: &str) -> Self {
            let mut child = Command::new("ip")
                .args(["netns", "exec", netns, "python3", "-c", script])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()
                .unwrap();
            let stdout = child.stdout.take().unwrap();
            let (tx, lines) = mpsc::channel();
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines() {
                    let Ok(line) = line else { break };
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            });
            Self { child, lines }
        }

        fn line(&self) -> String {
            self.lines
                .recv_timeout(Duration::from_secs(20))
                .expect("python printed a line (did it fail? see stderr)")
        }
    }

    impl Drop for Python {
        fn drop(&mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }

    /// The DNAT rules of the client's namespace, as kube-proxy's would be (nft 1.0.6 wants
    /// newlines, not `}` right after a statement).
    const NAT_RULES: &str = "
table ip nat {
    chain output {
        type nat hook output priority -100;
        ip daddr 10.96.231.10 tcp dport 80 dnat to 10.231.0.2:8080
    }
}
table ip6 nat {
    chain output {
        type nat hook output priority -100;
        ip6 daddr fd00:96::231:10 tcp dport 80 dnat to [fd00:231::2]:8080
    }
}
";

    const SERVER: &str = r#"
import socket, sys
a = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
a.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
a.bind(("10.231.0.2", 8080)); a.listen(16)
b = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
b.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
b.bind(("fd00:231::2", 8080)); b.listen(16)
print("ready", flush=True)
sys.stdin.read()
"#;

    const CLIENT: &str = r#"
import os, socket, sys
print(os.getpid(), flush=True)
keep = []
for family, host, port in [(socket.AF_INET, "10.96.231.10", 80),
                           (socket.AF_INET6, "fd00:96::231:10", 80),
                           (socket.AF_INET, "10.231.0.2", 8080)]:
    s = socket.socket(family, socket.SOCK_STREAM)
    s.settimeout(10)
    s.connect((host, port))
    keep.append(s)
    local = s.getsockname()
    print(local[0], local[1], flush=True)
sys.stdin.read()
"#;

    fn local_addr(line: &str) -> SocketAddr {
        let (ip, port) = line.split_once(' ').unwrap();
        SocketAddr::new(ip.parse().unwrap(), port.parse().unwrap())
    }

    #[test]
    fn conntrack_resolves_dnat_in_a_real_namespace() {
        // SAFETY: geteuid cannot fail.
        if unsafe { libc::geteuid() } != 0 {
            println!("skipped conntrack_resolves_dnat_in_a_real_namespace: needs root");
            return;
        }
        let id = std::process::id();
        let (client_ns, server_ns) = (format!("scope-ct-c-{id}"), format!("scope-ct-s-{id}"));
        let (client_if, server_if) = (format!("ct{id}c"), format!("ct{id}s"));
        let mut namespaces = Namespaces(Vec::new());
        for ns in [&client_ns, &server_ns] {
            run(&["ip", "netns", "add", ns]);
            namespaces.0.push(ns.clone());
        }
        run(&[
            "ip", "link", "add", &client_if, "netns", &client_ns, "type", "veth", "peer", "name",
            &server_if, "netns", &server_ns,
        ]);
        for (ns, dev, v4, v6) in [
            (&client_ns, &client_if, "10.231.0.1/24", "fd00:231::1/64"),
            (&server_ns, &server_if, "10.231.0.2/24", "fd00:231::2/64"),
        ] {
            let ip = |args: &[&str]| {
                let mut all = vec!["ip", "-n", ns.as_str()];
                all.extend_from_slice(args);
                run(&all);
            };
            ip(&["addr", "add", v4, "dev", dev]);
            ip(&["-6", "addr", "add", v6, "dev", dev, "nodad"]);
            ip(&["link", "set", dev, "up"]);
            ip(&["link", "set", "lo", "up"]);
        }
        run(&[
            "ip",
            "-n",
            &client_ns,
            "route",
            "add",
            "default",
            "via",
            "10.231.0.2",
        ]);
        run(&[
            "ip",
            "-n",
            &client_ns,
            "-6",
            "route",
            "add",
            "default",
            "via",
            "fd00:231::2",
        ]);
        nft(&client_ns, NAT_RULES);

        let server = Python::spawn(&server_ns, SERVER);
        assert_eq!(server.line(), "ready");
        let client = Python::spawn(&client_ns, CLIENT);
        let client_pid: i32 = client.line().parse().unwrap();
        let local_v4 = local_addr(&client.line());
        let local_v6 = local_addr(&client.line());
        let local_direct = local_addr(&client.line());
        let netns = std::fs::metadata(format!("/proc/{client_pid}/ns/net"))
            .unwrap()
            .ino();

        let mut ct = Conntrack::new(PathBuf::from("/proc"));
        let (virtual_v4, backend_v4) = (addr("10.96.231.10:80"), addr("10.231.0.2:8080"));
        let (virtual_v6, backend_v6) = (addr("[fd00:96::231:10]:80"), addr("[fd00:231::2]:8080"));
        let pid = Some(client_pid);
        assert_eq!(
            ct.destination(netns, pid, local_v4, virtual_v4),
            Some(backend_v4)
        );
        assert_eq!(
            ct.destination(netns, pid, local_v6, virtual_v6),
            Some(backend_v6)
        );
        // The cached socket answers again; an IPv4-mapped form is answered as IPv4.
        let mapped = |a: SocketAddr| match a {
            SocketAddr::V4(a) => SocketAddr::new(IpAddr::V6(a.ip().to_ipv6_mapped()), a.port()),
            a => a,
        };
        assert_eq!(
            ct.destination(netns, pid, mapped(local_v4), mapped(virtual_v4)),
            Some(backend_v4)
        );
        // Tracked (the namespace has a NAT table) but not translated; remembered as such.
        assert_eq!(ct.destination(netns, pid, local_direct, backend_v4), None);
        assert!(ct.untranslated.contains_key(&(netns, backend_v4)));
        // Not tracked at all: ENOENT.
        let unused = SocketAddr::new(local_v4.ip(), 1);
        let fresh = || Conntrack::new(PathBuf::from("/proc"));
        assert_eq!(fresh().destination(netns, pid, unused, virtual_v4), None);
        // The backend's view is the entry's REPLY tuple: the kernel finds the entry, but it
        // is no translation.
        let fd = socket(&mut ct.sockets, netns, Path::new("/cached/already")).unwrap();
        let back = tuple(&backend_v4.to_string(), &local_v4.to_string());
        let entry = lookup(fd, &mut vec![0; RECV_BUFFER], 1000, &back)
            .unwrap()
            .expect("the kernel matches either direction");
        assert_eq!(entry.orig, Tuple::new(local_v4, virtual_v4).unwrap());
        assert_eq!(ct.destination(netns, pid, backend_v4, local_v4), None);
        assert_eq!(ct.sockets.len(), 2, "the client's namespace and our own");

        // A pid living in another namespace is refused, not queried.
        let mut other = fresh();
        let server_pid = server.child.id() as i32;
        assert_eq!(
            other.destination(netns, Some(server_pid), local_v4, virtual_v4),
            None
        );
        assert!(!other.sockets.contains_key(&netns));
        // Without a pid only our own namespace is asked, which has no such entry.
        assert_eq!(fresh().destination(netns, None, local_v4, virtual_v4), None);
        assert_eq!(
            fresh().destination(netns, Some(i32::MAX), local_v4, virtual_v4),
            None
        );
        drop(client);
        drop(server);
        drop(namespaces);
    }
}
