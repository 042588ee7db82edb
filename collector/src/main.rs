//! `scope-collector`: the collector of one node.

use scope_collector::CollectorArgs;
use scope_kafka::service::Component;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    Component::<CollectorArgs>::parse(
        "scope-collector",
        "Reports this node's connections, processes and host to Kafka",
    )
    .main(
        "scope-collector",
        CollectorArgs::validate,
        |out| scope_collector::stats().write_metrics(out),
        scope_collector::run,
    )
    .await
}
