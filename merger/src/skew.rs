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
//! Replayed messages say nothing about the offset (their delay is the replay's), so after a
//! restart a skewed host's replayed past stays uncorrected until its first live messages;
//! its next full report re-announces its open connections with corrected times.

use std::collections::HashMap;

/// Length of one estimation span: the estimate forgets samples older than two of these, so
/// that a clock that was fixed (or jumped) is followed within a minute.
const SPAN_US: i64 = 30_000_000;

/// The clock offsets of every host heard from live, and the bound beyond which they count.
#[derive(Debug)]
pub(crate) struct Clocks {
    bound_us: i64,
    hosts: HashMap<String, HostClock>,
}

/// Largest `timestamp - read time` of a host in the current span and the one before.
#[derive(Clone, Copy, Debug)]
struct HostClock {
    span_start_us: i64,
    current: i64,
    previous: Option<i64>,
    /// The offset applied to its timestamps: 0 while within the bound.
    correction_us: i64,
}

impl HostClock {
    fn estimate(&self) -> i64 {
        self.previous.map_or(self.current, |p| p.max(self.current))
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
    /// `read_us` by the merger's: what changed, and the offset to subtract from the host's
    /// timestamps now (one lookup, on the merger's hot path).
    pub fn observe(&mut self, host: &str, timestamp_us: i64, read_us: i64) -> (Change, i64) {
        let sample = timestamp_us.saturating_sub(read_us);
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
            clock.current = clock.current.max(sample);
        }
        let estimate = clock.estimate();
        let was = clock.correction_us;
        if estimate.saturating_abs() > self.bound_us {
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
            assert_eq!(
                clocks.observe("h", sent, sent + (i % 30) * S / 10),
                (Change::None, 0)
            );
        }
        assert_eq!(clocks.correction("h"), 0);
        assert_eq!(clocks.correction("never-heard-of"), 0);
    }

    #[test]
    fn a_host_ahead_or_behind_is_corrected_by_its_offset_up_to_the_smallest_delay() {
        let mut clocks = Clocks::new(5 * S);
        let read = 1_000 * S;
        assert_eq!(
            clocks.observe("ahead", read + 600 * S - S, read).0,
            Change::OutOfBounds { offset_us: 599 * S }
        );
        // A message read with less delay raises the estimate, within the bound: not re-logged.
        assert_eq!(
            clocks.observe("ahead", read + 600 * S, read),
            (Change::None, 600 * S)
        );
        assert_eq!(clocks.correction("ahead"), 600 * S);

        assert_eq!(
            clocks.observe("behind", read - 600 * S, read).0,
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
        clocks.observe("h", t0 + 60 * S, t0);
        assert_eq!(clocks.correction("h"), 60 * S);
        // Fixed: its timestamps now match the merger's.
        let mut back = None;
        for i in 1..=3 {
            let read = t0 + i * SPAN_US;
            let (change, _) = clocks.observe("h", read, read);
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
