//! Which addresses are "ours": the SQL functions `scope_is_local`, `scope_local_network` and
//! `scope_is_loopback`.
//!
//! A connection end no host reported is drawn as the Internet only when its address lies in
//! none of the networks the hosts of the snapshot have interfaces in; otherwise it is a host
//! without a collector and gets a node of its own. The networks of each snapshot are flattened
//! into sorted address ranges per family (see [`lookup`]) and the lookup is a DataFusion scalar
//! function, so the view SQL can say `scope_is_local(snapshot_time, addr)`.
//!
//! The two-argument forms take the snapshot time because the same SQL runs over one snapshot
//! (when rendering) and over `history.*` (rerun by hand with `scope sql`), where every row must
//! be judged against the networks of its own snapshot; [`Networks`] holds them per snapshot.
//! The one-argument forms (`scope_is_local(addr)`, `scope_local_network(addr)`) are for a user
//! typing SQL, who should not have to know which snapshot a network came from: they judge
//! against every snapshot's networks at once.
//!
//! The networks given with `--local-networks` ([`NetworkArgs`]) count as local in every
//! snapshot: they cover machines that run no collector, so no host reports them.
//!
//! Loopback (127.0.0.0/8, ::1) is always local. IPv4-mapped IPv6 addresses (`::ffff:a.b.c.d`)
//! are looked up as the IPv4 address. An address that does not parse is not local.

mod lookup;

use std::{
    collections::BTreeMap,
    hash::{Hash, Hasher},
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    sync::{Arc, OnceLock},
};

use arrow::{
    array::{Array, ArrayRef, BooleanArray, Int64Array, StringArray, StringBuilder},
    compute::cast,
    datatypes::{DataType, Field, FieldRef, TimeUnit},
};
use datafusion::{
    common::{ScalarValue, exec_err},
    config::ConfigOptions,
    error::Result as DfResult,
    logical_expr::{
        ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, TypeSignature,
        Volatility,
    },
};
pub use ip_network::IpNetwork;
use ip_network::{Ipv4Network, Ipv6Network};
use lookup::{Addr, Ranges};

/// SQL name of the local-network test.
pub const IS_LOCAL: &str = "scope_is_local";
/// SQL name of the function returning the most specific local network of an address.
pub const LOCAL_NETWORK: &str = "scope_local_network";
/// SQL name of the loopback test.
pub const IS_LOOPBACK: &str = "scope_is_loopback";
/// SQL name of the function returning the host-local network of a host an address is in.
pub const HOST_LOCAL_NETWORK: &str = "scope_host_local_network";

/// Command-line settings of network membership.
#[derive(clap::Args, Clone, Debug, Default)]
pub struct NetworkArgs {
    /// Networks that count as local in every snapshot, beside those the hosts' interfaces are
    /// in (comma-separated CIDRs, IPv4 or IPv6): an address inside one is drawn as a host of
    /// its own, not as the Internet, even when no collector runs there.
    #[arg(
        long = "local-networks",
        env = "SCOPE_LOCAL_NETWORKS",
        value_name = "CIDR",
        value_delimiter = ',',
        value_parser = parse_network_arg
    )]
    pub local_networks: Vec<IpNetwork>,
}

/// A `--local-networks` value; the error names the value, since it may have come from a long
/// comma-separated list.
fn parse_network_arg(cidr: &str) -> Result<IpNetwork, String> {
    parse_cidr(cidr).map_err(|reason| {
        format!(
            "{cidr:?} is not a network (expected a CIDR such as 10.0.0.0/24 or fd00::/64): {reason}"
        )
    })
}

/// A set of local networks (one snapshot's, say), loopback included.
pub struct LocalNetworks {
    /// Sorted and deduplicated: the identity of the set (for [`PartialEq`] and [`Hash`]).
    networks: Vec<IpNetwork>,
    /// The IPv4 networks, labelled with their index in `networks`.
    v4: Ranges<u32>,
    /// The IPv6 networks, labelled likewise.
    v6: Ranges<u128>,
    /// The CIDR of each network of `networks`, written the first time one is asked for (as
    /// `scope_local_network` answers): once per set, not once per row.
    cidrs: OnceLock<Vec<String>>,
}

impl LocalNetworks {
    /// Loopback plus `networks`.
    pub fn new(networks: impl IntoIterator<Item = IpNetwork>) -> Self {
        Self::exactly(loopback_networks().into_iter().chain(networks))
    }

