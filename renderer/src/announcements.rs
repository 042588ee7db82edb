//! Which announced snapshot time to render next.
//!
//! Several mergers share the input partitions, and each announces its part of the same
//! snapshot time T. A time is complete once its announcements cover every partition of every
//! input topic (as the announcements' `inputs` say); rendering one before that would tell the
//! views that the hosts of the missing partitions are gone, and tombstone them while they are
//! alive (a merger that just joined, or replaced a crashed one, is still replaying). So a time
//! waits until it is complete, and is given up on (counted) once a newer time is complete.
//!
//! When announcements queue up faster than renders finish, only the newest complete time is
//! rendered; the older ones are skipped (counted), and stay queryable as `history.*`.
//!
//! An announcement with no `inputs` (a merger older than the field) or a partition count of
//! 0 (its broker did not say) cannot be checked: it makes its time complete on its own, as
//! every announcement did before.

use std::collections::{BTreeMap, BTreeSet};

use scope_schemas::Snapshot;

/// Times kept waiting at most: beyond this many (20 minutes of 1 s ticks), the oldest is given
/// up on, so announcements that never complete (a second merger group writing here) cannot
/// grow the renderer without bound.
const MAX_WAITING: usize = 1200;

/// Snapshot times announced and not rendered yet, oldest first.
#[derive(Debug, Default)]
pub(crate) struct Pending {
    times: BTreeMap<i64, Coverage>,
    /// The newest time handed out by [`Pending::take_newest_complete`].
    rendered_through: Option<i64>,
}

/// What the announcements of one time cover so far.
#[derive(Debug, Default)]
struct Coverage {
    /// Per input topic: its partition count and the partitions announced.
    topics: BTreeMap<String, (i32, BTreeSet<i32>)>,
    unchecked: bool,
    writers: BTreeSet<String>,
}

impl Coverage {
    fn is_complete(&self) -> bool {
        self.unchecked
            || (!self.topics.is_empty()
                && self
                    .topics
                    .values()
                    .all(|(count, partitions)| (0..*count).all(|p| partitions.contains(&p))))
    }
}

/// A time to render, and what was passed over to get to it.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Ready {
    pub snapshot_time_us: i64,
    /// The writers whose announcements make it up.
    pub writers: Vec<String>,
    /// Older complete times not rendered.
    pub skipped: u64,
    /// Older times given up on before they were complete.
    pub incomplete: u64,
}

/// What [`Pending::add`] did with an announcement.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Added {
    Pending,
    /// Its time is older than the one rendered last (the views never go back in time), or
    /// is that one.
    Stale,
}

impl Pending {
    pub fn add(&mut self, snapshot: &Snapshot) -> Added {
        let t = snapshot.snapshot_time_us;
        let unchecked = snapshot.inputs.is_empty();
        // A second unchecked announcement of the time just rendered renders it again with
        // its files too, as every announcement did before they named their partitions.
        if self
            .rendered_through
            .is_some_and(|done| t < done || (t == done && !unchecked))
        {
            return Added::Stale;
        }
        let coverage = self.times.entry(t).or_default();
        coverage.writers.insert(snapshot.writer.clone());
        if unchecked {
            coverage.unchecked = true;
        }
        for input in &snapshot.inputs {
            if input.partition_count <= 0 {
                coverage.unchecked = true;
                continue;
            }
            let (count, partitions) = coverage
                .topics
                .entry(input.topic.clone())
                .or_insert_with(|| (input.partition_count, BTreeSet::new()));
            // Partitions were added since another writer looked: the larger count holds.
            *count = (*count).max(input.partition_count);
            partitions.extend(input.partitions.iter().copied());
        }
        Added::Pending
    }

    /// The newest complete time, if any, forgetting it and every older time.
    pub fn take_newest_complete(&mut self) -> Option<Ready> {
        let t = *self
            .times
            .iter()
            .rev()
            .find(|(_, coverage)| coverage.is_complete())?
            .0;
        let newer = self.times.split_off(&(t + 1));
        let older = std::mem::replace(&mut self.times, newer);
        let mut ready = Ready {
            snapshot_time_us: t,
            writers: Vec::new(),
            skipped: 0,
            incomplete: 0,
        };
        for (at, coverage) in older {
            if at == t {
                ready.writers = coverage.writers.into_iter().collect();
            } else if coverage.is_complete() {
                ready.skipped += 1;
            } else {
                ready.incomplete += 1;
            }
        }
        self.rendered_through = Some(t);
        Some(ready)
    }

