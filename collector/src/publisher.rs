//! Publishing to Kafka: one idempotent, lz4-compressing producer, every record keyed by the
//! host id so all of a host's records land in one partition, in order.
//!
//! Publishing never blocks the spy loop: records are handed to librdkafka's queue and their
//! delivery is awaited by background tasks that count successes and failures. While the
//! broker is down librdkafka keeps retrying queued records (up to `message.timeout.ms`); a
//! record it gives up on, or that does not fit the queue, is counted and logged (at most
//! every few seconds) and the collector carries on, since the next full report and refresh
//! re-send the state it carried. A producer that hits a fatal error is replaced.

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use scope_kafka::KafkaArgs;
use scope_schemas::{ConnectionEvent, Record, ReportDelta, topics};
use tokio::task::JoinSet;

use crate::{Error, stats::Stats};

/// Scope's producer settings; `-X` properties override them.
pub const PRODUCER_DEFAULTS: [(&str, &str); 3] = [
    ("enable.idempotence", "true"),
    ("compression.type", "lz4"),
    ("linger.ms", "50"),
];

/// How often a failure is logged at most, whatever the failure rate.
const FAILURE_LOG_EVERY: Duration = Duration::from_secs(10);

pub struct Publisher {
    kafka: KafkaArgs,
    producer: FutureProducer,
    key: String,
    stats: Arc<Stats>,
    deliveries: JoinSet<()>,
    throttle: Arc<Throttle>,
}

impl Publisher {
    pub fn new(kafka: &KafkaArgs, host_id: &str, stats: Arc<Stats>) -> Result<Self, Error> {
        Ok(Publisher {
            kafka: kafka.clone(),
            producer: create_producer(kafka, host_id)?,
            key: host_id.to_owned(),
            stats,
            deliveries: JoinSet::new(),
            throttle: Arc::new(Throttle::default()),
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
        self.reap();
        let payload = match payload {
            Ok(payload) => payload,
            Err(error) => {
                self.failed(topic, &error);
                return;
            }
        };
        let record = FutureRecord::to(topic).key(&self.key).payload(&payload);
        match self.producer.send_result(record) {
            Ok(delivery) => {
                let stats = self.stats.clone();
                let throttle = self.throttle.clone();
                self.deliveries.spawn(async move {
                    match delivery.await {
                        Ok(Ok(_)) => Stats::add(kind.counter(&stats), 1),
                        Ok(Err((error, _))) => failed(&stats, &throttle, topic, &error),
                        Err(_) => failed(&stats, &throttle, topic, &"producer dropped"),
                    }
                });
            }
            Err((error, _)) => self.failed(topic, &error),
        }
    }

    fn failed(&self, topic: &str, error: &dyn std::fmt::Display) {
        failed(&self.stats, &self.throttle, topic, error);
    }

    /// Drops finished delivery tasks.
    fn reap(&mut self) {
        while self.deliveries.try_join_next().is_some() {}
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
            match create_producer(&self.kafka, &self.key) {
                Ok(producer) => self.producer = producer,
                Err(error) => tracing::error!(%error, "could not replace the Kafka producer"),
            }
        }
    }

    /// Waits up to `timeout` for queued records to be delivered.
    pub async fn flush(mut self, timeout: Duration) {
        let producer = self.producer.clone();
        match tokio::task::spawn_blocking(move || producer.flush(timeout)).await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => tracing::warn!(
                %error, unsent = self.producer.in_flight_count(),
                "gave up waiting for queued records at shutdown"
            ),
            Err(error) => tracing::warn!(%error, "flushing the producer failed"),
        }
        // Delivery reports of what flushed are counted before returning.
        let _ = tokio::time::timeout(Duration::from_secs(1), async {
            while self.deliveries.join_next().await.is_some() {}
        })
        .await;
    }
}

fn create_producer(kafka: &KafkaArgs, host_id: &str) -> Result<FutureProducer, Error> {
    let client_id = format!("scope-collector-{host_id}");
    let mut defaults = vec![("client.id", client_id.as_str())];
    defaults.extend(PRODUCER_DEFAULTS);
    kafka
        .client_config(&defaults)
        .create()
        .map_err(Error::CreateProducer)
}

#[derive(Clone, Copy)]
enum Kind {
    Event,
    Delta,
}

impl Kind {
    fn counter(self, stats: &Stats) -> &AtomicU64 {
        match self {
            Kind::Event => &stats.events_published,
            Kind::Delta => &stats.deltas_published,
        }
    }
}

fn failed(stats: &Stats, throttle: &Throttle, topic: &str, error: &dyn std::fmt::Display) {
    stats.publish_failures.fetch_add(1, Ordering::Relaxed);
    if let Some(suppressed) = throttle.allow() {
        tracing::warn!(
            topic, %error, suppressed,
            total_failures = stats.publish_failures.load(Ordering::Relaxed),
            "could not publish a record; carrying on"
        );
    }
}

/// Lets one log line through per [`FAILURE_LOG_EVERY`], and tells how many it held back.
#[derive(Default)]
struct Throttle {
    state: Mutex<(Option<Instant>, u64)>,
}

impl Throttle {
    fn allow(&self) -> Option<u64> {
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let (last, suppressed) = &mut *state;
        let now = Instant::now();
        if last.is_some_and(|at| now.duration_since(at) < FAILURE_LOG_EVERY) {
            *suppressed += 1;
            return None;
        }
        *last = Some(now);
        Some(std::mem::take(suppressed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttle_lets_one_line_through_and_counts_the_rest() {
        let throttle = Throttle::default();
        assert_eq!(throttle.allow(), Some(0));
        assert_eq!(throttle.allow(), None);
        assert_eq!(throttle.allow(), None);
        // Pretend the window passed.
        throttle.state.lock().unwrap().0 = Some(Instant::now() - FAILURE_LOG_EVERY);
        assert_eq!(throttle.allow(), Some(2));
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
