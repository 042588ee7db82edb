//! The command line of `scope-collector-load`, its validation, and where the collector binary
//! is found.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, bail};

/// Above this, starting the containers would take longer than measuring them.
const MAX_CONTAINERS: u32 = 500;

/// How the collector under test learns connections (its `--tracker`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, clap::ValueEnum)]
pub enum Mode {
    /// Poll /proc every spy (the baseline).
    Procfs,
    /// Kernel tracepoints through the eBPF tracker (needs root).
    Ebpf,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Procfs => "procfs",
            Mode::Ebpf => "ebpf",
        }
    }
}

/// Measures the collector's CPU and memory, eBPF against procfs in the same run, while this
/// process holds long-lived connections and opens short ones at fixed rates.
///
/// For each mode and rate, a fresh collector is started as a child process against an embedded
/// broker in this process; its CPU (`/proc/<pid>/stat`) and memory (`/proc/<pid>/status`) are read,
/// and the connection events it publishes are counted to tell how many of the connections made
/// it saw. Figures go to stdout as markdown; progress to stderr.
#[derive(clap::Parser, Clone, Debug)]
#[command(name = "scope-collector-load", version)]
pub struct CollectorLoadArgs {
    /// How long the collector's CPU is measured in each cell (after the warm-up).
    #[arg(long, default_value = "20s", value_parser = humantime::parse_duration)]
    pub duration: Duration,
    /// Load before the measurement starts, once the collector has published its first record.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    pub warmup: Duration,
    /// New connections per second to open (connect, one byte each way, close), comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "0,100,1000")]
    pub rates: Vec<u32>,
    /// Connections held open to the load server for the whole of each cell.
    #[arg(long, default_value_t = 20)]
    pub long_lived: u32,
    /// The `scope-collector` binary to measure [default: `scope-collector` next to this
    /// executable].
    #[arg(long, value_name = "PATH")]
    pub collector: Option<PathBuf>,
    /// Modes to measure, in order (comma-separated). procfs is the baseline of the ratios.
    #[arg(long, value_enum, value_delimiter = ',', default_value = "procfs,ebpf")]
    pub modes: Vec<Mode>,
    /// Containers running beside the collector, comma-separated: each count is measured at
    /// every mode and rate, in this order (`0,50`: none, then 50 busybox containers that sleep).
    /// A count above 0 starts dockerd if none answers (root), builds the busybox image if
    /// missing, and points every cell's collector at the Docker socket.
    #[arg(long, value_delimiter = ',', default_value = "0")]
    pub containers: Vec<u32>,
    /// Give up on any single wait (collector up, collector stopped, events consumed) after this
    /// long.
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
}

impl CollectorLoadArgs {
    /// Checks the flags against each other, without I/O.
    pub fn validate(&self) -> Result<(), String> {
        if self.duration.is_zero() {
            return Err("--duration must be above zero".into());
        }
        if self.rates.is_empty() {
            return Err("--rates needs at least one rate".into());
        }
        if let Some(rate) = self.rates.iter().find(|r| **r > 100_000) {
            return Err(format!(
                "--rates {rate}: above 100,000 new connections/s the loopback port range \
                 runs out before the collector does"
            ));
        }
        if self.modes.is_empty() {
            return Err("--modes needs at least one mode".into());
        }
        if self.containers.is_empty() {
            return Err("--containers needs at least one count (0 for none)".into());
        }
        if let Some(count) = self.containers.iter().find(|n| **n > MAX_CONTAINERS) {
            return Err(format!(
                "--containers {count}: at most {MAX_CONTAINERS} (each takes a docker run)"
            ));
        }
        if self.timeout < Duration::from_secs(1) {
            return Err("--timeout must be at least 1s".into());
        }
        Ok(())
    }

    /// Whether any cell runs containers, so Docker must be up for the whole run.
    pub fn wants_docker(&self) -> bool {
        self.containers.iter().any(|n| *n > 0)
    }

