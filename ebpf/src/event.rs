//! The records the kernel side puts in the ring buffer, decoded.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// `struct scope_event` of `src/bpf/event.h`, byte for byte.
#[repr(C)]
#[derive(Clone, Copy)]
struct RawEvent {
    timestamp_ns: u64,
    netns: u64,
    pid: u32,
    family: u16,
    kind: u8,
    flags: u8,
    local_port: u16,
    remote_port: u16,
    local_addr: [u8; 16],
    remote_addr: [u8; 16],
    comm: [u8; 16],
    _pad1: u32,
}

const AF_INET: u16 = libc::AF_INET as u16;
const AF_INET6: u16 = libc::AF_INET6 as u16;

/// What happened to a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EventKind {
    /// This host opened it (`connect(2)` completed the handshake).
    Connect,
    /// This host accepted it (`accept(2)` returned it).
    Accept,
    /// It closed, whoever closed it.
    Close,
}

/// One connection event, as the kernel saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    pub kind: EventKind,
    /// Kernel monotonic time of the event (`bpf_ktime_get_ns`); see [`crate::Tracker::wall_clock_us`].
    pub monotonic_ns: u64,
    /// Inode of the socket's network namespace.
    pub netns: u64,
    /// The connecting or accepting process; `None` for closes, which often run in softirq
    /// context where no process is meaningful.
    pub pid: Option<i32>,
    /// That process's `comm`.
    pub comm: Option<String>,
    /// IPv4-mapped IPv6 addresses (a dual-stack socket talking IPv4) are given as IPv4, as
    /// `/proc/net/tcp6` readers do, so one peer has one address.
    pub local: SocketAddr,
    pub remote: SocketAddr,
    /// On an accept: the connection ended while queued, before `accept(2)` returned it, so no
    /// close event follows; it is both opened and closed by this event.
    pub already_closed: bool,
}

/// `SCOPE_ALREADY_CLOSED` in event.h.
const ALREADY_CLOSED: u8 = 1;

impl Event {
    /// Decodes one ring-buffer record; `None` when it is not a well-formed `scope_event`.
    pub fn decode(bytes: &[u8]) -> Option<Event> {
        if bytes.len() < size_of::<RawEvent>() {
            return None;
        }
        // SAFETY: the length was checked and every bit pattern is a valid RawEvent (integers
        // and byte arrays only); read_unaligned copes with any alignment of the ring's slot.
        let raw = unsafe { bytes.as_ptr().cast::<RawEvent>().read_unaligned() };
        let kind = match raw.kind {
            1 => EventKind::Connect,
            2 => EventKind::Accept,
            3 => EventKind::Close,
            _ => return None,
        };
        let ip = |addr: [u8; 16]| -> Option<IpAddr> {
            match raw.family {
                AF_INET => Some(IpAddr::V4(Ipv4Addr::new(
                    addr[0], addr[1], addr[2], addr[3],
                ))),
                AF_INET6 => Some(IpAddr::V6(Ipv6Addr::from(addr)).to_canonical()),
                _ => None,
            }
        };
        let comm_len = raw
            .comm
            .iter()
            .position(|&b| b == 0)
            .unwrap_or(raw.comm.len());
        let pid = i32::try_from(raw.pid).ok().filter(|&pid| pid > 0);
        Some(Event {
            kind,
            monotonic_ns: raw.timestamp_ns,
            netns: raw.netns,
            pid,
            comm: (pid.is_some() && comm_len > 0)
                .then(|| String::from_utf8_lossy(&raw.comm[..comm_len]).into_owned()),
            local: SocketAddr::new(ip(raw.local_addr)?, raw.local_port),
            remote: SocketAddr::new(ip(raw.remote_addr)?, raw.remote_port),
            already_closed: kind == EventKind::Accept && raw.flags & ALREADY_CLOSED != 0,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(kind: u8, family: u16) -> RawEvent {
        let mut comm = [0u8; 16];
        comm[..4].copy_from_slice(b"curl");
        RawEvent {
            timestamp_ns: 42,
            netns: 4026531840,
            pid: 1234,
            family,
            kind,
            flags: 0,
            local_port: 50000,
            remote_port: 80,
            local_addr: [10, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
            remote_addr: [10, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
            comm,
            _pad1: 0,
        }
    }

    fn bytes(raw: &RawEvent) -> Vec<u8> {
        // SAFETY: RawEvent is plain old data; viewing it as bytes is always valid.
        unsafe {
            std::slice::from_raw_parts((raw as *const RawEvent).cast::<u8>(), size_of::<RawEvent>())
        }
        .to_vec()
    }

    #[test]
    fn record_layout_matches_the_c_struct() {
        // 8 + 8 + 4 + 2 + 1 + 1 + 2 + 2 + 16 + 16 + 16 + 4, as event.h lays it out.
        assert_eq!(size_of::<RawEvent>(), 80);
    }

    #[test]
    fn decodes_ipv4_and_ipv6_records() {
        let event = Event::decode(&bytes(&raw(1, AF_INET))).unwrap();
        assert_eq!(event.kind, EventKind::Connect);
        assert_eq!(event.pid, Some(1234));
        assert_eq!(event.comm.as_deref(), Some("curl"));
        assert_eq!(event.local, "10.0.0.1:50000".parse().unwrap());
        assert_eq!(event.remote, "10.0.0.2:80".parse().unwrap());
        assert_eq!((event.netns, event.monotonic_ns), (4026531840, 42));

        let mut v6 = raw(2, AF_INET6);
        v6.local_addr = "fd00::1".parse::<Ipv6Addr>().unwrap().octets();
        // A dual-stack socket's IPv4 peer comes back as IPv4.
        v6.remote_addr = "::ffff:192.0.2.7".parse::<Ipv6Addr>().unwrap().octets();
        let event = Event::decode(&bytes(&v6)).unwrap();
        assert_eq!(event.kind, EventKind::Accept);
        assert_eq!(event.local, "[fd00::1]:50000".parse().unwrap());
        assert_eq!(event.remote, "192.0.2.7:80".parse().unwrap());
        assert!(!event.already_closed);
        v6.flags = ALREADY_CLOSED;
        assert!(Event::decode(&bytes(&v6)).unwrap().already_closed);
    }

    #[test]
    fn closes_carry_no_process_and_garbage_is_rejected() {
        let mut close = raw(3, AF_INET);
        close.pid = 0;
        let event = Event::decode(&bytes(&close)).unwrap();
        assert_eq!(
            (event.kind, event.pid, event.comm),
            (EventKind::Close, None, None)
        );

        assert_eq!(Event::decode(&bytes(&raw(1, AF_INET))[..79]), None);
        assert_eq!(Event::decode(&bytes(&raw(9, AF_INET))), None);
        assert_eq!(Event::decode(&bytes(&raw(1, 1))), None);
    }
}