    /// `networks` and nothing else.
    fn exactly(networks: impl IntoIterator<Item = IpNetwork>) -> Self {
        let mut networks: Vec<IpNetwork> = networks.into_iter().collect();
        // Sorting once instead of inserting in order: a history can hold many thousands.
        networks.sort_unstable();
        networks.dedup();
        let (mut v4, mut v6) = (Vec::new(), Vec::new());
        for (label, network) in networks.iter().enumerate() {
            match network {
                IpNetwork::V4(net) => {
                    let first = net.network_address().to_bits();
                    let last = first | u32::MAX.checked_shr(net.netmask().into()).unwrap_or(0);
                    v4.push((first.into(), last.into(), label));
                }
                IpNetwork::V6(net) => {
                    let first = net.network_address().to_bits();
                    let last = first | u128::MAX.checked_shr(net.netmask().into()).unwrap_or(0);
                    v6.push((first, last, label));
                }
            }
        }
        LocalNetworks {
            networks,
            // Only IPv4 addresses come from `u128`s below 2^32.
            v4: Ranges::new(v4, |bits| bits as u32),
            v6: Ranges::new(v6, |bits| bits),
            cidrs: OnceLock::new(),
        }
    }

    /// The loopback networks only.
    pub fn loopback() -> Self {
        Self::new([])
    }

    /// Loopback plus every CIDR that parses; the ones that do not are returned with the reason.
    pub fn from_cidrs<I, S>(cidrs: I) -> (Self, Vec<(String, String)>)
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut networks = Vec::new();
        let mut rejected = Vec::new();
        for cidr in cidrs {
            let cidr = cidr.as_ref();
            match parse_cidr(cidr) {
                Ok(network) => networks.push(network),
                Err(reason) => rejected.push((cidr.to_owned(), reason)),
            }
        }
        (Self::new(networks), rejected)
    }

    /// Whether `addr` (textual IPv4 or IPv6) is inside one of the networks.
    pub fn contains(&self, addr: &str) -> bool {
        self.network_of(addr).is_some()
    }

    /// The most specific network containing `addr` (textual IPv4 or IPv6), if any.
    pub fn network_of(&self, addr: &str) -> Option<IpNetwork> {
        self.find(Addr::parse(addr)?).map(|i| self.networks[i])
    }

    /// The most specific network containing `ip`, if any; an IPv4-mapped IPv6 address is
    /// looked up as its IPv4 address.
    pub fn longest_match(&self, ip: IpAddr) -> Option<IpNetwork> {
        self.find(ip.into()).map(|i| self.networks[i])
    }

    /// The CIDR of the most specific network containing `addr` (textual), if any.
    fn cidr_of(&self, addr: &str) -> Option<&str> {
        let index = self.find(Addr::parse(addr)?)?;
        let cidrs = self
            .cidrs
            .get_or_init(|| self.networks.iter().map(IpNetwork::to_string).collect());
        Some(&cidrs[index])
    }

    /// The index in `networks` of the most specific network containing `addr`.
    fn find(&self, addr: Addr) -> Option<usize> {
        match addr {
            Addr::V4(v4) => self.v4.find(v4),
            Addr::V6(v6) => self.v6.find(v6),
        }
    }

    /// The networks, loopback included, sorted.
    pub fn networks(&self) -> &[IpNetwork] {
        &self.networks
    }
}

