//! `scope-renderer`: renders every snapshot's views and publishes them.

#[tokio::main]
async fn main() -> std::process::ExitCode {
    scope_kafka::service::main::<scope_renderer::RendererArgs>(
        "scope-renderer",
        "Renders topology views of each snapshot with SQL and publishes them",
    )
    .await
}
