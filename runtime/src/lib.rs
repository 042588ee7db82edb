//! The life cycle every Scope process shares, whatever stage it runs: the component shape,
//! the binaries' `main`, Prometheus metrics and rate-limited logging.
//!
//! # Layout
//! - [`component`]: [`component::Component`], the trait every stage implements (validate,
//!   metrics, `run(self, cx)`), and its [`component::Context`].
//! - [`service`]: logging, signals, `--check-config`, `--metrics-addr` and exit codes for every
//!   binary.
//! - [`metrics`]: every component's counters as [`metrics::Families`], encoded by
//!   prometheus-client and served at `GET /metrics` by axum.
//! - [`throttle`]: [`throttle::Throttle`], one log line per interval for a repeated problem.

pub mod component;
pub mod metrics;
pub mod service;
pub mod throttle;
