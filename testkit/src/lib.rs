//! What Scope's integration tests share, so that each test file says only what it tests. A
//! dev-dependency only: failures panic, failing the test, except where the caller has more to
//! say than the kit ([`TimedOut`]).
//!
//! # Layout
//! - [`broker`]: an embedded broker on a free port with the pipeline's topics, one per test.
//! - [`component`]: a pipeline component running in the test, stopped by its shutdown
//!   signal.
//! - [`wait`]: deadlines instead of sleeps: read a topic until a condition holds
//!   ([`consume_until`]), or poll one ([`wait_for`], [`wait_for_async`]).
//! - [`process`]: child processes (Python servers and clients, the binaries under test) run
//!   as a user runs them, killed when dropped, whose output lines can be awaited.
//! - [`docker`]: a real Docker daemon (started if need be), a locally built busybox image,
//!   and containers removed when dropped.
//! - [`netns`]: network namespaces that stand in for hosts, deleted when dropped.
//! - [`cgroup`]: cgroups named as container runtimes name them (root only), removed when
//!   dropped.
//! - [`kube_api`]: a local server speaking the Kubernetes API (lists, watches, 410 Gone) and
//!   the API's objects, for the cluster collector.
//! - [`postgres`]: `psql` and pg8000 as a user runs them against the Postgres endpoint.
//! - [`scope_api`]: Weave Scope's HTTP API as its clients use it (Python's urllib, a route
//!   walk against Scope's recorded responses, a websocket reader).
//! - [`now_us`]: the records' clock, re-exported from `scope_schemas::time`.
//!
//! scope-kafka's own tests cannot use this crate (it depends on scope-kafka).

pub mod broker;
pub mod cgroup;
pub mod component;
pub mod docker;
pub mod kube_api;
pub mod netns;
pub mod postgres;
pub mod process;
pub mod scope_api;
pub mod wait;

pub use broker::Broker;
pub use cgroup::Cgroup;
pub use component::Running;
pub use docker::{Container, Docker};
pub use netns::Netns;
pub use process::{Process, free_port, python_json, python3, rss_bytes, run};
pub use scope_api::{http_request, scope_api_file, scope_api_script};
/// The clock of the pipeline's records, for test data that must look recent (the merger's
/// window and the renderer's retention drop what is old).
pub use scope_schemas::time::now_us;
pub use wait::{TimedOut, consume_until, consumer_from_start, wait_for, wait_for_async};