    /// Times waiting for more announcements.
    pub fn waiting(&self) -> usize {
        self.times.len()
    }

    /// Gives up on the oldest times beyond [`MAX_WAITING`]; returns how many.
    pub fn trim(&mut self) -> u64 {
        let mut dropped = 0;
        while self.times.len() > MAX_WAITING {
            self.times.pop_first();
            dropped += 1;
        }
        dropped
    }

    /// The partitions the newest waiting time still lacks, per input topic, for the log.
    pub fn missing(&self) -> Vec<(String, Vec<i32>)> {
        let Some((_, coverage)) = self.times.last_key_value() else {
            return Vec::new();
        };
        coverage
            .topics
            .iter()
            .map(|(topic, (count, partitions))| {
                let absent = (0..*count).filter(|p| !partitions.contains(p)).collect();
                (topic.clone(), absent)
            })
            .filter(|(_, absent): &(String, Vec<i32>)| !absent.is_empty())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use scope_schemas::SnapshotInput;

    use super::*;

    fn announced(t: i64, writer: &str, partitions: &[i32]) -> Snapshot {
        Snapshot {
            snapshot_time_us: t,
            window_us: 15_000_000,
            writer: writer.into(),
            data_dir: "/d".into(),
            files: vec![],
            inputs: ["scope.connections", "scope.reports"]
                .map(|topic| SnapshotInput {
                    topic: topic.into(),
                    partition_count: 4,
                    partitions: partitions.to_vec(),
                })
                .to_vec(),
        }
    }

    #[test]
    fn a_time_waits_until_its_writers_cover_every_partition() {
        let mut pending = Pending::default();
        pending.add(&announced(10, "a", &[0, 1]));
        assert_eq!(pending.take_newest_complete(), None);
        pending.add(&announced(10, "b", &[2, 3]));
        assert_eq!(
            pending.take_newest_complete(),
            Some(Ready {
                snapshot_time_us: 10,
                writers: vec!["a".into(), "b".into()],
                skipped: 0,
                incomplete: 0,
            })
        );
        assert_eq!(pending.waiting(), 0);
        assert_eq!(pending.add(&announced(9, "b", &[0, 1, 2, 3])), Added::Stale);
    }

    #[test]
    fn only_the_newest_complete_time_is_rendered_and_the_rest_are_counted() {
        let mut pending = Pending::default();
        // While b replays, a alone announces 10 and 11: never complete.
        pending.add(&announced(10, "a", &[0, 1]));
        pending.add(&announced(11, "a", &[0, 1]));
        for t in 12..15 {
            pending.add(&announced(t, "a", &[0, 1]));
            pending.add(&announced(t, "b", &[2, 3]));
        }
        // 15 is still coming in.
        pending.add(&announced(15, "a", &[0, 1]));
        let ready = pending.take_newest_complete().unwrap();
        assert_eq!(ready.snapshot_time_us, 14);
        assert_eq!((ready.skipped, ready.incomplete), (2, 2));
        assert_eq!(pending.waiting(), 1);
        assert_eq!(pending.take_newest_complete(), None);
        let missing: Vec<i32> = vec![2, 3];
        assert_eq!(
            pending.missing(),
            vec![
                ("scope.connections".to_owned(), missing.clone()),
                ("scope.reports".to_owned(), missing)
            ]
        );
    }

    #[test]
    fn times_that_never_complete_are_bounded() {
        let mut pending = Pending::default();
        for t in 0..(MAX_WAITING as i64 + 5) {
            pending.add(&announced(t, "a", &[0]));
        }
        assert_eq!(pending.trim(), 5);
        assert_eq!(pending.waiting(), MAX_WAITING);
    }

    #[test]
    fn an_announcement_that_cannot_be_checked_is_complete_on_its_own() {
        let mut pending = Pending::default();
        pending.add(&Snapshot {
            inputs: vec![],
            ..announced(10, "old", &[])
        });
        assert_eq!(pending.take_newest_complete().unwrap().snapshot_time_us, 10);
        let mut unknown = announced(11, "a", &[0]);
        unknown.inputs[1].partition_count = 0;
        pending.add(&unknown);
        assert_eq!(pending.take_newest_complete().unwrap().snapshot_time_us, 11);
    }
}
