use std::{
    io::{BufRead, BufReader, Write},
    process::{Child, Command, Stdio},
    sync::mpsc,
};

use std::net::IpAddr;

use super::{codec::*, netlink::*, *};

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
    if !scope_ebpf::test_support::root_or_skip("network namespaces and NAT rules") {
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
