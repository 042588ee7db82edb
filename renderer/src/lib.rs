//! The renderer: turns each snapshot the mergers announce into Weave Scope's topology views,
//! stored as SQL tables beside the snapshot and published as compacted Kafka topics.
//!
//! # Layout
//! - [`view`]: the SQL of every rendered table (`.sql` files): connection pairing,
//!   `graph_nodes` and `graph_edges` of each view.
//! - [`network`]: `scope_is_local` / `scope_is_loopback`, the SQL functions that tell the
//!   Internet from the snapshot's own networks (sorted address ranges, IPv4 and IPv6).
//! - [`selector`]: `scope_selects`, the SQL function that matches a Kubernetes label selector
//!   (a service's) against an object's labels.
//! - [`api`]: the HTTP API (Weave Scope's `/api`, websocket deltas, `POST /api/sql`) on
//!   `--http-listen`, over the rendered snapshots.
//! - [`index`]: what the API looks up in a rendered snapshot (each node's digest, its
//!   edges), computed by the render.
//! - [`render`]: one snapshot time in (all writers' Parquet files), rendered tables and
//!   [`scope_schemas::RenderedNode`]s out.
//! - `graph_tables`: a rendered snapshot as its `graph_nodes` and `graph_edges` files, and
//!   read back from them (time travel without rendering again).
//! - [`publish`]: diffs each view against what was published and produces the changes and
//!   tombstones to `scope.rendered.<view>`.
//! - [`sql`]: read-only SQL over the data dir for `scope sql` (latest snapshot and `history.*`).
//! - [`postgres`]: the same tables, read-only, over the Postgres wire protocol (psql, drivers).
//! - [`store`]: the data dir ([`scope_store`]) as the renderer reads and writes it.
//! - `announcements`: which announced snapshot time is complete (every input partition
//!   covered) and the newest one to render.
//! - `service`: [`run`], the consumer of `scope.snapshots` that ties the above together.
//! - [`Error`], [`Stats`] ([`stats`]), [`RendererArgs`].

mod announcements;
pub mod api;
mod error;
mod graph_tables;
pub mod index;
pub mod network;
pub mod postgres;
pub mod publish;
pub mod render;
pub mod selector;
mod service;
pub mod sql;
pub mod store;
pub mod view;

use std::{
    net::SocketAddr,
    path::PathBuf,
    sync::atomic::{AtomicU64, Ordering},
};

use scope_kafka::KafkaArgs;
use scope_runtime::{
    component::{Component, Context},
    metrics::Families,
};
use scope_store::StorageArgs;

pub use error::Error;
pub use service::run;

const DEFAULT_GROUP_ID: &str = "scope-renderer";

/// Command-line settings of the renderer.
#[derive(clap::Args, Clone, Debug)]
pub struct RendererArgs {
    #[command(flatten)]
    pub kafka: KafkaArgs,
    /// Kafka consumer group of the renderers (one of them renders at a time).
    #[arg(
        long = "group-id",
        env = "SCOPE_RENDERER_GROUP_ID",
        default_value = DEFAULT_GROUP_ID
    )]
    pub group_id: String,
    #[command(flatten)]
    pub storage: StorageArgs,
    #[command(flatten)]
    pub networks: network::NetworkArgs,
    #[command(flatten)]
    pub api: api::ApiArgs,
    #[command(flatten)]
    pub postgres: postgres::PostgresArgs,
    #[command(flatten)]
    pub query: sql::QueryArgs,
}

/// A `--*-listen` value: IP:PORT, or `off`.
fn parse_listen(value: &str) -> Result<Option<SocketAddr>, String> {
    let value = value.trim();
    if value.eq_ignore_ascii_case("off") {
        return Ok(None);
    }
    value
        .parse()
        .map(Some)
        .map_err(|_| format!("{value:?} is neither IP:PORT (such as 127.0.0.1:4040) nor `off`"))
}

impl RendererArgs {
    /// The defaults, with these brokers and data dir, and no servers (tests run many).
    pub fn new(kafka: KafkaArgs, data_dir: impl Into<PathBuf>) -> Self {
        RendererArgs {
            kafka,
            group_id: DEFAULT_GROUP_ID.into(),
            storage: StorageArgs::new(data_dir),
            networks: network::NetworkArgs::default(),
            api: api::ApiArgs::off(),
            postgres: postgres::PostgresArgs::off(),
            query: sql::QueryArgs::default(),
        }
    }
}

