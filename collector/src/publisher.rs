//! Publishing to Kafka: one idempotent, lz4-compressing producer, every record keyed by the
//! host id so all of a host's records land in one partition, in order.
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
use scope_kafka::throttle::Throttle;
use scope_schemas::{ConnectionEvent, Record, ReportDelta, topics};

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

    /// Queues connection events to `scope.connections`.
    pub fn send_events(&mut self, events: &[ConnectionEvent]) {
        for event in events {
            self.send(topics::CONNECTIONS, event.encode(), Kind::Event);
        }
    }

    /// Queues a report delta to `scope.reports`.
    pub fn send_delta(&mut self, delta: &ReportDelta) {
        self.send(topics::REPORTS, delta.encode(), Kind::Delta);
    }

    fn send<E: std::fmt::Display>(
        &mut self,
        topic: &'static str,
        payload: Result<Vec<u8>, E>,
        kind: Kind,
    ) {
        let payload = match payload {
            Ok(payload) => payload,
            Err(error) => {
                self.deliveries.failed(topic, &error);
                return;
            }
        };
        let record = BaseRecord::with_opaque_to(topic, kind as usize)
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
    /// The record's [`Kind`], as `Kind as usize`.
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, kind: usize) {
        match result {
            Ok(_) => Stats::add(Kind::from_opaque(kind).counter(&self.stats), 1),
            Err((error, message)) => self.failed(message.topic(), error),
        }
    }
}

#[derive(Clone, Copy)]
enum Kind {
    Event = 0,
    Delta = 1,
}

impl Kind {
    fn from_opaque(opaque: usize) -> Kind {
        if opaque == Kind::Delta as usize {
            Kind::Delta
        } else {
            Kind::Event
        }
    }

    fn counter(self, stats: &Stats) -> &AtomicU64 {
        match self {
            Kind::Event => &stats.events_published,
            Kind::Delta => &stats.deltas_published,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;

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
