//! Parsing of the kernel's TCP socket tables, `/proc/<pid>/net/tcp` and `tcp6`.
//!
//! These files are the only place procfs tells which sockets exist, their 4-tuples and
//! states, and the socket inode that links a socket to the process holding it. Addresses are
//! printed as the kernel's in-memory words in host byte order, so they are decoded word by
//! word with [`u32::to_ne_bytes`]; ports are already in host order. An IPv4 connection on a
//! dual-stack IPv6 socket shows up in `tcp6` as `::ffff:a.b.c.d`; it is turned back into IPv4
//! here, so every consumer sees one address for one peer.
//!
//! Parsed by hand rather than with the `procfs` crate: it builds a struct with owned fields
//! for every line of every table, where the spy only needs the established sockets' tuples
//! and inodes, read every second on every node; and the collector, privileged, links
//! nothing it does not use.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// `TCP_ESTABLISHED` in `include/net/tcp_states.h`.
pub const ESTABLISHED: u8 = 0x01;
/// `TCP_LISTEN`.
pub const LISTEN: u8 = 0x0A;

/// One row of a TCP socket table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TcpSocket {
    pub local: SocketAddr,
    pub remote: SocketAddr,
    /// Kernel TCP state, e.g. [`ESTABLISHED`] or [`LISTEN`].
    pub state: u8,
    /// Inode of the socket; 0 when no process holds it yet (still in an accept queue) or any
    /// more (orphaned).
    pub inode: u64,
}

/// Parses a whole table (`tcp` or `tcp6`). The header and malformed lines are skipped;
/// the number of malformed lines is returned beside the sockets.
pub fn parse_table(text: &str) -> (Vec<TcpSocket>, usize) {
    let mut sockets = Vec::new();
    let mut malformed = 0;
    for line in text.lines().skip(1) {
        if line.trim().is_empty() {
            continue;
        }
        match parse_line(line) {
            Some(socket) => sockets.push(socket),
            None => malformed += 1,
        }
    }
    (sockets, malformed)
}

/// Parses one row, e.g.
/// `0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000 0 0 12345 1 ...`.
pub fn parse_line(line: &str) -> Option<TcpSocket> {
    let mut fields = line.split_whitespace();
    let _slot = fields.next()?;
    let local = parse_endpoint(fields.next()?)?;
    let remote = parse_endpoint(fields.next()?)?;
    let state = u8::from_str_radix(fields.next()?, 16).ok()?;
    // tx_queue:rx_queue, tr:tm->when, retrnsmt, uid, timeout, then the inode.
    let inode = fields.nth(5)?.parse().ok()?;
    Some(TcpSocket {
        local,
        remote,
        state,
        inode,
    })
}

/// Parses `ADDR:PORT` where ADDR is 8 (IPv4) or 32 (IPv6) hex digits.
fn parse_endpoint(field: &str) -> Option<SocketAddr> {
    let (addr, port) = field.split_once(':')?;
    let port = u16::from_str_radix(port, 16).ok()?;
    let ip = match addr.len() {
        8 => IpAddr::V4(Ipv4Addr::from(word(addr)?)),
        32 => {
            let mut bytes = [0u8; 16];
            for (i, chunk) in bytes.chunks_exact_mut(4).enumerate() {
                chunk.copy_from_slice(&word(addr.get(i * 8..i * 8 + 8)?)?);
            }
            let v6 = Ipv6Addr::from(bytes);
            match v6.to_ipv4_mapped() {
                Some(v4) => IpAddr::V4(v4),
                None => IpAddr::V6(v6),
            }
        }
        _ => return None,
    };
    Some(SocketAddr::new(ip, port))
}

/// Eight hex digits printed from a native-endian 32-bit word, back to the bytes in memory
/// (which hold the address in network order).
fn word(hex: &str) -> Option<[u8; 4]> {
    u32::from_str_radix(hex, 16).ok().map(u32::to_ne_bytes)
}

