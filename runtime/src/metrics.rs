//! Prometheus metrics: every component's counters as [`Families`], encoded by prometheus-client
//! and served at `GET /metrics` by axum.
//!
//! The counters stay plain atomics in each component's `Stats`, bumped on the hot paths. Each
//! `Stats` has one `write_metrics(&self, out: &mut Families)` that lists them with their
//! names, types and help; a scrape calls it and encodes what it wrote ([`Families`] is a
//! prometheus-client [`Collector`]), and the log line at stop prints the same [`Families`]. So
//! there is no registration to keep in step with the counters, and no second list of names.
//!
//! [`listen`] is what the binaries call (bind, log, spawn the server); [`encode`] is the text a
//! scrape returns, which the components' tests check their names against.

use std::{fmt, net::SocketAddr, sync::Arc};

use axum::{Router, extract::State, http::header, response::IntoResponse, routing::get};
use prometheus_client::{
    collector::Collector,
    encoding::{DescriptorEncoder, MetricEncoder, NoLabelSet},
    metrics::MetricType,
    registry::Registry,
};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// The content type of [`encode`]'s text: OpenMetrics, which Prometheus asks for first.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Counter,
    Gauge,
}

#[derive(Debug)]
enum Samples {
    One(u64),
    /// One sample per value of the family's single label.
    By {
        label: &'static str,
        values: Vec<(&'static str, u64)>,
    },
}

#[derive(Debug)]
struct Family {
    /// As exposed: a counter's ends in `_total`.
    name: &'static str,
    help: &'static str,
    kind: Kind,
    samples: Samples,
}

/// A component's metric families and their values, read from its counters at one moment.
///
/// Names, help texts and label values are `'static`: they are the components' constants, so a
/// label can never carry a pid or an address. `Debug` prints `series: value` pairs, the form
/// counters are logged in (the collector and the renderer do when they stop).
///
/// ```
/// use scope_runtime::metrics::{self, Families};
///
/// let write = |out: &mut Families| {
///     out.counter_by(
///         "scope_merger_messages_applied_total",
///         "Input messages that changed the merged state.",
///         "topic",
///         [("scope.connections", 7), ("scope.reports", 3)],
///     );
///     out.gauge("scope_merger_clock_skewed_hosts", "Hosts whose clock is out of bounds.", 1);
/// };
/// assert_eq!(
///     metrics::encode(write),
///     concat!(
///         "# HELP scope_merger_messages_applied Input messages that changed the merged state.\n",
///         "# TYPE scope_merger_messages_applied counter\n",
///         "scope_merger_messages_applied_total{topic=\"scope.connections\"} 7\n",
///         "scope_merger_messages_applied_total{topic=\"scope.reports\"} 3\n",
///         "# HELP scope_merger_clock_skewed_hosts Hosts whose clock is out of bounds.\n",
///         "# TYPE scope_merger_clock_skewed_hosts gauge\n",
///         "scope_merger_clock_skewed_hosts 1\n",
///         "# EOF\n",
///     )
/// );
/// assert_eq!(
///     format!("{:?}", Families::of(write)),
///     "{scope_merger_messages_applied_total{topic=\"scope.connections\"}: 7, \
///       scope_merger_messages_applied_total{topic=\"scope.reports\"}: 3, \
///       scope_merger_clock_skewed_hosts: 1}"
/// );
/// ```
#[derive(Default)]
pub struct Families(Vec<Family>);

impl Families {
    /// The families `write` adds.
    pub fn of(write: impl FnOnce(&mut Families)) -> Self {
        let mut families = Families::default();
        write(&mut families);
        families
    }

    /// A counter without labels. Its name ends in `_total`, and is exposed as it is.
    pub fn counter(&mut self, name: &'static str, help: &'static str, value: u64) {
        self.push(name, help, Kind::Counter, Samples::One(value));
    }

