//! `scope-collector`: the collector of one node.

use scope_collector::CollectorArgs;
use scope_runtime::service::Cli;

// One thread: capabilities are per thread, and the collector drops those it no longer needs
// once its tracker is loaded, before any other thread exists to keep them.
#[tokio::main(flavor = "current_thread")]
async fn main() -> std::process::ExitCode {
    const NAME: &str = "scope-collector";
    let mut cli = Cli::<CollectorArgs>::parse(
        NAME,
        "Reports this node's connections, processes and host to Kafka",
    );
    cli.args.drop_capabilities = true;
    cli.main(NAME).await
}
