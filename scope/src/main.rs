//! `scope`: the all-in-one command line. Each subcommand flattens one crate's arguments;
//! `scope up` runs the whole pipeline in one process, on an embedded broker unless told otherwise.

use std::{net::SocketAddr, path::PathBuf, process::ExitCode, time::Instant};

use clap::{Args, FromArgMatches, Parser, Subcommand};
use scope_collector::CollectorArgs;
use scope_kafka::{EmbeddedBroker, KafkaArgs};
use scope_merger::MergerArgs;
use scope_renderer::{
    RendererArgs,
    api::ApiArgs,
    network::NetworkArgs,
    postgres::PostgresArgs,
    sql::{self, QueryArgs},
};
use scope_runtime::{
    component::{Component, Context},
    service::{self, Cli as ComponentCli},
};
use scope_schemas::{View, topics};
use tokio_util::sync::CancellationToken;

#[derive(Parser)]
#[command(
    name = "scope",
    version,
    about = "Weave Scope's live topology map, rebuilt as a Kafka stream pipeline"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run collector, merger and renderer in this process, on an embedded Kafka broker
    /// unless --brokers names a cluster.
    Up(UpArgs),
    /// Run the collector of this node (same as `scope-collector`).
    Collector(ComponentCli<CollectorArgs>),
    /// Run a merger (same as `scope-merger`).
    Merger(ComponentCli<MergerArgs>),
    /// Run the renderer (same as `scope-renderer`).
    Renderer(ComponentCli<RendererArgs>),
    /// Answer SQL over the latest snapshot (plain table names) and the retained history
    /// (`history.<table>`).
    Sql(SqlArgs),
}

#[derive(Args)]
struct UpArgs {
    /// Kafka bootstrap servers. Without it, an embedded broker is started on --listen.
    #[arg(long, env = "SCOPE_BROKERS")]
    brokers: Option<String>,
    /// Where the embedded broker listens.
    #[arg(long, env = "SCOPE_EMBEDDED_LISTEN", default_value = "127.0.0.1:9092")]
    listen: SocketAddr,
    /// A librdkafka property for every client, as key=value (repeatable).
    #[arg(short = 'X', long = "kafka-property", value_name = "KEY=VALUE")]
    properties: Vec<String>,
    /// Where snapshots are kept (Parquet).
    #[arg(long, env = "SCOPE_DATA_DIR", default_value_os_t = scope_store::default_data_dir())]
    data_dir: PathBuf,
    /// Serve all three components' Prometheus metrics at http://ADDR/metrics. None by default.
    #[arg(long, env = "SCOPE_METRICS_ADDR", value_name = "ADDR")]
    metrics_addr: Option<SocketAddr>,
    #[command(flatten)]
    networks: NetworkArgs,
    #[command(flatten)]
    api: ApiArgs,
    #[command(flatten)]
    postgres: PostgresArgs,
    #[command(flatten)]
    query: QueryArgs,
}

#[derive(Args)]
struct SqlArgs {
    /// The query, e.g. "select * from graph_edges where view = 'processes'".
    query: String,
    #[arg(long, value_enum, default_value_t = sql::Format::Table)]
    format: sql::Format,
    /// Where snapshots are kept (Parquet).
    #[arg(long, env = "SCOPE_DATA_DIR", default_value_os_t = scope_store::default_data_dir())]
    data_dir: PathBuf,
    #[command(flatten)]
    networks: NetworkArgs,
    #[command(flatten)]
    limits: QueryArgs,
}

