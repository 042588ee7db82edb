//! Reporters: each turns what a spy read into one kind of Weave Scope data.
//!
//! - [`endpoint`]: TCP connections, as `connect` / `accept` / `close` events.
//! - [`process`]: one `process` node per process.
//! - [`host`]: the `host` node, with the host's local networks.
//! - [`container`]: one `container` node per container.

pub mod container;
pub mod endpoint;
pub mod host;
pub mod process;

pub use container::ContainerReporter;
pub use endpoint::EndpointReporter;
pub use host::HostReporter;
pub use process::ProcessReporter;
