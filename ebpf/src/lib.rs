//! Scope's eBPF connection tracker: every TCP connect, accept and close on the host, with the
//! process behind it, as the kernel sees it, including connections too short for any poll.
//!
//! The kernel side is C (`src/bpf/connections.bpf.c`), compiled by this crate's build script
//! with clang and loaded here with aya. It attaches to tracepoints only
//! (`sock:inet_sock_set_state`, `syscalls:sys_exit_accept{,4}`), because kprobes and
//! fentry are not available on every kernel Scope runs on; the C file says how each event
//! finds its process. Records arrive through one ring buffer shared by all CPUs, so they are
//! in order. A record that does not fit is counted by the kernel side ([`Tracker::lost_events`])
//! and the caller must resync from `/proc`: a lost close or connect is never silently missing.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let mut tracker = scope_ebpf::Tracker::load(scope_ebpf::DEFAULT_RING_BUFFER_BYTES)?;
//! let mut events = Vec::new();
//! loop {
//!     tracker.next_batch(&mut events).await?;
//!     for event in events.drain(..) {
//!         println!("{:?} {} -> {} by {:?}", event.kind, event.local, event.remote, event.pid);
//!     }
//! }
//! # }
//! ```

mod event;
/// Replays the fuzz corpus of the record decoder (`fuzz/`, target `ebpf_records`).
#[cfg(test)]
#[path = "../../fuzz/harness/ebpf_records.rs"]
mod fuzz_corpus;
#[doc(hidden)]
pub mod test_support;

use std::io;

use aya::{
    Ebpf, EbpfLoader,
    maps::{MapData, MapError, PerCpuArray, RingBuf},
    programs::{ProgramError, TracePoint},
};
use tokio::io::unix::AsyncFd;

pub use event::{Event, EventKind};

/// Ring buffer size when the caller has no reason to choose: at 80 bytes a record, room for
/// about 3,000 records, a second of 1,000 short connections (4 records each) in flight.
pub const DEFAULT_RING_BUFFER_BYTES: u32 = 256 * 1024;

/// The compiled kernel side; empty when clang was missing at build time.
static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/connections.bpf.o"));

/// The programs in the object and the tracepoints they attach to.
const PROGRAMS: [(&str, &str, &str); 3] = [
    ("inet_sock_set_state", "sock", "inet_sock_set_state"),
    ("sys_exit_accept4", "syscalls", "sys_exit_accept4"),
    ("sys_exit_accept", "syscalls", "sys_exit_accept"),
];