    /// A counter with one sample per value of `label`.
    pub fn counter_by(
        &mut self,
        name: &'static str,
        help: &'static str,
        label: &'static str,
        values: impl IntoIterator<Item = (&'static str, u64)>,
    ) {
        let values = values.into_iter().collect();
        self.push(name, help, Kind::Counter, Samples::By { label, values });
    }

    /// A gauge without labels.
    pub fn gauge(&mut self, name: &'static str, help: &'static str, value: u64) {
        self.push(name, help, Kind::Gauge, Samples::One(value));
    }

    /// A gauge with one sample per value of `label`.
    pub fn gauge_by(
        &mut self,
        name: &'static str,
        help: &'static str,
        label: &'static str,
        values: impl IntoIterator<Item = (&'static str, u64)>,
    ) {
        let values = values.into_iter().collect();
        self.push(name, help, Kind::Gauge, Samples::By { label, values });
    }

    fn push(&mut self, name: &'static str, help: &'static str, kind: Kind, samples: Samples) {
        // prometheus-client appends `_total` to every counter sample; the name is cut to match.
        debug_assert!(
            kind != Kind::Counter || name.ends_with("_total"),
            "counter {name} does not end in _total"
        );
        // Prometheus rejects a scrape that has one family twice.
        debug_assert!(
            self.0.iter().all(|f| f.name != name),
            "metric {name} written twice"
        );
        self.0.push(Family {
            name,
            help,
            kind,
            samples,
        });
    }
}

impl fmt::Debug for Families {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut map = f.debug_map();
        for family in &self.0 {
            match &family.samples {
                Samples::One(value) => {
                    map.entry(&format_args!("{}", family.name), value);
                }
                Samples::By { label, values } => {
                    for (v, value) in values {
                        map.entry(&format_args!("{}{{{label}=\"{v}\"}}", family.name), value);
                    }
                }
            }
        }
        map.finish()
    }
}

impl Collector for Families {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> fmt::Result {
        for family in &self.0 {
            let (name, metric_type) = match family.kind {
                // OpenMetrics names a counter's family without the suffix its samples carry.
                Kind::Counter => (
                    family.name.strip_suffix("_total").unwrap_or(family.name),
                    MetricType::Counter,
                ),
                Kind::Gauge => (family.name, MetricType::Gauge),
            };
            let mut metric = encoder.encode_descriptor(name, family.help, None, metric_type)?;
            match &family.samples {
                Samples::One(value) => sample(&mut metric, family.kind, *value)?,
                Samples::By { label, values } => {
                    for (v, value) in values {
                        sample(
                            &mut metric.encode_family(&[(*label, *v)])?,
                            family.kind,
                            *value,
                        )?;
                    }
                }
            }
        }
        Ok(())
    }
}

fn sample(metric: &mut MetricEncoder<'_>, kind: Kind, value: u64) -> fmt::Result {
    match kind {
        Kind::Counter => metric.encode_counter::<NoLabelSet, _, u64>(&value, None),
        Kind::Gauge => metric.encode_gauge(&value),
    }
}

/// The OpenMetrics text of the families `write` adds, as a scrape returns it.
pub fn encode(write: impl FnOnce(&mut Families)) -> String {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(Families::of(write)));
    let mut text = String::new();
    // The text encoder fails only when its writer does.
    prometheus_client::encoding::text::encode(&mut text, &registry)
        .expect("writing to a String cannot fail");
    text
}

/// What a scrape calls for the families it returns.
type Write = Arc<dyn Fn(&mut Families) + Send + Sync>;

/// `GET /metrics` (and `HEAD`); axum answers any other path with 404 and any other method
/// with 405.
fn router(write: Write) -> Router {
    Router::new()
        .route("/metrics", get(scrape))
        .with_state(write)
}

async fn scrape(State(write): State<Write>) -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, CONTENT_TYPE),
            // One request per connection, as scrapes are seconds apart: a client that reads
            // the response to the end of the stream (a script, a test) then gets that end.
            (header::CONNECTION, "close"),
        ],
        encode(|out| write(out)),
    )
}

