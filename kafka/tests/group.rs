//! Consumer groups on the embedded broker when a member dies without leaving the group, as a
//! merger or renderer does under `kill -9`: its partitions must go to a member started in its
//! place, or to a surviving one, as Apache Kafka gives them.
//!
//! The dead member is a real librdkafka consumer in a child process (this test binary run
//! again with [`MEMBER`] set). SIGKILL ends it with no LeaveGroup and no more heartbeats,
//! and its kernel closes its connections, which the broker's proxy notices; SIGSTOP silences
//! it with its connections open, so only its session lapsing can tell the broker.

use std::{
    io::{BufRead, BufReader},
    net::SocketAddr,
    process::{Child, Command, Stdio},
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use rdkafka::consumer::{BaseConsumer, Consumer};
use scope_kafka::{EmbeddedBroker, GROUP_SESSION_TIMEOUT_MS, KafkaArgs, ensure_topics};
use scope_schemas::topics::{Cleanup, TopicSpec};

/// Set in the child's environment to `bootstrap group topic`: the child joins and consumes.
const MEMBER: &str = "SCOPE_KAFKA_TEST_GROUP_MEMBER";
const PARTITIONS: usize = 4;
/// From the first member's end to the new member's start: longer than tansu's 3 s pause
/// between a follower's JoinGroup and its answer, so the silenced member's session lapses
/// while the new member is alive and waiting for it. That is the moment tansu 0.6 formed the
/// group with no assignment at all, when the new member's SyncGroup came first.
const DOWNTIME: Duration = Duration::from_secs(4);
/// The silenced member's session (the stages' [`GROUP_SESSION_TIMEOUT_MS`], 10 s), tansu's
/// pause, and a rejoin.
const TAKEOVER: Duration = Duration::from_secs(25);
/// A killed member's partitions are given again without waiting for its session: the
/// proxy's grace (1 s), a heartbeat (3 s) and a rejoin.
const AT_ONCE: Duration = Duration::from_secs(8);

fn consumer(bootstrap: &str, group: &str, topic: &str) -> BaseConsumer {
    let consumer: BaseConsumer = KafkaArgs::new(bootstrap)
        .client_config(&[
            ("group.id", group),
            ("session.timeout.ms", GROUP_SESSION_TIMEOUT_MS),
        ])
        .create()
        .expect("consumer");
    consumer.subscribe(&[topic]).expect("subscribed");
    consumer
}

fn assigned(consumer: &BaseConsumer) -> usize {
    consumer.assignment().map_or(0, |a| a.count())
}

/// Polls `consumer` until it holds every partition, or `deadline` passes: how long it took.
fn until_assigned_all(consumer: &BaseConsumer, deadline: Duration) -> Result<Duration, usize> {
    let start = Instant::now();
    while start.elapsed() < deadline {
        consumer.poll(Duration::from_millis(100));
        if assigned(consumer) == PARTITIONS {
            return Ok(start.elapsed());
        }
    }
    Err(assigned(consumer))
}

/// The child's half of the tests below; run by the harness without [`MEMBER`] set, it does
/// nothing. It says `assigned` once it holds a partition, then keeps polling (and
/// heartbeating) until it is killed, or for two minutes should its parent be gone.
#[test]
fn member_process() {
    let Ok(spec) = std::env::var(MEMBER) else {
        return;
    };
    let [bootstrap, group, topic] = spec.split(' ').collect::<Vec<_>>()[..] else {
        panic!("{MEMBER}={spec:?}: expected `bootstrap group topic`");
    };
    let consumer = consumer(bootstrap, group, topic);
    let end = Instant::now() + Duration::from_secs(120);
    let mut said = false;
    while Instant::now() < end {
        consumer.poll(Duration::from_millis(100));
        if !said && assigned(&consumer) > 0 {
            println!("assigned {}", assigned(&consumer));
            said = true;
        }
    }
}

/// A child process killed when dropped, so a failing assertion leaves no member behind.
struct Member(Child);

impl Drop for Member {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Member {
    /// Starts a member in a child process and waits until it holds a partition.
    async fn assigned(bootstrap: &str, group: &str, topic: &str) -> Member {
        let mut member = Member(
            Command::new(std::env::current_exe().expect("the test binary"))
                .args(["member_process", "--exact", "--nocapture"])
                .env(MEMBER, format!("{bootstrap} {group} {topic}"))
                .stdout(Stdio::piped())
                .spawn()
                .expect("the member process starts"),
        );
        let stdout = BufReader::new(member.0.stdout.take().expect("piped"));
        // The child ends its output (exits) within two minutes whatever happens.
        let said = tokio::task::spawn_blocking(move || {
            stdout
                .lines()
                .map_while(Result::ok)
                .find(|line| line.starts_with("assigned"))
        })
        .await
        .expect("reader");
        assert!(said.is_some(), "the member process was never assigned");
        member
    }

    /// SIGKILL: no LeaveGroup, no more heartbeats, its connections closed.
    fn kill(&mut self) -> Instant {
        self.0.kill().expect("SIGKILL is delivered");
        self.0.wait().expect("the killed member is reaped");
        Instant::now()
    }

    /// SIGSTOP: no more heartbeats, its connections open. Killed when dropped.
    fn freeze(&self) -> Instant {
        let stopped = Command::new("kill")
            .args(["-STOP", &self.0.id().to_string()])
            .status()
            .expect("kill(1) runs");
        assert!(stopped.success(), "SIGSTOP is delivered");
        Instant::now()
    }
}

/// A broker with a fresh topic of [`PARTITIONS`] partitions named `topic`.
async fn broker_with_topic(topic: &str) -> EmbeddedBroker {
    let broker = EmbeddedBroker::start(SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .expect("embedded broker starts");
    ensure_topics(
        &KafkaArgs::new(broker.bootstrap()),
        &[TopicSpec {
            name: topic.into(),
            partitions: PARTITIONS as i32,
            cleanup: Cleanup::Delete {
                retention_ms: 3_600_000,
            },
        }],
    )
    .await
    .expect("topic created");
    broker
}

/// A member silenced with its connections open is replaced once its session lapses.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silenced_member_is_replaced_once_its_session_lapses() {
    let (topic, group) = ("group.silenced", "group.silenced");
    let broker = broker_with_topic(topic).await;
    let bootstrap = broker.bootstrap();
    let first = Member::assigned(&bootstrap, group, topic).await;
    let stopped = first.freeze();
    tokio::time::sleep(DOWNTIME).await;
    let took = replaced(&bootstrap, group, topic, stopped, TAKEOVER).await;
    println!(
        "group: a member stopped, another started {DOWNTIME:?} later: it holds every partition \
         {:.1} s after the stop (session {GROUP_SESSION_TIMEOUT_MS} ms)",
        took.as_secs_f64()
    );
}

/// A killed member is replaced without waiting for its session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_member_is_replaced_at_once() {
    let (topic, group) = ("group.killed", "group.killed");
    let broker = broker_with_topic(topic).await;
    let bootstrap = broker.bootstrap();
    let killed = Member::assigned(&bootstrap, group, topic).await.kill();
    tokio::time::sleep(DOWNTIME).await;
    let took = replaced(&bootstrap, group, topic, killed, AT_ONCE).await;
    println!(
        "group: a member killed, another started {DOWNTIME:?} later: it holds every partition \
         {:.1} s after the kill",
        took.as_secs_f64()
    );
}

/// Starts a member now and waits until it holds every partition: how long after `ended`.
async fn replaced(
    bootstrap: &str,
    group: &'static str,
    topic: &'static str,
    ended: Instant,
    deadline: Duration,
) -> Duration {
    let bootstrap = bootstrap.to_owned();
    tokio::task::spawn_blocking(move || {
        let second = consumer(&bootstrap, group, topic);
        until_assigned_all(&second, deadline).map(|_| ended.elapsed())
    })
    .await
    .expect("the second member")
    .unwrap_or_else(|n| {
        panic!(
            "the member started {DOWNTIME:?} after the first ended holds {n} of {PARTITIONS} \
             partitions after {deadline:?}"
        )
    })
}

/// One of two mergers (or renderers) in a group killed for good: the survivor takes its
/// partitions. Left to tansu 0.6, it never would: the survivor's heartbeat finds the dead
/// member's session lapsed, tansu drops that member but keeps the group formed in the same
/// generation with the old assignment, and gives the survivor its old partitions back
/// whatever it assigns. The proxy makes the killed member leave instead, and tansu then
/// rebalances.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn survivor_takes_over_a_killed_members_partitions() {
    survivor_takes_over("group.survivor.killed", |m| m.kill(), AT_ONCE).await;
}

