//! SyncGroup requests whose assignment list is empty are passed to tansu as a null list.
//!
//! Why: a group member killed without leaving (`kill -9`) stays the group's leader in tansu
//! 0.6 until its session lapses. A member started in its place meanwhile is told that the
//! dead one leads, so it sends SyncGroup as a follower does, with no assignments; tansu
//! answers that with RebalanceInProgress while the leader is known. But when the dead
//! leader's session lapses between the follower's JoinGroup and its SyncGroup, tansu drops
//! the leader, takes that follower's SyncGroup for the leader's and forms the group with
//! the follower's assignment list: none. Every member is then told it owns no partition,
//! their heartbeats succeed, and no rebalance ever follows: the consumers read nothing
//! until they are restarted.
//!
//! tansu answers a SyncGroup with a null assignment list, in the same state, with
//! RebalanceInProgress, so the member joins again and, the dead leader gone, becomes the
//! leader and assigns the partitions, as Apache Kafka would have after the session lapsed.
//! A leader's list is never empty (it assigns every member, itself included), so only a
//! follower's list is rewritten, and a follower's list is ignored by tansu in every other
//! state. Both encodings have the same size (int32 0 → -1; compact length 1 → 0), so the
//! frame's length stands and the rewrite is one in-place change.

use super::Reader;

pub(super) const API_KEY: i16 = 14;
/// SyncGroup versions whose layout is known here (tansu 0.6 serves 0 to 5).
const VERSIONS: std::ops::RangeInclusive<i16> = 0..=5;
/// The first version with a flexible (compact, tagged-field) body and request header v2.
const FIRST_FLEXIBLE: i16 = 4;

/// What [`null_empty_assignments`] did to a request.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Outcome {
    /// The assignment list was empty and is now null.
    Nulled,
    /// The list holds assignments (a leader's), or the version is not one known here.
    Unchanged,
}

