//! Hosts whose clock disagrees with the merger's, and the correction of their timestamps.
//!
//! Window membership is decided on the collectors' own timestamps ([`crate::window`]), so a
//! host whose clock runs ahead would report connections that belong to no window until its
//! "now" comes, and one running behind would fall out of the window while it is alive: both
//! vanish from the map. Kafka bounds this with the broker's clock (`LogAppendTime`, or
//! KIP-937's `log.message.timestamp.{before,after}.max.ms`); the embedded broker stores only
//! the producer's time, which is the same skewed clock. So the merger measures each host
//! against its own clock: a message read live left its host at most the consumer lag before
//! it was read, so `timestamp - read time` is the host's offset minus that delay, and the
//! largest such difference over the last [`SPAN_US`]-long spans is the offset up to the
//! smallest delay seen. Beyond `--max-clock-skew`, every timestamp of the host (live or
//! replayed) is moved onto the merger's clock by that offset; the host is logged when it goes
//! out of bounds and when it is back, and counted while it is.
//!
//! A delay only makes a host look behind, never ahead, so a host ahead is corrected on that
//! evidence alone. Looking behind is also what a merger lagging its input looks like (every
//! message read seconds late), so a host counts as behind only when an upper bound of its
//! offset says so too: a message read after the consumer had drained its input at `idle`
//! waited at most `read - idle` (plus a fetch's wait) once it reached the broker, so
//! `timestamp - idle + FETCH_SLACK_US` bounds the offset from above. Behind a backlog that
//! bound is far from the estimate and nothing is corrected; read live, the two meet.
//!
//! Replayed messages say nothing about the offset (their delay is the replay's), so after a
//! restart a skewed host's replayed past stays uncorrected until its first live messages;
//! its next full report re-announces its open connections with corrected times.

use std::collections::HashMap;

/// Length of one estimation span: the estimate forgets samples older than two of these, so
/// that a clock that was fixed (or jumped) is followed within a minute.
const SPAN_US: i64 = 30_000_000;
/// How long a message can sit between the broker and the consumer's queue while the
/// consumer is idle: librdkafka's `fetch.wait.max.ms` (500 ms) and a round trip, rounded up.
const FETCH_SLACK_US: i64 = 1_000_000;

/// The clock offsets of every host heard from live, and the bound beyond which they count.
#[derive(Debug)]
pub(crate) struct Clocks {
    bound_us: i64,
    hosts: HashMap<String, HostClock>,
}

/// Bounds of a host's offset in the current span and the one before: the largest
/// `timestamp - read time` (a lower bound) and the smallest upper bound.
#[derive(Clone, Copy, Debug)]
struct HostClock {
    span_start_us: i64,
    current: Bounds,
    previous: Option<Bounds>,
    /// The offset applied to its timestamps: 0 while within the bound.
    correction_us: i64,
}

#[derive(Clone, Copy, Debug)]
struct Bounds {
    lower: i64,
    /// `i64::MAX` while no message was read soon after the consumer was idle.
    upper: i64,
}

impl Bounds {
    fn widest(self, other: Bounds) -> Bounds {
        Bounds {
            lower: self.lower.max(other.lower),
            upper: self.upper.min(other.upper),
        }
    }
}

impl HostClock {
    fn estimate(&self) -> Bounds {
        self.previous
            .map_or(self.current, |p| p.widest(self.current))
    }
}

/// What observing a message changed about its host.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Change {
    None,
    /// The host's offset went beyond the bound (or moved while beyond it).
    OutOfBounds {
        offset_us: i64,
    },
    /// The host's offset came back within the bound.
    Back,
}

impl Clocks {
    pub fn new(bound_us: i64) -> Self {
        Clocks {
            bound_us: bound_us.max(1),
            hosts: HashMap::new(),
        }
    }

    /// The offset to subtract from `host`'s timestamps (0 for a host within the bound or
    /// never heard from live).
    #[inline]
    pub fn correction(&self, host: &str) -> i64 {
        self.hosts.get(host).map_or(0, |h| h.correction_us)
    }

    /// Records a message of `host` stamped `timestamp_us` by its clock and read live at
    /// `read_us` by the merger's, whose consumer last found its input drained at `idle_us`
    /// (None before it ever has): what changed, and the offset to subtract from the host's
    /// timestamps now (one lookup, on the merger's hot path).
    pub fn observe(
        &mut self,
        host: &str,
        timestamp_us: i64,
        read_us: i64,
        idle_us: Option<i64>,
    ) -> (Change, i64) {
        let sample = Bounds {
            lower: timestamp_us.saturating_sub(read_us),
            upper: idle_us.map_or(i64::MAX, |idle| {
                timestamp_us
                    .saturating_sub(idle.min(read_us))
                    .saturating_add(FETCH_SLACK_US)
            }),
        };
        let clock = match self.hosts.get_mut(host) {
            Some(clock) => clock,
            None => self.hosts.entry(host.to_owned()).or_insert(HostClock {
                span_start_us: read_us,
                current: sample,
                previous: None,
                correction_us: 0,
            }),
        };
        if read_us.saturating_sub(clock.span_start_us) >= SPAN_US {
            clock.previous = Some(clock.current);
            clock.current = sample;
            clock.span_start_us = read_us;
        } else {
            clock.current = clock.current.widest(sample);
        }
        let Bounds { lower, upper } = clock.estimate();
        // Ahead needs only the lower bound; behind needs the upper one too, or it may be lag.
        let estimate = if lower > self.bound_us || upper.max(lower) < -self.bound_us {
            lower
        } else {
            0
        };
        let was = clock.correction_us;
        if estimate != 0 {
            clock.correction_us = estimate;
            // Re-logged only when the offset moved by more than the bound.
            if was == 0 || was.abs_diff(estimate) > self.bound_us.unsigned_abs() {
                let change = Change::OutOfBounds {
                    offset_us: estimate,
                };
                return (change, estimate);
            }
        } else if was != 0 {
            clock.correction_us = 0;
            return (Change::Back, 0);
        }
        (Change::None, clock.correction_us)
    }