impl Component for RendererArgs {
    const NAME: &'static str = "renderer";
    type Error = Error;

    /// Checks the settings without touching the network or the disk.
    fn validate(&self) -> Result<(), Error> {
        if self.group_id.trim().is_empty() {
            return Err(Error::Config("--group-id must not be empty".into()));
        }
        self.storage.validate().map_err(Error::Config)?;
        self.api.validate()?;
        self.postgres.validate()?;
        self.query.validate()?;
        if self.kafka.brokers.trim().is_empty() {
            return Err(Error::Config("--brokers must not be empty".into()));
        }
        Ok(())
    }

    fn write_metrics(out: &mut Families) {
        stats().write_metrics(out);
    }

    fn is_retryable(error: &Error) -> bool {
        error.is_retryable()
    }

    fn run(self, cx: Context) -> impl Future<Output = Result<(), Error>> + Send {
        crate::run(self, cx.shutdown)
    }
}

/// The renderer's counters, process-wide (see [`stats`]).
#[derive(Debug, Default)]
pub struct Stats {
    /// Snapshots rendered (tables written).
    pub snapshots_rendered: AtomicU64,
    /// Announcements whose files were not on disk (deleted by retention, another data dir).
    pub snapshots_missing: AtomicU64,
    /// Snapshots rendered but not published because a newer one was already published.
    pub snapshots_stale: AtomicU64,
    /// Complete snapshots not rendered because a newer one was queued behind them (they stay
    /// queryable as history).
    pub snapshots_skipped: AtomicU64,
    /// Snapshot times given up on before every input partition was announced for them (a
    /// merger still replaying, or gone).
    pub snapshots_incomplete: AtomicU64,
    /// Renders that failed (I/O, a file that does not match its schema, ...).
    pub render_failures: AtomicU64,
    /// `scope.snapshots` messages that were not a Snapshot announcement.
    pub malformed_announcements: AtomicU64,
    /// Values on the view topics that could not be read back at start.
    pub malformed_published: AtomicU64,
    /// Errors receiving from Kafka.
    pub consume_errors: AtomicU64,
    /// Node upserts and tombstones acknowledged by the broker.
    pub nodes_published: AtomicU64,
    pub tombstones_published: AtomicU64,
    /// Publishes with at least one failed delivery (retried with the next snapshot).
    pub publish_failures: AtomicU64,
    /// Files deleted by retention.
    pub files_deleted: AtomicU64,
}

impl Stats {
    /// Every counter with its value, for a log line.
    pub fn metrics(&self) -> scope_runtime::metrics::Families {
        scope_runtime::metrics::Families::of(|out| self.write_metrics(out))
    }

    /// Every counter as a metric family: what a scrape of `--metrics-addr` shows.
    pub fn write_metrics(&self, out: &mut scope_runtime::metrics::Families) {
        for (name, help, counter) in self.counters() {
            out.counter(name, help, counter.load(Ordering::Relaxed));
        }
    }

    /// Name, help text and counter of every family [`Stats::write_metrics`] writes.
    fn counters(&self) -> [(&'static str, &'static str, &AtomicU64); 13] {
        [
            (
                "scope_renderer_snapshots_rendered_total",
                "Snapshots rendered.",
                &self.snapshots_rendered,
            ),
            (
                "scope_renderer_snapshots_missing_total",
                "Announced snapshots whose files were not on disk.",
                &self.snapshots_missing,
            ),
            (
                "scope_renderer_snapshots_stale_total",
                "Snapshots rendered but not published because a newer one was.",
                &self.snapshots_stale,
            ),
            (
                "scope_renderer_snapshots_skipped_total",
                "Complete snapshots not rendered because a newer one was queued.",
                &self.snapshots_skipped,
            ),
            (
                "scope_renderer_snapshots_incomplete_total",
                "Snapshot times dropped before every input partition was announced.",
                &self.snapshots_incomplete,
            ),
            (
                "scope_renderer_render_failures_total",
                "Renders that failed.",
                &self.render_failures,
            ),
            (
                "scope_renderer_skipped_messages_total",
                "scope.snapshots messages that were not a snapshot announcement, skipped.",
                &self.malformed_announcements,
            ),
            (
                "scope_renderer_skipped_published_total",
                "Values on the view topics unreadable at start, skipped.",
                &self.malformed_published,
            ),
            (
                "scope_renderer_consume_errors_total",
                "Errors receiving from Kafka.",
                &self.consume_errors,
            ),
            (
                "scope_renderer_nodes_published_total",
                "Node upserts the broker acknowledged.",
                &self.nodes_published,
            ),
            (
                "scope_renderer_tombstones_published_total",
                "Node tombstones the broker acknowledged.",
                &self.tombstones_published,
            ),
            (
                "scope_renderer_publish_failures_total",
                "Publishes with at least one failed delivery.",
                &self.publish_failures,
            ),
            (
                "scope_renderer_files_deleted_total",
                "Rendered files deleted past retention.",
                &self.files_deleted,
            ),
        ]
    }
}

