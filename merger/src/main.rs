//! `scope-merger`: one member of the merger consumer group.

use scope_kafka::service::Component;
use scope_merger::MergerArgs;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    Component::<MergerArgs>::parse(
        "scope-merger",
        "Merges collector deltas into windowed Parquet snapshots",
    )
    .main(
        "scope-merger",
        MergerArgs::validate,
        |out| scope_merger::stats().write_metrics(out),
        scope_merger::run,
    )
    .await
}
