//! Which rows belong to the snapshot at `T`, and when the merger cuts one.
//!
//! Kept apart from [`crate::state`] so the window rules read as a handful of predicates, each
//! with its own test, instead of being buried in the bookkeeping. All times are UTC
//! microseconds since the Unix epoch, as in every Scope record.

use std::time::Duration;

use scope_schemas::time::micros;

/// The window `[T - length, T]` a snapshot at `T` covers, and how long an open socket may go
/// unconfirmed before the merger gives up on it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    /// Length of the window (`--window`).
    pub length_us: i64,
    /// An open socket whose `last_seen` is older than `T - expire_after_us` is dropped: its
    /// collector died or missed the close. Also how far back a merger replays its inputs when it
    /// is assigned partitions, since that is the history the state at `T` can depend on.
    pub expire_after_us: i64,
}

impl Window {
    /// A window of `length`, for collectors that publish a full report (and re-announce every
    /// open connection) every `full_interval`: open sockets expire after
    /// `2 * length + full_interval` without confirmation.
    pub fn new(length: Duration, full_interval: Duration) -> Self {
        let length_us = micros(length);
        Window {
            length_us,
            expire_after_us: length_us
                .saturating_mul(2)
                .saturating_add(micros(full_interval)),
        }
    }

    /// `T - length`: the first instant of the window ending at `t_us`.
    pub fn start(&self, t_us: i64) -> i64 {
        t_us.saturating_sub(self.length_us)
    }

    /// A host belongs to the snapshot at `t_us` when it reported at some moment of the window:
    /// its first report is not after `T` and its last is not before `T - length`.
    pub fn contains_host(&self, t_us: i64, first_seen_us: i64, last_seen_us: i64) -> bool {
        first_seen_us <= t_us && last_seen_us >= self.start(t_us)
    }

    /// A socket belongs to the snapshot at `t_us` when it was open at some moment of the
    /// window: opened not after `T`, and still open or closed not before `T - length`. This
    /// includes sockets that opened and closed inside the window.
    pub fn contains_socket(
        &self,
        t_us: i64,
        first_seen_us: i64,
        closed_at_us: Option<i64>,
    ) -> bool {
        first_seen_us <= t_us && closed_at_us.is_none_or(|closed| closed >= self.start(t_us))
    }

    /// An open socket last confirmed at `last_seen_us` is expired at `t_us`.
    pub fn is_expired(&self, t_us: i64, last_seen_us: i64) -> bool {
        last_seen_us < t_us.saturating_sub(self.expire_after_us)
    }
}

/// The first multiple of `tick_us` strictly after `now_us`: when the next snapshot is cut.
/// Aligned to the wall clock so that every merger of a group cuts the same `T`s and readers
/// can union their files.
pub fn next_tick(now_us: i64, tick_us: i64) -> i64 {
    let tick = tick_us.max(1);
    now_us
        .div_euclid(tick)
        .saturating_add(1)
        .saturating_mul(tick)
}

/// The first multiple of `tick_us` at or after `now_us`: the `T` of the final snapshot a
/// stopping merger writes, so that it lines up with what the other mergers write next.
pub fn align_up(now_us: i64, tick_us: i64) -> i64 {
    let tick = tick_us.max(1);
    if now_us.rem_euclid(tick) == 0 {
        now_us
    } else {
        next_tick(now_us, tick)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = 1_000_000;

    fn w() -> Window {
        Window::new(Duration::from_secs(15), Duration::from_secs(15))
    }

    #[test]
    fn expiry_is_two_windows_plus_the_full_interval() {
        assert_eq!(w().length_us, 15 * S);
        assert_eq!(w().expire_after_us, 45 * S);
    }

    #[test]
    fn sockets_open_at_any_moment_of_the_window_belong_to_it() {
        let t = 1_000 * S;
        let w = w();
        // Opened long ago, still open.
        assert!(w.contains_socket(t, t - 600 * S, None));
        // Opened and closed inside the window.
        assert!(w.contains_socket(t, t - 10 * S, Some(t - 5 * S)));
        // Closed exactly at the window's start.
        assert!(w.contains_socket(t, t - 20 * S, Some(t - 15 * S)));
        // Closed before the window.
        assert!(!w.contains_socket(t, t - 20 * S, Some(t - 15 * S - 1)));
        // Opened after T: the next snapshot's.
        assert!(!w.contains_socket(t, t + 1, None));
    }

    #[test]
    fn hosts_that_reported_within_the_window_belong_to_it() {
        let t = 1_000 * S;
        let w = w();
        assert!(w.contains_host(t, t - 100 * S, t - 3 * S));
        assert!(w.contains_host(t, t - 100 * S, t - 15 * S));
        assert!(!w.contains_host(t, t - 100 * S, t - 16 * S));
        assert!(!w.contains_host(t, t + S, t + S));
    }

    #[test]
    fn expiry_counts_from_the_last_confirmation() {
        let t = 1_000 * S;
        assert!(!w().is_expired(t, t - 45 * S));
        assert!(w().is_expired(t, t - 45 * S - 1));
    }

    #[test]
    fn ticks_are_aligned_to_the_wall_clock() {
        assert_eq!(next_tick(1_500_000, S), 2 * S);
        assert_eq!(next_tick(2 * S, S), 3 * S);
        assert_eq!(align_up(2 * S, S), 2 * S);
        assert_eq!(align_up(2 * S + 1, S), 3 * S);
        assert_eq!(next_tick(5, 0), 6);
    }
}
