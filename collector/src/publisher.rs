//! Publishing to Kafka: one idempotent, lz4-compressing producer, every record keyed by the
//! host id so all of a host's records land in one partition, in order.
//!
//! Connection events go out in batches ([`ConnectionEvents`], up to
//! [`ConnectionEvents::MAX_EVENTS`] a record): what one kernel batch (the tracker drains its
//! ring every 100 ms), one spy or one full report announced, so a batch needs no timer of its
//! own and adds no latency; librdkafka, the broker and the merger pay their per-record costs
//! once for all of its events.
//!
//! Publishing never blocks the spy loop: records are handed to librdkafka's queue and a
//! polling thread reports each delivery to [`Deliveries`], which counts successes and
//! failures. (No task per record: at thousands of events a second, waking one for each
//! delivery cost more CPU than the events.) While the
//! broker is down librdkafka keeps retrying queued records (up to `message.timeout.ms`); a
//! record it gives up on, or that does not fit the queue, is counted and logged (at most
//! every few seconds) and the collector carries on, since the next full report and refresh
//! re-send the state it carried. A producer that hits a fatal error is replaced.

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    thread::JoinHandle,
    time::Duration,
};

use rdkafka::{
    ClientContext, Message,
    producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext},
};
use scope_kafka::KafkaArgs;
use scope_runtime::throttle::Throttle;
use scope_schemas::{ConnectionEvent, ConnectionEvents, Record, ReportDelta, topics};

use crate::{Error, stats::Stats};

/// Scope's producer settings; `-X` properties override them.
const PRODUCER_DEFAULTS: [(&str, &str); 3] = [
    ("enable.idempotence", "true"),
    ("compression.type", "lz4"),
    ("linger.ms", "50"),
];

/// How long one poll for delivery reports lasts; each report is served as it arrives.
const DELIVERY_POLL: Duration = Duration::from_millis(500);

pub struct Publisher {
    kafka: KafkaArgs,
    producer: PolledProducer,
    key: String,
    deliveries: Deliveries,
}

impl Publisher {
    pub fn new(kafka: &KafkaArgs, host_id: &str, stats: Arc<Stats>) -> Result<Self, Error> {
        let deliveries = Deliveries {
            stats,
            throttle: Arc::new(Mutex::new(Throttle::default())),
        };
        Ok(Publisher {
            kafka: kafka.clone(),
            producer: create_producer(kafka, host_id, deliveries.clone())?,
            key: host_id.to_owned(),
            deliveries,
        })
    }

    /// Queues connection events to `scope.connections`, in order, in records of up to
    /// [`ConnectionEvents::MAX_EVENTS`].
    pub fn send_events(&mut self, events: &[ConnectionEvent]) {
        for batch in events.chunks(ConnectionEvents::MAX_EVENTS) {
            let payload = ConnectionEvents::encode_slice(batch);
            self.send(topics::CONNECTIONS, payload, Carried::Events(batch.len()));
        }
    }

    /// Queues a report delta to `scope.reports`.
    pub fn send_delta(&mut self, delta: &ReportDelta) {
        self.send(topics::REPORTS, delta.encode(), Carried::Delta);
    }

    fn send<E: std::fmt::Display>(
        &mut self,
        topic: &'static str,
        payload: Result<Vec<u8>, E>,
        carried: Carried,
    ) {
        let payload = match payload {
            Ok(payload) => payload,
            Err(error) => {
                self.deliveries.failed(topic, &error);
                return;
            }
        };
        let record = BaseRecord::with_opaque_to(topic, carried.to_opaque())
            .key(&self.key)
            .payload(&payload);
        if let Err((error, _)) = self.producer.send(record) {
            self.deliveries.failed(topic, &error);
        }
    }

    /// Replaces the producer if librdkafka declared it unusable (e.g. a fatal idempotence
    /// error); records still queued in the old one are lost and counted as failures.
    pub fn recover(&mut self) {
        if let Some((code, reason)) = self.producer.client().fatal_error() {
            tracing::error!(
                ?code,
                reason,
                "the Kafka producer failed fatally; replacing it"
            );
            match create_producer(&self.kafka, &self.key, self.deliveries.clone()) {
                Ok(producer) => self.producer = producer,
                Err(error) => tracing::error!(%error, "could not replace the Kafka producer"),
            }
        }
    }