// The sample rows were printed by a little-endian kernel.
#[cfg(all(test, target_endian = "little"))]
mod tests {
    use super::*;

    // Lines copied from a real x86_64 (little-endian) machine.
    const TCP: &str = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 23145 1 0000000000000000 100 0 0 10 0
   1: 0100007F:D5A2 0100007F:1F90 01 00000000:00000000 00:00000000 00000000  1000        0 98765 1 0000000000000000 20 4 30 10 -1
   2: 0500000A:0016 6401A8C0:E1F2 01 00000000:00000000 02:000A1B2C 00000000     0        0 4242 2 0000000000000000 20 4 31 10 -1
";

    const TCP6: &str = "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000000000000:0050 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 111 1 0000000000000000 100 0 0 10 0
   1: 0000000000000000FFFF00000100007F:0050 0000000000000000FFFF00000100007F:C350 01 00000000:00000000 00:00000000 00000000     0        0 222 1 0000000000000000 20 4 30 10 -1
   2: 00000000000000000000000001000000:1F90 00000000000000000000000001000000:A000 01 00000000:00000000 00:00000000 00000000     0        0 333 1 0000000000000000 20 4 30 10 -1
   3: 000080FE000000000000B80D01000000:01BB 000080FE000000000000B80D02000000:C001 01 00000000:00000000 00:00000000 00000000     0        0 444 1 0000000000000000 20 4 30 10 -1
";

    fn sa(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn parses_ipv4_rows() {
        let (sockets, malformed) = parse_table(TCP);
        assert_eq!(malformed, 0);
        assert_eq!(sockets.len(), 3);
        assert_eq!(
            sockets[0],
            TcpSocket {
                local: sa("127.0.0.1:8080"),
                remote: sa("0.0.0.0:0"),
                state: LISTEN,
                inode: 23145
            }
        );
        assert_eq!(
            sockets[1],
            TcpSocket {
                local: sa("127.0.0.1:54690"),
                remote: sa("127.0.0.1:8080"),
                state: ESTABLISHED,
                inode: 98765
            }
        );
        assert_eq!(sockets[2].local, sa("10.0.0.5:22"));
        assert_eq!(sockets[2].remote, sa("192.168.1.100:57842"));
    }

    #[test]
    fn parses_ipv6_rows_and_unmaps_ipv4_mapped_addresses() {
        let (sockets, malformed) = parse_table(TCP6);
        assert_eq!(malformed, 0);
        assert_eq!(sockets[0].local, sa("[::]:80"));
        assert_eq!(sockets[0].state, LISTEN);
        // ::ffff:127.0.0.1 on a dual-stack socket is reported as plain IPv4.
        assert_eq!(sockets[1].local, sa("127.0.0.1:80"));
        assert_eq!(sockets[1].remote, sa("127.0.0.1:50000"));
        assert!(sockets[1].local.is_ipv4());
        assert_eq!(sockets[1].inode, 222);
        assert_eq!(sockets[2].local, sa("[::1]:8080"));
        assert_eq!(sockets[2].remote, sa("[::1]:40960"));
        assert_eq!(sockets[3].local, sa("[fe80::db8:0:0:1]:443"));
        assert_eq!(sockets[3].remote, sa("[fe80::db8:0:0:2]:49153"));
    }

    #[test]
    fn skips_malformed_rows() {
        let text = "header\n   0: 0100007F:1F90 00000000:0000\n   1: XYZ:1 0:0 01 0 0 0 0 0 7\n\n";
        assert_eq!(parse_table(text), (vec![], 2));
        assert_eq!(
            parse_line("0: 0100007F:GGGG 00000000:0000 0A 0:0 0:0 0 0 0 1"),
            None
        );
        assert_eq!(
            parse_line("0: 01007F:0050 00000000:0000 0A 0:0 0:0 0 0 0 1"),
            None
        );
    }
}
