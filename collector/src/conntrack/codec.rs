//! The ctnetlink messages of a conntrack lookup: the `IPCTNL_MSG_CT_GET` request and the
//! entry it is answered with, encoded and decoded by hand from the kernel's UAPI headers.
//! Decoding never panics: a malformed datagram is an error naming what was wrong.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

// Netlink (include/uapi/linux/netlink.h).
pub(super) const NLMSG_HDRLEN: usize = 16;
pub(super) const NLA_HDRLEN: usize = 4;
pub(super) const NLA_TYPE_MASK: u16 = !((libc::NLA_F_NESTED | libc::NLA_F_NET_BYTEORDER) as u16);
pub(super) const NLMSG_ERROR: u16 = libc::NLMSG_ERROR as u16;

// nfnetlink and ctnetlink (include/uapi/linux/netfilter/{nfnetlink,nfnetlink_conntrack}.h).
pub(super) const NFNL_SUBSYS_CTNETLINK: u16 = 1;
pub(super) const IPCTNL_MSG_CT_NEW: u16 = 0;
pub(super) const IPCTNL_MSG_CT_GET: u16 = 1;
pub(super) const NFNETLINK_V0: u8 = 0;
pub(super) const NFGENMSG_LEN: usize = 4;
pub(super) const CTA_TUPLE_ORIG: u16 = 1;
pub(super) const CTA_TUPLE_REPLY: u16 = 2;
pub(super) const CTA_TUPLE_IP: u16 = 1;
pub(super) const CTA_TUPLE_PROTO: u16 = 2;
pub(super) const CTA_IP_V4_SRC: u16 = 1;
pub(super) const CTA_IP_V4_DST: u16 = 2;
pub(super) const CTA_IP_V6_SRC: u16 = 3;
pub(super) const CTA_IP_V6_DST: u16 = 4;
pub(super) const CTA_PROTO_NUM: u16 = 1;
pub(super) const CTA_PROTO_SRC_PORT: u16 = 2;
pub(super) const CTA_PROTO_DST_PORT: u16 = 3;
pub(super) const IPPROTO_TCP: u8 = libc::IPPROTO_TCP as u8;

/// A TCP connection's direction as conntrack keys it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Tuple {
    pub(super) src: SocketAddr,
    pub(super) dst: SocketAddr,
}

impl Tuple {
    /// Both ends in one family (IPv4-mapped IPv6 as IPv4); `None` when the families differ.
    pub(super) fn new(src: SocketAddr, dst: SocketAddr) -> Option<Self> {
        let src = SocketAddr::new(src.ip().to_canonical(), src.port());
        let dst = SocketAddr::new(dst.ip().to_canonical(), dst.port());
        (src.is_ipv4() == dst.is_ipv4()).then_some(Self { src, dst })
    }

    pub(super) fn family(&self) -> u8 {
        if self.src.is_ipv4() {
            libc::AF_INET as u8
        } else {
            libc::AF_INET6 as u8
        }
    }
}

/// Both directions of one conntrack entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Entry {
    pub(super) orig: Tuple,
    pub(super) reply: Tuple,
}

/// The attributes of a TCP tuple (addresses, protocol, ports), inside a tuple nest.
pub(super) fn put_tuple(buf: &mut Vec<u8>, t: &Tuple) {
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

pub(super) fn ctnetlink_type(message: u16) -> u16 {
    (NFNL_SUBSYS_CTNETLINK << 8) | message
}

/// An `IPCTNL_MSG_CT_GET` request (with an acknowledgement) for the entry of `orig`.
pub(super) fn encode_get(seq: u32, orig: &Tuple) -> Vec<u8> {
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

pub(super) fn v6(ip: IpAddr) -> Ipv6Addr {
    match ip {
        IpAddr::V4(ip) => ip.to_ipv6_mapped(),
        IpAddr::V6(ip) => ip,
    }
}

pub(super) fn align4(len: usize) -> usize {
    (len + 3) & !3
}

pub(super) fn attr(buf: &mut Vec<u8>, kind: u16, payload: &[u8]) {
    buf.extend_from_slice(&((NLA_HDRLEN + payload.len()) as u16).to_ne_bytes());
    buf.extend_from_slice(&kind.to_ne_bytes());
    buf.extend_from_slice(payload);
    buf.resize(align4(buf.len()), 0);
}

pub(super) fn nest(buf: &mut Vec<u8>, kind: u16, fill: impl FnOnce(&mut Vec<u8>)) {
    let start = buf.len();
    buf.extend_from_slice(&[0; NLA_HDRLEN]);
    fill(buf);
    let len = (buf.len() - start) as u16;
    buf[start..start + 2].copy_from_slice(&len.to_ne_bytes());
    buf[start + 2..start + 4].copy_from_slice(&(kind | libc::NLA_F_NESTED as u16).to_ne_bytes());
}

/// One netlink message of a datagram.
#[derive(Debug)]
pub(super) struct Message<'a> {
    pub(super) kind: u16,
    pub(super) seq: u32,
    /// What follows the header.
    pub(super) payload: &'a [u8],
}

/// Splits a datagram into its netlink messages.
pub(super) fn messages(mut buf: &[u8]) -> Result<Vec<Message<'_>>, &'static str> {
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
pub(super) fn attributes(mut buf: &[u8]) -> Result<Vec<(u16, &[u8])>, &'static str> {
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
pub(super) type Decoded = (u8, Option<Tuple>, Option<Tuple>);

pub(super) fn decode_entry(payload: &[u8]) -> Result<Decoded, &'static str> {
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

pub(super) fn decode_tuple(buf: &[u8]) -> Result<Tuple, &'static str> {
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

pub(super) fn ipv4(value: &[u8]) -> Result<IpAddr, &'static str> {
    let octets: [u8; 4] = value
        .try_into()
        .map_err(|_| "IPv4 address is not 4 bytes")?;
    Ok(IpAddr::V4(Ipv4Addr::from(octets)))
}

pub(super) fn ipv6(value: &[u8]) -> Result<IpAddr, &'static str> {
    let octets: [u8; 16] = value
        .try_into()
        .map_err(|_| "IPv6 address is not 16 bytes")?;
    Ok(IpAddr::V6(Ipv6Addr::from(octets)))
}

pub(super) fn port(value: &[u8]) -> Result<u16, &'static str> {
    let bytes: [u8; 2] = value.try_into().map_err(|_| "port is not 2 bytes")?;
    Ok(u16::from_be_bytes(bytes))
}
