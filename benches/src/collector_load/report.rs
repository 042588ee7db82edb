//! The figures of one run and their markdown: one row per cell (containers × mode × rate);
//! then, per container count and rate, eBPF's CPU over procfs's (the baseline measured in the
//! same run); then, with more than one container count, each count's CPU and RSS over the
//! first count's (the baseline, e.g. 0); then notes.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use crate::args::Mode;

/// What one cell measured.
#[derive(Clone, Debug)]
pub struct Measured {
    /// Collector CPU over the measured span, percent of one core.
    pub cpu_percent: f64,
    pub elapsed: Duration,
    /// VmRSS at the end of the span, bytes.
    pub rss: u64,
    /// VmHWM at the end of the span (peak over the collector's life), bytes.
    pub peak: u64,
    /// Short connections begun during the span that completed.
    pub made: u64,
    pub failed: u64,
    pub first_error: Option<String>,
    /// Of `made`, how many the collector announced with a `connect` event.
    pub seen: u64,
    /// CPU by thread group over the span: name, percent of one core, threads.
    pub threads: Vec<(String, f64, usize)>,
    /// The collector's connection events over its whole life, by (kind, source).
    pub events: BTreeMap<(&'static str, &'static str), u64>,
    /// Of the bench's containers, how many the collector reported; `None` when the run has
    /// no Docker.
    pub containers: Option<crate::containers::Reported>,
    /// The busiest other sources of `connect` events: process, remote port, count.
    pub other_connects: Vec<(String, i32, u64)>,
    /// How the collector exited after SIGTERM.
    pub exit: String,
    /// Kernel-side cost of the collector's eBPF programs over the span (run-time statistics on),
    /// or why it is unknown. Charged to the processes that made the connections, not to the
    /// collector.
    pub kernel: Option<Result<(crate::procstat::BpfRunTime, f64), String>>,
    /// The machine's 1-minute load average and process count at the end of the span.
    pub machine: (f64, usize),
}

impl Measured {
    /// `seen / made` in percent; `None` without connections.
    pub fn seen_percent(&self) -> Option<f64> {
        (self.made > 0).then(|| self.seen as f64 / self.made as f64 * 100.0)
    }
}

/// One mode at one rate with some containers running, measured or failed.
#[derive(Clone, Debug)]
pub struct Cell {
    pub mode: Mode,
    pub containers: u32,
    pub rate: u32,
    pub outcome: Result<Measured, String>,
}

/// The whole run.
#[derive(Clone, Debug, Default)]
pub struct Report {
    pub cells: Vec<Cell>,
    pub notes: Vec<String>,
}

const MIB: f64 = 1024.0 * 1024.0;

impl Report {
    pub fn failed(&self) -> usize {
        self.cells.iter().filter(|c| c.outcome.is_err()).count()
    }

    fn measured(&self, mode: Mode, containers: u32, rate: u32) -> Option<&Measured> {
        self.cells
            .iter()
            .find(|c| c.mode == mode && c.containers == containers && c.rate == rate)
            .and_then(|c| c.outcome.as_ref().ok())
    }

