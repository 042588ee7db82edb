//! `scope-merger`: one member of the merger consumer group.

#[tokio::main]
async fn main() -> std::process::ExitCode {
    scope_kafka::service::main::<scope_merger::MergerArgs>(
        "scope-merger",
        "Merges collector deltas into windowed Parquet snapshots",
    )
    .await
}