/// Why the tracker could not start. Each says what to change; the collector logs it once and
/// uses procfs instead.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The binary was built without clang, so the kernel-side object is empty. Rebuild with
    /// clang installed, or run with `--tracker procfs`.
    #[error("this build has no eBPF programs: clang was missing when it was compiled")]
    NotBuilt,
    /// [`Tracker::load`] was given a ring buffer size that is not a power of two of at least
    /// one page (4 KiB on most hosts), as the kernel requires; fix `--ebpf-ring-buffer-bytes`.
    #[error("the ring buffer size {0} is not a power-of-two multiple of the page size")]
    RingBufferSize(u32),
    /// aya could not parse the object or create its maps in the kernel: the process lacks
    /// root (or `CAP_BPF` and `CAP_PERFMON`), or the kernel exposes no BTF to relocate against.
    /// Grant the capabilities, use a kernel with BTF, or run with `--tracker procfs`.
    #[error(
        "loading the eBPF object failed (needs root or CAP_BPF + CAP_PERFMON, and kernel BTF at \
         /sys/kernel/btf/vmlinux): {0}"
    )]
    Load(#[from] aya::EbpfError),
    /// A program could not be loaded (the verifier refused it: report it with the kernel
    /// version) or attached: tracefs is not mounted, or the kernel lacks that tracepoint.
    #[error(
        "attaching {program} to tracepoint {tracepoint} failed (is tracefs mounted? \
         `mount -t tracefs nodev /sys/kernel/tracing`): {source}"
    )]
    Attach {
        program: &'static str,
        tracepoint: String,
        #[source]
        source: ProgramError,
    },
    /// The compiled object lacks a map this crate expects: the C side and the Rust side were
    /// changed apart, a build bug to report.
    #[error("the eBPF object has no map `{0}`")]
    MissingMap(&'static str),
    /// A map exists but is not of the type this crate reads (ring buffer, per-CPU array): the
    /// C and Rust sides disagree, a build bug to report.
    #[error("opening map `{name}`: {source}")]
    Map {
        name: &'static str,
        #[source]
        source: MapError,
    },
    /// Registering the ring buffer's descriptor with tokio's reactor failed: epoll hit a
    /// resource limit, or the runtime is shutting down. Retry once resources are freed.
    #[error("watching the ring buffer: {0}")]
    Poll(#[source] io::Error),
}

/// How long an event may wait in the ring buffer before it is read. The kernel side wakes
/// the reader only when the ring is a quarter full, so a quiet host's events are collected by
/// this timer: batches instead of a wake-up per event.
pub const DRAIN_INTERVAL: std::time::Duration = std::time::Duration::from_millis(100);

/// The loaded, attached tracker. Dropping it detaches every program.
pub struct Tracker {
    ring: AsyncFd<RingBuf<MapData>>,
    drain: tokio::time::Interval,
    lost: PerCpuArray<MapData, u64>,
    malformed: u64,
    // Last: the programs stay attached as long as the maps are read.
    _ebpf: Ebpf,
}

impl Tracker {
    /// Loads and attaches the programs with a ring buffer of `ring_buffer_bytes` (a power of
    /// two, at least a page). Must be called inside a tokio runtime.
    pub fn load(ring_buffer_bytes: u32) -> Result<Tracker, LoadError> {
        if OBJECT.is_empty() {
            return Err(LoadError::NotBuilt);
        }
        let page = page_size();
        if !ring_buffer_bytes.is_power_of_two() || ring_buffer_bytes < page {
            return Err(LoadError::RingBufferSize(ring_buffer_bytes));
        }
        let mut ebpf = EbpfLoader::new()
            .map_max_entries("events", ring_buffer_bytes)
            .load(OBJECT)?;
        for (program, category, name) in PROGRAMS {
            let mut attach = || -> Result<(), ProgramError> {
                let tracepoint: &mut TracePoint = ebpf
                    .program_mut(program)
                    .ok_or(ProgramError::NotLoaded)?
                    .try_into()?;
                tracepoint.load()?;
                tracepoint.attach(category, name)?;
                Ok(())
            };
            attach().map_err(|source| LoadError::Attach {
                program,
                tracepoint: format!("{category}:{name}"),
                source,
            })?;
        }
        let ring =
            RingBuf::try_from(take_map(&mut ebpf, "events")?).map_err(|source| LoadError::Map {
                name: "events",
                source,
            })?;
        let lost = PerCpuArray::try_from(take_map(&mut ebpf, "lost")?).map_err(|source| {
            LoadError::Map {
                name: "lost",
                source,
            }
        })?;
        // SAFETY: the ring buffer owns its descriptor and keeps it open, unchanged, until the
        // AsyncFd that now owns the ring buffer drops it.
        let ring = unsafe { AsyncFd::register_with_interest(ring, tokio::io::Interest::READABLE) }
            .map_err(|e| LoadError::Poll(e.into()))?;
        let mut drain = tokio::time::interval(DRAIN_INTERVAL);
        drain.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        Ok(Tracker {
            ring,
            drain,
            lost,
            malformed: 0,
            _ebpf: ebpf,
        })
    }

    /// Waits until the ring buffer has records (it is a quarter full, or [`DRAIN_INTERVAL`]
    /// passed), then appends all of them to `out`.
    pub async fn next_batch(&mut self, out: &mut Vec<Event>) -> io::Result<()> {
        let before = out.len();
        while out.len() == before {
            tokio::select! {
                ready = self.ring.readable_mut() => {
                    let mut ready = ready?;
                    drain(ready.get_inner_mut(), out, &mut self.malformed);
                    ready.clear_ready();
                }
                _ = self.drain.tick() => self.drain_pending(out),
            }
        }
        Ok(())
    }

    /// Appends whatever the ring buffer holds now, without waiting: what a stopping reader
    /// still owes its consumers.
    pub fn drain_pending(&mut self, out: &mut Vec<Event>) {
        drain(self.ring.get_mut(), out, &mut self.malformed);
    }

    /// Records the kernel side could not put in the ring buffer since load, over all CPUs.
    pub fn lost_events(&self) -> Result<u64, MapError> {
        let per_cpu = self.lost.get(&0, 0)?;
        Ok(per_cpu.iter().sum())
    }

    /// Records that arrived but did not decode; nonzero only if this crate and the C side
    /// disagree on the record layout.
    pub fn malformed_records(&self) -> u64 {
        self.malformed
    }

    /// The wall-clock time, in microseconds since the Unix epoch, of an event's kernel
    /// monotonic timestamp.
    pub fn wall_clock_us(monotonic_ns: u64) -> i64 {
        let now_real = clock_ns(libc::CLOCK_REALTIME);
        let now_mono = clock_ns(libc::CLOCK_MONOTONIC);
        let age_ns = now_mono.saturating_sub(i128::from(monotonic_ns)).max(0);
        i64::try_from((now_real - age_ns) / 1_000).unwrap_or(0)
    }
}

fn drain(ring: &mut RingBuf<MapData>, out: &mut Vec<Event>, malformed: &mut u64) {
    while let Some(record) = ring.next() {
        match Event::decode(&record) {
            Some(event) => out.push(event),
            None => *malformed += 1,
        }
    }
}

fn take_map(ebpf: &mut Ebpf, name: &'static str) -> Result<aya::maps::Map, LoadError> {
    ebpf.take_map(name).ok_or(LoadError::MissingMap(name))
}

fn clock_ns(clock: libc::clockid_t) -> i128 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: ts is a valid, writable timespec; both clocks always exist on Linux.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    i128::from(ts.tv_sec) * 1_000_000_000 + i128::from(ts.tv_nsec)
}

fn page_size() -> u32 {
    // SAFETY: sysconf has no preconditions.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    u32::try_from(size).unwrap_or(4096)
}
