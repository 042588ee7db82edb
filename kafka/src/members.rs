//! Group members whose connections closed without a LeaveGroup are made to leave at once.
//!
//! Why: tansu 0.6 expires a member only when a later request finds its session lapsed, and
//! when that request is a surviving member's heartbeat, it drops the dead member but keeps
//! the group formed in the same generation with the old assignment: the dead member's
//! partitions are then read by no one, where Apache Kafka would rebalance. A killed
//! process's connections are closed by its kernel, so the proxy sees the death at once;
//! [`GRACE`] later, unless the member was heard from again on another connection, the proxy
//! sends tansu a LeaveGroup for it, which tansu handles as Kafka does: a new generation,
//! every survivor told to rejoin, the partitions assigned again. A member started in a
//! killed one's place is assigned at once instead of after the dead one's session.
//!
//! One case is left to the session: tansu keeps a member that leaves as the leader of a
//! rebalance in progress, and never clears it after, which would stall the group for good.
//! So a member that may lead one (named leader, or the leader unknown, and no SyncGroup
//! answered since the group's last JoinGroup or LeaveGroup) is not made to leave.
//! Static members (`group.instance.id`) are not tracked: a restart replaces them.
//!
//! A live client that closes its group connection and is silent for [`GRACE`] is made to
//! leave too: its next heartbeat tells it so, and it rejoins. One extra rebalance, nothing
//! lost.

use std::{
    collections::{HashMap, HashSet},
    io,
    net::SocketAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
    time::Instant,
};

use super::Reader;

pub(super) const JOIN_GROUP: i16 = 11;
pub(super) const HEARTBEAT: i16 = 12;
pub(super) const LEAVE_GROUP: i16 = 13;
pub(super) const SYNC_GROUP: i16 = super::sync_group::API_KEY;

/// How long a member whose connections all closed may take to be heard from again.
const GRACE: Duration = Duration::from_secs(1);
/// How long the proxy waits for tansu to answer its LeaveGroup.
const LEAVE_TIMEOUT: Duration = Duration::from_secs(5);
/// The client id of the proxy's own requests, as tansu logs it.
const CLIENT_ID: &str = "scope-broker-proxy";

/// Members made to leave since the process started.
pub(super) static DEPARTED: AtomicU64 = AtomicU64::new(0);

/// What the proxy knows of every group, across connections.
#[derive(Clone, Default)]
pub(crate) struct Groups(Arc<Mutex<State>>);

#[derive(Default)]
struct State {
    /// Counts JoinGroup and LeaveGroup requests, to order them against SyncGroups.
    changes: u64,
    groups: HashMap<String, Group>,
}

#[derive(Default)]
struct Group {
    /// The leader the last JoinGroup answer named; `None` when unknown.
    leader: Option<String>,
    /// Whether a SyncGroup sent after the group's last change was answered without error:
    /// then tansu holds the group formed, and no rebalance is in progress.
    settled: bool,
    /// [`State::changes`] at the group's last JoinGroup or LeaveGroup request.
    changed: u64,
    members: HashMap<String, Member>,
}

struct Member {
    /// Open connections it was heard from on.
    connections: usize,
    last_seen: Instant,
}

impl Groups {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // Every holder leaves the state consistent, so a poisoned lock is still usable.
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl State {
    fn change(&mut self, group: &str) -> &mut Group {
        self.changes += 1;
        let changes = self.changes;
        let group = self.groups.entry(group.to_owned()).or_default();
        group.settled = false;
        group.changed = changes;
        group
    }
}

/// A request in flight whose answer the proxy reads.
#[derive(Debug)]
pub(super) enum InFlight {
    /// An ApiVersions request of this version: its answer may be rewritten.
    ApiVersions(i16),
    JoinGroup {
        version: i16,
        group: String,
    },
    /// `changes` is [`State::changes`] when the request was sent.
    SyncGroup {
        version: i16,
        group: String,
        changes: u64,
    },
}

/// One client connection: its requests in flight, keyed by correlation id (not kept in
/// order, because some requests, produce with `acks=0`, get no answer), and the group
/// members heard from on it.
#[derive(Default)]
pub(crate) struct Connection {
    in_flight: HashMap<i32, InFlight>,
    members: HashSet<(String, String)>,
    groups: Groups,
}

impl Connection {
    pub(super) fn new(groups: Groups) -> Self {
        Connection {
            groups,
            ..Connection::default()
        }
    }