    pub fn to_markdown(&self) -> String {
        let mut out = String::new();
        out.push_str(
            "| mode | containers | new connections/s | collector CPU (% of one core) \
             | RSS MiB (peak) | connections made | seen |\n|---|---|---|---|---|---|---|\n",
        );
        for cell in &self.cells {
            let (mode, containers, rate) = (cell.mode.as_str(), cell.containers, cell.rate);
            match &cell.outcome {
                Ok(m) => {
                    let seen = m.seen_percent().map_or("n/a".to_owned(), |p| {
                        format!("{p:.1} % ({} of {})", m.seen, m.made)
                    });
                    let _ = writeln!(
                        out,
                        "| {mode} | {containers} | {rate} | {:.2} % | {:.1} ({:.1}) | {} | {seen} |",
                        m.cpu_percent,
                        m.rss as f64 / MIB,
                        m.peak as f64 / MIB,
                        m.made,
                    );
                }
                Err(_) => {
                    let _ = writeln!(
                        out,
                        "| {mode} | {containers} | {rate} | failed (see notes) | | | |"
                    );
                }
            }
        }

        let rates = distinct(&self.cells, |c| c.rate);
        let counts = distinct(&self.cells, |c| c.containers);
        let modes = distinct(&self.cells, |c| c.mode);

        let mut rows = String::new();
        for &containers in &counts {
            for &rate in &rates {
                let cpu = |mode| self.measured(mode, containers, rate).map(|m| m.cpu_percent);
                let Some((procfs, ebpf)) = cpu(Mode::Procfs).zip(cpu(Mode::Ebpf)) else {
                    continue;
                };
                let _ = writeln!(
                    rows,
                    "| {containers} | {rate} | {procfs:.2} % | {ebpf:.2} % | {} |",
                    ratio(ebpf, procfs)
                );
            }
        }
        if !rows.is_empty() {
            out.push_str(
                "\n| containers | new connections/s | procfs CPU | eBPF CPU | eBPF / procfs |\n\
                 |---|---|---|---|---|\n",
            );
            out.push_str(&rows);
        }

        let (base, others) = counts.split_first().map_or((0, &[][..]), |(b, o)| (*b, o));
        for &count in others {
            let _ = write!(
                out,
                "\n| mode | new connections/s | CPU, {base} containers | CPU, {count} \
                 | {count} / {base} | RSS MiB (peak), {base} | RSS MiB (peak), {count} \
                 | {count} / {base} |\n|---|---|---|---|---|---|---|---|\n"
            );
            for &mode in &modes {
                for &rate in &rates {
                    let (Some(a), Some(b)) = (
                        self.measured(mode, base, rate),
                        self.measured(mode, count, rate),
                    ) else {
                        continue;
                    };
                    let _ = writeln!(
                        out,
                        "| {} | {rate} | {:.2} % | {:.2} % | {} | {:.1} ({:.1}) | {:.1} ({:.1}) | {} |",
                        mode.as_str(),
                        a.cpu_percent,
                        b.cpu_percent,
                        ratio(b.cpu_percent, a.cpu_percent),
                        a.rss as f64 / MIB,
                        a.peak as f64 / MIB,
                        b.rss as f64 / MIB,
                        b.peak as f64 / MIB,
                        ratio(b.rss as f64, a.rss as f64),
                    );
                }
            }
        }
        out.push('\n');
        for note in &self.notes {
            let _ = writeln!(out, "- {note}");
        }
        for cell in &self.cells {
            let _ = writeln!(out, "- {}", cell_note(cell));
        }
        out
    }
}

/// Each value of `of` over `cells` once, in the order first seen.
fn distinct<T: PartialEq>(cells: &[Cell], of: impl Fn(&Cell) -> T) -> Vec<T> {
    let mut values = Vec::new();
    for cell in cells {
        let value = of(cell);
        if !values.contains(&value) {
            values.push(value);
        }
    }
    values
}

/// `part / whole` to two decimals, or why there is none.
fn ratio(part: f64, whole: f64) -> String {
    if whole > 0.0 {
        format!("{:.2}", part / whole)
    } else {
        "n/a (baseline not measurable)".to_owned()
    }
}

fn cell_note(cell: &Cell) -> String {
    let name = format!(
        "{} with {} containers at {}/s",
        cell.mode.as_str(),
        cell.containers,
        cell.rate
    );
    let m = match &cell.outcome {
        Ok(m) => m,
        Err(reason) => return format!("{name}: FAILED: {reason}"),
    };
    let mut note = format!(
        "{name}: measured {:.1} s, {:.0} connections/s made, machine load average {:.2} with \
         {} processes at the end",
        m.elapsed.as_secs_f64(),
        m.made as f64 / m.elapsed.as_secs_f64().max(1e-9),
        m.machine.0,
        m.machine.1,
    );
    if m.failed > 0 {
        let _ = write!(
            note,
            ", {} failed (first: {})",
            m.failed,
            m.first_error.as_deref().unwrap_or("?")
        );
    }
    let threads: Vec<String> = m
        .threads
        .iter()
        .filter(|(_, percent, _)| *percent > 0.0)
        .map(|(name, percent, n)| format!("{name} x{n} {percent:.2} %"))
        .collect();
    let _ = write!(
        note,
        "; CPU by thread: {}",
        if threads.is_empty() {
            "none measurable".to_owned()
        } else {
            threads.join(", ")
        }
    );
    let events: Vec<String> = m
        .events
        .iter()
        .map(|((kind, source), n)| format!("{kind}/{source} {n}"))
        .collect();
    match &m.kernel {
        None => {}
        Some(Ok((bpf, percent))) => {
            let _ = write!(
                note,
                "; eBPF programs in the kernel: {} programs, {} runs, {:.0} ns/run, {percent:.2} % \
                 of one core (charged to the connecting processes, not in the collector's CPU)",
                bpf.programs,
                bpf.runs,
                bpf.nanos as f64 / bpf.runs.max(1) as f64,
            );
        }
        Some(Err(reason)) => {
            let _ = write!(
                note,
                "; eBPF programs in the kernel: not measured ({reason})"
            );
        }
    }
    if let Some(c) = &m.containers {
        let _ = write!(
            note,
            "; of its {} containers running, the collector reported {} named (Engine API) and \
             {} with cgroup memory, and {} other container nodes",
            c.running, c.named, c.measured, c.others
        );
    }
    let others: Vec<String> = m
        .other_connects
        .iter()
        .map(|(process, port, n)| format!("{process} -> :{port} {n}"))
        .collect();
    let _ = write!(
        note,
        "; connection events over its life: {}; other connects: {}; exit after SIGTERM: {}",
        if events.is_empty() {
            "none".to_owned()
        } else {
            events.join(", ")
        },
        if others.is_empty() {
            "none".to_owned()
        } else {
            others.join(", ")
        },
        m.exit
    );
    note
}

