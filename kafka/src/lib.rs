//! Kafka for every Scope process: how its clients are configured, the topics it makes, and
//! the broker `scope up` embeds.
//!
//! # Layout
//! - [`KafkaArgs`]: `--brokers` and `-X key=value` librdkafka properties, the one way every
//!   component configures its Kafka clients.
//! - [`ensure_topics`]: creates the pipeline's topics (idempotent), with the retention or
//!   compaction their [`TopicSpec`] asks for.
//! - `embedded` (feature `embedded`): an in-process Kafka-protocol broker (tansu, memory
//!   storage) for `scope up` and for tests. librdkafka's mock cluster is not used: it stalls
//!   and loses messages under load. `api_versions` is the framing proxy in front of it that
//!   drops the default-valued tagged fields older clients (Debian's kcat) cannot read, and
//!   keeps tansu's group coordinator from stranding a dead member's partitions (`sync_group`,
//!   `members`).
//! - [`GROUP_SESSION_TIMEOUT_MS`]: how soon a killed stage's partitions go to another.

#[cfg(feature = "embedded")]
mod api_versions;
#[cfg(feature = "embedded")]
mod embedded;
/// Replays the fuzz corpus of the proxy's readers (`fuzz/`, target `kafka_frames`).
#[cfg(all(test, feature = "embedded"))]
#[path = "../../fuzz/harness/kafka_frames.rs"]
mod fuzz_corpus;

use std::time::Duration;

use rdkafka::{
    ClientConfig,
    admin::{AdminClient, AdminOptions, NewTopic, TopicReplication},
    client::DefaultClientContext,
    error::KafkaError,
    types::RDKafkaErrorCode,
};
use scope_schemas::topics::{Cleanup, TopicSpec};

#[cfg(feature = "embedded")]
pub use embedded::EmbeddedBroker;

/// Kafka connection settings, flattened into every component's command line.
#[derive(clap::Args, Clone, Debug)]
pub struct KafkaArgs {
    /// Kafka bootstrap servers (host:port, comma-separated).
    #[arg(long, env = "SCOPE_BROKERS", default_value = "127.0.0.1:9092")]
    pub brokers: String,
    /// A librdkafka property for every client, as key=value (repeatable), e.g.
    /// `-X security.protocol=SASL_SSL`. Applied after Scope's own defaults, so it wins.
    #[arg(short = 'X', long = "kafka-property", value_name = "KEY=VALUE",
          value_parser = parse_property, env = "SCOPE_KAFKA_PROPERTIES", value_delimiter = ',')]
    pub properties: Vec<(String, String)>,
}

fn parse_property(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_owned(), v.trim().to_owned())),
        _ => Err(format!("expected KEY=VALUE, got {s:?}")),
    }
}

impl KafkaArgs {
    /// Settings for the given bootstrap servers and no extra properties.
    pub fn new(brokers: impl Into<String>) -> Self {
        KafkaArgs {
            brokers: brokers.into(),
            properties: Vec::new(),
        }
    }

    /// A client configuration: bootstrap servers, then `defaults`, then the user's properties.
    pub fn client_config(&self, defaults: &[(&str, &str)]) -> ClientConfig {
        let mut config = ClientConfig::new();
        config.set("bootstrap.servers", &self.brokers);
        for (k, v) in defaults {
            config.set(*k, *v);
        }
        for (k, v) in &self.properties {
            config.set(k, v);
        }
        config
    }
}

/// `session.timeout.ms` of Scope's consumer groups (the merger's, the renderer's): how long a
/// member killed without leaving keeps its partitions before the group hands them to a
/// restarted or surviving member, on any broker. 10 s, Kafka's default before 3.0, instead of
/// librdkafka's 45 s, so a stage restarted after `kill -9` works again within seconds; its
/// heartbeats (every 3 s, from librdkafka's own thread) do not wait on the stage's work.
/// `-X session.timeout.ms=...` overrides it.
pub const GROUP_SESSION_TIMEOUT_MS: &str = "10000";

/// Why the Kafka plumbing failed: creating topics, or starting the embedded broker. The merger
/// and renderer only warn when topics cannot be made; `scope up` stops.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// librdkafka refused the admin client's configuration, before any broker is contacted:
    /// usually an invalid `-X key=value` property. Fix the property.
    #[error("creating a Kafka admin client: {0}")]
    Admin(#[source] KafkaError),
    /// The broker refused to create a topic (`topic` is `*` when the whole request failed,
    /// e.g. no broker answered in time): it is down, ACLs forbid it, or it rejects the
    /// settings (replication -1, the broker's default, needs Kafka 2.4). Wait for the broker,
    /// or create the topic by hand.
    #[error("creating topic {topic}: {source}")]
    CreateTopic { topic: String, source: KafkaError },
    /// The embedded broker of `scope up` could not start: most often its listen address
    /// (`--listen`) is in use, e.g. by a real Kafka; pass `--brokers` or another `--listen`.
    #[cfg(feature = "embedded")]
    #[error("starting the embedded broker on {addr}: {reason}")]
    Embedded {
        addr: std::net::SocketAddr,
        reason: String,
    },
}

/// Creates every topic in `specs` that does not exist yet. An existing topic is left as it is.
pub async fn ensure_topics(kafka: &KafkaArgs, specs: &[TopicSpec]) -> Result<(), Error> {
    let admin: AdminClient<DefaultClientContext> =
        kafka.client_config(&[]).create().map_err(Error::Admin)?;
    let configs: Vec<Vec<(&str, String)>> = specs.iter().map(|s| topic_config(s.cleanup)).collect();
    let new_topics: Vec<NewTopic> = specs
        .iter()
        .zip(&configs)
        .map(|(spec, config)| {
            config.iter().fold(
                NewTopic::new(&spec.name, spec.partitions, TopicReplication::Fixed(-1)),
                |t, (k, v)| t.set(k, v),
            )
        })
        .collect();
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    let results = admin
        .create_topics(&new_topics, &options)
        .await
        .map_err(|source| Error::CreateTopic {
            topic: "*".into(),
            source,
        })?;
    for result in results {
        match result {
            Ok(topic) => tracing::info!(topic, "created topic"),
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((topic, code)) => {
                return Err(Error::CreateTopic {
                    topic,
                    source: KafkaError::AdminOp(code),
                });
            }
        }
    }
    Ok(())
}

fn topic_config(cleanup: Cleanup) -> Vec<(&'static str, String)> {
    match cleanup {
        Cleanup::Delete { retention_ms } => {
            vec![
                ("cleanup.policy", "delete".into()),
                ("retention.ms", retention_ms.to_string()),
            ]
        }
        Cleanup::Compact => vec![("cleanup.policy", "compact".into())],
    }
}
