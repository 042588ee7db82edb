//! Consumer groups on the embedded broker when a member dies without leaving the group, as a
//! merger or renderer does under `kill -9`: the member started in its place must be assigned
//! the partitions once the dead one's session has lapsed, as Apache Kafka assigns them.
//!
//! The dead member is a real librdkafka consumer in a child process (this test binary run
//! again with [`MEMBER`] set), so SIGKILL ends it with no LeaveGroup and no more heartbeats.

use std::{
    io::{BufRead, BufReader},
    net::SocketAddr,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use rdkafka::consumer::{BaseConsumer, Consumer};
use scope_kafka::{EmbeddedBroker, GROUP_SESSION_TIMEOUT_MS, KafkaArgs, ensure_topics};
use scope_schemas::topics::{Cleanup, TopicSpec};

/// Set in the child's environment to `bootstrap group topic`: the child joins and consumes.
const MEMBER: &str = "SCOPE_KAFKA_TEST_GROUP_MEMBER";
const PARTITIONS: usize = 4;
/// From the kill to the new member's start: longer than tansu's 3 s pause between a
/// follower's JoinGroup and its answer, so the dead member's session lapses while the new
/// member is alive and waiting for it. That is the moment tansu 0.6 formed the group with no
/// assignment at all, when the new member's SyncGroup came first.
const DOWNTIME: Duration = Duration::from_secs(4);
/// The dead member's session (the stages' [`GROUP_SESSION_TIMEOUT_MS`], 10 s), tansu's
/// pause, and a rejoin.
const TAKEOVER: Duration = Duration::from_secs(25);

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

/// The child's half of [`killed_member_is_replaced_once_its_session_lapses`]; run by the
/// harness without [`MEMBER`] set, it does nothing. It says `assigned` once it holds every
/// partition, then keeps polling (and heartbeating) until it is killed, or for two minutes
/// should its parent be gone.
#[test]
fn member_process() {
    let Ok(spec) = std::env::var(MEMBER) else {
        return;
    };
    let [bootstrap, group, topic] = spec.split(' ').collect::<Vec<_>>()[..] else {
        panic!("{MEMBER}={spec:?}: expected `bootstrap group topic`");
    };
    let consumer = consumer(bootstrap, group, topic);
    let took = until_assigned_all(&consumer, Duration::from_secs(30))
        .unwrap_or_else(|n| panic!("the first member holds {n} of {PARTITIONS} partitions"));
    println!("assigned after {took:?}");
    let end = Instant::now() + Duration::from_secs(120);
    while Instant::now() < end {
        consumer.poll(Duration::from_millis(100));
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_member_is_replaced_once_its_session_lapses() {
    let broker = EmbeddedBroker::start(SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .expect("embedded broker starts");
    let bootstrap = broker.bootstrap();
    let (topic, group) = ("group.killed", "group.killed");
    ensure_topics(
        &KafkaArgs::new(&bootstrap),
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

    let mut first = Member(
        Command::new(std::env::current_exe().expect("the test binary"))
            .args(["member_process", "--exact", "--nocapture"])
            .env(MEMBER, format!("{bootstrap} {group} {topic}"))
            .stdout(Stdio::piped())
            .spawn()
            .expect("the first member starts"),
    );
    let stdout = BufReader::new(first.0.stdout.take().expect("piped"));
    // The child ends its output (exits) within 30 s if it is never assigned.
    let said = tokio::task::spawn_blocking(move || {
        stdout
            .lines()
            .map_while(Result::ok)
            .find(|line| line.starts_with("assigned"))
    })
    .await
    .expect("reader");
    assert!(said.is_some(), "the first member was never assigned");

    first.0.kill().expect("SIGKILL is delivered");
    first.0.wait().expect("the killed member is reaped");
    let killed = Instant::now();
    tokio::time::sleep(DOWNTIME).await;

    let took = tokio::task::spawn_blocking(move || {
        let second = consumer(&bootstrap, group, topic);
        until_assigned_all(&second, TAKEOVER).map(|_| killed.elapsed())
    })
    .await
    .expect("the second member")
    .unwrap_or_else(|n| {
        panic!(
            "the member started {DOWNTIME:?} after the first was killed holds {n} of \
             {PARTITIONS} partitions after {TAKEOVER:?}"
        )
    });
    println!(
        "group: a member killed, another started {DOWNTIME:?} later: it holds every partition \
         {:.1} s after the kill (session {GROUP_SESSION_TIMEOUT_MS} ms)",
        took.as_secs_f64()
    );
}