    /// The collector binary: `--collector`, else `scope-collector` beside this executable.
    /// A missing file is an error that says how to build it.
    pub fn collector_path(&self) -> anyhow::Result<PathBuf> {
        let path = match &self.collector {
            Some(path) => path.clone(),
            None => std::env::current_exe()
                .context("finding this executable (to look for scope-collector beside it)")?
                .parent()
                .map(|dir| dir.join("scope-collector"))
                .context("this executable has no parent directory")?,
        };
        check_executable(&path)?;
        Ok(path)
    }
}

fn check_executable(path: &Path) -> anyhow::Result<()> {
    match std::fs::metadata(path) {
        Ok(meta) if meta.is_file() => Ok(()),
        Ok(_) => bail!("collector {} is not a file", path.display()),
        Err(error) => bail!(
            "no collector binary at {} ({error}). Build it first, optimised: \
             `cargo build --profile container -p scope-collector` and pass \
             `--collector $CARGO_TARGET_DIR/container/scope-collector` (target/container/ \
             without CARGO_TARGET_DIR); or `cargo build -p scope-collector` for a dev build \
             beside this executable",
            path.display()
        ),
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser as _;

    use super::*;

    fn parse(argv: &[&str]) -> Result<CollectorLoadArgs, clap::Error> {
        CollectorLoadArgs::try_parse_from(
            std::iter::once("scope-collector-load").chain(argv.iter().copied()),
        )
    }

    #[test]
    fn defaults_and_flags() {
        let defaults = parse(&[]).unwrap();
        assert_eq!(defaults.duration, Duration::from_secs(20));
        assert_eq!(defaults.warmup, Duration::from_secs(5));
        assert_eq!(defaults.rates, [0, 100, 1000]);
        assert_eq!(defaults.long_lived, 20);
        assert_eq!(defaults.modes, [Mode::Procfs, Mode::Ebpf]);
        assert_eq!(defaults.collector, None);
        assert_eq!(defaults.containers, [0]);
        assert!(!defaults.wants_docker());
        defaults.validate().unwrap();

        let args = parse(&[
            "--duration",
            "3s",
            "--warmup",
            "500ms",
            "--rates",
            "10,20",
            "--long-lived",
            "0",
            "--collector",
            "/x/scope-collector",
            "--modes",
            "ebpf",
            "--containers",
            "0,50",
        ])
        .unwrap();
        assert_eq!(args.duration, Duration::from_secs(3));
        assert_eq!(args.warmup, Duration::from_millis(500));
        assert_eq!(args.rates, [10, 20]);
        assert_eq!(args.long_lived, 0);
        assert_eq!(args.modes, [Mode::Ebpf]);
        assert_eq!(args.containers, [0, 50]);
        assert!(args.wants_docker());
        args.validate().unwrap();
        assert!(parse(&["--containers", "many"]).is_err());
        assert!(parse(&["--rates", "fast"]).is_err());
        assert!(parse(&["--modes", "kprobe"]).is_err());
    }

    #[test]
    fn rejects_bad_combinations_and_missing_collector() {
        let ok = parse(&[]).unwrap();
        for bad in [
            CollectorLoadArgs {
                duration: Duration::ZERO,
                ..ok.clone()
            },
            CollectorLoadArgs {
                rates: vec![],
                ..ok.clone()
            },
            CollectorLoadArgs {
                modes: vec![],
                ..ok.clone()
            },
            CollectorLoadArgs {
                containers: vec![],
                ..ok.clone()
            },
            CollectorLoadArgs {
                containers: vec![0, 501],
                ..ok.clone()
            },
        ] {
            assert!(bad.validate().is_err(), "{bad:?}");
        }
        let missing = CollectorLoadArgs {
            collector: Some("/nonexistent/scope-collector".into()),
            ..ok
        };
        let error = format!("{:#}", missing.collector_path().unwrap_err());
        assert!(error.contains("cargo build --profile container"), "{error}");
    }
}
