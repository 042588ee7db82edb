//! Which addresses are "ours": the SQL functions `scope_is_local` and `scope_is_loopback`.
//!
//! A connection end no host reported is drawn as the Internet only when its address lies in
//! none of the networks the hosts of the snapshot have interfaces in; otherwise it is a host
//! without a collector and gets a node of its own. The networks of each snapshot are put in an
//! [`IpNetworkTable`] (a prefix tree per family, IPv4 and IPv6) and the lookup is a DataFusion
//! scalar function, so the view SQL can say `scope_is_local(snapshot_time, addr)`.
//!
//! The function takes the snapshot time because the same SQL runs over one snapshot (when
//! rendering) and over `history.*` (rerun by hand with `scope sql`), where every row must be
//! judged against the networks of its own snapshot; [`Networks`] holds them per snapshot.
//!
//! Loopback (127.0.0.0/8, ::1) is always local. IPv4-mapped IPv6 addresses (`::ffff:a.b.c.d`)
//! are looked up as the IPv4 address. An address that does not parse is not local.

use std::{
    collections::BTreeMap,
    hash::{Hash, Hasher},
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    sync::Arc,
};

use arrow::{
    array::{Array, ArrayRef, BooleanArray, Int64Array, StringArray},
    compute::cast,
    datatypes::DataType,
};
use datafusion::{
    common::{ScalarValue, exec_err},
    error::Result as DfResult,
    logical_expr::{
        ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
    },
};
use ip_network::{IpNetwork, Ipv4Network, Ipv6Network};
use ip_network_table::IpNetworkTable;

/// SQL name of the local-network test.
pub const IS_LOCAL: &str = "scope_is_local";
/// SQL name of the loopback test.
pub const IS_LOOPBACK: &str = "scope_is_loopback";

/// The local networks of one snapshot, loopback included.
pub struct LocalNetworks {
    /// Sorted and deduplicated: the identity of the set (for [`PartialEq`] and [`Hash`]).
    networks: Vec<IpNetwork>,
    table: IpNetworkTable<()>,
}

impl LocalNetworks {
    /// The loopback networks only.
    pub fn loopback() -> Self {
        let mut set = LocalNetworks {
            networks: Vec::new(),
            table: IpNetworkTable::new(),
        };
        set.insert(IpNetwork::V4(
            Ipv4Network::new(Ipv4Addr::new(127, 0, 0, 0), 8).expect("127.0.0.0/8 is valid"),
        ));
        set.insert(IpNetwork::V6(
            Ipv6Network::new(Ipv6Addr::LOCALHOST, 128).expect("::1/128 is valid"),
        ));
        set
    }

    /// Loopback plus every CIDR that parses; the ones that do not are returned with the reason.
    pub fn from_cidrs<I, S>(cidrs: I) -> (Self, Vec<(String, String)>)
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut set = Self::loopback();
        let mut rejected = Vec::new();
        for cidr in cidrs {
            let cidr = cidr.as_ref();
            match parse_cidr(cidr) {
                Ok(network) => set.insert(network),
                Err(reason) => rejected.push((cidr.to_owned(), reason)),
            }
        }
        (set, rejected)
    }

    fn insert(&mut self, network: IpNetwork) {
        if let Err(at) = self.networks.binary_search(&network) {
            self.networks.insert(at, network);
            self.table.insert(network, ());
        }
    }

    /// Whether `addr` (textual IPv4 or IPv6) is inside one of the networks.
    pub fn contains(&self, addr: &str) -> bool {
        parse_addr(addr).is_some_and(|ip| self.table.longest_match(ip).is_some())
    }

    /// The networks, loopback included, sorted.
    pub fn networks(&self) -> &[IpNetwork] {
        &self.networks
    }
}

impl std::fmt::Debug for LocalNetworks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.networks.iter().map(|n| n.to_string()))
            .finish()
    }
}

impl PartialEq for LocalNetworks {
    fn eq(&self, other: &Self) -> bool {
        self.networks == other.networks
    }
}
impl Eq for LocalNetworks {}
impl Hash for LocalNetworks {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.networks.hash(state);
    }
}

/// The local networks of each snapshot time (microseconds); a time without any is loopback
/// only.
#[derive(Debug, Default, PartialEq, Eq, Hash)]
pub struct Networks {
    by_time: BTreeMap<i64, LocalNetworks>,
}

