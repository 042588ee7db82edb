//! `scope-rest`: what the whole pipeline costs on this host at rest (no workload beyond what
//! the host runs anyway), component by component, beside the collector alone.
//!
//! Two parts, one after the other, each warmed up (`--warm-up`) once the first snapshot is
//! rendered, then measured (`--measure`) from /proc: CPU as % of one core (utime + stime of
//! the whole process), resident memory at the end, and how much the data dir grew.
//! 1. The components as separate processes of the `scope` binary (`--scope`): `scope
//!    collector`, `scope merger`, `scope renderer`, on an embedded broker in this process
//!    (which does nothing else meanwhile, so its CPU is the broker's).
//! 2. `scope up`: all of it in one process, as a user starts it.
//!
//! The markdown table goes to stdout, progress to stderr; each child's log (`RUST_LOG=warn`)
//! is kept in its temporary directory and its tail shown if it fails. Exit code 1 when a part
//! could not be measured, 2 for invalid flags.

#[path = "../collector_load/procstat.rs"]
#[expect(
    dead_code,
    reason = "shared with scope-collector-load, which also reads threads and eBPF programs"
)]
mod procstat;

use std::path::{Path, PathBuf};
use std::process::{ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use clap::Parser;
use scope_benches::main_loop;
use scope_benches::memory::status_bytes;
use scope_kafka::EmbeddedBroker;
use tokio::process::{Child, Command};

/// As in the `scope` binary, so the broker part of this process allocates as it does there.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// How long the pipeline may take to render its first snapshot.
const READY_TIMEOUT: Duration = Duration::from_secs(120);

#[derive(Parser)]
#[command(name = "scope-rest", about)]
struct Args {
    /// The `scope` binary to measure; by default the one beside this executable.
    #[arg(long)]
    scope: Option<PathBuf>,
    /// How long each part runs before it is measured, once its first snapshot is rendered.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    warm_up: Duration,
    /// How long each part is measured.
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    measure: Duration,
    /// A variable for every child's environment, as NAME=VALUE (repeatable): e.g.
    /// `SCOPE_MERGER_IDLE_INTERVAL=1s` measures the merger writing every tick, as before it
    /// skipped unchanged ones.
    #[arg(long = "env", value_name = "NAME=VALUE", value_parser = parse_env)]
    envs: Vec<(String, String)>,
}

fn parse_env(text: &str) -> Result<(String, String), String> {
    text.split_once('=')
        .map(|(name, value)| (name.to_owned(), value.to_owned()))
        .ok_or_else(|| format!("{text:?} is not NAME=VALUE"))
}

fn main() -> ExitCode {
    let args = Args::parse();
    if args.measure.is_zero() {
        eprintln!("scope-rest: --measure must be above zero");
        return ExitCode::from(2);
    }
    main_loop::run("scope-rest", main_loop::build_profile(), async {
        let scope = match &args.scope {
            Some(path) => path.clone(),
            None => std::env::current_exe()?.with_file_name("scope"),
        };
        let markdown = run(&args, &scope).await?;
        Ok(main_loop::Outcome {
            markdown,
            failure: None,
        })
    })
}

/// One process of the `scope` binary, its stderr in `log`; killed if dropped unstopped.
struct Component {
    name: &'static str,
    child: Child,
    pid: u32,
    log: PathBuf,
}

impl Component {
    fn spawn(
        scope: &Path,
        name: &'static str,
        args: &[&str],
        envs: &[(String, String)],
        dir: &Path,
    ) -> anyhow::Result<Self> {
        let log = dir.join(format!("{name}.log"));
        let stderr = std::fs::File::create(&log).with_context(|| format!("creating {log:?}"))?;
        let mut command = Command::new(scope);
        // Only the flags and `--env` given here: none of this process's settings leak in.
        for (var, _) in std::env::vars_os() {
            if var.to_string_lossy().starts_with("SCOPE_") {
                command.env_remove(var);
            }
        }
        let child = command
            .args(args)
            .envs(envs.iter().map(|(name, value)| (name, value)))
            .env("RUST_LOG", "warn")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {} {name}", scope.display()))?;
        let pid = child.id().context("exited before its pid was read")?;
        Ok(Component {
            name,
            child,
            pid,
            log,
        })
    }

    /// Fails with the tail of its log if it has exited.
    fn check(&mut self) -> anyhow::Result<()> {
        if let Some(status) = self.child.try_wait()? {
            let log = std::fs::read_to_string(&self.log).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(8).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            bail!("{} exited ({status}):\n{}", self.name, tail.join("\n"));
        }
        Ok(())
    }

    /// SIGTERM, then waits for it to finish its final snapshot and commits.
    async fn stop(mut self) -> anyhow::Result<()> {
        // SAFETY: kill has no memory preconditions; the pid is our own unreaped child.
        unsafe { libc::kill(self.pid as libc::pid_t, libc::SIGTERM) };
        match tokio::time::timeout(Duration::from_secs(30), self.child.wait()).await {
            Ok(status) => {
                status?;
                Ok(())
            }
            Err(_) => bail!("{} did not stop within 30 s of SIGTERM", self.name),
        }
    }
}

/// CPU ticks so far and resident memory now of a process.
#[derive(Clone, Copy)]
struct Reading {
    ticks: u64,
    rss: u64,
}

fn read(pid: u32) -> anyhow::Result<Reading> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    Ok(Reading {
        ticks: procstat::process_ticks(pid)?,
        rss: status_bytes(&status, "VmRSS:").context("no VmRSS")?,
    })
}