    /// Waits up to `timeout` for queued records to be delivered (and counted), then stops
    /// the producer, off the async runtime: both block.
    pub async fn flush(self, timeout: Duration) {
        let producer = self.producer;
        let flushed = tokio::task::spawn_blocking(move || {
            let flushed = producer.flush(timeout);
            (flushed, producer.in_flight_count())
        });
        match flushed.await {
            Ok((Ok(()), _)) => {}
            Ok((Err(error), unsent)) => tracing::warn!(
                %error, unsent,
                "gave up waiting for queued records at shutdown"
            ),
            Err(error) => tracing::warn!(%error, "flushing the producer failed"),
        }
    }
}

fn create_producer(
    kafka: &KafkaArgs,
    host_id: &str,
    deliveries: Deliveries,
) -> Result<PolledProducer, Error> {
    let client_id = format!("scope-collector-{host_id}");
    let mut defaults = vec![("client.id", client_id.as_str())];
    defaults.extend(PRODUCER_DEFAULTS);
    let producer: BaseProducer<Deliveries> = kafka
        .client_config(&defaults)
        .create_with_context(deliveries)
        .map_err(Error::CreateProducer)?;
    PolledProducer::start(producer)
}

/// A producer whose delivery reports a thread of its own serves, stopped and joined on drop.
///
/// Not rdkafka's `ThreadedProducer`: it polls for 100 ms at a time, and every poll ends by
/// spinning on the clock through the sub-millisecond rest of its deadline (rdkafka 0.39
/// rounds it down to a 0 ms wait), 0.85 % of a core on an idle collector. Polls of
/// [`DELIVERY_POLL`] spin a fifth as often; a report is still served when it arrives.
struct PolledProducer {
    producer: Arc<BaseProducer<Deliveries>>,
    stop: Arc<AtomicBool>,
    poller: Option<JoinHandle<()>>,
}

impl PolledProducer {
    fn start(producer: BaseProducer<Deliveries>) -> Result<Self, Error> {
        let producer = Arc::new(producer);
        let stop = Arc::new(AtomicBool::new(false));
        let poller = {
            let (producer, stop) = (Arc::clone(&producer), Arc::clone(&stop));
            std::thread::Builder::new()
                .name("kafka-deliveries".into())
                .spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        producer.poll(DELIVERY_POLL);
                    }
                })
                .map_err(Error::StartPoller)?
        };
        Ok(PolledProducer {
            producer,
            stop,
            poller: Some(poller),
        })
    }
}

impl std::ops::Deref for PolledProducer {
    type Target = BaseProducer<Deliveries>;

    fn deref(&self) -> &Self::Target {
        &self.producer
    }
}

impl Drop for PolledProducer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(poller) = self.poller.take() {
            let _ = poller.join();
        }
    }
}

/// Counts what librdkafka delivered or gave up on, from its polling thread.
#[derive(Clone)]
struct Deliveries {
    stats: Arc<Stats>,
    /// Shared with librdkafka's polling thread.
    throttle: Arc<Mutex<Throttle>>,
}

impl Deliveries {
    fn failed(&self, topic: &str, error: &dyn std::fmt::Display) {
        let stats = &self.stats;
        stats.publish_failures.fetch_add(1, Ordering::Relaxed);
        let allowed = self
            .throttle
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .allow();
        if let Some(suppressed) = allowed {
            tracing::warn!(
                topic, %error, suppressed,
                total_failures = stats.publish_failures.load(Ordering::Relaxed),
                "could not publish a record; carrying on"
            );
        }
    }
}

impl ClientContext for Deliveries {}

impl ProducerContext for Deliveries {
    /// What the record carries, as [`Carried::to_opaque`].
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, opaque: usize) {
        match result {
            Ok(_) => {
                let (counter, n) = Carried::from_opaque(opaque).counter(&self.stats);
                Stats::add(counter, n);
            }
            Err((error, message)) => self.failed(message.topic(), error),
        }
    }
}

/// What one record carries, so its delivery is counted in what was published.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Carried {
    /// This many connection events (at least one).
    Events(usize),
    Delta,
}

impl Carried {
    /// A delta as 0, a batch as its event count: a batch is never empty.
    fn to_opaque(self) -> usize {
        match self {
            Carried::Events(n) => n,
            Carried::Delta => 0,
        }
    }

