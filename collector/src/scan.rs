//! One walk over `/proc` per spy, shared by the endpoint and process reporters.
//!
//! Reading every `/proc/<pid>` once and handing the result to both reporters keeps the cost
//! of a spy to one pass, and makes both see the same moment. Processes come and go while
//! the walk runs: a process that vanishes (or cannot be read) is skipped and counted in
//! [`Stats::proc_read_errors`], never an error of the spy. Only a `/proc` that cannot be
//! listed at all fails the scan, and the caller then skips that spy rather than report
//! every process and connection as gone.

use std::{
    collections::{BTreeMap, HashMap},
    fs,
    io::{self, ErrorKind},
    path::Path,
    time::Instant,
};

use crate::{
    container::cgroup::{self, ContainerRef},
    stats::Stats,
    tcp::{self, TcpSocket},
};

/// What one spy saw.
#[derive(Debug)]
pub struct Scan {
    /// Wall-clock time of the scan, microseconds since the Unix epoch.
    pub timestamp_us: i64,
    /// Monotonic time of the scan, for rates.
    pub at: Instant,
    pub processes: Vec<ProcessSample>,
    /// TCP sockets per network namespace (inode of `/proc/<pid>/ns/net`).
    pub tcp: BTreeMap<u64, Vec<TcpSocket>>,
    /// Socket inode to the process holding it (the lowest pid when several share it).
    pub socket_owner: HashMap<u64, i32>,
}

/// One process, as read from `/proc/<pid>/{stat,cmdline,fd,ns/net}`.
#[derive(Clone, Debug, PartialEq)]
pub struct ProcessSample {
    pub pid: i32,
    pub ppid: i32,
    /// `comm`: the kernel's short process name.
    pub name: String,
    /// Arguments joined by spaces; empty for kernel threads.
    pub cmdline: String,
    pub threads: i64,
    /// utime + stime, in clock ticks.
    pub cpu_ticks: u64,
    /// Start time after boot, in clock ticks: tells a reused pid from the process before.
    pub start_ticks: u64,
    pub rss_bytes: u64,
    /// Number of open file descriptors; `None` when `fd/` could not be read.
    pub open_files: Option<u64>,
    /// Network namespace inode; `None` when `ns/net` could not be read.
    pub netns: Option<u64>,
    /// Inodes of the sockets among its file descriptors.
    pub sockets: Vec<u64>,
    /// The container its cgroup names; `None` for a process in no container (or whose
    /// `cgroup` could not be read).
    pub container: Option<ContainerRef>,
}

impl Scan {
    pub fn process_name(&self, pid: i32) -> Option<&str> {
        self.processes
            .iter()
            .find(|p| p.pid == pid)
            .map(|p| p.name.as_str())
    }
}

/// Fixtures of the reporters' tests.
#[cfg(test)]
impl Scan {
    /// A scan at `at` that saw `processes` and no connections.
    pub fn example(at: Instant, processes: Vec<ProcessSample>) -> Scan {
        Scan {
            timestamp_us: 1_000,
            at,
            processes,
            tcp: BTreeMap::new(),
            socket_owner: HashMap::new(),
        }
    }
}

#[cfg(test)]
impl ProcessSample {
    /// A Python HTTP server of pid `pid`, in no container.
    pub fn example(pid: i32, start_ticks: u64, cpu_ticks: u64) -> ProcessSample {
        ProcessSample {
            pid,
            ppid: 1,
            name: "python3".into(),
            cmdline: "python3 -m http.server".into(),
            threads: 2,
            cpu_ticks,
            start_ticks,
            rss_bytes: 4096,
            open_files: Some(5),
            netns: Some(1),
            sockets: vec![],
            container: None,
        }
    }
}

/// How much of /proc a scan reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Depth {
    /// Each process's stat, cmdline, namespace and descriptor count: what the process
    /// reporter needs.
    Processes,
    /// Also where every descriptor points and each namespace's TCP tables: the connections.
    /// The expensive part, skipped while the eBPF tracker reports connections.
    Connections,
}