    /// Forgets hosts not heard from live since `before_us`, and returns how many of the
    /// others are out of bounds.
    pub fn prune(&mut self, before_us: i64) -> usize {
        self.hosts
            .retain(|_, clock| clock.span_start_us.saturating_add(2 * SPAN_US) >= before_us);
        self.hosts
            .values()
            .filter(|clock| clock.correction_us != 0)
            .count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = 1_000_000;

    #[test]
    fn a_host_in_step_is_left_alone_whatever_the_lag() {
        let mut clocks = Clocks::new(5 * S);
        for i in 0..100 {
            let sent = 1_000 * S + i * S / 10;
            // Read up to 3 s late: a lag, not a skew.
            let read = sent + (i % 30) * S / 10;
            assert_eq!(
                clocks.observe("h", sent, read, Some(read)),
                (Change::None, 0)
            );
        }
        assert_eq!(clocks.correction("h"), 0);
        assert_eq!(clocks.correction("never-heard-of"), 0);
    }

    /// The merger behind its input by 20 s reads every message of a correct host 20 s late:
    /// it looks 20 s behind, but the consumer was idle less than 20 s before, so that may be
    /// lag, and nothing is corrected. A host 10 min behind is: its messages are stamped 10 min
    /// before the consumer was last idle, which no lag explains. Before the consumer was ever
    /// idle nothing bounds the delay, and only hosts ahead are corrected.
    #[test]
    fn lag_is_not_taken_for_a_clock_behind() {
        let mut clocks = Clocks::new(5 * S);
        let idle = 1_000 * S;
        for i in 0..100 {
            let sent = idle + i * S / 10;
            let read = sent + 20 * S;
            clocks.observe("in-step", sent, read, Some(idle));
            clocks.observe("behind", sent - 600 * S, read, Some(idle));
            clocks.observe("in-step-never-idle", sent, read, None);
            clocks.observe("behind-never-idle", sent - 600 * S, read, None);
        }
        assert_eq!(clocks.correction("in-step"), 0);
        assert_eq!(clocks.correction("in-step-never-idle"), 0);
        assert_eq!(clocks.correction("behind-never-idle"), 0);
        // Corrected up to the smallest delay seen.
        assert_eq!(clocks.correction("behind"), -620 * S);

        // Caught up: read 50 ms after being idle.
        let read = idle + 40 * S;
        let change = clocks.observe(
            "behind-never-idle",
            read - 600 * S,
            read,
            Some(read - S / 20),
        );
        assert!(
            matches!(change, (Change::OutOfBounds { offset_us }, _) if offset_us == -600 * S),
            "{change:?}"
        );
        assert_eq!(clocks.prune(read), 2);
    }

    #[test]
    fn a_host_ahead_or_behind_is_corrected_by_its_offset_up_to_the_smallest_delay() {
        let mut clocks = Clocks::new(5 * S);
        let read = 1_000 * S;
        assert_eq!(
            clocks.observe("ahead", read + 600 * S - S, read, None).0,
            Change::OutOfBounds { offset_us: 599 * S }
        );
        // A message read with less delay raises the estimate, within the bound: not re-logged.
        assert_eq!(
            clocks.observe("ahead", read + 600 * S, read, None),
            (Change::None, 600 * S)
        );
        assert_eq!(clocks.correction("ahead"), 600 * S);

        assert_eq!(
            clocks
                .observe("behind", read - 600 * S, read, Some(read - S / 10))
                .0,
            Change::OutOfBounds {
                offset_us: -600 * S
            }
        );
        assert_eq!(clocks.correction("behind"), -600 * S);
        assert_eq!(clocks.prune(read), 2);
    }

    #[test]
    fn a_fixed_clock_is_followed_within_two_spans_and_silent_hosts_are_forgotten() {
        let mut clocks = Clocks::new(5 * S);
        let t0 = 1_000 * S;
        clocks.observe("h", t0 + 60 * S, t0, Some(t0));
        assert_eq!(clocks.correction("h"), 60 * S);
        // Fixed: its timestamps now match the merger's.
        let mut back = None;
        for i in 1..=3 {
            let read = t0 + i * SPAN_US;
            let (change, _) = clocks.observe("h", read, read, Some(read));
            if change == Change::Back {
                back = Some(i);
            }
        }
        assert_eq!(back, Some(2));
        assert_eq!(clocks.correction("h"), 0);
        assert_eq!(clocks.prune(t0 + 3 * SPAN_US), 0);
        assert_eq!(clocks.prune(t0 + 6 * SPAN_US), 0);
        assert!(clocks.hosts.is_empty());
    }
}