/// The same with the other member silenced, its connections open: nothing tells the proxy,
/// and tansu's own expiry strands the partitions as above.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "tansu 0.6: a silenced member's partitions are never given to the surviving member"]
async fn survivor_takes_over_a_silenced_members_partitions() {
    survivor_takes_over("group.survivor.silenced", |m| m.freeze(), TAKEOVER).await;
}

/// A survivor alone, then sharing with a member in a child process, which `end` ends: the
/// survivor must hold every partition within `deadline`.
async fn survivor_takes_over(
    topic: &'static str,
    end: fn(&mut Member) -> Instant,
    deadline: Duration,
) {
    let group = topic;
    let broker = broker_with_topic(topic).await;
    let bootstrap = broker.bootstrap();
    let held = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let survivor = {
        let (bootstrap, held, stop) = (bootstrap.clone(), held.clone(), stop.clone());
        // A thread of its own, not the runtime's blocking pool, so that a failed assertion
        // below does not leave the runtime waiting for it.
        std::thread::spawn(move || {
            let survivor = consumer(&bootstrap, group, topic);
            while !stop.load(Ordering::Relaxed) {
                survivor.poll(Duration::from_millis(100));
                held.store(assigned(&survivor), Ordering::Relaxed);
            }
        })
    };
    let holds = |what: &str, want: fn(usize) -> bool, deadline: Duration| {
        let (held, what) = (held.clone(), what.to_owned());
        async move {
            let start = Instant::now();
            while !want(held.load(Ordering::Relaxed)) {
                let n = held.load(Ordering::Relaxed);
                assert!(start.elapsed() < deadline, "{what}: the survivor holds {n}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            start.elapsed()
        }
    };
    holds("alone", |n| n == PARTITIONS, TAKEOVER).await;
    let mut other = Member::assigned(&bootstrap, group, topic).await;
    holds("shared", |n| n < PARTITIONS, TAKEOVER).await;
    let ended = end(&mut other);
    holds("after the other ended", |n| n == PARTITIONS, deadline).await;
    stop.store(true, Ordering::Relaxed);
    survivor.join().expect("the survivor");
    println!(
        "group: of two members one ended ({topic}), the other holds every partition {:.1} s \
         after",
        ended.elapsed().as_secs_f64()
    );
}
