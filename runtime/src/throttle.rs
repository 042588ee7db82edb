//! One log line per interval for a repeated kind of problem, telling how many were held back:
//! a bad message per second must not become a log line per second, nor vanish silently.

use std::time::{Duration, Instant};

/// What [`Throttle::default`] lets through: one line per this interval.
pub const LOG_EVERY: Duration = Duration::from_secs(10);

/// Lets one log line through per interval.
#[derive(Debug)]
pub struct Throttle {
    every: Duration,
    next: Option<Instant>,
    suppressed: u64,
}

impl Default for Throttle {
    fn default() -> Self {
        Throttle::new(LOG_EVERY)
    }
}

impl Throttle {
    pub const fn new(every: Duration) -> Self {
        Throttle {
            every,
            next: None,
            suppressed: 0,
        }
    }

    /// `Some(lines held back since the last one)` when a line may be logged now.
    pub fn allow(&mut self) -> Option<u64> {
        self.allow_at(Instant::now())
    }

    fn allow_at(&mut self, now: Instant) -> Option<u64> {
        if self.next.is_some_and(|next| now < next) {
            self.suppressed += 1;
            return None;
        }
        self.next = Some(now + self.every);
        Some(std::mem::take(&mut self.suppressed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_interval_and_the_rest_counted() {
        let mut throttle = Throttle::new(Duration::from_secs(10));
        let t0 = Instant::now();
        assert_eq!(throttle.allow_at(t0), Some(0));
        assert_eq!(throttle.allow_at(t0 + Duration::from_secs(1)), None);
        assert_eq!(throttle.allow_at(t0 + Duration::from_secs(9)), None);
        assert_eq!(throttle.allow_at(t0 + Duration::from_secs(10)), Some(2));
        assert_eq!(throttle.allow_at(t0 + Duration::from_secs(11)), None);
    }
}