impl Networks {
    /// Groups `(snapshot_time_us, cidr)` pairs; CIDRs that do not parse are returned with the
    /// reason, once each.
    pub fn from_rows<I, S>(rows: I) -> (Self, Vec<(String, String)>)
    where
        I: IntoIterator<Item = (i64, S)>,
        S: AsRef<str>,
    {
        let mut cidrs: BTreeMap<i64, Vec<S>> = BTreeMap::new();
        for (time, cidr) in rows {
            cidrs.entry(time).or_default().push(cidr);
        }
        let mut rejected = Vec::new();
        let by_time = cidrs
            .into_iter()
            .map(|(time, cidrs)| {
                let (set, bad) = LocalNetworks::from_cidrs(cidrs);
                rejected.extend(bad);
                (time, set)
            })
            .collect();
        rejected.sort();
        rejected.dedup();
        (Networks { by_time }, rejected)
    }

    /// Whether `addr` is inside a local network of snapshot `snapshot_time_us`, or loopback.
    pub fn contains(&self, snapshot_time_us: i64, addr: &str) -> bool {
        match self.by_time.get(&snapshot_time_us) {
            Some(set) => set.contains(addr),
            None => is_loopback(addr),
        }
    }
}

/// Parses an interface CIDR such as `10.0.0.5/24` or `fe80::1/64`. Host bits may be set (an
/// interface address is reported with its prefix length): they are cleared. A bare address is
/// a network of one address.
pub fn parse_cidr(cidr: &str) -> Result<IpNetwork, String> {
    let (addr, len) = match cidr.trim().split_once('/') {
        Some((addr, len)) => (addr, Some(len)),
        None => (cidr.trim(), None),
    };
    let ip = parse_addr(addr).ok_or_else(|| format!("{addr:?} is not an IP address"))?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    let len = match len {
        Some(len) => len
            .parse::<u8>()
            .map_err(|_| format!("{len:?} is not a prefix length"))?,
        None => max,
    };
    IpNetwork::new_truncate(ip, len).map_err(|e| e.to_string())
}

/// Parses a textual address; an IPv6 zone (`%eth0`) is ignored and an IPv4-mapped IPv6
/// address becomes the IPv4 address.
pub fn parse_addr(addr: &str) -> Option<IpAddr> {
    let addr = addr.trim();
    let addr = addr.split_once('%').map_or(addr, |(a, _zone)| a);
    match addr.parse::<IpAddr>().ok()? {
        IpAddr::V6(v6) => Some(v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4)),
        v4 => Some(v4),
    }
}

/// Whether `addr` is a loopback address (127.0.0.0/8 or ::1).
pub fn is_loopback(addr: &str) -> bool {
    parse_addr(addr).is_some_and(|ip| ip.is_loopback())
}

/// `scope_is_local(snapshot_time, addr) -> boolean` over `networks`.
pub fn is_local_udf(networks: Networks) -> ScalarUDF {
    ScalarUDF::from(AddrTest::new(IS_LOCAL, Test::Local(Arc::new(networks))))
}

/// `scope_is_loopback(addr) -> boolean`.
pub fn is_loopback_udf() -> ScalarUDF {
    ScalarUDF::from(AddrTest::new(IS_LOOPBACK, Test::Loopback))
}

#[derive(Debug, PartialEq, Eq, Hash)]
enum Test {
    /// Takes `(snapshot_time, addr)`.
    Local(Arc<Networks>),
    /// Takes `(addr)`.
    Loopback,
}

impl Test {
    fn arity(&self) -> usize {
        match self {
            Test::Local(_) => 2,
            Test::Loopback => 1,
        }
    }
}

/// A scalar function from an address (after the snapshot time, for [`Test::Local`]) to a
/// boolean; null in, null out.
#[derive(Debug, PartialEq, Eq, Hash)]
struct AddrTest {
    name: &'static str,
    test: Test,
    signature: Signature,
}

impl AddrTest {
    fn new(name: &'static str, test: Test) -> Self {
        let signature = match test {
            Test::Local(_) => Signature::any(2, Volatility::Immutable),
            Test::Loopback => Signature::string(1, Volatility::Immutable),
        };
        AddrTest {
            name,
            test,
            signature,
        }
    }

    /// `arrays` all have the same length (scalars expanded by the caller).
    fn eval(&self, arrays: &[ArrayRef]) -> DfResult<BooleanArray> {
        let Some(addrs) = arrays.last() else {
            return exec_err!("{}: no arguments", self.name);
        };
        let strings = cast(addrs, &DataType::Utf8)?;
        let Some(strings) = strings.as_any().downcast_ref::<StringArray>() else {
            return exec_err!("{}: expected a string address", self.name);
        };
        match &self.test {
            Test::Loopback => Ok(strings.iter().map(|addr| addr.map(is_loopback)).collect()),
            Test::Local(networks) => {
                // A timestamp casts to its microseconds since the epoch, as stored.
                let times = cast(&arrays[0], &DataType::Int64)?;
                let Some(times) = times.as_any().downcast_ref::<Int64Array>() else {
                    return exec_err!("{}: expected a snapshot time", self.name);
                };
                Ok(times
                    .iter()
                    .zip(strings.iter())
                    .map(|(time, addr)| Some(networks.contains(time?, addr?)))
                    .collect())
            }
        }
    }
}

