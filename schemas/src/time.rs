//! The clock of every Scope record: microseconds since the Unix epoch, UTC, as an `i64`
//! (Avro's `timestamp-micros`).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The wall clock now; 0 before the epoch.
pub fn now_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(micros)
        .unwrap_or(0)
}

/// A duration in microseconds, saturating at `i64::MAX`.
pub fn micros(d: Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn now_is_after_2020_and_micros_saturate() {
        assert!(now_us() > 1_577_836_800_000_000);
        assert_eq!(micros(Duration::from_millis(3)), 3_000);
        assert_eq!(micros(Duration::MAX), i64::MAX);
    }
}