    fn from_opaque(opaque: usize) -> Carried {
        match opaque {
            0 => Carried::Delta,
            n => Carried::Events(n),
        }
    }

    fn counter(self, stats: &Stats) -> (&AtomicU64, u64) {
        match self {
            Carried::Events(n) => (&stats.events_published, n as u64),
            Carried::Delta => (&stats.deltas_published, 1),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use rdkafka::consumer::{Consumer, StreamConsumer};
    use scope_schemas::{AddressFamily, ConnectionEventKind, EventSource};

    use super::*;

    fn event(local_port: i32) -> ConnectionEvent {
        ConnectionEvent {
            host_id: "h1".into(),
            kind: ConnectionEventKind::Connect,
            timestamp_us: 1,
            refresh: false,
            netns: 1,
            pid: Some(7),
            process_name: None,
            family: AddressFamily::Ipv4,
            local_addr: "10.0.0.1".into(),
            local_port,
            remote_addr: "10.0.0.2".into(),
            remote_port: 80,
            source: EventSource::Ebpf,
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn events_go_out_in_bounded_batches_in_order() {
        let (_broker, kafka) = scope_testkit::Broker::start_with_topics(1).await;
        let stats = Arc::new(Stats::default());
        let mut publisher = Publisher::new(&kafka, "h1", stats.clone()).unwrap();
        let events: Vec<_> = (0..2 * ConnectionEvents::MAX_EVENTS as i32 + 1)
            .map(event)
            .collect();
        publisher.send_events(&events);
        publisher.send_events(&[]);
        publisher.flush(Duration::from_secs(20)).await;
        assert_eq!(
            stats.events_published.load(Ordering::Relaxed),
            events.len() as u64
        );
        assert_eq!(stats.publish_failures.load(Ordering::Relaxed), 0);

        let consumer: StreamConsumer = kafka
            .client_config(&[("group.id", "batches"), ("auto.offset.reset", "earliest")])
            .create()
            .unwrap();
        consumer.subscribe(&[topics::CONNECTIONS]).unwrap();
        let mut batches: Vec<Vec<ConnectionEvent>> = Vec::new();
        let fold = |batches: &mut Vec<_>, message: &rdkafka::message::BorrowedMessage<'_>| {
            assert_eq!(message.key(), Some(&b"h1"[..]));
            let payload = message.payload().unwrap_or_default();
            batches.push(ConnectionEvents::decode(payload).unwrap().events);
        };
        let total = |batches: &Vec<Vec<_>>| batches.iter().map(Vec::len).sum::<usize>();
        scope_testkit::consume_until(
            &consumer,
            Duration::from_secs(30),
            &mut batches,
            fold,
            |b| total(b) >= events.len(),
        )
        .await
        .unwrap();
        let sizes: Vec<_> = batches.iter().map(Vec::len).collect();
        assert_eq!(
            sizes,
            [
                ConnectionEvents::MAX_EVENTS,
                ConnectionEvents::MAX_EVENTS,
                1
            ]
        );
        assert_eq!(batches.concat(), events);
    }

    #[tokio::test]
    async fn unreachable_broker_is_counted_not_fatal() {
        // A closed port: nothing listens, deliveries fail after message.timeout.ms.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut kafka = KafkaArgs::new(format!("127.0.0.1:{port}"));
        kafka
            .properties
            .push(("message.timeout.ms".into(), "200".into()));
        let stats = Arc::new(Stats::default());
        let mut publisher = Publisher::new(&kafka, "h1", stats.clone()).unwrap();
        let delta = ReportDelta {
            host_id: "h1".into(),
            reporter: "host".into(),
            seq: 1,
            full: true,
            timestamp_us: 1,
            upserts: vec![],
            removals: vec![],
        };
        publisher.send_delta(&delta);
        publisher.recover();
        let deadline = Instant::now() + Duration::from_secs(20);
        while stats.publish_failures.load(Ordering::Relaxed) == 0 {
            assert!(
                Instant::now() < deadline,
                "the failed delivery was never counted"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(stats.deltas_published.load(Ordering::Relaxed), 0);
        publisher.flush(Duration::from_millis(100)).await;
    }
}
