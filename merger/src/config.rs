//! The merger's command line, and the rules between its flags checked before anything runs.

use std::path::PathBuf;
use std::time::Duration;

use scope_kafka::KafkaArgs;
use scope_runtime::{
    component::{Component, Context},
    metrics::Families,
    service::default_duration,
};
use scope_store::StorageArgs;

use crate::Error;

// The defaults, once for the flags and once for `MergerArgs::new`.
const DEFAULT_GROUP_ID: &str = "scope-merger";
const DEFAULT_WINDOW: &str = "15s";
const DEFAULT_TICK: &str = "1s";
const DEFAULT_FULL_INTERVAL: &str = "15s";
const DEFAULT_INPUT_PARTITIONS: i32 = 6;
const DEFAULT_MAX_CLOCK_SKEW: &str = "5s";
const DEFAULT_IDLE_INTERVAL: &str = "15s";

/// Flags of `scope merger`. Every flag also reads an environment variable.
#[derive(clap::Args, Clone, Debug)]
pub struct MergerArgs {
    #[command(flatten)]
    pub kafka: KafkaArgs,

    /// Kafka consumer group; mergers in one group share the input partitions (by host).
    #[arg(long, env = "SCOPE_MERGER_GROUP_ID", default_value = DEFAULT_GROUP_ID)]
    pub group_id: String,

    /// Length of the window each snapshot covers: a snapshot at T holds the hosts that
    /// reported and the sockets that were open within [T - window, T].
    #[arg(long, env = "SCOPE_WINDOW", default_value = DEFAULT_WINDOW, value_parser = humantime::parse_duration)]
    pub window: Duration,

    /// How often a snapshot is cut, aligned to multiples of this on the wall clock.
    #[arg(long, env = "SCOPE_MERGER_TICK", default_value = DEFAULT_TICK, value_parser = humantime::parse_duration)]
    pub tick: Duration,

    /// How old a snapshot may get while nothing the views draw changes (no host, process,
    /// container, Kubernetes object, connection or network comes, goes or is renamed): ticks
    /// that only moved metrics (CPU, memory, load, threads, open files) write nothing until
    /// then, and the previous snapshot stands for them. A tick that changed the graph is
    /// written at once. At most --tick apart in any case; a merger that shares the input
    /// partitions with others writes every tick, since readers need every writer's files of
    /// a time.
    #[arg(long, env = "SCOPE_MERGER_IDLE_INTERVAL", default_value = DEFAULT_IDLE_INTERVAL, value_parser = humantime::parse_duration)]
    pub idle_interval: Duration,

    #[command(flatten)]
    pub storage: StorageArgs,

    /// Name of this merger in file names and announcements; unique within the group.
    /// Letters, digits, '.', '_' and '-'.
    #[arg(long, env = "SCOPE_MERGER_WRITER", default_value_t = default_writer())]
    pub writer: String,

    /// How often collectors publish a full report (re-announcing every open connection).
    /// An open socket not confirmed for 2 * window + this is expired, and a merger assigned
    /// partitions replays that much of their past to rebuild its state.
    #[arg(long, env = "SCOPE_FULL_INTERVAL", default_value = DEFAULT_FULL_INTERVAL, value_parser = humantime::parse_duration)]
    pub full_interval: Duration,
    /// Partitions of the input topics when this merger has to create them (an existing topic
    /// is left as it is). Mergers in one group share these partitions, so this bounds how many
    /// of them can work at once.
    #[arg(long, env = "SCOPE_INPUT_PARTITIONS", default_value_t = DEFAULT_INPUT_PARTITIONS, value_parser = clap::value_parser!(i32).range(1..))]
    pub input_partitions: i32,
    /// How far a host's clock may be from the merger's before its timestamps are corrected
    /// (and the host counted and logged): beyond it, a host ahead would stay out of every
    /// window until its clock's "now" came, one behind would fall out of the window early.
    /// Measured on messages consumed live, so a merger lagging by more than this corrects
    /// every host by its lag.
    #[arg(long, env = "SCOPE_MAX_CLOCK_SKEW", default_value = DEFAULT_MAX_CLOCK_SKEW, value_parser = humantime::parse_duration)]
    pub max_clock_skew: Duration,
}

impl MergerArgs {
    /// The defaults of every flag, for the given brokers and data directory.
    pub fn new(kafka: KafkaArgs, data_dir: impl Into<PathBuf>) -> Self {
        MergerArgs {
            kafka,
            group_id: DEFAULT_GROUP_ID.into(),
            window: default_duration(DEFAULT_WINDOW),
            tick: default_duration(DEFAULT_TICK),
            idle_interval: default_duration(DEFAULT_IDLE_INTERVAL),
            storage: StorageArgs::new(data_dir),
            writer: default_writer(),
            full_interval: default_duration(DEFAULT_FULL_INTERVAL),
            input_partitions: DEFAULT_INPUT_PARTITIONS,
            max_clock_skew: default_duration(DEFAULT_MAX_CLOCK_SKEW),
        }
    }
}

impl Component for MergerArgs {
    const NAME: &'static str = "merger";
    type Error = Error;

