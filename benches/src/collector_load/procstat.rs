//! What the kernel says a process costs: CPU time from `/proc/<pid>/stat` (utime + stime, in
//! clock ticks) for the process and for each of its threads, and resident memory from
//! `/proc/<pid>/status` (VmRSS now, VmHWM the peak).

use std::collections::BTreeMap;
use std::fs;
use std::time::Duration;

use anyhow::{Context as _, bail};
use scope_benches::memory::status_bytes;

/// Clock ticks per second (`sysconf(_SC_CLK_TCK)`), the unit of utime and stime.
pub fn ticks_per_second() -> anyhow::Result<u64> {
    // SAFETY: sysconf has no preconditions; it returns -1 for an unknown name.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks <= 0 {
        bail!("sysconf(_SC_CLK_TCK) returned {ticks}");
    }
    Ok(ticks as u64)
}

/// One line of `/proc/<pid>/stat` or `/proc/<pid>/task/<tid>/stat`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stat {
    /// The thread or process name (`comm`, at most 15 bytes).
    pub comm: String,
    /// utime + stime, in clock ticks.
    pub ticks: u64,
}

/// Parses a stat line. `comm` is in parentheses and may hold spaces and parentheses itself, so
/// the fields are counted from the last `)`.
pub fn parse_stat(line: &str) -> Option<Stat> {
    let open = line.find('(')?;
    let close = line.rfind(')')?;
    let comm = line.get(open + 1..close)?.to_owned();
    // After `)`: field 3 (state) is index 0, so utime (field 14) is index 11, stime index 12.
    let mut fields = line.get(close + 1..)?.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(Stat {
        comm,
        ticks: utime + stime,
    })
}

/// CPU ticks the whole process has used so far (all threads, live and exited).
pub fn process_ticks(pid: u32) -> anyhow::Result<u64> {
    let path = format!("/proc/{pid}/stat");
    let text = fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    parse_stat(&text)
        .map(|s| s.ticks)
        .with_context(|| format!("parsing {path}: {text:?}"))
}

/// CPU ticks of each live thread, by thread id. Threads that vanish mid-read are skipped.
pub fn thread_ticks(pid: u32) -> anyhow::Result<BTreeMap<u32, Stat>> {
    let dir = format!("/proc/{pid}/task");
    let mut threads = BTreeMap::new();
    for entry in fs::read_dir(&dir).with_context(|| format!("listing {dir}"))? {
        let Ok(entry) = entry else { continue };
        let Some(tid) = entry.file_name().to_str().and_then(|s| s.parse().ok()) else {
            continue;
        };
        let Ok(text) = fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        if let Some(stat) = parse_stat(&text) {
            threads.insert(tid, stat);
        }
    }
    Ok(threads)
}

/// Percent of one core used by `ticks` over `elapsed`.
pub fn percent_of_core(ticks: u64, ticks_per_second: u64, elapsed: Duration) -> f64 {
    if elapsed.is_zero() || ticks_per_second == 0 {
        return 0.0;
    }
    ticks as f64 / ticks_per_second as f64 / elapsed.as_secs_f64() * 100.0
}

/// CPU per group of threads between two readings, in ticks, largest first. Threads are grouped
/// by name with trailing digits and dashes removed (`rdk:broker1` and `rdk:broker-2` are
/// `rdk:broker`); a thread born after the first reading counts from zero. Ticks of threads
/// that exited in between are lost, which is why the process total comes from the process's
/// own stat.
pub fn ticks_by_thread_group(
    before: &BTreeMap<u32, Stat>,
    after: &BTreeMap<u32, Stat>,
) -> Vec<(String, u64, usize)> {
    let mut groups: BTreeMap<String, (u64, usize)> = BTreeMap::new();
    for (tid, now) in after {
        let start = before
            .get(tid)
            .filter(|b| b.comm == now.comm)
            .map_or(0, |b| b.ticks);
        let name = now
            .comm
            .trim_end_matches(|c: char| c.is_ascii_digit() || c == '-')
            .to_owned();
        let group = groups.entry(name).or_default();
        group.0 += now.ticks.saturating_sub(start);
        group.1 += 1;
    }
    let mut groups: Vec<(String, u64, usize)> = groups
        .into_iter()
        .map(|(name, (ticks, threads))| (name, ticks, threads))
        .collect();
    groups.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    groups
}

/// The machine's 1-minute load average and how many processes it runs, as /proc tells them:
/// what else competed with the collector, and how much a procfs walk has to read.
pub fn machine() -> (f64, usize) {
    let load = fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next()?.parse().ok())
        .unwrap_or(f64::NAN);
    let processes = fs::read_dir("/proc").map_or(0, |dir| {
        dir.filter_map(Result::ok)
            .filter(|e| {
                e.file_name()
                    .to_str()
                    .is_some_and(|n| n.parse::<u32>().is_ok())
            })
            .count()
    });
    (load, processes)
}

/// Turns on the kernel's run-time statistics of eBPF programs (`BPF_ENABLE_STATS`) for as long
/// as the returned descriptor is open. Without them `run_time_ns` stays 0.
pub fn enable_bpf_stats() -> std::io::Result<std::os::fd::OwnedFd> {
    use std::os::fd::FromRawFd as _;
    const BPF_ENABLE_STATS: libc::c_long = 32;
    // `union bpf_attr`, zeroed: `enable_stats.type` = BPF_STATS_RUN_TIME (0).
    let attr = [0u64; 16];
    // SAFETY: the attribute points to 128 readable bytes, of which the kernel reads the
    // first 4 and checks that the rest is zero.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_ENABLE_STATS,
            attr.as_ptr(),
            std::mem::size_of_val(&attr),
        )
    };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    let fd = i32::try_from(fd).map_err(std::io::Error::other)?;
    // SAFETY: the kernel just returned this descriptor, owned by nobody else.
    Ok(unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) })
}

