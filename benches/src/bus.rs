//! The benchmark's own Kafka clients: a producer configured like the collector's, a consumer
//! that only counts (the baseline), and a tail reader for topics the pipeline writes.
//!
//! The producer is librdkafka's plain `BaseProducer` polled in a loop, the cheapest way to
//! push pre-encoded bytes, so that what limits phase 1 is the broker and the client library,
//! not the benchmark. Blocking calls run on a blocking thread (`block_in_place`), since the
//! embedded broker shares the runtime.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use rdkafka::consumer::{BaseConsumer, Consumer, StreamConsumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::DeliveryResult;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer, ProducerContext};
use rdkafka::{ClientConfig, ClientContext, Offset, TopicPartitionList};

use scope_kafka::{EmbeddedBroker, KafkaArgs};
use scope_schemas::topics;

use crate::workload::Encoded;

/// An embedded broker on a free loopback port with the pipeline's topics, and its bootstrap
/// address: what each phase measures against.
pub async fn broker_with_topics(partitions: i32) -> anyhow::Result<(EmbeddedBroker, String)> {
    let broker = EmbeddedBroker::start(([127, 0, 0, 1], 0).into())
        .await
        .context("starting the embedded broker")?;
    let bootstrap = broker.bootstrap();
    scope_kafka::ensure_topics(&KafkaArgs::new(&bootstrap), &topics::all(partitions))
        .await
        .context("creating the topics")?;
    Ok((broker, bootstrap))
}

/// Counts deliveries acknowledged by the broker, and failures.
#[derive(Debug, Default)]
pub struct Deliveries {
    delivered: AtomicU64,
    failed: AtomicU64,
    first_error: Mutex<Option<String>>,
}

impl ClientContext for Deliveries {}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        match result {
            Ok(_) => {
                self.delivered.fetch_add(1, Ordering::Relaxed);
            }
            Err((error, _)) => {
                self.failed.fetch_add(1, Ordering::Relaxed);
                if let Ok(mut first) = self.first_error.lock() {
                    first.get_or_insert_with(|| error.to_string());
                }
            }
        }
    }
}

/// A producer as the collector configures it: idempotent, lz4, 50 ms linger.
pub fn producer(bootstrap: &str) -> anyhow::Result<BaseProducer<Deliveries>> {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("enable.idempotence", "true")
        .set("compression.type", "lz4")
        .set("linger.ms", "50")
        .set("message.timeout.ms", "120000")
        .create_with_context(Deliveries::default())
        .context("creating the load producer")
}

/// Produces every message of `encoded` (to the topic of its input, with its key and explicit
/// partition if any) and waits until the broker has acknowledged all of them. Blocks.
/// Returns the time from the first send to the last acknowledgement.
pub fn produce_all(
    producer: &BaseProducer<Deliveries>,
    encoded: &Encoded,
    timeout: Duration,
) -> anyhow::Result<Duration> {
    tokio::task::block_in_place(|| {
        let ctx = producer.context();
        let before = ctx.delivered.load(Ordering::Relaxed);
        let started = Instant::now();
        for (i, (m, key, payload)) in encoded.iter().enumerate() {
            let mut record = BaseRecord::to(m.input.topic()).key(key).payload(payload);
            if let Some(p) = m.partition {
                record = record.partition(p);
            }
            loop {
                match producer.send(record) {
                    Ok(()) => break,
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                        record = back;
                        producer.poll(Duration::from_millis(5));
                    }
                    Err((error, _)) => bail!("producing to {}: {error}", m.input.topic()),
                }
            }
            if i % 1024 == 0 {
                producer.poll(Duration::ZERO);
            }
        }
        producer
            .flush(timeout)
            .context("waiting for the broker to acknowledge every message")?;
        let elapsed = started.elapsed();
        let failed = ctx.failed.load(Ordering::Relaxed);
        if failed > 0 {
            let first = ctx
                .first_error
                .lock()
                .ok()
                .and_then(|e| e.clone())
                .unwrap_or_default();
            bail!("{failed} messages were not delivered; first error: {first}");
        }
        let delivered = ctx.delivered.load(Ordering::Relaxed) - before;
        if delivered != encoded.len() as u64 {
            bail!("{delivered} of {} messages acknowledged", encoded.len());
        }
        Ok(elapsed)
    })
}

