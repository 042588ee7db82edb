//! The host's local networks: the CIDR of every interface address, with its interface's name,
//! from `getifaddrs(3)`.
//!
//! The renderer uses them to tell a peer inside the host's networks from one on the
//! Internet. Each entry is the interface address with its prefix length, as Weave Scope
//! reports it (`10.0.0.5/24`, `127.0.0.1/8`, `fe80::1/64`); a reader wanting the network
//! itself truncates the host bits.

use std::{
    collections::BTreeSet,
    io,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
};

/// `(interface name, address/prefix)` of every IPv4 and IPv6 interface address, sorted,
/// without duplicates.
pub fn interface_networks() -> io::Result<Vec<(String, String)>> {
    let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs writes a list head into `head` and reports failure by -1.
    if unsafe { libc::getifaddrs(&mut head) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let mut networks = BTreeSet::new();
    let mut cursor = head;
    while !cursor.is_null() {
        // SAFETY: `cursor` is a non-null node of the list getifaddrs returned, which stays
        // valid until freeifaddrs below.
        let ifa = unsafe { &*cursor };
        // SAFETY: the sockaddr pointers of a node are null or point to a sockaddr of the
        // family they announce, valid as long as the list.
        if let Some(addr) = unsafe { sockaddr_ip(ifa.ifa_addr) } {
            // SAFETY: as above; the netmask has the address's family.
            let prefix = unsafe { netmask_prefix(ifa.ifa_netmask, &addr) };
            let name = if ifa.ifa_name.is_null() {
                String::new()
            } else {
                // SAFETY: a non-null ifa_name is a NUL-terminated string valid as long as
                // the list.
                let name = unsafe { std::ffi::CStr::from_ptr(ifa.ifa_name) };
                name.to_string_lossy().into_owned()
            };
            networks.insert((name, cidr(addr, prefix)));
        }
        cursor = ifa.ifa_next;
    }
    // SAFETY: `head` came from getifaddrs and is freed once; no reference into it survives.
    unsafe { libc::freeifaddrs(head) };
    Ok(networks.into_iter().collect())
}

/// `addr/prefix`; a missing netmask means a single address (/32 or /128).
pub fn cidr(addr: IpAddr, prefix: Option<u32>) -> String {
    let full = if addr.is_ipv4() { 32 } else { 128 };
    format!("{addr}/{}", prefix.unwrap_or(full))
}

/// The number of leading one bits of a netmask.
pub fn prefix_len(mask: IpAddr) -> u32 {
    match mask {
        IpAddr::V4(m) => u32::from(m).leading_ones(),
        IpAddr::V6(m) => u128::from(m).leading_ones(),
    }
}

/// # Safety
/// `sa` is null or points to a valid `sockaddr` whose `sa_family` tells its real type.
unsafe fn sockaddr_ip(sa: *const libc::sockaddr) -> Option<IpAddr> {
    if sa.is_null() {
        return None;
    }
    // SAFETY: non-null and valid per the function's contract.
    let family = i32::from(unsafe { (*sa).sa_family });
    match family {
        libc::AF_INET => {
            // SAFETY: an AF_INET sockaddr is a sockaddr_in.
            let sin = unsafe { &*sa.cast::<libc::sockaddr_in>() };
            Some(IpAddr::V4(Ipv4Addr::from(u32::from_be(
                sin.sin_addr.s_addr,
            ))))
        }
        libc::AF_INET6 => {
            // SAFETY: an AF_INET6 sockaddr is a sockaddr_in6.
            let sin6 = unsafe { &*sa.cast::<libc::sockaddr_in6>() };
            Some(IpAddr::V6(Ipv6Addr::from(sin6.sin6_addr.s6_addr)))
        }
        _ => None,
    }
}

/// # Safety
/// `mask` is null or points to a sockaddr of `addr`'s family.
unsafe fn netmask_prefix(mask: *const libc::sockaddr, addr: &IpAddr) -> Option<u32> {
    if mask.is_null() {
        return None;
    }
    // The netmask's own sa_family is not reliably set; read it as the address's family.
    let ip = match addr {
        IpAddr::V4(_) => {
            // SAFETY: per the contract, an IPv4 address has an IPv4 netmask.
            let sin = unsafe { &*mask.cast::<libc::sockaddr_in>() };
            IpAddr::V4(Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr)))
        }
        IpAddr::V6(_) => {
            // SAFETY: as above, for IPv6.
            let sin6 = unsafe { &*mask.cast::<libc::sockaddr_in6>() };
            IpAddr::V6(Ipv6Addr::from(sin6.sin6_addr.s6_addr))
        }
    };
    Some(prefix_len(ip))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_lengths() {
        assert_eq!(prefix_len("255.0.0.0".parse().unwrap()), 8);
        assert_eq!(prefix_len("255.255.255.0".parse().unwrap()), 24);
        assert_eq!(prefix_len("ffff:ffff:ffff:ffff::".parse().unwrap()), 64);
        assert_eq!(
            prefix_len("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff".parse().unwrap()),
            128
        );
        assert_eq!(cidr("10.0.0.5".parse().unwrap(), Some(24)), "10.0.0.5/24");
        assert_eq!(cidr("::1".parse().unwrap(), None), "::1/128");
    }

    #[test]
    fn loopback_is_a_local_network() {
        let networks = interface_networks().unwrap();
        assert!(
            networks
                .iter()
                .any(|(name, n)| name == "lo" && n == "127.0.0.1/8"),
            "{networks:?}"
        );
    }
}
