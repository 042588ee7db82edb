//! `scope-renderer`: renders every snapshot's views and publishes them.

/// See the workspace's `mimalloc` entry: freeing a retired snapshot must not stall the threads
/// that serve the next one.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    scope_runtime::service::main::<scope_renderer::RendererArgs>(
        "scope-renderer",
        "Renders topology views of each snapshot with SQL and publishes them",
    )
    .await
}
