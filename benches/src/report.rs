//! The figures of a run and their markdown table: figure, value, ratio to the baseline.
//!
//! Rates carry their message count, bytes and elapsed time, so the table shows what each rate
//! was computed from; the ratio column divides a rate by the baseline's rate (phase 1, the raw
//! broker moving the same messages), the one comparison that survives a change of machine.

use std::fmt::Write as _;
use std::time::Duration;

use crate::memory::Peak;

/// Messages (and their payload bytes) handled in some time.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Rate {
    pub messages: u64,
    pub bytes: u64,
    pub elapsed: Duration,
}

impl Rate {
    pub fn messages_per_second(&self) -> f64 {
        self.messages as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    pub fn megabytes_per_second(&self) -> f64 {
        self.bytes as f64 / 1e6 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// The value of one figure.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Rate(Rate),
    Latency(Duration),
    Bytes(u64),
    Text(String),
}

/// One row of the table.
#[derive(Clone, Debug, PartialEq)]
pub struct Figure {
    pub name: String,
    pub value: Value,
    /// Said after the value: what was measured, how many.
    pub detail: String,
    /// The baseline row itself.
    pub reference: bool,
}

impl Figure {
    pub fn new(name: impl Into<String>, value: Value, detail: impl Into<String>) -> Self {
        Figure {
            name: name.into(),
            value,
            detail: detail.into(),
            reference: false,
        }
    }
}

/// Everything a run measured.
#[derive(Debug, Default)]
pub struct Report {
    figures: Vec<Figure>,
    notes: Vec<String>,
    baseline: Option<f64>,
}

impl Report {
    pub fn add(&mut self, figure: Figure) {
        self.figures.push(figure);
    }

    pub fn note(&mut self, note: impl Into<String>) {
        self.notes.push(note.into());
    }

    /// The baseline rate in messages/s that the ratio column divides by.
    pub fn set_baseline(&mut self, messages_per_second: Option<f64>) {
        self.baseline = messages_per_second;
    }

    pub fn figures(&self) -> &[Figure] {
        &self.figures
    }

    /// A row for the peak memory of a phase.
    pub fn memory(&mut self, phase: &str, peak: Option<Peak>) {
        let (value, detail) = match peak {
            Some(peak) if peak.own => (
                Value::Bytes(peak.bytes),
                "VmHWM, reset at the phase's start",
            ),
            Some(peak) => (
                Value::Bytes(peak.bytes),
                "VmHWM of the process so far (reset refused)",
            ),
            None => (
                Value::Text("unknown".into()),
                "no VmHWM in /proc/self/status",
            ),
        };
        self.add(Figure::new(format!("peak memory: {phase}"), value, detail));
    }

    /// The table and the notes, as markdown.
    pub fn to_markdown(&self) -> String {
        let mut out = String::from("| figure | value | ratio to baseline |\n|---|---|---|\n");
        for f in &self.figures {
            let value = match &f.value {
                Value::Rate(rate) => format!(
                    "{} msg/s, {:.1} MB/s",
                    thousands(rate.messages_per_second()),
                    rate.megabytes_per_second()
                ),
                Value::Latency(d) => format!("{:.0} ms", d.as_secs_f64() * 1000.0),
                Value::Bytes(b) => format!("{:.0} MiB", *b as f64 / (1024.0 * 1024.0)),
                Value::Text(t) => t.clone(),
            };
            let detail = match &f.value {
                Value::Rate(rate) => format!(
                    "{} msgs, {:.1} MB in {:.2} s{}{}",
                    thousands(rate.messages as f64),
                    rate.bytes as f64 / 1e6,
                    rate.elapsed.as_secs_f64(),
                    if f.detail.is_empty() { "" } else { "; " },
                    f.detail
                ),
                _ => f.detail.clone(),
            };
            let ratio = match (&f.value, self.baseline) {
                (Value::Rate(_), _) if f.reference => "1.00 (reference)".to_owned(),
                (Value::Rate(rate), Some(base)) => {
                    format!("{:.2}", rate.messages_per_second() / base)
                }
                (Value::Rate(_), None) => "n/a (no baseline run)".to_owned(),
                _ => String::new(),
            };
            let value = if detail.is_empty() {
                value
            } else {
                format!("{value} ({detail})")
            };
            let _ = writeln!(out, "| {} | {} | {} |", f.name, value, ratio);
        }
        for note in &self.notes {
            let _ = writeln!(out, "\n- {note}");
        }
        out
    }
}

/// `1234567.8` as `1,234,568`.
pub(crate) fn thousands(x: f64) -> String {
    let digits = format!("{:.0}", x.max(0.0));
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_shows_values_and_ratios() {
        let rate = |m, s| Rate {
            messages: m,
            bytes: m * 100,
            elapsed: Duration::from_secs(s),
        };
        let mut report = Report::default();
        report.add(Figure {
            reference: true,
            ..Figure::new("baseline", Value::Rate(rate(1_000_000, 2)), "")
        });
        report.set_baseline(Some(500_000.0));
        report.add(Figure::new(
            "merger",
            Value::Rate(rate(1_000_000, 4)),
            "end to end",
        ));
        report.add(Figure::new(
            "latency",
            Value::Latency(Duration::from_millis(850)),
            "total",
        ));
        report.memory(
            "x",
            Some(Peak {
                bytes: 3 << 20,
                own: true,
            }),
        );
        let table = report.to_markdown();
        assert!(table.contains("| baseline | 500,000 msg/s, 50.0 MB/s (1,000,000 msgs, 100.0 MB in 2.00 s) | 1.00 (reference) |"), "{table}");
        assert!(table.contains("| merger | 250,000 msg/s, 25.0 MB/s (1,000,000 msgs, 100.0 MB in 4.00 s; end to end) | 0.50 |"), "{table}");
        assert!(table.contains("| latency | 850 ms (total) |  |"), "{table}");
        assert!(table.contains("| peak memory: x | 3 MiB"), "{table}");
        assert_eq!(thousands(999.0), "999");
        assert_eq!(thousands(1000.0), "1,000");
    }
}
