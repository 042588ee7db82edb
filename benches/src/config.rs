//! The command line of `scope-load`. Defaults are sized so that one run of every phase takes a
//! few minutes on a 2-core machine with the `container` profile; every size has a flag.

use std::time::Duration;

use crate::workload::Traffic;

/// A phase of the benchmark.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Phase {
    /// The raw broker: produce + consume of the workload's messages.
    Baseline,
    /// The merger: in-memory decode + apply, then Kafka to snapshot files.
    Merger,
    /// Window tick to rendered topic for one large snapshot.
    Render,
    /// Network membership: the sorted-range lookup of the SQL functions against a linear
    /// scan.
    Membership,
    /// The HTTP API's latency on the phase 3 snapshot: a view, and the websocket delta.
    Api,
}

/// Measures Scope's pipeline on synthetic collector traffic, against the raw broker.
#[derive(clap::Parser, Clone, Debug)]
#[command(name = "scope-load", version)]
pub struct LoadArgs {
    /// Hosts running a collector (phases 1 and 2).
    #[arg(long, default_value_t = 100)]
    pub hosts: u32,
    /// Processes per host.
    #[arg(long, default_value_t = 100)]
    pub processes: u32,
    /// Connections per process, opened at the start (the client end is the process's).
    #[arg(long, default_value_t = 10)]
    pub connections: u32,
    /// Fraction of the open connections that close each second; as many new ones open.
    #[arg(long, default_value_t = 0.05)]
    pub churn: f64,
    /// Seconds of collector traffic to generate (event time, not run time).
    #[arg(long, default_value_t = 30)]
    pub seconds: u32,
    /// Fraction of connections with one end on the Internet (half inbound, half outbound).
    #[arg(long, default_value_t = 0.1)]
    pub internet: f64,
    /// Partitions of the input topics.
    #[arg(long, default_value_t = 1)]
    pub partitions: i32,
    /// The merger's --tick in phase 2: how often it cuts a snapshot.
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    pub merger_tick: Duration,
    /// Hosts of the phase 3 snapshot.
    #[arg(long, default_value_t = 100)]
    pub render_hosts: u32,
    /// Processes of the phase 3 snapshot (spread evenly over its hosts).
    #[arg(long, default_value_t = 10_000)]
    pub render_processes: u32,
    /// TCP connections of the phase 3 snapshot (rows of its `connections` table).
    #[arg(long, default_value_t = 100_000)]
    pub render_connections: u32,
    /// Addresses looked up in phase 4 (membership).
    #[arg(long, default_value_t = 1_000_000)]
    pub membership_addresses: u32,
    /// Local networks of the phase 4 snapshot (half IPv4, half IPv6).
    #[arg(long, default_value_t = 10_000)]
    pub membership_networks: u32,
    /// Addresses of phase 4 the linear scan also looks up (evenly spread): it passes over
    /// every network per address, so all of them would take minutes.
    #[arg(long, default_value_t = 20_000)]
    pub membership_scan_sample: u32,
    /// Requests (and websocket deltas) of phase 5 (api), of which the median is reported.
    #[arg(long, default_value_t = 20)]
    pub api_requests: usize,
    /// A librdkafka property for the merger's clients in phase 2, as KEY=VALUE (repeatable).
    #[arg(long = "merger-property", value_name = "KEY=VALUE", value_parser = parse_property)]
    pub merger_properties: Vec<(String, String)>,
    /// A librdkafka property for the renderer service's clients in phase 3, as KEY=VALUE
    /// (repeatable), e.g. `fetch.wait.max.ms=10`.
    #[arg(long = "renderer-property", value_name = "KEY=VALUE", value_parser = parse_property)]
    pub renderer_properties: Vec<(String, String)>,
    /// Seed of the synthetic workload.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Give up on any single wait (consumer caught up, snapshot written) after this long.
    #[arg(long, default_value = "10m", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
    /// Phases to run (comma-separated); ratios need the baseline.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "baseline,merger,render"
    )]
    pub phases: Vec<Phase>,
}

fn parse_property(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_owned(), v.trim().to_owned())),
        _ => Err(format!("expected KEY=VALUE, got {s:?}")),
    }
}

impl LoadArgs {
    pub fn runs(&self, phase: Phase) -> bool {
        self.phases.contains(&phase)
    }

    /// The collector traffic of phases 1 and 2.
    pub fn traffic(&self) -> Traffic {
        Traffic {
            hosts: self.hosts,
            processes_per_host: self.processes,
            connections: u64::from(self.hosts)
                * u64::from(self.processes)
                * u64::from(self.connections),
            internet: self.internet,
            churn: self.churn,
            seconds: self.seconds,
            partitions: self.partitions,
            seed: self.seed,
        }
    }

    /// The topology of the phase 3 snapshot.
    pub fn render_traffic(&self) -> Traffic {
        let hosts = self.render_hosts.max(1);
        Traffic {
            hosts,
            processes_per_host: self.render_processes.div_ceil(hosts).max(1),
            connections: u64::from(self.render_connections),
            internet: self.internet,
            churn: 0.0,
            seconds: 0,
            partitions: 1,
            seed: self.seed,
        }
    }

    /// Checks the flags against each other.
    pub fn validate(&self) -> Result<(), String> {
        if self.hosts == 0 || self.processes == 0 {
            return Err("--hosts and --processes must be at least 1".into());
        }
        if !(0.0..=1.0).contains(&self.churn) || !(0.0..=1.0).contains(&self.internet) {
            return Err("--churn and --internet are fractions between 0 and 1".into());
        }
        if self.partitions < 1 {
            return Err("--partitions must be at least 1".into());
        }
        if self.merger_tick < Duration::from_millis(1) {
            return Err("--merger-tick must be at least 1ms".into());
        }
        if self.membership_addresses == 0 || self.membership_scan_sample == 0 {
            return Err(
                "--membership-addresses and --membership-scan-sample must be at least 1".into(),
            );
        }
        if self.phases.is_empty() {
            return Err("--phases must name at least one phase".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[test]
    fn defaults_parse_and_validate() {
        let args = LoadArgs::parse_from(["scope-load"]);
        args.validate().unwrap();
        assert_eq!(args.traffic().connections, 100_000);
        assert_eq!(
            args.phases,
            vec![Phase::Baseline, Phase::Merger, Phase::Render]
        );
        let render = args.render_traffic();
        assert_eq!(render.hosts * render.processes_per_host, 10_000);
        let some = LoadArgs::parse_from([
            "scope-load",
            "--phases",
            "render",
            "--merger-tick",
            "200ms",
            "--renderer-property",
            "fetch.wait.max.ms=10",
        ]);
        assert_eq!(
            some.renderer_properties,
            vec![("fetch.wait.max.ms".to_owned(), "10".to_owned())]
        );
        assert!(some.runs(Phase::Render) && !some.runs(Phase::Baseline));
        assert_eq!(some.merger_tick, Duration::from_millis(200));
        assert!(
            LoadArgs::parse_from(["scope-load", "--churn", "2"])
                .validate()
                .is_err()
        );
    }
}