/// See the workspace's `mimalloc` entry: freeing a retired snapshot must not stall the threads
/// that serve the next one.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let command = Cli::parse().command;
    // The collector on one thread, as `scope-collector`: it drops the capabilities it no
    // longer needs once its tracker is loaded, and capabilities are per thread.
    let mut runtime = match command {
        Command::Collector(_) => tokio::runtime::Builder::new_current_thread(),
        _ => tokio::runtime::Builder::new_multi_thread(),
    };
    match runtime.enable_all().build() {
        Ok(runtime) => runtime.block_on(run(command)),
        Err(error) => {
            eprintln!("scope: starting the async runtime: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command) -> ExitCode {
    match command {
        Command::Up(up) => {
            service::init_tracing();
            match run_up(up, service::shutdown_on_signal()).await {
                Ok(()) => ExitCode::SUCCESS,
                Err(error) => {
                    eprintln!("scope up: {error:#}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Collector(mut c) => {
            c.args.drop_capabilities = true;
            c.main("scope collector").await
        }
        Command::Merger(c) => c.main("scope merger").await,
        Command::Renderer(c) => c.main("scope renderer").await,
        Command::Sql(args) => {
            if let Err(error) = args.limits.validate() {
                eprintln!("scope sql: {error}");
                return ExitCode::from(2);
            }
            let memory = args.limits.memory();
            let networks = &args.networks.local_networks;
            match sql::query_within(&memory, &args.data_dir, networks, &args.query).await {
                Ok(batches) => match sql::format(&batches, args.format) {
                    Ok(text) => {
                        print!("{text}");
                        ExitCode::SUCCESS
                    }
                    Err(error) => {
                        eprintln!("scope sql: {error}");
                        ExitCode::FAILURE
                    }
                },
                Err(error) => {
                    eprintln!("scope sql: {error}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

/// Parses a component's arguments as if given on its own command line, so `scope up` honours
/// the same flags defaults and `SCOPE_*` environment variables as the standalone binaries.
fn component_args<A: Args + FromArgMatches>(
    name: &'static str,
    argv: &[String],
) -> anyhow::Result<A> {
    let command = A::augment_args(clap::Command::new(name));
    let matches = command
        .try_get_matches_from(std::iter::once(name.to_owned()).chain(argv.iter().cloned()))?;
    Ok(A::from_arg_matches(&matches)?)
}

async fn run_up(up: UpArgs, shutdown: CancellationToken) -> anyhow::Result<()> {
    let (embedded, brokers) = match &up.brokers {
        Some(brokers) => (None, brokers.clone()),
        None => {
            let broker = EmbeddedBroker::start(up.listen).await?;
            let bootstrap = broker.bootstrap();
            (Some(broker), bootstrap)
        }
    };
    let mut kafka_argv = vec!["--brokers".to_owned(), brokers.clone()];
    for property in &up.properties {
        kafka_argv.extend(["-X".to_owned(), property.clone()]);
    }
    let mut stored_argv = kafka_argv.clone();
    stored_argv.extend(["--data-dir".to_owned(), up.data_dir.display().to_string()]);

    let collector: CollectorArgs = component_args("collector", &kafka_argv)?;
    let merger: MergerArgs = component_args("merger", &stored_argv)?;
    let mut renderer: RendererArgs = component_args("renderer", &stored_argv)?;
    renderer.networks = up.networks.clone();
    renderer.api = up.api.clone();
    renderer.postgres = up.postgres.clone();
    renderer.query = up.query.clone();
    collector.validate()?;
    merger.validate()?;
    renderer.validate()?;
    // Bound before anything starts, so a port in use stops `scope up` at once.
    let metrics = match up.metrics_addr {
        Some(addr) => Some(
            scope_runtime::metrics::listen(addr, write_all_metrics, shutdown.child_token()).await?,
        ),
        None => None,
    };

    let kafka = KafkaArgs {
        brokers: brokers.clone(),
        properties: collector.kafka.properties.clone(),
    };
    // A signal during start-up stops it here rather than after the topics are made.
    let specs = topics::all(1);
    tokio::select! {
        biased;
        () = shutdown.cancelled() => return Ok(()),
        made = scope_kafka::ensure_topics(&kafka, &specs) => made?,
    }

    let rendered: Vec<String> = View::ALL.iter().map(|v| v.topic()).collect();
    println!("scope up");
    match &embedded {
        Some(_) => println!("  kafka      {brokers} (embedded broker, memory storage)"),
        None => println!("  kafka      {brokers}"),
    }
    println!(
        "  topics     {}, {}, {}",
        topics::CONNECTIONS,
        topics::REPORTS,
        topics::SNAPSHOTS
    );
    println!("             {}", rendered.join(", "));
    println!("  snapshots  {}", up.data_dir.display());
    if let Some(addr) = metrics {
        println!("  metrics    http://{addr}/metrics");
    }
    if let Some(addr) = up.api.listen {
        println!("  api        http://{addr}/api");
    }
    if let Some(addr) = up.postgres.listen {
        println!(
            "  postgres   psql -h {} -p {} -U {}",
            addr.ip(),
            addr.port(),
            up.postgres.user
        );
    }
    println!("  query      scope sql \"select * from graph_edges where view = 'processes'\"");

    // Each runs to its own end, however another one ends: a component dropped mid-flight
    // would lose its final flush, snapshot or commit.
    let stopped = tokio::join!(
        supervise(collector, &shutdown),
        supervise(merger, &shutdown),
        supervise(renderer, &shutdown),
    );
    drop(embedded);
    first_failure([stopped.0, stopped.1, stopped.2])
}

/// How one component ended, and when: the earliest failure is the cause, later ones are
/// usually its consequences.
struct Stopped {
    at: Instant,
    result: anyhow::Result<()>,
}

/// Runs one component; when it ends, failing or not, every other one is told to stop. A
/// component that returns before shutdown was asked for is a failure too: a pipeline missing
/// a stage would only pretend to work.
async fn supervise<C: Component>(component: C, shutdown: &CancellationToken) -> Stopped {
    let name = C::NAME;
    let cx = Context {
        shutdown: shutdown.clone(),
    };
    let result = match component.run(cx).await {
        Err(error) => Err(anyhow::Error::new(error).context(format!("{name} failed"))),
        Ok(()) if !shutdown.is_cancelled() => Err(anyhow::anyhow!("{name} stopped on its own")),
        Ok(()) => Ok(()),
    };
    if let Err(error) = &result
        && !shutdown.is_cancelled()
    {
        tracing::error!(
            error = format!("{error:#}"),
            "{name} stopped; stopping the others"
        );
    }
    shutdown.cancel();
    Stopped {
        at: Instant::now(),
        result,
    }
}

/// The earliest failure among components that have all ended, or success.
fn first_failure(stopped: impl IntoIterator<Item = Stopped>) -> anyhow::Result<()> {
    stopped
        .into_iter()
        .filter(|s| s.result.is_err())
        .min_by_key(|s| s.at)
        .map_or(Ok(()), |s| s.result)
}

/// Every component's counters: `scope up` runs all three, so one endpoint shows them all,
/// with the embedded broker's (zero when `--brokers` names a cluster).
fn write_all_metrics(out: &mut scope_runtime::metrics::Families) {
    EmbeddedBroker::write_metrics(out);
    scope_collector::stats().write_metrics(out);
    scope_merger::stats().write_metrics(out);
    scope_renderer::stats().write_metrics(out);
}
