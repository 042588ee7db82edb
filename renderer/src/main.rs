//! `scope-renderer`: renders every snapshot's views and publishes them.

use scope_kafka::service::Component;
use scope_renderer::RendererArgs;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    Component::<RendererArgs>::parse(
        "scope-renderer",
        "Renders topology views of each snapshot with SQL and publishes them",
    )
    .main(
        "scope-renderer",
        RendererArgs::validate,
        |out| scope_renderer::stats().write_metrics(out),
        scope_renderer::run,
    )
    .await
}
