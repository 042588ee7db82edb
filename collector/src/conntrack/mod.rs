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
//!
//! # Layout
//! - this file: [`Conntrack`], the per-namespace socket cache and the untranslated-destination
//!   cache in front of the lookups.
//! - `netlink`: the socket, created inside a namespace, and one lookup over it.
//! - `codec`: the ctnetlink request and reply, encoded and decoded.
//! - `tests`: the codec against hand-made replies, and DNAT in real namespaces.

mod codec;
mod netlink;
#[cfg(test)]
mod tests;

/// Replays the fuzz corpus of the reply decoder (`fuzz/`, target `conntrack_replies`).
#[cfg(test)]
#[path = "../../../fuzz/harness/conntrack_replies.rs"]
mod fuzz_corpus;

use std::{
    collections::{HashMap, HashSet},
    io,
    net::SocketAddr,
    os::{
        fd::{AsFd, BorrowedFd, OwnedFd},
        unix::fs::MetadataExt,
    },
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use codec::Tuple;
use netlink::{LookupError, lookup, open_in_netns};

/// How many namespaces' sockets are kept open; beyond it one is closed for each new one.
const MAX_SOCKETS: usize = 1024;
/// How long a destination found untranslated is believed to stay so. A DNAT rule added for it
/// meanwhile is seen this much later.
const UNTRANSLATED_TTL: Duration = Duration::from_secs(10);
const MAX_UNTRANSLATED: usize = 16 * 1024;
/// Receive buffer; one conntrack entry is a few hundred bytes.
const RECV_BUFFER: usize = 16 * 1024;

/// Conntrack lookups across network namespaces, with one cached netlink socket per namespace.
///
/// Blocking (a lookup waits at most a few hundred milliseconds, and a new namespace costs a
/// thread): never call it on an async runtime's thread. The collector calls it on the
/// endpoint reporter's own thread (`crate::worker`).
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
        debug_assert!(
            tokio::runtime::Handle::try_current().is_err(),
            "a conntrack lookup blocks: it must not run on an async runtime's thread"
        );
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