static STATS: Stats = Stats {
    snapshots_rendered: AtomicU64::new(0),
    snapshots_missing: AtomicU64::new(0),
    snapshots_stale: AtomicU64::new(0),
    snapshots_skipped: AtomicU64::new(0),
    snapshots_incomplete: AtomicU64::new(0),
    render_failures: AtomicU64::new(0),
    malformed_announcements: AtomicU64::new(0),
    malformed_published: AtomicU64::new(0),
    consume_errors: AtomicU64::new(0),
    nodes_published: AtomicU64::new(0),
    tombstones_published: AtomicU64::new(0),
    publish_failures: AtomicU64::new(0),
    files_deleted: AtomicU64::new(0),
};

/// The renderer's counters in this process.
pub fn stats() -> &'static Stats {
    &STATS
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn validate_rejects_bad_settings() {
        let ok = RendererArgs::new(KafkaArgs::new("127.0.0.1:9092"), "/tmp/scope");
        ok.validate().unwrap();
        let mut bad = ok.clone();
        bad.storage.retention = Duration::ZERO;
        assert!(matches!(bad.validate(), Err(Error::Config(_))));
        let mut bad = ok.clone();
        bad.group_id = " ".into();
        assert!(bad.validate().is_err());
        let mut bad = ok;
        bad.storage.data_dir = PathBuf::new();
        assert!(bad.validate().is_err());
    }

    #[test]
    fn a_scrape_shows_every_counter_by_its_name() {
        let stats = Stats::default();
        stats.nodes_published.fetch_add(5, Ordering::Relaxed);
        let text = scope_runtime::metrics::encode(|out| stats.write_metrics(out));
        let families = [
            "scope_renderer_snapshots_rendered",
            "scope_renderer_snapshots_missing",
            "scope_renderer_snapshots_stale",
            "scope_renderer_snapshots_skipped",
            "scope_renderer_snapshots_incomplete",
            "scope_renderer_render_failures",
            "scope_renderer_skipped_messages",
            "scope_renderer_skipped_published",
            "scope_renderer_consume_errors",
            "scope_renderer_nodes_published",
            "scope_renderer_tombstones_published",
            "scope_renderer_publish_failures",
            "scope_renderer_files_deleted",
        ];
        for family in families {
            let value = if family == "scope_renderer_nodes_published" {
                5
            } else {
                0
            };
            let lines = format!("\n# TYPE {family} counter\n{family}_total {value}\n");
            assert!(text.contains(&lines), "no {family}_total in\n{text}");
        }
        assert_eq!(text.matches("# TYPE ").count(), families.len(), "{text}");
        let logged = format!("{:?}", stats.metrics());
        let line = "scope_renderer_nodes_published_total: 5";
        assert!(logged.contains(line), "{logged}");
    }

    #[test]
    fn listen_addresses_parse_or_are_off() {
        assert_eq!(parse_listen("off"), Ok(None));
        assert_eq!(
            parse_listen("127.0.0.1:4040"),
            Ok(Some("127.0.0.1:4040".parse().unwrap()))
        );
        assert!(parse_listen("localhost").is_err());
    }

    #[test]
    fn args_parse_with_defaults() {
        use clap::Parser;
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            args: RendererArgs,
        }
        let cli = Cli::parse_from(["x", "--data-dir", "/d", "--retention", "30m"]);
        assert_eq!(cli.args.group_id, "scope-renderer");
        assert_eq!(cli.args.storage.retention, Duration::from_secs(1800));
        assert_eq!(cli.args.storage.data_dir, PathBuf::from("/d"));
        assert_eq!(cli.args.api.listen, Some("127.0.0.1:4040".parse().unwrap()));
        assert_eq!(
            cli.args.postgres.listen,
            Some("127.0.0.1:5433".parse().unwrap())
        );
        assert!(cli.args.networks.local_networks.is_empty());
    }
}