/// Bytes and files under `dir`, recursively.
fn disk_usage(dir: &Path) -> (u64, u64) {
    let mut total = (0, 0);
    let Ok(entries) = std::fs::read_dir(dir) else {
        return total;
    };
    for entry in entries.flatten() {
        match entry.metadata() {
            Ok(meta) if meta.is_dir() => {
                let (bytes, files) = disk_usage(&entry.path());
                total = (total.0 + bytes, total.1 + files);
            }
            Ok(meta) => total = (total.0 + meta.len(), total.1 + 1),
            Err(_) => {}
        }
    }
    total
}

/// What one part measured: each process's CPU (% of a core) and RSS, and the data dir's growth.
struct Part {
    rows: Vec<(String, f64, u64)>,
    bytes_per_hour: f64,
    files_per_hour: f64,
}

/// Waits for the first rendered snapshot, warms up, then measures `pids` (by name) and `data_dir`.
async fn measure(
    args: &Args,
    components: &mut [Component],
    extra: &[(&str, u32)],
    data_dir: &Path,
) -> anyhow::Result<Part> {
    let deadline = Instant::now() + READY_TIMEOUT;
    let rendered = data_dir.join(scope_schemas::snapshot::table::GRAPH_NODES);
    while disk_usage(&rendered).1 == 0 {
        for component in components.iter_mut() {
            component.check()?;
        }
        if Instant::now() > deadline {
            bail!("no snapshot rendered within {READY_TIMEOUT:?}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    eprintln!("scope-rest: rendering; warming up for {:?}", args.warm_up);
    tokio::time::sleep(args.warm_up).await;

    let pids: Vec<(String, u32)> = components
        .iter()
        .map(|c| (c.name.to_owned(), c.pid))
        .chain(extra.iter().map(|(name, pid)| ((*name).to_owned(), *pid)))
        .collect();
    let before: Vec<Reading> = pids
        .iter()
        .map(|(_, pid)| read(*pid))
        .collect::<Result<_, _>>()?;
    let disk_before = disk_usage(data_dir);
    let started = Instant::now();
    eprintln!("scope-rest: measuring for {:?}", args.measure);
    tokio::time::sleep(args.measure).await;
    let after: Vec<Reading> = pids
        .iter()
        .map(|(_, pid)| read(*pid))
        .collect::<Result<_, _>>()?;
    let elapsed = started.elapsed();
    let disk_after = disk_usage(data_dir);
    for component in components.iter_mut() {
        component.check()?;
    }

    let hz = procstat::ticks_per_second()?;
    let rows = pids
        .iter()
        .zip(before.iter().zip(&after))
        .map(|((name, _), (b, a))| {
            let cpu = procstat::percent_of_core(a.ticks.saturating_sub(b.ticks), hz, elapsed);
            (name.clone(), cpu, a.rss)
        })
        .collect();
    let per_hour = 3600.0 / elapsed.as_secs_f64();
    Ok(Part {
        rows,
        bytes_per_hour: disk_after.0.saturating_sub(disk_before.0) as f64 * per_hour,
        files_per_hour: disk_after.1.saturating_sub(disk_before.1) as f64 * per_hour,
    })
}

async fn run(args: &Args, scope: &Path) -> anyhow::Result<String> {
    let scope = scope.to_string_lossy().into_owned();
    let scope = Path::new(&scope);
    let scratch = tempfile::tempdir()?;
    let tmp = scratch.path();
    let envs = &args.envs;
    let (load, processes) = procstat::machine();

    // Part 1: each component in its own process, the broker in this one.
    eprintln!("scope-rest: part 1, the components apart");
    let broker = EmbeddedBroker::start("127.0.0.1:0".parse()?).await?;
    let brokers = broker.bootstrap();
    let data_dir = tmp.join("apart");
    let dir = data_dir.to_string_lossy().into_owned();
    let kafka = ["--brokers", brokers.as_str()];
    let stored = [&kafka[..], &["--data-dir", dir.as_str()]].concat();
    let renderer = [
        &stored[..],
        &["--http-listen", "127.0.0.1:0", "--postgres-listen", "off"],
    ]
    .concat();
    let mut apart = vec![
        Component::spawn(
            scope,
            "collector",
            &[&["collector"], &kafka[..]].concat(),
            envs,
            tmp,
        )?,
        Component::spawn(
            scope,
            "merger",
            &[&["merger"], &stored[..]].concat(),
            envs,
            tmp,
        )?,
        Component::spawn(
            scope,
            "renderer",
            &[&["renderer"], &renderer[..]].concat(),
            envs,
            tmp,
        )?,
    ];
    let part1 = measure(
        args,
        &mut apart,
        &[("broker", std::process::id())],
        &data_dir,
    )
    .await;
    for component in apart {
        component.stop().await?;
    }
    drop(broker);
    let part1 = part1?;

    // Part 2: `scope up`.
    eprintln!("scope-rest: part 2, scope up");
    let data_dir = tmp.join("up");
    let dir = data_dir.to_string_lossy().into_owned();
    let up_args = [
        "up",
        "--listen",
        "127.0.0.1:0",
        "--data-dir",
        dir.as_str(),
        "--http-listen",
        "127.0.0.1:0",
        "--postgres-listen",
        "off",
    ];
    let mut up = vec![Component::spawn(scope, "scope up", &up_args, envs, tmp)?];
    let part2 = measure(args, &mut up, &[], &data_dir).await;
    for component in up {
        component.stop().await?;
    }
    let part2 = part2?;

    Ok(markdown(args, scope, load, processes, &part1, &part2))
}

fn markdown(
    args: &Args,
    scope: &Path,
    load: f64,
    processes: usize,
    apart: &Part,
    up: &Part,
) -> String {
    let mib = |bytes: u64| bytes as f64 / (1 << 20) as f64;
    let mut out = format!(
        "`{}` at rest{}: {:?} measured after {:?} of warm-up; the host ran {processes} \
         processes, load {load:.2} at the start.\n\n\
         | process | CPU (% of one core) | RSS (MiB) |\n|---|---:|---:|\n",
        scope.display(),
        args.envs
            .iter()
            .map(|(name, value)| format!(", {name}={value}"))
            .collect::<String>(),
        args.measure,
        args.warm_up
    );
    for (name, cpu, rss) in &apart.rows {
        out += &format!("| {name} | {cpu:.2} | {:.1} |\n", mib(*rss));
    }
    let total: f64 = apart.rows.iter().map(|r| r.1).sum();
    let rss: u64 = apart.rows.iter().map(|r| r.2).sum();
    let collector = apart
        .rows
        .iter()
        .find(|r| r.0 == "collector")
        .map_or(f64::NAN, |r| r.1);
    out += &format!(
        "| **pipeline (the above)** | **{total:.2}** ({:.1}× the collector) | {:.1} |\n",
        total / collector,
        mib(rss)
    );
    for (name, cpu, rss) in &up.rows {
        out += &format!(
            "| **{name}** (one process) | **{cpu:.2}** | {:.1} |\n",
            mib(*rss)
        );
    }
    for (name, part) in [("components apart", apart), ("scope up", up)] {
        out += &format!(
            "\nData dir growth at rest ({name}): {:.1} MiB and {:.0} files per hour.",
            part.bytes_per_hour / (1 << 20) as f64,
            part.files_per_hour
        );
    }
    out.push('\n');
    out
}