impl Default for LocalNetworks {
    fn default() -> Self {
        Self::loopback()
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

/// The local networks of each snapshot time (microseconds), each with the configured networks
/// and loopback; a time without networks of its own has the configured ones and loopback.
#[derive(Debug, Default, PartialEq, Eq, Hash)]
pub struct Networks {
    by_time: BTreeMap<i64, LocalNetworks>,
    /// Loopback and the configured networks: what a snapshot time not in `by_time` has.
    configured: LocalNetworks,
    /// Every snapshot's networks, the configured ones and loopback.
    union: LocalNetworks,
}

impl Networks {
    /// Groups `(snapshot_time_us, cidr)` pairs and adds `configured` to every snapshot; CIDRs
    /// that do not parse are returned with the reason, once each.
    pub fn from_rows<I, S>(rows: I, configured: &[IpNetwork]) -> (Self, Vec<(String, String)>)
    where
        I: IntoIterator<Item = (i64, S)>,
        S: AsRef<str>,
    {
        let mut parsed: BTreeMap<i64, Vec<IpNetwork>> = BTreeMap::new();
        let mut rejected = Vec::new();
        for (time, cidr) in rows {
            let networks = parsed.entry(time).or_default();
            match parse_cidr(cidr.as_ref()) {
                Ok(network) => networks.push(network),
                Err(reason) => rejected.push((cidr.as_ref().to_owned(), reason)),
            }
        }
        rejected.sort();
        rejected.dedup();
        let union = LocalNetworks::new(
            parsed
                .values()
                .flatten()
                .chain(configured)
                .copied()
                .collect::<Vec<_>>(),
        );
        let by_time = parsed
            .into_iter()
            .map(|(time, networks)| {
                let set =
                    LocalNetworks::new(networks.into_iter().chain(configured.iter().copied()));
                (time, set)
            })
            .collect();
        let networks = Networks {
            by_time,
            configured: LocalNetworks::new(configured.iter().copied()),
            union,
        };
        (networks, rejected)
    }

    /// The networks of snapshot `snapshot_time_us`.
    pub fn at(&self, snapshot_time_us: i64) -> &LocalNetworks {
        self.by_time
            .get(&snapshot_time_us)
            .unwrap_or(&self.configured)
    }

    /// The networks of every snapshot together, with the configured ones.
    pub fn union(&self) -> &LocalNetworks {
        &self.union
    }

    /// Whether `addr` is inside a local network of snapshot `snapshot_time_us`, or loopback.
    pub fn contains(&self, snapshot_time_us: i64, addr: &str) -> bool {
        self.at(snapshot_time_us).contains(addr)
    }

    /// The most specific local network of snapshot `snapshot_time_us` containing `addr`.
    pub fn network_of(&self, snapshot_time_us: i64, addr: &str) -> Option<IpNetwork> {
        self.at(snapshot_time_us).network_of(addr)
    }
}

/// The host-local networks of each (snapshot time, host): networks that stay inside their host
/// (a container bridge, `local_networks.host_local`), whose range another host may use too.
#[derive(Debug, Default, PartialEq, Eq, Hash)]
pub struct HostLocalNetworks {
    by_host: BTreeMap<(i64, String), LocalNetworks>,
}

impl HostLocalNetworks {
    /// Groups `(snapshot_time_us, host_id, cidr)` rows; CIDRs that do not parse are returned
    /// with the reason, once each.
    pub fn from_rows<I, H, S>(rows: I) -> (Self, Vec<(String, String)>)
    where
        I: IntoIterator<Item = (i64, H, S)>,
        H: Into<String>,
        S: AsRef<str>,
    {
        let mut parsed: BTreeMap<(i64, String), Vec<IpNetwork>> = BTreeMap::new();
        let mut rejected = Vec::new();
        for (time, host, cidr) in rows {
            match parse_cidr(cidr.as_ref()) {
                Ok(network) => parsed.entry((time, host.into())).or_default().push(network),
                Err(reason) => rejected.push((cidr.as_ref().to_owned(), reason)),
            }
        }
        rejected.sort();
        rejected.dedup();
        let by_host = parsed
            .into_iter()
            .map(|(key, networks)| (key, LocalNetworks::exactly(networks)))
            .collect();
        (HostLocalNetworks { by_host }, rejected)
    }
}

/// `scope_host_local_network(snapshot_time, host_id, addr) -> varchar`: the CIDR of the most
/// specific host-local network of that host in that snapshot containing `addr`, null when
/// none. An address there is on that host, whoever else uses the same range.
pub fn host_local_network_udf(networks: impl Into<Arc<HostLocalNetworks>>) -> ScalarUDF {
    ScalarUDF::from(HostLocalFunction {
        networks: networks.into(),
        signature: Signature::any(3, Volatility::Immutable),
    })
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct HostLocalFunction {
    networks: Arc<HostLocalNetworks>,
    signature: Signature,
}

impl HostLocalFunction {
    /// `arrays` all have the same length (scalars expanded by the caller).
    fn eval(&self, arrays: &[ArrayRef]) -> DfResult<ArrayRef> {
        let [times, hosts, addrs] = arrays else {
            return exec_err!("{HOST_LOCAL_NETWORK}: expected 3 arguments");
        };
        let rows = addrs.len();
        // Most snapshots have no host-local network: no lookups at all.
        if self.networks.by_host.is_empty() {
            return Ok(arrow::array::new_null_array(&DataType::Utf8, rows));
        }
        let times = snapshot_times(HOST_LOCAL_NETWORK, times)?;
        let (hosts, addrs) = (cast(hosts, &DataType::Utf8)?, cast(addrs, &DataType::Utf8)?);
        let (Some(hosts), Some(addrs)) = (
            hosts.as_any().downcast_ref::<StringArray>(),
            addrs.as_any().downcast_ref::<StringArray>(),
        ) else {
            return exec_err!("{HOST_LOCAL_NETWORK}: expected a string host id and address");
        };
        let mut out = StringBuilder::with_capacity(rows, rows * 4);
        let mut last: Option<(i64, &str, Option<&LocalNetworks>)> = None;
        for row in 0..rows {
            if !(times.is_valid(row) && hosts.is_valid(row) && addrs.is_valid(row)) {
                out.append_null();
                continue;
            }
            let (time, host) = (times.value(row), hosts.value(row));
            // Rows come grouped by snapshot and often by host: remember the last set.
            let set = match last {
                Some((t, h, set)) if t == time && h == host => set,
                _ => {
                    let set = self.networks.by_host.get(&(time, host.to_owned()));
                    last = Some((time, host, set));
                    set
                }
            };
            match set.and_then(|set| set.cidr_of(addrs.value(row))) {
                Some(cidr) => out.append_value(cidr),
                None => out.append_null(),
            }
        }
        Ok(Arc::new(out.finish()))
    }
}

impl ScalarUDFImpl for HostLocalFunction {
    fn name(&self) -> &str {
        HOST_LOCAL_NETWORK
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        invoke_on_arrays(&args, |arrays| self.eval(arrays))
    }
}

/// Runs `eval` over the arguments as arrays of equal length; all scalars in, a scalar out.
fn invoke_on_arrays(
    args: &ScalarFunctionArgs,
    eval: impl FnOnce(&[ArrayRef]) -> DfResult<ArrayRef>,
) -> DfResult<ColumnarValue> {
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
    let result = eval(&arrays)?;
    if all_scalar {
        Ok(ColumnarValue::Scalar(ScalarValue::try_from_array(
            &result, 0,
        )?))
    } else {
        Ok(ColumnarValue::Array(result))
    }
}

fn loopback_networks() -> [IpNetwork; 2] {
    [
        IpNetwork::V4(
            Ipv4Network::new(Ipv4Addr::new(127, 0, 0, 0), 8).expect("127.0.0.0/8 is valid"),
        ),
        IpNetwork::V6(Ipv6Network::new(Ipv6Addr::LOCALHOST, 128).expect("::1/128 is valid")),
    ]
}

/// Parses an interface CIDR such as `10.0.0.5/24` or `fe80::1/64`. Host bits may be set (an
/// interface address is reported with its prefix length): they are cleared. A bare address is
/// a network of one address. An IPv4-mapped IPv6 network (`::ffff:10.0.0.0/104`) is the IPv4
/// network, since mapped addresses are looked up as IPv4.
pub fn parse_cidr(cidr: &str) -> Result<IpNetwork, String> {
    let cidr = cidr.trim();
    let (addr, len) = match cidr.split_once('/') {
        Some((addr, len)) => (addr, Some(len)),
        None => (cidr, None),
    };
    let addr = addr.split_once('%').map_or(addr, |(a, _zone)| a);
    let ip: IpAddr = addr
        .parse()
        .map_err(|_| format!("{addr:?} is not an IP address"))?;
    let max: u8 = if ip.is_ipv4() { 32 } else { 128 };
    let len = match len {
        Some(len) => len
            .trim()
            .parse::<u8>()
            .map_err(|_| format!("{len:?} is not a prefix length"))?,
        None => max,
    };
    if len > max {
        let family = if ip.is_ipv4() { "IPv4" } else { "IPv6" };
        return Err(format!("prefix length {len} is more than {max} ({family})"));
    }
    let (ip, len) = match ip {
        IpAddr::V6(v6) if len >= 96 => match v6.to_ipv4_mapped() {
            Some(v4) => (IpAddr::V4(v4), len - 96),
            None => (ip, len),
        },
        _ => (ip, len),
    };
    IpNetwork::new_truncate(ip, len).map_err(|e| e.to_string())
}

/// Parses a textual address; an IPv6 zone (`%eth0`) is ignored and an IPv4-mapped IPv6
/// address becomes the IPv4 address.
pub fn parse_addr(addr: &str) -> Option<IpAddr> {
    Addr::parse(addr).map(IpAddr::from)
}

/// Whether `addr` is a loopback address (127.0.0.0/8 or ::1).
pub fn is_loopback(addr: &str) -> bool {
    Addr::parse(addr).is_some_and(Addr::is_loopback)
}

/// `scope_is_local(snapshot_time, addr) -> boolean` over the networks of that snapshot, and
/// `scope_is_local(addr)` over all of them.
pub fn is_local_udf(networks: impl Into<Arc<Networks>>) -> ScalarUDF {
    ScalarUDF::from(AddrFunction::new(
        IS_LOCAL,
        Answer::IsLocal(networks.into()),
    ))
}

/// `scope_local_network(snapshot_time, addr) -> varchar`, the CIDR of the most specific local
/// network of that snapshot containing `addr` (null when none), and
/// `scope_local_network(addr)` over all snapshots' networks.
pub fn local_network_udf(networks: impl Into<Arc<Networks>>) -> ScalarUDF {
    ScalarUDF::from(AddrFunction::new(
        LOCAL_NETWORK,
        Answer::LocalNetwork(networks.into()),
    ))
}

/// `scope_is_loopback(addr) -> boolean`.
pub fn is_loopback_udf() -> ScalarUDF {
    ScalarUDF::from(AddrFunction::new(IS_LOOPBACK, Answer::IsLoopback))
}

/// Evaluates `udf` over whole columns of equal length, as a projection would, without planning
/// SQL: for benchmarks and tests of the functions on their own.
pub fn invoke(udf: &ScalarUDF, args: &[ArrayRef]) -> DfResult<ArrayRef> {
    let rows = args.first().map_or(0, |a| a.len());
    if args.iter().any(|a| a.len() != rows) {
        return exec_err!("{}: arguments of different lengths", udf.name());
    }
    let types: Vec<DataType> = args.iter().map(|a| a.data_type().clone()).collect();
    let arg_fields: Vec<FieldRef> = types
        .iter()
        .enumerate()
        .map(|(i, t)| Arc::new(Field::new(format!("arg{i}"), t.clone(), true)))
        .collect();
    let return_field = Arc::new(Field::new(udf.name(), udf.return_type(&types)?, true));
    udf.invoke_with_args(ScalarFunctionArgs {
        args: args.iter().cloned().map(ColumnarValue::Array).collect(),
        arg_fields,
        number_rows: rows,
        return_field,
        config_options: Arc::new(ConfigOptions::default()),
    })?
    .to_array(rows)
}

#[derive(Debug, PartialEq, Eq, Hash)]
enum Answer {
    /// Takes `([snapshot_time,] addr)`, returns a boolean.
    IsLocal(Arc<Networks>),
    /// Takes `([snapshot_time,] addr)`, returns a CIDR.
    LocalNetwork(Arc<Networks>),
    /// Takes `(addr)`, returns a boolean.
    IsLoopback,
}

/// A scalar function of an address (after the snapshot time, in the two-argument forms);
/// null in, null out.
#[derive(Debug, PartialEq, Eq, Hash)]
struct AddrFunction {
    name: &'static str,
    answer: Answer,
    signature: Signature,
}

impl AddrFunction {
    fn new(name: &'static str, answer: Answer) -> Self {
        let signature = match answer {
            Answer::IsLoopback => Signature::string(1, Volatility::Immutable),
            // Any types: a snapshot time is a timestamp or its microseconds, and an address
            // may come as any string type (or null); both are cast at evaluation.
            Answer::IsLocal(_) | Answer::LocalNetwork(_) => Signature::one_of(
                vec![TypeSignature::Any(1), TypeSignature::Any(2)],
                Volatility::Immutable,
            ),
        };
        AddrFunction {
            name,
            answer,
            signature,
        }
    }

    fn arities(&self) -> &'static [usize] {
        match self.answer {
            Answer::IsLoopback => &[1],
            Answer::IsLocal(_) | Answer::LocalNetwork(_) => &[1, 2],
        }
    }

    /// `arrays` all have the same length (scalars expanded by the caller).
    fn eval(&self, arrays: &[ArrayRef]) -> DfResult<ArrayRef> {
        let (times, addrs) = match arrays {
            [addrs] => (None, addrs),
            [times, addrs] => (Some(times), addrs),
            _ => return exec_err!("{}: expected 1 or 2 arguments", self.name),
        };
        let strings = cast(addrs, &DataType::Utf8)?;
        let Some(strings) = strings.as_any().downcast_ref::<StringArray>() else {
            return exec_err!("{}: expected a string address", self.name);
        };
        let networks = match &self.answer {
            Answer::IsLoopback => {
                let result: BooleanArray =
                    strings.iter().map(|addr| addr.map(is_loopback)).collect();
                return Ok(Arc::new(result));
            }
            Answer::IsLocal(networks) | Answer::LocalNetwork(networks) => networks,
        };
        let times = times.map(|t| snapshot_times(self.name, t)).transpose()?;
        let mut lookup = Lookup {
            networks,
            last: None,
        };
        // Each row's address and the networks of its snapshot; null when either is null.
        let rows = (0..strings.len()).map(|row| {
            let addr = strings.is_valid(row).then(|| strings.value(row))?;
            let set = match &times {
                None => networks.union(),
                Some(times) => lookup.at(times.is_valid(row).then(|| times.value(row))?),
            };
            Some((set, addr))
        });
        match self.answer {
            Answer::LocalNetwork(_) => {
                let mut out = StringBuilder::with_capacity(strings.len(), strings.len() * 12);
                for row in rows {
                    match row.and_then(|(set, addr)| set.cidr_of(addr)) {
                        Some(cidr) => out.append_value(cidr),
                        None => out.append_null(),
                    }
                }
                Ok(Arc::new(out.finish()))
            }
            _ => {
                let result: BooleanArray = rows
                    .map(|row| row.map(|(set, addr)| set.contains(addr)))
                    .collect();
                Ok(Arc::new(result))
            }
        }
    }
}

/// The networks of a row's snapshot, remembering the last: the rows of a batch are mostly of
/// one snapshot.
struct Lookup<'a> {
    networks: &'a Networks,
    last: Option<(i64, &'a LocalNetworks)>,
}

impl<'a> Lookup<'a> {
    fn at(&mut self, time: i64) -> &'a LocalNetworks {
        match self.last {
            Some((t, set)) if t == time => set,
            _ => {
                let set = self.networks.at(time);
                self.last = Some((time, set));
                set
            }
        }
    }
}

/// Snapshot times as stored: microseconds since the epoch. A timestamp of another unit (a
/// literal typed by hand is in nanoseconds) is converted first, since a plain cast to an
/// integer would keep its unit.
fn snapshot_times(name: &str, times: &ArrayRef) -> DfResult<Int64Array> {
    let times = match times.data_type() {
        DataType::Timestamp(unit, tz) if *unit != TimeUnit::Microsecond => cast(
            times,
            &DataType::Timestamp(TimeUnit::Microsecond, tz.clone()),
        )?,
        _ => Arc::clone(times),
    };
    let times = cast(&times, &DataType::Int64)?;
    match times.as_any().downcast_ref::<Int64Array>() {
        Some(times) => Ok(times.clone()),
        None => exec_err!("{name}: expected a snapshot time"),
    }
}

impl ScalarUDFImpl for AddrFunction {
    fn name(&self) -> &str {
        self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> DfResult<DataType> {
        Ok(match self.answer {
            Answer::LocalNetwork(_) => DataType::Utf8,
            Answer::IsLocal(_) | Answer::IsLoopback => DataType::Boolean,
        })
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        if !self.arities().contains(&args.args.len()) {
            return exec_err!(
                "{} takes {:?} argument(s), got {}",
                self.name,
                self.arities(),
                args.args.len()
            );
        }
        invoke_on_arrays(&args, |arrays| self.eval(arrays))
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

    fn net(cidr: &str) -> IpNetwork {
        parse_cidr(cidr).unwrap()
    }

    #[test]
    fn host_local_networks_are_per_snapshot_and_host() {
        let (set, rejected) = HostLocalNetworks::from_rows([
            (1, "h1", "172.17.0.1/16"),
            (1, "h1", "172.17.5.1/24"),
            (2, "h2", "172.17.0.1/16"),
            (1, "h1", "bad"),
        ]);
        assert_eq!(rejected.len(), 1, "{rejected:?}");
        let strings = |v: Vec<Option<&str>>| -> ArrayRef { Arc::new(StringArray::from(v)) };
        let args = [
            Arc::new(Int64Array::from(vec![1, 1, 1, 2, 2, 1, 1])) as ArrayRef,
            strings(vec![
                Some("h1"),
                Some("h1"),
                Some("h2"),
                Some("h2"),
                None,
                Some("h1"),
                Some("h1"),
            ]),
            strings(vec![
                Some("172.17.5.9"),
                Some("172.17.0.2"),
                Some("172.17.0.2"),
                Some("172.17.0.2"),
                Some("172.17.0.2"),
                Some("10.0.0.1"),
                Some("127.0.0.1"),
            ]),
        ];
        let found = invoke(&host_local_network_udf(set), &args).unwrap();
        let found = found.as_any().downcast_ref::<StringArray>().unwrap();
        assert_eq!(
            found.iter().collect::<Vec<_>>(),
            [
                Some("172.17.5.0/24"),
                Some("172.17.0.0/16"),
                None,
                Some("172.17.0.0/16"),
                None,
                None,
                None
            ],
            "the most specific network of that host in that snapshot; loopback is not one"
        );
        let none = invoke(&host_local_network_udf(HostLocalNetworks::default()), &args).unwrap();
        assert_eq!(none.null_count(), 7);
    }

    /// Random networks of both families, about half nested in an earlier one, as (IPv6, address
    /// bits, prefix length).
    fn random_networks(rng: &mut lookup::tests::Rng, count: u64) -> Vec<(bool, u128, u32)> {
        let mut nets: Vec<(bool, u128, u32)> = Vec::new();
        for _ in 0..count {
            let v6 = rng.below(2) == 1;
            let width = if v6 { 128 } else { 32 };
            let family: Vec<_> = nets.iter().filter(|n| n.0 == v6).copied().collect();
            let (base, outer_len) = match family.len() {
                n if n > 0 && rng.below(2) == 0 => {
                    let (_, base, len) = family[rng.below(n as u64) as usize];
                    (base, len)
                }
                _ => (0, 0),
            };
            let len = outer_len + rng.below(u64::from(width - outer_len) + 1) as u32;
            let all = u128::MAX >> (128 - width);
            // Host bits set too: interfaces report their own address with the prefix length.
            let bits = base | (rng.u128() & all.checked_shr(outer_len).unwrap_or(0));
            nets.push((v6, bits, len));
        }
        nets
    }

    fn spell(v6: bool, bits: u128) -> String {
        if v6 {
            Ipv6Addr::from(bits).to_string()
        } else {
            Ipv4Addr::from(bits as u32).to_string()
        }
    }

    /// The answer by the definition: the standard parser, then every network, longest prefix.
    fn by_linear_scan(set: &LocalNetworks, addr: &str) -> Option<IpNetwork> {
        let addr = addr.trim();
        let ip: IpAddr = addr.split('%').next()?.parse().ok()?;
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        let containing = set.networks().iter().filter(|n| n.contains(ip));
        containing.max_by_key(|n| n.netmask()).copied()
    }

    #[test]
    fn lookups_answer_as_a_linear_scan_does() {
        let mut rng = lookup::tests::Rng(0x10ca1);
        for _ in 0..40 {
            let count = 1 + rng.below(300);
            let nets = random_networks(&mut rng, count);
            let cidrs = nets
                .iter()
                .map(|&(v6, bits, len)| format!("{}/{len}", spell(v6, bits)));
            let (set, rejected) = LocalNetworks::from_cidrs(cidrs);
            assert!(rejected.is_empty(), "{rejected:?}");
            for _ in 0..500 {
                let (v6, bits, len) = nets[rng.below(nets.len() as u64) as usize];
                let all = if v6 { u128::MAX } else { u128::from(u32::MAX) };
                let host = all.checked_shr(len).unwrap_or(0);
                let addr = match rng.below(8) {
                    0 => spell(v6, bits & !host),
                    1 => spell(v6, bits | host),
                    2 => spell(v6, (bits | host).wrapping_add(1) & all),
                    3 if !v6 => format!("::ffff:{}", spell(false, bits)),
                    4 => spell(rng.below(2) == 1, rng.u128() & all),
                    5 => ["127.0.0.9", "::1", "::ffff:127.0.0.1", "", "x", "1.2.3"]
                        [rng.below(6) as usize]
                        .to_owned(),
                    _ => spell(v6, (bits & !host) | (rng.u128() & host)),
                };
                let expected = by_linear_scan(&set, &addr);
                assert_eq!(set.network_of(&addr), expected, "{addr:?} in {set:?}");
                assert_eq!(set.contains(&addr), expected.is_some(), "{addr:?}");
                let cidr = expected.map(|n| n.to_string());
                assert_eq!(set.cidr_of(&addr), cidr.as_deref(), "{addr:?}");
                if let Some(ip) = parse_addr(&addr) {
                    assert_eq!(set.longest_match(ip), expected, "{addr:?}");
                }
            }
        }
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
        assert_eq!(set.network_of("10.0.0.999"), None);
        assert!(set.contains("10.0.0.9"));
    }

    #[test]
    fn bare_address_is_a_single_host_network() {
        let set = networks(&["10.1.2.3"]);
        assert!(set.contains("10.1.2.3"));
        assert!(!set.contains("10.1.2.4"));
    }

    #[test]
    fn the_most_specific_network_wins() {
        let set = networks(&[
            "10.0.0.0/8",
            "10.1.0.0/16",
            "10.1.2.3/24",
            "fd00::/8",
            "fd00:1::/64",
        ]);
        let of = |addr| set.network_of(addr).map(|n| n.to_string());
        assert_eq!(of("10.1.2.7").as_deref(), Some("10.1.2.0/24"));
        assert_eq!(of("10.1.3.7").as_deref(), Some("10.1.0.0/16"));
        assert_eq!(of("10.2.0.1").as_deref(), Some("10.0.0.0/8"));
        assert_eq!(of("::ffff:10.1.2.1").as_deref(), Some("10.1.2.0/24"));
        assert_eq!(of("fd00:1::9").as_deref(), Some("fd00:1::/64"));
        assert_eq!(of("fd00:2::9").as_deref(), Some("fd00::/8"));
        assert_eq!(of("127.0.0.1").as_deref(), Some("127.0.0.0/8"));
        assert_eq!(of("::1").as_deref(), Some("::1/128"));
        assert_eq!(of("11.0.0.1"), None);
        assert_eq!(of("garbage"), None);
    }

    #[test]
    fn cidrs_parse_with_clear_errors() {
        assert_eq!(net(" 10.0.0.5/24 ").to_string(), "10.0.0.0/24");
        assert_eq!(net("::ffff:10.0.0.0/104").to_string(), "10.0.0.0/8");
        assert_eq!(net("fd00::1/64").to_string(), "fd00::/64");
        assert!(
            parse_cidr("10.0.0.0/33")
                .unwrap_err()
                .contains("more than 32")
        );
        assert!(
            parse_cidr("fd00::/129")
                .unwrap_err()
                .contains("more than 128")
        );
        assert!(
            parse_cidr("10.0.0/8")
                .unwrap_err()
                .contains("not an IP address")
        );
        assert!(
            parse_cidr("10.0.0.0/-1")
                .unwrap_err()
                .contains("prefix length")
        );
        assert!(parse_cidr("").is_err());
    }

    #[test]
    fn each_snapshot_has_its_own_networks() {
        let (set, rejected) =
            Networks::from_rows([(1, "10.0.0.1/24"), (2, "10.0.1.1/24"), (2, "bad")], &[]);
        assert_eq!(rejected.len(), 1, "{rejected:?}");
        assert!(set.contains(1, "10.0.0.7"));
        assert!(!set.contains(1, "10.0.1.7"));
        assert!(set.contains(2, "10.0.1.7"));
        assert!(!set.contains(2, "10.0.0.7"));
        assert!(set.contains(3, "127.0.0.1"));
        assert!(!set.contains(3, "10.0.0.7"));
        assert!(set.union().contains("10.0.0.7") && set.union().contains("10.0.1.7"));
    }

    #[test]
    fn configured_networks_are_local_in_every_snapshot() {
        let configured = [net("192.168.0.0/16"), net("10.0.0.0/8")];
        let (set, _) = Networks::from_rows([(1, "10.0.0.1/24")], &configured);
        assert_eq!(set.network_of(1, "10.0.0.7"), Some(net("10.0.0.0/24")));
        assert_eq!(set.network_of(1, "10.9.0.7"), Some(net("10.0.0.0/8")));
        assert_eq!(
            set.network_of(1, "192.168.3.3"),
            Some(net("192.168.0.0/16"))
        );
        assert_eq!(
            set.network_of(99, "192.168.3.3"),
            Some(net("192.168.0.0/16"))
        );
        assert_eq!(set.network_of(99, "10.0.0.7"), Some(net("10.0.0.0/8")));
        assert_eq!(set.union().network_of("10.0.0.7"), Some(net("10.0.0.0/24")));
        assert!(!set.contains(99, "172.16.0.1"));
        assert!(set.contains(99, "::1"));
    }

    #[test]
    fn sets_compare_by_networks() {
        assert_eq!(
            networks(&["10.0.0.1/24", "10.0.0.0/24"]),
            networks(&["10.0.0.9/24"])
        );
        assert_ne!(networks(&["10.0.0.0/24"]), networks(&["10.0.1.0/24"]));
    }

    #[test]
    fn local_networks_flag_parses_lists_and_rejects_bad_cidrs() {
        use clap::Parser;
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            networks: NetworkArgs,
        }
        let cli = Cli::try_parse_from(["x", "--local-networks", "10.0.0.0/8,fd00::/8"]).unwrap();
        assert_eq!(
            cli.networks.local_networks,
            vec![net("10.0.0.0/8"), net("fd00::/8")]
        );
        let cli = Cli::try_parse_from(["x"]).unwrap();
        assert!(cli.networks.local_networks.is_empty());
        let error = Cli::try_parse_from(["x", "--local-networks", "10.0.0.0/8,10.0.0.0/40"])
            .err()
            .unwrap()
            .to_string();
        assert!(
            error.contains("\"10.0.0.0/40\" is not a network"),
            "{error}"
        );
        assert!(error.contains("more than 32"), "{error}");
    }

    fn strings(values: &[Option<&str>]) -> ArrayRef {
        Arc::new(values.iter().copied().collect::<StringArray>())
    }

    #[test]
    fn functions_over_arrays_answer_per_row_and_pass_nulls() {
        let configured = [net("172.16.0.0/12")];
        let (set, _) = Networks::from_rows([(1, "10.0.0.1/24"), (2, "fd00::1/64")], &configured);
        let set = Arc::new(set);
        let addrs = strings(&[
            Some("10.0.0.7"),
            Some("fd00::7"),
            Some("172.16.9.9"),
            Some("8.8.8.8"),
            Some("::ffff:127.0.0.1"),
            Some("nonsense"),
            None,
            Some("10.0.0.7"),
        ]);
        let times: ArrayRef = Arc::new(Int64Array::from(vec![
            Some(1),
            Some(1),
            Some(1),
            Some(1),
            Some(1),
            Some(1),
            Some(1),
            None,
        ]));
        let network = local_network_udf(Arc::clone(&set));
        let by_time = invoke(&network, &[Arc::clone(&times), Arc::clone(&addrs)]).unwrap();
        let by_time = by_time.as_any().downcast_ref::<StringArray>().unwrap();
        let expected = [
            Some("10.0.0.0/24"),
            None,
            Some("172.16.0.0/12"),
            None,
            Some("127.0.0.0/8"),
            None,
            None,
            None,
        ];
        assert_eq!(by_time.iter().collect::<Vec<_>>(), expected);

        let anywhere = invoke(&network, &[Arc::clone(&addrs)]).unwrap();
        let anywhere = anywhere.as_any().downcast_ref::<StringArray>().unwrap();
        assert_eq!(anywhere.value(1), "fd00::/64");
        assert_eq!(anywhere.value(7), "10.0.0.0/24");

        let local = invoke(&is_local_udf(set), &[times, addrs]).unwrap();
        let local = local.as_any().downcast_ref::<BooleanArray>().unwrap();
        let expected = [
            Some(true),
            Some(false),
            Some(true),
            Some(false),
            Some(true),
            Some(false),
            None,
            None,
        ];
        assert_eq!(local.iter().collect::<Vec<_>>(), expected);
    }

    #[test]
    fn timestamps_of_any_unit_are_snapshot_times() {
        use arrow::array::TimestampNanosecondArray;
        let (set, _) = Networks::from_rows([(1_000, "10.0.0.1/24")], &[]);
        let times: ArrayRef = Arc::new(TimestampNanosecondArray::from(vec![1_000_000]));
        let local = invoke(&is_local_udf(set), &[times, strings(&[Some("10.0.0.2")])]).unwrap();
        let local = local.as_any().downcast_ref::<BooleanArray>().unwrap();
        assert!(local.value(0));
    }

    #[test]
    fn wrong_arity_is_an_error_not_a_panic() {
        let udf = local_network_udf(Networks::default());
        let a = strings(&[Some("10.0.0.1")]);
        assert!(invoke(&udf, &[Arc::clone(&a), Arc::clone(&a), a]).is_err());
        assert!(invoke(&is_loopback_udf(), &[]).is_err());
    }
}