/// Walks `proc_root`. Fails only when `proc_root` itself cannot be listed.
pub fn scan(proc_root: &Path, depth: Depth, stats: &Stats) -> io::Result<Scan> {
    let timestamp_us = scope_schemas::time::now_us();
    let at = Instant::now();
    let page_size = page_size();
    let mut processes = Vec::new();
    for entry in fs::read_dir(proc_root)? {
        let Ok(entry) = entry else {
            stats.proc_read_error();
            continue;
        };
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<i32>().ok())
        else {
            continue;
        };
        match read_process(&entry.path(), pid, page_size, depth, stats) {
            Ok(process) => processes.push(process),
            Err(error) => {
                stats.proc_read_error();
                tracing::trace!(pid, %error, "skipped a process that could not be read");
            }
        }
    }
    processes.sort_by_key(|p| p.pid);

    let mut socket_owner = HashMap::new();
    for process in &processes {
        for &inode in &process.sockets {
            // Processes are sorted by pid, so the first owner is the lowest pid.
            socket_owner.entry(inode).or_insert(process.pid);
        }
    }
    let tcp = match depth {
        Depth::Connections => read_tcp_tables(proc_root, &processes, stats),
        Depth::Processes => BTreeMap::new(),
    };
    Ok(Scan {
        timestamp_us,
        at,
        processes,
        tcp,
        socket_owner,
    })
}

/// Reads one process. `stat` is required; the other files are optional unless their
/// absence says the process is gone.
fn read_process(
    dir: &Path,
    pid: i32,
    page_size: u64,
    depth: Depth,
    stats: &Stats,
) -> io::Result<ProcessSample> {
    let stat = fs::read_to_string(dir.join("stat"))?;
    let stat = parse_stat(&stat)
        .ok_or_else(|| io::Error::new(ErrorKind::InvalidData, "malformed stat"))?;
    // A kernel thread (a third of the processes of a small host) has no command line and no
    // container: two reads of every spy saved.
    let cmdline = match (!stat.kernel_thread).then(|| fs::read(dir.join("cmdline"))) {
        None => String::new(),
        Some(Ok(bytes)) => join_cmdline(&bytes),
        Some(Err(e)) if gone(&e) => return Err(e),
        Some(Err(_)) => {
            stats.proc_read_error();
            String::new()
        }
    };
    let (open_files, sockets) = match read_fds(&dir.join("fd"), depth) {
        Ok((count, sockets)) => (Some(count), sockets),
        Err(e) if gone(&e) => return Err(e),
        Err(_) => {
            stats.proc_read_error();
            (None, Vec::new())
        }
    };
    let netns = match fs::read_link(dir.join("ns/net")) {
        Ok(link) => link.to_str().and_then(|s| bracketed_inode(s, "net:")),
        // Zombies have no namespaces left; other failures are counted.
        Err(e) => {
            if !gone(&e) {
                stats.proc_read_error();
            }
            None
        }
    };
    let container = match (!stat.kernel_thread).then(|| fs::read_to_string(dir.join("cgroup"))) {
        None => None,
        Some(Ok(text)) => cgroup::parse_proc_cgroup(&text),
        Some(Err(e)) => {
            if !gone(&e) {
                stats.proc_read_error();
            }
            None
        }
    };
    Ok(ProcessSample {
        pid,
        ppid: stat.ppid,
        name: stat.name,
        cmdline,
        threads: stat.threads,
        cpu_ticks: stat.cpu_ticks,
        start_ticks: stat.start_ticks,
        rss_bytes: stat.rss_pages.saturating_mul(page_size),
        open_files,
        netns,
        sockets,
        container,
    })
}

/// `ENOENT`/`ESRCH`: the process exited while being read.
fn gone(e: &io::Error) -> bool {
    e.kind() == ErrorKind::NotFound || e.raw_os_error() == Some(libc::ESRCH)
}

/// `include/linux/sched.h`: the task is a kernel thread.
const PF_KTHREAD: u32 = 0x0020_0000;

/// The fields of `/proc/<pid>/stat` the reporters use.
#[derive(Debug, PartialEq)]
pub(crate) struct Stat {
    pub name: String,
    pub ppid: i32,
    pub cpu_ticks: u64,
    pub threads: i64,
    pub start_ticks: u64,
    pub rss_pages: u64,
    /// `PF_KTHREAD` in its flags.
    pub kernel_thread: bool,
}