/// What a counting consumer has seen.
#[derive(Debug)]
pub struct Progress {
    pub messages: AtomicU64,
    pub bytes: AtomicU64,
    /// When `messages` reached `target`.
    target: AtomicU64,
    reached: OnceLock<Instant>,
    stop: AtomicBool,
}

impl Progress {
    fn new() -> Self {
        Progress {
            messages: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            target: AtomicU64::new(u64::MAX),
            reached: OnceLock::new(),
            stop: AtomicBool::new(false),
        }
    }

    /// Records the time at which the count reaches `messages` in total.
    pub fn set_target(&self, messages: u64) {
        self.target.store(messages, Ordering::SeqCst);
    }

    pub fn reached(&self) -> Option<Instant> {
        self.reached.get().copied()
    }

    pub fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
    }

    /// Waits until at least `messages` were seen.
    pub async fn wait_for(
        &self,
        messages: u64,
        timeout: Duration,
        what: &str,
    ) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        while self.messages.load(Ordering::SeqCst) < messages {
            if Instant::now() > deadline {
                bail!(
                    "{what}: saw {} of {messages} messages after {}",
                    self.messages.load(Ordering::SeqCst),
                    humantime::format_duration(timeout)
                );
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        Ok(())
    }
}

/// A consumer in its own group, subscribed to `topics` from the earliest offset, that counts
/// messages and payload bytes on a blocking thread until stopped. Configured like the
/// merger's consumer (manual commits, no partition EOF events).
pub fn counting_consumer(
    bootstrap: &str,
    group: &str,
    topics: &[&str],
) -> anyhow::Result<(Arc<Progress>, tokio::task::JoinHandle<anyhow::Result<()>>)> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("enable.partition.eof", "false")
        .create()
        .context("creating the counting consumer")?;
    consumer
        .subscribe(topics)
        .context("subscribing the counting consumer")?;
    let progress = Arc::new(Progress::new());
    let seen = Arc::clone(&progress);
    let task = tokio::task::spawn_blocking(move || {
        while !seen.stop.load(Ordering::Relaxed) {
            match consumer.poll(Duration::from_millis(50)) {
                None => {}
                Some(Ok(message)) => {
                    let len = message.payload_len() as u64;
                    seen.bytes.fetch_add(len, Ordering::Relaxed);
                    let n = seen.messages.fetch_add(1, Ordering::SeqCst) + 1;
                    if n == seen.target.load(Ordering::SeqCst) {
                        let _ = seen.reached.set(Instant::now());
                    }
                }
                Some(Err(error)) => tracing::warn!(%error, "counting consumer: receive failed"),
            }
        }
        Ok(())
    });
    Ok((progress, task))
}

/// A consumer without a group, assigned to partition 0 of each of `topics` at its current end:
/// it reads only what is produced from now on.
pub fn tail(bootstrap: &str, topics: &[String]) -> anyhow::Result<StreamConsumer> {
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set(
            "group.id",
            format!("scope-load-tail-{}", std::process::id()),
        )
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false")
        // Ask the broker to answer fetches at once: the reader stands for whoever watches the
        // topic, and its own polling delay is not the pipeline's latency.
        .set("fetch.wait.max.ms", "5")
        .create()
        .context("creating a tail reader")?;
    let mut assignment = TopicPartitionList::new();
    for topic in topics {
        let (_, high) = tokio::task::block_in_place(|| {
            consumer.fetch_watermarks(topic, 0, Duration::from_secs(10))
        })
        .with_context(|| format!("reading the end offset of {topic}"))?;
        assignment
            .add_partition_offset(topic, 0, Offset::Offset(high))
            .context("assigning a tail reader")?;
    }
    consumer
        .assign(&assignment)
        .context("assigning a tail reader")?;
    Ok(consumer)
}
