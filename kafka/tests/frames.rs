//! Request frames the embedded broker must never see: each closes its connection and is
//! counted, and the broker serves clients as before.

use std::{net::SocketAddr, time::Duration};

use scope_kafka::{EmbeddedBroker, KafkaArgs, ensure_topics};
use scope_runtime::metrics;
use scope_schemas::topics::{Cleanup, TopicSpec};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frames_out_of_bounds_are_closed_and_counted() {
    let broker = EmbeddedBroker::start(SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .expect("embedded broker starts");
    let lengths = [-1, i32::MIN, 0, 100 * 1024 * 1024 + 1, i32::MAX];
    for length in lengths {
        let mut stream = TcpStream::connect(broker.addr()).await.unwrap();
        let mut frame = length.to_be_bytes().to_vec();
        // An ApiVersions v3 header, as if a client were behind it.
        frame.extend_from_slice(&[0, 18, 0, 3, 0, 0, 0, 1]);
        stream.write_all(&frame).await.unwrap();
        let mut rest = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut rest))
            .await
            .expect("the connection is closed");
        assert!(
            read.is_err() || rest.is_empty(),
            "{length}: answered {rest:?}"
        );
    }
    // The broker may count a refusal just after the peer sees its connection closed: poll.
    let counted = format!("\nscope_broker_rejected_frames_total {}\n", lengths.len());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let text = metrics::encode(EmbeddedBroker::write_metrics);
        if text.contains(&counted) {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{text}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    ensure_topics(
        &KafkaArgs::new(broker.bootstrap()),
        &[TopicSpec {
            name: "frames.after".into(),
            partitions: 1,
            cleanup: Cleanup::Delete {
                retention_ms: 60_000,
            },
        }],
    )
    .await
    .expect("the broker still serves clients");
}