#[cfg(test)]
mod tests {
    use super::*;

    fn measured(cpu_percent: f64, made: u64, seen: u64) -> Measured {
        Measured {
            cpu_percent,
            elapsed: Duration::from_secs(20),
            rss: 20 << 20,
            peak: 24 << 20,
            made,
            failed: 0,
            first_error: None,
            seen,
            threads: vec![("rdk:broker".into(), 0.5, 2), ("idle".into(), 0.0, 1)],
            events: BTreeMap::from([(("connect", "ebpf"), 3)]),
            containers: None,
            other_connects: vec![("cargo".into(), 443, 7)],
            exit: "exit status: 0".into(),
            machine: (0.5, 70),
            kernel: Some(Ok((
                crate::procstat::BpfRunTime {
                    programs: 3,
                    runs: 4000,
                    nanos: 2_000_000,
                },
                0.01,
            ))),
        }
    }

    #[test]
    fn table_ratios_and_failures() {
        let report = Report {
            cells: vec![
                Cell {
                    mode: Mode::Procfs,
                    containers: 0,
                    rate: 1000,
                    outcome: Ok(measured(2.0, 20_000, 10)),
                },
                Cell {
                    mode: Mode::Ebpf,
                    containers: 0,
                    rate: 1000,
                    outcome: Ok(measured(3.0, 20_000, 20_000)),
                },
                Cell {
                    mode: Mode::Ebpf,
                    containers: 0,
                    rate: 0,
                    outcome: Err("the collector exited (exit status: 1)".into()),
                },
            ],
            notes: vec!["2 cores".into()],
        };
        let md = report.to_markdown();
        assert!(
            md.contains(
                "| procfs | 0 | 1000 | 2.00 % | 20.0 (24.0) | 20000 | 0.1 % (10 of 20000) |"
            ),
            "{md}"
        );
        assert!(md.contains("| ebpf | 0 | 1000 | 3.00 % |"), "{md}");
        assert!(md.contains("| 0 | 1000 | 2.00 % | 3.00 % | 1.50 |"), "{md}");
        assert!(md.contains("| ebpf | 0 | 0 | failed (see notes) |"), "{md}");
        assert!(!md.contains("CPU, 0 containers"), "{md}");
        assert!(
            md.contains("ebpf with 0 containers at 0/s: FAILED: the collector exited"),
            "{md}"
        );
        assert!(md.contains("rdk:broker x2 0.50 %"), "{md}");
        assert!(!md.contains("idle"), "{md}");
        assert!(md.contains("other connects: cargo -> :443 7"), "{md}");
        assert!(
            md.contains("eBPF programs in the kernel: 3 programs, 4000 runs, 500 ns/run, 0.01 %"),
            "{md}"
        );
        assert_eq!(report.failed(), 1);
        assert_eq!(measured(1.0, 0, 0).seen_percent(), None);
    }

    #[test]
    fn containers_against_the_first_count() {
        let cell = |containers, cpu, rss_mib: u64, reported| Cell {
            mode: Mode::Ebpf,
            containers,
            rate: 1000,
            outcome: Ok(Measured {
                rss: rss_mib << 20,
                containers: Some(reported),
                ..measured(cpu, 20_000, 20_000)
            }),
        };
        let reported = |running, named| crate::containers::Reported {
            running,
            named,
            measured: named,
            others: 1,
        };
        let report = Report {
            cells: vec![
                cell(0, 1.6, 14, reported(0, 0)),
                cell(50, 2.4, 21, reported(50, 49)),
            ],
            notes: vec![],
        };
        let md = report.to_markdown();
        assert!(
            md.contains(
                "| ebpf | 1000 | 1.60 % | 2.40 % | 1.50 | 14.0 (24.0) | 21.0 (24.0) | 1.50 |"
            ),
            "{md}"
        );
        assert!(
            md.contains("| CPU, 0 containers | CPU, 50 | 50 / 0 |"),
            "{md}"
        );
        assert!(!md.contains("eBPF / procfs"), "{md}");
        assert!(
            md.contains(
                "of its 50 containers running, the collector reported 49 named (Engine API) and \
                 49 with cgroup memory, and 1 other container nodes"
            ),
            "{md}"
        );
    }
}
