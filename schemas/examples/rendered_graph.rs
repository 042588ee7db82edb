//! Rebuilds the current graph of one view from its rendered topic alone, as any downstream
//! program can: latest value per key wins, a tombstone removes the key.
//!
//! `cargo run -p scope-schemas --example rendered_graph -- [BROKERS] [VIEW]`

use std::{collections::BTreeMap, time::Duration};

use rdkafka::{
    ClientConfig, Message,
    consumer::{BaseConsumer, Consumer},
};
use scope_schemas::{Record, RenderedNode, topics::RENDERED_PREFIX};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let brokers = args.next().unwrap_or_else(|| "127.0.0.1:9092".into());
    let view = args.next().unwrap_or_else(|| "processes".into());
    let topic = format!("{RENDERED_PREFIX}{view}");

    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .set(
            "group.id",
            format!("rendered-graph-example-{}", std::process::id()),
        )
        .set("auto.offset.reset", "earliest")
        .set("enable.partition.eof", "true")
        .create()?;
    consumer.subscribe(&[&topic])?;

    let mut graph: BTreeMap<String, RenderedNode> = BTreeMap::new();
    loop {
        match consumer.poll(Duration::from_secs(10)) {
            None => break,
            Some(Err(rdkafka::error::KafkaError::PartitionEOF(_))) => break,
            Some(Err(e)) => return Err(e.into()),
            Some(Ok(message)) => {
                let key = String::from_utf8_lossy(message.key().unwrap_or_default()).into_owned();
                match message.payload() {
                    None => {
                        graph.remove(&key);
                    }
                    Some(bytes) => match RenderedNode::decode(bytes) {
                        Ok(node) => {
                            graph.insert(key, node);
                        }
                        Err(e) => eprintln!("skipping {key}: {e}"),
                    },
                }
            }
        }
    }
    for node in graph.values() {
        println!(
            "{} ({}) -> [{}]",
            node.id,
            node.label,
            node.adjacency.join(", ")
        );
    }
    Ok(())
}