/// `--metrics-addr` could not be bound: the port is in use (often another Scope process), or it
/// is below 1024 without the privilege. Choose another address or free the port.
#[derive(Debug, thiserror::Error)]
#[error("listening for metrics on {addr}: {source}")]
pub struct ListenError {
    addr: SocketAddr,
    source: std::io::Error,
}

/// Binds `addr`, logs the bound address and serves the families `write` adds on it until
/// `shutdown`; then it stops accepting, and open connections end after their response.
/// Returns the bound address (useful with port 0). Binding happens before this returns, so
/// an address in use is the caller's startup error rather than a warning lost in the logs.
pub async fn listen(
    addr: SocketAddr,
    write: impl Fn(&mut Families) + Send + Sync + 'static,
    shutdown: CancellationToken,
) -> Result<SocketAddr, ListenError> {
    let bind_error = |source| ListenError { addr, source };
    let listener = TcpListener::bind(addr).await.map_err(bind_error)?;
    let bound = listener.local_addr().map_err(bind_error)?;
    tracing::info!(addr = %bound, "serving Prometheus metrics at http://{bound}/metrics");
    // axum retries failed accepts itself and so never returns an error.
    tokio::spawn(
        axum::serve(listener, router(Arc::new(write)))
            .with_graceful_shutdown(shutdown.cancelled_owned())
            .into_future(),
    );
    Ok(bound)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::{
        io::{AsyncReadExt, AsyncWriteExt},
        net::TcpStream,
    };

    use super::*;

    fn test_families(out: &mut Families) {
        out.counter("scope_test_requests_total", "Test counter.", 42);
        out.gauge_by(
            "scope_test_mode",
            "Test gauge.",
            "mode",
            [("a", 1), ("b", 0)],
        );
    }

    #[test]
    fn counters_keep_their_total_name_and_labels_their_values() {
        let text = encode(test_families);
        assert_eq!(
            text,
            "# HELP scope_test_requests Test counter.\n\
             # TYPE scope_test_requests counter\n\
             scope_test_requests_total 42\n\
             # HELP scope_test_mode Test gauge.\n\
             # TYPE scope_test_mode gauge\n\
             scope_test_mode{mode=\"a\"} 1\n\
             scope_test_mode{mode=\"b\"} 0\n\
             # EOF\n"
        );
        assert_eq!(encode(|_| {}), "# EOF\n");
        assert_eq!(
            format!("{:?}", Families::of(test_families)),
            "{scope_test_requests_total: 42, scope_test_mode{mode=\"a\"}: 1, \
             scope_test_mode{mode=\"b\"}: 0}"
        );
    }

    #[test]
    fn values_are_written_exactly() {
        let text = encode(|out| {
            out.counter("scope_test_total", "Big.", u64::MAX);
            out.gauge("scope_test_gauge", "Big.", u64::MAX);
        });
        assert!(
            text.contains("\nscope_test_total 18446744073709551615\n"),
            "{text}"
        );
        assert!(
            text.contains("\nscope_test_gauge 18446744073709551615\n"),
            "{text}"
        );
    }

    async fn start() -> (SocketAddr, CancellationToken) {
        let shutdown = CancellationToken::new();
        let addr = listen(
            "127.0.0.1:0".parse().unwrap(),
            test_families,
            shutdown.clone(),
        )
        .await
        .unwrap();
        (addr, shutdown)
    }

    /// Sends `request` on a new connection, closes the sending side and reads until the
    /// server closes its side; the response head is lowercased.
    async fn exchange(addr: SocketAddr, request: &[u8]) -> (String, String) {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream.write_all(request).await.unwrap();
        stream.shutdown().await.unwrap();
        let mut response = Vec::new();
        tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut response))
            .await
            .expect("server closes the connection")
            .unwrap();
        let response = String::from_utf8(response).unwrap();
        let (head, body) = response
            .split_once("\r\n\r\n")
            .unwrap_or((response.as_str(), ""));
        (head.to_ascii_lowercase(), body.to_owned())
    }

    #[tokio::test]
    async fn serves_metrics_over_tcp_and_answers_the_rest_with_errors() {
        let (addr, shutdown) = start().await;

        let (head, body) = exchange(addr, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").await;
        assert!(head.starts_with("http/1.1 200 ok\r\n"), "{head}");
        assert!(
            head.contains("\r\ncontent-type: application/openmetrics-text; version=1.0.0;"),
            "{head}"
        );
        assert!(
            head.contains(&format!("content-length: {}", body.len())),
            "{head}"
        );
        assert!(body.contains("\nscope_test_requests_total 42\n"), "{body}");
        assert!(body.ends_with("# EOF\n"), "{body}");

        let (head, _) = exchange(addr, b"GET /metrics?x=1 HTTP/1.0\r\n\r\n").await;
        assert!(head.contains(" 200 ok\r\n"), "{head}");

        let (head, body) = exchange(addr, b"HEAD /metrics HTTP/1.1\r\nHost: x\r\n\r\n").await;
        assert!(head.starts_with("http/1.1 200 ok\r\n"), "{head}");
        assert!(body.is_empty(), "{body}");

        let close = "Host: x\r\nConnection: close\r\n\r\n";
        let (head, _) = exchange(addr, format!("GET / HTTP/1.1\r\n{close}").as_bytes()).await;
        assert!(head.starts_with("http/1.1 404 not found\r\n"), "{head}");
        let (head, _) = exchange(
            addr,
            format!("GET /metricsx HTTP/1.1\r\n{close}").as_bytes(),
        )
        .await;
        assert!(head.starts_with("http/1.1 404 "), "{head}");

        let post = format!("POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n{close}");
        let (head, _) = exchange(addr, post.as_bytes()).await;
        assert!(head.starts_with("http/1.1 405 "), "{head}");
        assert!(head.contains("\r\nallow: get,head"), "{head}");

        for garbage in [
            &b"\x00\xff\xfe garbage \x80\r\n\r\n"[..],
            b"GET\r\n\r\n",
            b"GET /metrics SPDY/3\r\n\r\n",
        ] {
            let (head, _) = exchange(addr, garbage).await;
            assert!(head.starts_with("http/1.1 400 "), "{garbage:?}: {head}");
        }
        let many_headers: String = (0..200).map(|i| format!("X-{i}: {i}\r\n")).collect();
        let (head, _) = exchange(
            addr,
            format!("GET /metrics HTTP/1.1\r\n{many_headers}\r\n").as_bytes(),
        )
        .await;
        assert!(head.starts_with("http/1.1 431 "), "{head}");
        // Connect and hang up at once; half a request, then the end of input.
        drop(TcpStream::connect(addr).await.unwrap());
        let (head, _) = exchange(addr, b"GET /metr").await;
        assert!(!head.contains(" 200 "), "{head}");

        let (_, body) = exchange(addr, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").await;
        assert!(body.contains("\nscope_test_requests_total 42\n"), "{body}");

        // An idle connection does not keep the endpoint open past shutdown.
        let _idle = TcpStream::connect(addr).await.unwrap();
        shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(10), async {
            while TcpStream::connect(addr).await.is_ok() {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await
        .expect("the endpoint stops accepting on shutdown");
    }

    #[tokio::test]
    async fn listen_reports_an_address_in_use() {
        let taken = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = taken.local_addr().unwrap();
        let error = listen(addr, |_| {}, CancellationToken::new())
            .await
            .unwrap_err();
        assert_eq!(
            error.source.kind(),
            std::io::ErrorKind::AddrInUse,
            "{error}"
        );
        assert!(error.to_string().contains(&addr.to_string()), "{error}");
    }
}