    pub(super) fn answered(&mut self, correlation: i32) -> Option<InFlight> {
        self.in_flight.remove(&correlation)
    }

    pub(super) fn api_versions(&mut self, correlation: i32, version: i16) {
        self.in_flight
            .insert(correlation, InFlight::ApiVersions(version));
    }

    /// Notes a group request (`request`: header and body, without the length).
    pub(super) fn request(&mut self, api_key: i16, request: &[u8]) -> Result<(), &'static str> {
        let (version, correlation, mut r) = body(request, first_flexible(api_key))?;
        let flexible = version >= first_flexible(api_key);
        let group = text(r.string(flexible, "group_id")?);
        match api_key {
            JOIN_GROUP => {
                self.groups.lock().change(&group);
                self.in_flight
                    .insert(correlation, InFlight::JoinGroup { version, group });
            }
            LEAVE_GROUP => {
                let mut state = self.groups.lock();
                let changed = state.change(&group);
                self.members.retain(|(g, member)| {
                    if *g != group {
                        return true;
                    }
                    if let Some(m) = changed.members.get_mut(member) {
                        m.connections = m.connections.saturating_sub(1);
                        if m.connections == 0 {
                            changed.members.remove(member);
                        }
                    }
                    false
                });
            }
            HEARTBEAT | SYNC_GROUP => {
                r.skip(4, "generation_id")?;
                let member = text(r.string(flexible, "member_id")?);
                let instance = if version >= 3 {
                    r.string(flexible, "group_instance_id")?
                } else {
                    None
                };
                let mut state = self.groups.lock();
                if api_key == SYNC_GROUP {
                    let changes = state.changes;
                    self.in_flight.insert(
                        correlation,
                        InFlight::SyncGroup {
                            version,
                            group: group.clone(),
                            changes,
                        },
                    );
                }
                if instance.is_none() && !member.is_empty() {
                    let members = &mut state.groups.entry(group.clone()).or_default().members;
                    let first_here = self.members.insert((group, member.clone()));
                    let m = members.entry(member).or_insert(Member {
                        connections: 0,
                        last_seen: Instant::now(),
                    });
                    m.last_seen = Instant::now();
                    if first_here {
                        m.connections += 1;
                    }
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// Notes the answer to a JoinGroup or SyncGroup (`body`: after the correlation id).
    pub(super) fn answer(&mut self, request: &InFlight, body: &[u8]) -> Result<(), &'static str> {
        let mut state = self.groups.lock();
        match request {
            InFlight::ApiVersions(_) => {}
            InFlight::JoinGroup { version, group } => {
                let group = state.groups.entry(group.clone()).or_default();
                // Unknown if this answer cannot be read: then any member may lead.
                group.leader = None;
                if let Some(leader) = join_leader(*version, body)? {
                    group.leader = Some(leader);
                }
            }
            InFlight::SyncGroup {
                version,
                group,
                changes,
            } => {
                if sync_error(*version, body)? == 0 {
                    let group = state.groups.entry(group.clone()).or_default();
                    group.settled = group.changed <= *changes;
                }
            }
        }
        Ok(())
    }

    /// The connection closed: the members heard from on it and on no other open one.
    pub(super) fn closed(&mut self) -> Vec<(String, String)> {
        let mut state = self.groups.lock();
        let mut gone = Vec::new();
        for (group, member) in self.members.drain() {
            let Some(m) = state
                .groups
                .get_mut(&group)
                .and_then(|g| g.members.get_mut(&member))
            else {
                continue;
            };
            m.connections = m.connections.saturating_sub(1);
            if m.connections == 0 {
                gone.push((group, member));
            }
        }
        gone
    }
}

impl Groups {
    /// Whether `member`, whose last connection closed at `closed`, is to be made to leave
    /// `group` now: it was not heard from since, and it cannot be leading a rebalance in
    /// progress. It is forgotten either way; if it is to leave, the group changes.
    fn departs(&self, group: &str, member: &str, closed: Instant) -> bool {
        let mut state = self.lock();
        let Some(g) = state.groups.get_mut(group) else {
            return false;
        };
        let silent = g
            .members
            .get(member)
            .is_some_and(|m| m.connections == 0 && m.last_seen <= closed);
        if !silent {
            return false;
        }
        g.members.remove(member);
        let may_lead = g.leader.as_deref().is_none_or(|leader| leader == member);
        let departs = g.settled || !may_lead;
        if departs {
            state.change(group);
        }
        departs
    }
}

/// After [`GRACE`], makes each of `gone` that was not heard from again leave its group.
pub(super) async fn depart(groups: Groups, broker: SocketAddr, gone: Vec<(String, String)>) {
    let closed = Instant::now();
    tokio::time::sleep(GRACE).await;
    for (group, member) in gone {
        if !groups.departs(&group, &member, closed) {
            continue;
        }
        match tokio::time::timeout(LEAVE_TIMEOUT, leave_group(broker, &group, &member)).await {
            Ok(Ok(code)) => {
                DEPARTED.fetch_add(1, Ordering::Relaxed);
                tracing::info!(
                    group,
                    member,
                    code,
                    "embedded broker: a group member's connections closed without a \
                     LeaveGroup (killed?); it left the group on its behalf"
                );
            }
            Ok(Err(error)) => {
                tracing::warn!(group, member, %error, "embedded broker: LeaveGroup for a departed member failed");
            }
            Err(_) => {
                tracing::warn!(
                    group,
                    member,
                    "embedded broker: LeaveGroup for a departed member unanswered"
                );
            }
        }
    }
}

/// Sends tansu a LeaveGroup v1 for `member`: its error code.
async fn leave_group(broker: SocketAddr, group: &str, member: &str) -> io::Result<i16> {
    let mut request = Vec::new();
    request.extend_from_slice(&LEAVE_GROUP.to_be_bytes());
    request.extend_from_slice(&1i16.to_be_bytes());
    request.extend_from_slice(&1i32.to_be_bytes());
    for s in [CLIENT_ID, group, member] {
        let len = i16::try_from(s.len()).map_err(|_| io::ErrorKind::InvalidInput)?;
        request.extend_from_slice(&len.to_be_bytes());
        request.extend_from_slice(s.as_bytes());
    }
    let mut stream = TcpStream::connect(broker).await?;
    stream
        .write_all(&(request.len() as u32).to_be_bytes())
        .await?;
    stream.write_all(&request).await?;
    let len = stream.read_u32().await?;
    if !(10..=64 * 1024).contains(&len) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "LeaveGroup answer length",
        ));
    }
    let mut answer = vec![0; len as usize];
    stream.read_exact(&mut answer).await?;
    // correlation_id, throttle_time_ms, then error_code.
    Ok(i16::from_be_bytes([answer[8], answer[9]]))
}