/// Rewrites `request` (a SyncGroup request frame without its length prefix: header, then
/// body) in place when its assignment list is empty. An error says what could not be read;
/// the request is then left as it came.
pub(super) fn null_empty_assignments(request: &mut [u8]) -> Result<Outcome, &'static str> {
    let mut r = Reader::new(request);
    if r.i16("api_key")? != API_KEY {
        return Err("not a SyncGroup request");
    }
    let version = r.i16("api_version")?;
    if !VERSIONS.contains(&version) {
        return Ok(Outcome::Unchanged);
    }
    let flexible = version >= FIRST_FLEXIBLE;
    r.skip(4, "correlation_id")?;
    // The header's client id is a nullable int16-length string in every header version.
    r.string(false, "client_id")?;
    if flexible {
        r.tagged_fields()?;
    }
    let string = |r: &mut Reader<'_>, what| r.string(flexible, what).map(drop);
    string(&mut r, "group_id")?;
    r.skip(4, "generation_id")?;
    string(&mut r, "member_id")?;
    if version >= 3 {
        string(&mut r, "group_instance_id")?;
    }
    if version >= 5 {
        string(&mut r, "protocol_type")?;
        string(&mut r, "protocol_name")?;
    }
    let list = r.at;
    let empty = if flexible {
        let length = r.uvarint("assignments length")?;
        if length != 1 {
            return Ok(Outcome::Unchanged);
        }
        r.tagged_fields()?;
        true
    } else {
        r.i32("assignments length")? == 0
    };
    if !empty {
        return Ok(Outcome::Unchanged);
    }
    if r.at != request.len() {
        return Err("bytes after the assignments");
    }
    if flexible {
        request[list] = 0;
    } else {
        request[list..list + 4].copy_from_slice(&(-1i32).to_be_bytes());
    }
    Ok(Outcome::Nulled)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A SyncGroup request of `version` from member "m" of group "g", generation 7, client
    /// "c", instance "i" (v3+), protocol "consumer"/"range" (v5+), then `assignments`.
    fn request(version: i16, assignments: &[u8]) -> Vec<u8> {
        let flexible = version >= FIRST_FLEXIBLE;
        let string = |s: &str| crate::api_versions::encode_string(flexible, s);
        let mut r = API_KEY.to_be_bytes().to_vec();
        r.extend_from_slice(&version.to_be_bytes());
        r.extend_from_slice(&42i32.to_be_bytes());
        r.extend_from_slice(&[0, 1, b'c']);
        if flexible {
            r.push(0);
        }
        r.extend(string("g"));
        r.extend_from_slice(&7i32.to_be_bytes());
        r.extend(string("m"));
        if version >= 3 {
            r.extend(string("i"));
        }
        if version >= 5 {
            r.extend(string("consumer"));
            r.extend(string("range"));
        }
        r.extend_from_slice(assignments);
        r
    }

    /// An empty list in each version's encoding, then the null list it becomes.
    fn empty_and_null(version: i16) -> (&'static [u8], &'static [u8]) {
        if version >= FIRST_FLEXIBLE {
            // Compact array length 0 + 1, then the body's tagged fields (none).
            (&[1, 0], &[0, 0])
        } else {
            (&[0, 0, 0, 0], &[0xff, 0xff, 0xff, 0xff])
        }
    }

    #[test]
    fn a_followers_empty_list_becomes_null_in_every_version() {
        for version in VERSIONS {
            let (empty, null) = empty_and_null(version);
            let mut frame = request(version, empty);
            assert_eq!(
                null_empty_assignments(&mut frame),
                Ok(Outcome::Nulled),
                "v{version}"
            );
            assert_eq!(frame, request(version, null), "v{version}");
        }
    }

    #[test]
    fn a_leaders_assignments_and_unknown_versions_are_left_alone() {
        // One assignment: member "m", an assignment of two bytes.
        let leader_v0 = [0, 0, 0, 1, 0, 1, b'm', 0, 0, 0, 2, 0xab, 0xcd];
        let leader_v4 = [2, 2, b'm', 3, 0xab, 0xcd, 0, 0];
        for (version, list) in [(0, &leader_v0[..]), (4, &leader_v4[..])] {
            let mut frame = request(version, list);
            assert_eq!(null_empty_assignments(&mut frame), Ok(Outcome::Unchanged));
            assert_eq!(frame, request(version, list));
        }
        let mut v6 = request(5, &[1, 0]);
        v6[3] = 6;
        let before = v6.clone();
        assert_eq!(null_empty_assignments(&mut v6), Ok(Outcome::Unchanged));
        assert_eq!(v6, before);
        // Already null: nothing to do.
        let mut null = request(3, &[0xff, 0xff, 0xff, 0xff]);
        assert_eq!(null_empty_assignments(&mut null), Ok(Outcome::Unchanged));
    }

    #[test]
    fn malformed_requests_are_errors_and_left_as_they_came() {
        for version in VERSIONS {
            let full = request(version, empty_and_null(version).0);
            for end in 0..full.len() {
                let mut cut = full[..end].to_vec();
                assert!(
                    null_empty_assignments(&mut cut).is_err(),
                    "v{version} cut at {end}"
                );
                assert_eq!(cut, full[..end], "v{version} cut at {end}");
            }
            let mut trailing = full.clone();
            trailing.push(0);
            assert!(null_empty_assignments(&mut trailing).is_err(), "v{version}");
            assert_eq!(trailing[..full.len()], full[..]);
        }
        // A negative string length, and a huge compact one, must not panic or allocate.
        let mut negative = request(0, &[0, 0, 0, 0]);
        negative[11..13].copy_from_slice(&(-2i16).to_be_bytes());
        assert!(null_empty_assignments(&mut negative).is_err());
        let mut huge = request(4, &[1, 0]);
        huge[12..13].copy_from_slice(&[0xff]);
        assert!(null_empty_assignments(&mut huge).is_err());
    }
}