/// What the eBPF programs a process holds open have cost so far, summed over them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BpfRunTime {
    pub programs: u32,
    pub runs: u64,
    pub nanos: u64,
}

/// Reads `prog_id`, `run_time_ns` and `run_cnt` from every program descriptor in
/// `/proc/<pid>/fdinfo`.
pub fn bpf_run_time(pid: u32) -> anyhow::Result<BpfRunTime> {
    let dir = format!("/proc/{pid}/fdinfo");
    let mut total = BpfRunTime::default();
    for entry in fs::read_dir(&dir).with_context(|| format!("listing {dir}"))? {
        let Ok(entry) = entry else { continue };
        let Ok(text) = fs::read_to_string(entry.path()) else {
            continue;
        };
        if let Some(program) = parse_bpf_fdinfo(&text) {
            total.programs += 1;
            total.runs += program.runs;
            total.nanos += program.nanos;
        }
    }
    Ok(total)
}

fn parse_bpf_fdinfo(text: &str) -> Option<BpfRunTime> {
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.trim().parse::<u64>().ok())
    };
    field("prog_id:")?;
    Some(BpfRunTime {
        programs: 1,
        runs: field("run_cnt:").unwrap_or(0),
        nanos: field("run_time_ns:").unwrap_or(0),
    })
}

/// Resident memory of a process.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Memory {
    /// VmRSS in bytes: resident now.
    pub rss: u64,
    /// VmHWM in bytes: the peak resident size over the process's life.
    pub peak: u64,
}

pub fn memory(pid: u32) -> anyhow::Result<Memory> {
    let path = format!("/proc/{pid}/status");
    let text = fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    parse_memory(&text).with_context(|| format!("{path} has no VmRSS or VmHWM"))
}

pub fn parse_memory(status: &str) -> Option<Memory> {
    Some(Memory {
        rss: status_bytes(status, "VmRSS:")?,
        peak: status_bytes(status, "VmHWM:")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_lines_with_awkward_names() {
        let line = "4242 (rdk:broker1) S 1 4242 4242 0 -1 4194560 100 0 0 0 37 5 0 0 20 0 9 0 \
                    1234 1000000 500 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0";
        assert_eq!(
            parse_stat(line),
            Some(Stat {
                comm: "rdk:broker1".into(),
                ticks: 42
            })
        );
        let odd = "7 (a) b (c) R 1 7 7 0 -1 0 0 0 0 0 3 4 0 0 20 0 1 0 1 1 1";
        assert_eq!(parse_stat(odd).unwrap().comm, "a) b (c");
        assert_eq!(parse_stat(odd).unwrap().ticks, 7);
        assert_eq!(parse_stat("12 (x) S 1 2"), None);
    }

    #[test]
    fn reads_this_process() {
        let pid = std::process::id();
        process_ticks(pid).unwrap();
        let threads = thread_ticks(pid).unwrap();
        assert!(threads.contains_key(&pid), "{threads:?}");
        let memory = memory(pid).unwrap();
        assert!(memory.rss > 0 && memory.peak >= memory.rss, "{memory:?}");
        assert!(ticks_per_second().unwrap() > 0);
        let (load, processes) = machine();
        assert!(load >= 0.0 && processes > 0, "{load} {processes}");
    }

    #[test]
    fn groups_threads_by_name_and_counts_new_ones_from_zero() {
        let stat = |comm: &str, ticks| Stat {
            comm: comm.into(),
            ticks,
        };
        let before = BTreeMap::from([
            (1, stat("scope-collecto", 10)),
            (2, stat("rdk:broker1", 5)),
            (3, stat("tokio-runtime-w", 7)),
        ]);
        let after = BTreeMap::from([
            (1, stat("scope-collecto", 11)),
            (2, stat("rdk:broker1", 9)),
            (3, stat("tokio-runtime-w", 8)),
            (4, stat("rdk:broker-2", 3)),
        ]);
        assert_eq!(
            ticks_by_thread_group(&before, &after),
            [
                ("rdk:broker".to_owned(), 7, 2),
                ("scope-collecto".to_owned(), 1, 1),
                ("tokio-runtime-w".to_owned(), 1, 1),
            ]
        );
    }

    #[test]
    fn reads_program_costs_from_fdinfo() {
        let prog = "pos:\t0\nflags:\t02000002\nmnt_id:\t15\nino:\t2078\nprog_type:\t5\n\
                    prog_jited:\t1\nprog_tag:\tc5a6e0b8e8bc6d1a\nmemlock:\t4096\n\
                    prog_id:\t42\nrun_time_ns:\t1500\nrun_cnt:\t3\n";
        assert_eq!(
            parse_bpf_fdinfo(prog),
            Some(BpfRunTime {
                programs: 1,
                runs: 3,
                nanos: 1500
            })
        );
        assert_eq!(parse_bpf_fdinfo("pos:\t0\nflags:\t02\n"), None);
        assert_eq!(
            bpf_run_time(std::process::id()).unwrap(),
            BpfRunTime::default()
        );
    }

    #[test]
    fn percent_and_memory() {
        assert!((percent_of_core(50, 100, Duration::from_secs(1)) - 50.0).abs() < 1e-9);
        assert_eq!(percent_of_core(5, 100, Duration::ZERO), 0.0);
        assert_eq!(
            parse_memory("Name:\tx\nVmHWM:\t  2048 kB\nVmRSS:\t 1024 kB\n"),
            Some(Memory {
                rss: 1 << 20,
                peak: 2 << 20
            })
        );
        assert_eq!(parse_memory("Name:\tx\n"), None);
    }
}