/// The first version of each group request with a flexible (compact, tagged-field) body
/// and request header v2.
fn first_flexible(api_key: i16) -> i16 {
    if api_key == JOIN_GROUP { 6 } else { 4 }
}

/// A request's version and correlation id, and a reader at the start of its body.
fn body(request: &[u8], first_flexible: i16) -> Result<(i16, i32, Reader<'_>), &'static str> {
    let mut r = Reader::new(request);
    r.skip(2, "api_key")?;
    let version = r.i16("api_version")?;
    let correlation = r.i32("correlation_id")?;
    // The header's client id is a nullable int16-length string in every header version.
    r.string(false, "client_id")?;
    if version >= first_flexible {
        r.tagged_fields()?;
    }
    Ok((version, correlation, r))
}

fn text(s: Option<&[u8]>) -> String {
    String::from_utf8_lossy(s.unwrap_or_default()).into_owned()
}

/// The leader a JoinGroup answer names, `None` when it is an error.
fn join_leader(version: i16, body: &[u8]) -> Result<Option<String>, &'static str> {
    let flexible = version >= 6;
    let mut r = Reader::new(body);
    if flexible {
        r.tagged_fields()?;
    }
    if version >= 2 {
        r.skip(4, "throttle_time_ms")?;
    }
    if r.i16("error_code")? != 0 {
        return Ok(None);
    }
    r.skip(4, "generation_id")?;
    if version >= 7 {
        r.string(flexible, "protocol_type")?;
    }
    r.string(flexible, "protocol_name")?;
    Ok(Some(text(r.string(flexible, "leader")?)))
}