/// Parses `pid (comm) state ppid ...`. `comm` may hold spaces and parentheses, so the
/// fields after it are counted from the last `)`.
pub(crate) fn parse_stat(text: &str) -> Option<Stat> {
    let open = text.find('(')?;
    let close = text.rfind(')')?;
    let name = text.get(open + 1..close)?.to_owned();
    let rest: Vec<&str> = text.get(close + 1..)?.split_whitespace().collect();
    // rest[0] is field 3 (state) of proc(5), so field N is rest[N - 3].
    let field = |n: usize| rest.get(n - 3).copied();
    let utime: u64 = field(14)?.parse().ok()?;
    let stime: u64 = field(15)?.parse().ok()?;
    Some(Stat {
        name,
        ppid: field(4)?.parse().ok()?,
        cpu_ticks: utime.saturating_add(stime),
        threads: field(20)?.parse().ok()?,
        start_ticks: field(22)?.parse().ok()?,
        // rss may be negative in odd kernels' accounting; treat that as 0.
        rss_pages: field(24)?.parse::<i64>().ok()?.max(0).unsigned_abs(),
        kernel_thread: field(9)?.parse::<u32>().ok()? & PF_KTHREAD != 0,
    })
}

fn join_cmdline(bytes: &[u8]) -> String {
    let args: Vec<String> = bytes
        .split(|&b| b == 0)
        .filter(|arg| !arg.is_empty())
        .map(|arg| String::from_utf8_lossy(arg).into_owned())
        .collect();
    args.join(" ")
}

/// Counts the descriptors in `fd/` and, for [`Depth::Connections`], collects the inodes of
/// those that are sockets. A descriptor closed between listing and `readlink` is just not
/// counted.
fn read_fds(fd_dir: &Path, depth: Depth) -> io::Result<(u64, Vec<u64>)> {
    // Since Linux 6.2 the size of `fd/` is the number of open descriptors: one stat instead
    // of a listing that builds a dentry per descriptor. Older kernels say 0, as does a
    // process with none: then list.
    if depth == Depth::Processes {
        let open = fs::metadata(fd_dir)?.len();
        if open > 0 {
            return Ok((open, Vec::new()));
        }
    }
    let mut count = 0;
    let mut sockets = Vec::new();
    for entry in fs::read_dir(fd_dir)? {
        let Ok(entry) = entry else { continue };
        if depth == Depth::Processes {
            count += 1;
            continue;
        }
        let Ok(target) = fs::read_link(entry.path()) else {
            continue;
        };
        count += 1;
        if let Some(inode) = target.to_str().and_then(|s| bracketed_inode(s, "socket:")) {
            sockets.push(inode);
        }
    }
    Ok((count, sockets))
}

/// Parses `socket:[12345]` or `net:[4026531840]`.
pub(crate) fn bracketed_inode(link: &str, prefix: &str) -> Option<u64> {
    link.strip_prefix(prefix)?
        .strip_prefix('[')?
        .strip_suffix(']')?
        .parse()
        .ok()
}

/// Reads `net/tcp` and `net/tcp6` once per network namespace, through any process in it.
fn read_tcp_tables(
    proc_root: &Path,
    processes: &[ProcessSample],
    stats: &Stats,
) -> BTreeMap<u64, Vec<TcpSocket>> {
    let mut members: BTreeMap<u64, Vec<i32>> = BTreeMap::new();
    for process in processes {
        if let Some(netns) = process.netns {
            members.entry(netns).or_default().push(process.pid);
        }
    }
    let mut tables = BTreeMap::new();
    for (netns, pids) in members {
        // The first member may exit before its tables are read: try the next ones.
        let found = pids.iter().take(5).find_map(|pid| {
            let dir = proc_root.join(pid.to_string()).join("net");
            match read_tcp_pair(&dir) {
                Ok(sockets) => Some(sockets),
                Err(error) => {
                    stats.proc_read_error();
                    tracing::trace!(pid, netns, %error, "could not read TCP tables; trying another process");
                    None
                }
            }
        });
        match found {
            Some((sockets, malformed)) => {
                if malformed > 0 {
                    tracing::warn!(netns, malformed, "skipped malformed lines of /proc/net/tcp");
                }
                tables.insert(netns, sockets);
            }
            None => tracing::debug!(netns, "no process of this network namespace could be read"),
        }
    }
    tables
}

fn read_tcp_pair(dir: &Path) -> io::Result<(Vec<TcpSocket>, usize)> {
    let (mut sockets, mut malformed) = tcp::parse_table(&fs::read_to_string(dir.join("tcp"))?);
    match fs::read_to_string(dir.join("tcp6")) {
        Ok(text) => {
            let (v6, bad) = tcp::parse_table(&text);
            sockets.extend(v6);
            malformed += bad;
        }
        // No IPv6 in this kernel or namespace.
        Err(e) if e.kind() == ErrorKind::NotFound && dir.join("tcp").exists() => {}
        Err(e) => return Err(e),
    }
    Ok((sockets, malformed))
}