    /// Checks the rules between flags, without I/O.
    fn validate(&self) -> Result<(), Error> {
        let fail = |reason: String| Err(Error::Config(reason));
        if self.group_id.trim().is_empty() {
            return fail("--group-id must not be empty".into());
        }
        if self.tick.is_zero() {
            return fail("--tick must be above zero".into());
        }
        if self.tick < Duration::from_millis(1) {
            return fail(format!(
                "--tick {:?} is below the 1 ms resolution of snapshot times",
                self.tick
            ));
        }
        if self.window < self.tick {
            return fail(format!(
                "--window ({}) must be at least --tick ({})",
                humantime::format_duration(self.window),
                humantime::format_duration(self.tick)
            ));
        }
        self.storage.validate().map_err(Error::Config)?;
        if self.storage.retention < self.window {
            return fail(format!(
                "--retention ({}) must be at least --window ({})",
                humantime::format_duration(self.storage.retention),
                humantime::format_duration(self.window)
            ));
        }
        if self.idle_interval >= self.storage.retention {
            return fail(format!(
                "--idle-interval ({}) must be below --retention ({}): the snapshot standing \
                 for the present would be deleted",
                humantime::format_duration(self.idle_interval),
                humantime::format_duration(self.storage.retention)
            ));
        }
        if self.max_clock_skew.is_zero() {
            return fail("--max-clock-skew must be above zero".into());
        }
        if !valid_writer(&self.writer) {
            return fail(format!(
                "--writer {:?} must be letters, digits, '.', '_' or '-', not starting with '.'",
                self.writer
            ));
        }
        Ok(())
    }

    fn write_metrics(out: &mut Families) {
        crate::stats().write_metrics(out);
    }

    fn is_retryable(error: &Error) -> bool {
        error.is_retryable()
    }

    fn run(self, cx: Context) -> impl Future<Output = Result<(), Error>> + Send {
        crate::run(self, cx.shutdown)
    }
}

fn valid_writer(writer: &str) -> bool {
    !writer.is_empty()
        && !writer.starts_with('.')
        && writer
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

/// `<hostname>-<pid>`, with characters a file name should not hold replaced by `_`.
pub fn default_writer() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "merger".into());
    let host: String = host
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect();
    let host = host.trim_start_matches('.');
    format!(
        "{}-{}",
        if host.is_empty() { "merger" } else { host },
        std::process::id()
    )
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        merger: MergerArgs,
    }

    #[test]
    fn defaults_parse_and_validate() {
        let cli = Cli::try_parse_from(["scope", "--data-dir", "/tmp/x"]).unwrap();
        let args = cli.merger;
        assert_eq!(args.window, Duration::from_secs(15));
        assert_eq!(args.tick, Duration::from_secs(1));
        assert_eq!(args.storage.retention, Duration::from_secs(3600));
        assert_eq!(args.group_id, "scope-merger");
        args.validate().unwrap();
        let new = MergerArgs::new(KafkaArgs::new("x:1"), "/tmp/x");
        new.validate().unwrap();
        // Unless the environment sets them, the flags' defaults are `new`'s.
        if std::env::vars().all(|(name, _)| !name.starts_with("SCOPE_")) {
            assert_eq!(
                format!(
                    "{:?}",
                    (
                        new.window,
                        new.tick,
                        new.idle_interval,
                        new.full_interval,
                        new.input_partitions,
                        new.max_clock_skew,
                        new.storage.retention,
                        &new.group_id
                    )
                ),
                format!(
                    "{:?}",
                    (
                        args.window,
                        args.tick,
                        args.idle_interval,
                        args.full_interval,
                        args.input_partitions,
                        args.max_clock_skew,
                        args.storage.retention,
                        &args.group_id
                    )
                ),
            );
        }
    }

    #[test]
    fn cross_field_rules_are_checked() {
        let base = || MergerArgs::new(KafkaArgs::new("x:1"), "/tmp/x");
        let bad = [
            MergerArgs {
                tick: Duration::from_secs(20),
                ..base()
            },
            MergerArgs {
                tick: Duration::ZERO,
                ..base()
            },
            MergerArgs {
                storage: StorageArgs {
                    retention: Duration::from_secs(10),
                    ..base().storage
                },
                ..base()
            },
            MergerArgs {
                idle_interval: Duration::from_secs(3600),
                ..base()
            },
            MergerArgs {
                writer: "a/b".into(),
                ..base()
            },
            MergerArgs {
                writer: ".hidden".into(),
                ..base()
            },
            MergerArgs {
                group_id: " ".into(),
                ..base()
            },
        ];
        for args in bad {
            assert!(
                matches!(args.validate(), Err(Error::Config(_))),
                "{args:?} accepted"
            );
        }
        let cli = Cli::try_parse_from(["scope", "--window", "500ms", "--tick", "100ms"]).unwrap();
        cli.merger.validate().unwrap();
    }

    #[test]
    fn default_writer_is_a_valid_file_name_part() {
        let writer = default_writer();
        assert!(valid_writer(&writer), "{writer}");
        assert!(writer.ends_with(&format!("-{}", std::process::id())));
    }
}
