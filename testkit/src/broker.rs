//! One embedded broker per test, so that no test sees another's records, groups or offsets.

use scope_kafka::{EmbeddedBroker, KafkaArgs, ensure_topics};
use scope_schemas::topics;

/// A running embedded broker, stopped when dropped: hold it for as long as the test uses
/// the [`KafkaArgs`] it came with.
#[must_use = "the broker stops when dropped"]
pub struct Broker {
    _embedded: EmbeddedBroker,
}

impl Broker {
    /// Starts a broker on a free loopback port and creates every pipeline topic, the input
    /// topics with `partitions` partitions, so that nothing depends on topic auto-creation.
    /// Returns it with the client settings that reach it.
    pub async fn start_with_topics(partitions: i32) -> (Broker, KafkaArgs) {
        let embedded = EmbeddedBroker::start("127.0.0.1:0".parse().expect("a socket address"))
            .await
            .expect("the embedded broker starts");
        let kafka = KafkaArgs::new(embedded.bootstrap());
        ensure_topics(&kafka, &topics::all(partitions))
            .await
            .expect("the pipeline's topics are created");
        (
            Broker {
                _embedded: embedded,
            },
            kafka,
        )
    }
}