fn page_size() -> u64 {
    // SAFETY: sysconf has no preconditions and only reads a constant.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    u64::try_from(size).ok().filter(|&s| s > 0).unwrap_or(4096)
}

/// Clock ticks per second (`USER_HZ`), the unit of CPU times in `/proc`.
pub(crate) fn clock_ticks() -> f64 {
    // SAFETY: as above.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 { ticks as f64 } else { 100.0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_with_awkward_comm() {
        let line = "4242 (my (odd) name) S 1 4242 4242 0 -1 4194560 500 0 0 0 \
                    150 50 0 0 20 0 7 0 123456 10000000 2560 18446744073709551615 0 0 0";
        let stat = parse_stat(line).unwrap();
        assert_eq!(
            stat,
            Stat {
                name: "my (odd) name".into(),
                ppid: 1,
                cpu_ticks: 200,
                threads: 7,
                start_ticks: 123456,
                rss_pages: 2560,
                kernel_thread: false,
            }
        );
        let kthreadd = "2 (kthreadd) S 0 0 0 0 -1 2129984 0 0 0 0 0 4 0 0 20 0 1 0 1 0 0 \
                        18446744073709551615 0 0 0";
        assert!(parse_stat(kthreadd).unwrap().kernel_thread);
        assert_eq!(parse_stat("4242 (trunc) S 1 2"), None);
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn joins_cmdline_and_parses_links() {
        assert_eq!(
            join_cmdline(b"python3\0-c\0print(1)\0"),
            "python3 -c print(1)"
        );
        assert_eq!(join_cmdline(b""), "");
        assert_eq!(bracketed_inode("socket:[98765]", "socket:"), Some(98765));
        assert_eq!(
            bracketed_inode("net:[4026531840]", "net:"),
            Some(4026531840)
        );
        assert_eq!(bracketed_inode("pipe:[1]", "socket:"), None);
        assert_eq!(bracketed_inode("/dev/null", "socket:"), None);
    }

    #[test]
    fn scans_this_process() {
        let stats = Stats::default();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let scan = scan(Path::new("/proc"), Depth::Connections, &stats).unwrap();
        let me = std::process::id() as i32;
        let process = scan
            .processes
            .iter()
            .find(|p| p.pid == me)
            .expect("own pid scanned");
        assert!(process.threads >= 1);
        assert!(process.rss_bytes > 0);
        assert!(process.open_files.unwrap() >= 1);
        let netns = process.netns.expect("own netns readable");
        let socket = scan.tcp[&netns]
            .iter()
            .find(|s| s.state == tcp::LISTEN && s.local.port() == port)
            .expect("own listener in the TCP table");
        assert_eq!(scan.socket_owner.get(&socket.inode), Some(&me));

        // The shallow scan counts the same process's descriptors but reads no connections.
        let shallow = super::scan(Path::new("/proc"), Depth::Processes, &stats).unwrap();
        let process = shallow.processes.iter().find(|p| p.pid == me).unwrap();
        assert!(process.open_files.unwrap() >= 1 && process.sockets.is_empty());
        assert!(shallow.tcp.is_empty() && shallow.socket_owner.is_empty());
    }

    #[test]
    fn counts_descriptors_by_size_as_by_listing() {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .stdin(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let fd_dir = Path::new("/proc").join(child.id().to_string()).join("fd");
        // Until the child has exec'd `sleep` it holds the test's descriptors, which exec then
        // closes (close-on-exec): the two counts agree once the child has settled.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let (by_size, listed) = loop {
            let (by_size, _) = read_fds(&fd_dir, Depth::Processes).unwrap();
            let (listed, _) = read_fds(&fd_dir, Depth::Connections).unwrap();
            if by_size == listed || std::time::Instant::now() > deadline {
                break (by_size, listed);
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        };
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(by_size >= 3, "{by_size}");
        assert_eq!(by_size, listed);
    }

    #[test]
    fn missing_proc_root_fails_the_scan() {
        let dir = tempfile::tempdir().unwrap();
        let stats = Stats::default();
        assert!(scan(&dir.path().join("nope"), Depth::Connections, &stats).is_err());
        // An empty directory is a valid, empty /proc.
        let scan = scan(dir.path(), Depth::Connections, &stats).unwrap();
        assert!(scan.processes.is_empty() && scan.tcp.is_empty());
    }
}
