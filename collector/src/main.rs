//! `scope-collector`: the collector of one node.

#[tokio::main]
async fn main() -> std::process::ExitCode {
    scope_runtime::service::main::<scope_collector::CollectorArgs>(
        "scope-collector",
        "Reports this node's connections, processes and host to Kafka",
    )
    .await
}