/// A SyncGroup answer's error code.
fn sync_error(version: i16, body: &[u8]) -> Result<i16, &'static str> {
    let mut r = Reader::new(body);
    if version >= 4 {
        r.tagged_fields()?;
    }
    if version >= 1 {
        r.skip(4, "throttle_time_ms")?;
    }
    r.i16("error_code")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api_versions::encode_string as string;

    /// A request header of `api_key` and `version`, correlation id 7, client "c".
    fn header(api_key: i16, version: i16) -> Vec<u8> {
        let mut r = api_key.to_be_bytes().to_vec();
        r.extend_from_slice(&version.to_be_bytes());
        r.extend_from_slice(&7i32.to_be_bytes());
        r.extend_from_slice(&[0, 1, b'c']);
        if version >= first_flexible(api_key) {
            r.push(0);
        }
        r
    }

    /// A Heartbeat (or SyncGroup: the same fields first) of `member` in group "g".
    fn heartbeat(api_key: i16, version: i16, member: &str, instance: Option<&str>) -> Vec<u8> {
        let flexible = version >= first_flexible(api_key);
        let mut r = header(api_key, version);
        r.extend(string(flexible, "g"));
        r.extend_from_slice(&3i32.to_be_bytes());
        r.extend(string(flexible, member));
        if version >= 3 {
            match instance {
                Some(i) => r.extend(string(flexible, i)),
                None if flexible => r.push(0),
                None => r.extend_from_slice(&(-1i16).to_be_bytes()),
            }
        }
        r
    }

    fn group_only(api_key: i16, version: i16) -> Vec<u8> {
        let mut r = header(api_key, version);
        r.extend(string(version >= first_flexible(api_key), "g"));
        r
    }

    /// A JoinGroup answer body (after the correlation id) naming `leader`.
    fn join_answer(version: i16, error: i16, leader: &str) -> Vec<u8> {
        let flexible = version >= 6;
        let mut b = Vec::new();
        if flexible {
            b.push(0);
        }
        if version >= 2 {
            b.extend_from_slice(&0i32.to_be_bytes());
        }
        b.extend_from_slice(&error.to_be_bytes());
        b.extend_from_slice(&5i32.to_be_bytes());
        if version >= 7 {
            b.extend(string(flexible, "consumer"));
        }
        b.extend(string(flexible, "range"));
        b.extend(string(flexible, leader));
        b
    }

    fn sync_answer(version: i16, error: i16) -> Vec<u8> {
        let mut b = Vec::new();
        if version >= 4 {
            b.push(0);
        }
        if version >= 1 {
            b.extend_from_slice(&0i32.to_be_bytes());
        }
        b.extend_from_slice(&error.to_be_bytes());
        b
    }

    #[test]
    fn join_answers_name_their_leader_in_every_version() {
        for version in 0..=9 {
            let answer = join_answer(version, 0, "leader-1");
            assert_eq!(
                join_leader(version, &answer),
                Ok(Some("leader-1".into())),
                "v{version}"
            );
            // MEMBER_ID_REQUIRED names no leader.
            assert_eq!(
                join_leader(version, &join_answer(version, 79, "")),
                Ok(None)
            );
            for end in 0..answer.len() {
                assert!(
                    join_leader(version, &answer[..end]).is_err(),
                    "v{version} cut at {end}"
                );
            }
        }
        for version in 0..=5 {
            assert_eq!(sync_error(version, &sync_answer(version, 27)), Ok(27));
        }
    }

    /// A connection whose member `m` of group "g" heartbeats, after a rebalance `m` leads:
    /// `sync` says whether the leader's SyncGroup was answered.
    fn led_by(member: &str, synced: bool) -> (Groups, Vec<(String, String)>) {
        let groups = Groups::default();
        let mut conn = Connection::new(groups.clone());
        conn.request(JOIN_GROUP, &group_only(JOIN_GROUP, 6))
            .unwrap();
        let join = conn.answered(7).expect("JoinGroup in flight");
        conn.answer(&join, &join_answer(6, 0, member)).unwrap();
        conn.request(SYNC_GROUP, &heartbeat(SYNC_GROUP, 4, "m", None))
            .unwrap();
        let sync = conn.answered(7).expect("SyncGroup in flight");
        if synced {
            conn.answer(&sync, &sync_answer(4, 0)).unwrap();
        }
        conn.request(HEARTBEAT, &heartbeat(HEARTBEAT, 4, "m", None))
            .unwrap();
        let gone = conn.closed();
        (groups, gone)
    }

    #[test]
    fn a_member_that_may_lead_a_rebalance_in_progress_is_left_to_its_session() {
        let later = Instant::now() + Duration::from_secs(1);
        let (groups, gone) = led_by("m", true);
        assert_eq!(gone, [("g".to_owned(), "m".to_owned())]);
        assert!(
            groups.departs("g", "m", later),
            "the leader of a formed group"
        );
        assert!(!groups.departs("g", "m", later), "forgotten once gone");
        let (groups, _) = led_by("other", false);
        assert!(groups.departs("g", "m", later), "a follower");
        let (groups, _) = led_by("m", false);
        assert!(
            !groups.departs("g", "m", later),
            "the leader, rebalance in progress"
        );
    }

    #[test]
    fn members_heard_from_again_or_leaving_or_static_stay() {
        let groups = Groups::default();
        let mut first = Connection::new(groups.clone());
        let mut second = Connection::new(groups.clone());
        for conn in [&mut first, &mut second] {
            conn.request(HEARTBEAT, &heartbeat(HEARTBEAT, 0, "m", None))
                .unwrap();
        }
        assert!(first.closed().is_empty(), "still on the second connection");
        let gone = second.closed();
        assert_eq!(gone.len(), 1);
        let mut third = Connection::new(groups.clone());
        third
            .request(HEARTBEAT, &heartbeat(HEARTBEAT, 3, "m", None))
            .unwrap();
        let before = Instant::now() - Duration::from_millis(1);
        assert!(!groups.departs("g", "m", before), "heard from since");
        third
            .request(LEAVE_GROUP, &group_only(LEAVE_GROUP, 1))
            .unwrap();
        assert!(third.closed().is_empty(), "it left by itself");
        third
            .request(HEARTBEAT, &heartbeat(HEARTBEAT, 4, "s", Some("instance")))
            .unwrap();
        assert!(third.closed().is_empty(), "static members are not followed");
    }

    #[test]
    fn malformed_group_requests_are_errors_not_panics() {
        let mut conn = Connection::default();
        for (api_key, frame) in [
            (HEARTBEAT, heartbeat(HEARTBEAT, 4, "m", None)),
            (SYNC_GROUP, heartbeat(SYNC_GROUP, 3, "m", None)),
            (JOIN_GROUP, group_only(JOIN_GROUP, 7)),
            (LEAVE_GROUP, group_only(LEAVE_GROUP, 4)),
        ] {
            for end in 0..frame.len() {
                assert!(
                    conn.request(api_key, &frame[..end]).is_err(),
                    "{api_key} cut at {end}"
                );
            }
        }
        assert!(conn.closed().is_empty());
    }
}
