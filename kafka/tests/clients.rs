//! Clients a user has, not the ones the build links, against the embedded broker.
//!
//! Debian's kcat links Debian's librdkafka 2.0.2, and kafka-python is a separate protocol
//! implementation: both have to read what the embedded broker writes. Each runs with
//! `LD_LIBRARY_PATH` removed, because under `cargo test` it holds the build's bundled
//! librdkafka, which a kcat started from here would load instead of its own.

use std::{net::SocketAddr, process::Output, time::Duration};

use rdkafka::producer::{FutureProducer, FutureRecord};
use scope_kafka::{EmbeddedBroker, KafkaArgs, ensure_topics};
use scope_schemas::topics::{Cleanup, TopicSpec};

const MESSAGES: usize = 20;

/// Prints the first `count` messages of a topic as `key=value` lines, with kafka-python.
const CONSUMER: &str = r#"
import sys, kafka
topic, bootstrap, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
consumer = kafka.KafkaConsumer(topic, bootstrap_servers=bootstrap,
    auto_offset_reset="earliest", enable_auto_commit=False, consumer_timeout_ms=20000)
for n, m in enumerate(consumer, 1):
    print(m.key.decode() + "=" + m.value.decode(), flush=True)
    if n == count:
        break
consumer.close()
"#;

/// Whether `tool --version`-style probe `args` runs; a missing tool fails under `CI=true`.
fn available(program: &str, args: &[&str]) -> bool {
    let ok = std::process::Command::new(program)
        .args(args)
        .env_remove("LD_LIBRARY_PATH")
        .current_dir(std::env::temp_dir())
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "{program} {args:?} failed under CI=true: run scripts/setup"
        );
        eprintln!("skipped: {program} {args:?} failed (scripts/setup installs it)");
    }
    ok
}

/// Runs a client as a user would: no `LD_LIBRARY_PATH`, outside the repository (whose
/// `kafka/` folder would otherwise shadow Python's `kafka` package), with a deadline.
async fn run(program: &str, args: &[&str]) -> Output {
    let child = tokio::process::Command::new(program)
        .args(args)
        .env_remove("LD_LIBRARY_PATH")
        .current_dir(std::env::temp_dir())
        .kill_on_drop(true)
        .output();
    tokio::time::timeout(Duration::from_secs(60), child)
        .await
        .unwrap_or_else(|_| panic!("{program} {args:?} still running after 60 s"))
        .unwrap_or_else(|e| panic!("{program} {args:?}: {e}"))
}

fn stdout_of(what: &str, out: &Output) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{what} failed ({}):\nstdout: {stdout}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// A broker started as `scope up` starts it, with one topic holding lz4 batches (the
/// pipeline's producers compress with lz4).
async fn broker_with_messages(topic: &str) -> (EmbeddedBroker, Vec<String>) {
    let broker = EmbeddedBroker::start(SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .expect("embedded broker starts");
    let kafka = KafkaArgs::new(broker.bootstrap());
    ensure_topics(
        &kafka,
        &[TopicSpec {
            name: topic.to_owned(),
            partitions: 1,
            cleanup: Cleanup::Delete {
                retention_ms: 3_600_000,
            },
        }],
    )
    .await
    .expect("topic created");
    let producer: FutureProducer = kafka
        .client_config(&[("compression.type", "lz4"), ("linger.ms", "5")])
        .create()
        .expect("producer");
    let mut lines = Vec::new();
    for i in 0..MESSAGES {
        let (key, value) = (format!("key{i}"), format!("value{i}"));
        producer
            .send(
                FutureRecord::to(topic).key(&key).payload(&value),
                Duration::from_secs(10),
            )
            .await
            .map_err(|(e, _)| e)
            .expect("message produced");
        lines.push(format!("{key}={value}"));
    }
    (broker, lines)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn debian_kcat_lists_and_consumes() {
    if !available("kcat", &["-V"]) {
        return;
    }
    let topic = "clients.kcat";
    let (broker, lines) = broker_with_messages(topic).await;
    let bootstrap = broker.bootstrap();

    let listing = stdout_of(
        "kcat -L",
        &run("kcat", &["-L", "-b", &bootstrap, "-m", "10"]).await,
    );
    assert!(
        listing.contains(&format!("topic \"{topic}\"")),
        "kcat -L does not list {topic}: {listing}"
    );

    let consumed = stdout_of(
        "kcat -C",
        &run(
            "kcat",
            &["-C", "-b", &bootstrap, "-t", topic, "-e", "-f", "%k=%s\n"],
        )
        .await,
    );
    assert_eq!(consumed.lines().collect::<Vec<_>>(), lines);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_python_consumes() {
    if !available("python3", &["-c", "import kafka.consumer, lz4"]) {
        return;
    }
    let topic = "clients.python";
    let (broker, lines) = broker_with_messages(topic).await;
    let consumed = stdout_of(
        "kafka-python",
        &run(
            "python3",
            &[
                "-c",
                CONSUMER,
                topic,
                &broker.bootstrap(),
                &MESSAGES.to_string(),
            ],
        )
        .await,
    );
    assert_eq!(consumed.lines().collect::<Vec<_>>(), lines);
}