impl ScalarUDFImpl for AddrTest {
    fn name(&self) -> &str {
        self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Boolean)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        if args.args.len() != self.test.arity() {
            return exec_err!(
                "{} takes {} argument(s), got {}",
                self.name,
                self.test.arity(),
                args.args.len()
            );
        }
        let all_scalar = args
            .args
            .iter()
            .all(|arg| matches!(arg, ColumnarValue::Scalar(_)));
        let rows = if all_scalar { 1 } else { args.number_rows };
        let arrays = args
            .args
            .iter()
            .map(|arg| arg.to_array(rows))
            .collect::<DfResult<Vec<_>>>()?;
        let result = self.eval(&arrays)?;
        if all_scalar {
            Ok(ColumnarValue::Scalar(ScalarValue::try_from_array(
                &result, 0,
            )?))
        } else {
            Ok(ColumnarValue::Array(Arc::new(result)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn networks(cidrs: &[&str]) -> LocalNetworks {
        let (set, rejected) = LocalNetworks::from_cidrs(cidrs);
        assert!(rejected.is_empty(), "{rejected:?}");
        set
    }

    #[test]
    fn ipv4_networks_with_host_bits() {
        let set = networks(&["10.0.0.5/24"]);
        assert!(set.contains("10.0.0.1"));
        assert!(set.contains("10.0.0.255"));
        assert!(!set.contains("10.0.1.1"));
        assert!(!set.contains("8.8.8.8"));
    }

    #[test]
    fn ipv6_networks() {
        let set = networks(&["fd00:1::5/64"]);
        assert!(set.contains("fd00:1::1"));
        assert!(set.contains("fd00:1::ffff:1"));
        assert!(!set.contains("fd00:2::1"));
        assert!(!set.contains("2001:db8::1"));
    }

    #[test]
    fn loopback_is_always_local() {
        let set = LocalNetworks::loopback();
        assert!(set.contains("127.0.0.1"));
        assert!(set.contains("127.3.2.1"));
        assert!(set.contains("::1"));
        assert!(set.contains("::ffff:127.0.0.1"));
        assert!(!set.contains("::2"));
        assert!(is_loopback("127.0.0.53"));
        assert!(is_loopback("::1"));
        assert!(!is_loopback("10.0.0.1"));
    }

    #[test]
    fn mapped_and_zoned_addresses() {
        let set = networks(&["192.168.1.0/24", "fe80::1/64"]);
        assert!(set.contains("::ffff:192.168.1.7"));
        assert!(set.contains("fe80::2%eth0"));
    }

    #[test]
    fn garbage_is_not_local_and_bad_cidrs_are_reported() {
        let (set, rejected) =
            LocalNetworks::from_cidrs(["10.0.0.0/24", "nonsense", "10.0.0.0/33", "1.2.3.4/x"]);
        assert_eq!(rejected.len(), 3, "{rejected:?}");
        assert!(!set.contains("not an address"));
        assert!(!set.contains(""));
        assert!(set.contains("10.0.0.9"));
    }

    #[test]
    fn bare_address_is_a_single_host_network() {
        let set = networks(&["10.1.2.3"]);
        assert!(set.contains("10.1.2.3"));
        assert!(!set.contains("10.1.2.4"));
    }

    #[test]
    fn each_snapshot_has_its_own_networks() {
        let (set, rejected) =
            Networks::from_rows([(1, "10.0.0.1/24"), (2, "10.0.1.1/24"), (2, "bad")]);
        assert_eq!(rejected.len(), 1, "{rejected:?}");
        assert!(set.contains(1, "10.0.0.7"));
        assert!(!set.contains(1, "10.0.1.7"));
        assert!(set.contains(2, "10.0.1.7"));
        assert!(!set.contains(2, "10.0.0.7"));
        assert!(set.contains(3, "127.0.0.1"));
        assert!(!set.contains(3, "10.0.0.7"));
    }

    #[test]
    fn sets_compare_by_networks() {
        assert_eq!(
            networks(&["10.0.0.1/24", "10.0.0.0/24"]),
            networks(&["10.0.0.9/24"])
        );
        assert_ne!(networks(&["10.0.0.0/24"]), networks(&["10.0.1.0/24"]));
    }
}
