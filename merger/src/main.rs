//! `scope-merger`: one member of the merger consumer group.

/// See the workspace's `mimalloc` entry: freeing a retired snapshot must not stall the threads
/// that serve the next one.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    scope_runtime::service::main::<scope_merger::MergerArgs>(
        "scope-merger",
        "Merges collector deltas into windowed Parquet snapshots",
    )
    .await
}
