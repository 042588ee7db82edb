//! Prometheus metrics over plain HTTP: a text-format builder and a tiny `GET /metrics` server.
//!
//! Every component keeps its counters in a `Stats` struct of atomics; a scrape renders them
//! afresh into an [`Exposition`], so there is no registry to keep in step with the counters.
//! The server is a hand-written HTTP/1.1 responder over tokio rather than a web framework: it
//! answers one path, one request per connection, and that is all a Prometheus scraper needs.
//!
//! [`listen`] is what the binaries call (bind, log, spawn); [`serve`] takes a bound listener
//! and a shutdown token, so tests start it on port 0 themselves.

use std::{collections::HashMap, fmt::Write as _, io, net::SocketAddr, sync::Arc, time::Duration};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    sync::Semaphore,
};
use tokio_util::sync::CancellationToken;

/// The content type of the text exposition format this module writes.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// A metric sample's value: integers are written exactly, floats in Prometheus' spelling
/// (`NaN`, `+Inf`, `-Inf`).
pub trait MetricValue {
    fn write_to(&self, out: &mut String);
}

impl MetricValue for u64 {
    fn write_to(&self, out: &mut String) {
        let _ = write!(out, "{self}");
    }
}

impl MetricValue for i64 {
    fn write_to(&self, out: &mut String) {
        let _ = write!(out, "{self}");
    }
}

impl MetricValue for f64 {
    fn write_to(&self, out: &mut String) {
        if self.is_nan() {
            out.push_str("NaN");
        } else if self.is_infinite() {
            out.push_str(if *self > 0.0 { "+Inf" } else { "-Inf" });
        } else {
            let _ = write!(out, "{self}");
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Counter,
    Gauge,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
        }
    }
}

#[derive(Debug)]
struct Family {
    name: String,
    help: String,
    kind: Kind,
    /// Sample lines, each ending in `\n`.
    samples: String,
}

/// A scrape's worth of metrics in the Prometheus text format 0.0.4.
///
/// The format requires every sample of a family to follow that family's single `# HELP` and
/// `# TYPE` lines, so samples are grouped by name here and families are written in the order
/// they first appeared; callers may add the samples of one family in any order.
///
/// Names are the caller's constants and are only checked in debug builds; label values and
/// help texts may be anything and are escaped.
///
/// ```
/// use scope_kafka::metrics::Exposition;
///
/// let mut out = Exposition::new();
/// let help = "Input messages that changed the merged state.";
/// let name = "scope_merger_messages_applied_total";
/// out.counter_with(name, help, &[("topic", "scope.connections")], 7_u64);
/// out.counter("scope_merger_snapshots_written_total", "Snapshots made durable.", 2_u64);
/// out.counter_with(name, help, &[("topic", "scope.reports")], 3_u64);
/// assert_eq!(
///     out.finish(),
///     concat!(
///         "# HELP scope_merger_messages_applied_total Input messages that changed the merged state.\n",
///         "# TYPE scope_merger_messages_applied_total counter\n",
///         "scope_merger_messages_applied_total{topic=\"scope.connections\"} 7\n",
///         "scope_merger_messages_applied_total{topic=\"scope.reports\"} 3\n",
///         "# HELP scope_merger_snapshots_written_total Snapshots made durable.\n",
///         "# TYPE scope_merger_snapshots_written_total counter\n",
///         "scope_merger_snapshots_written_total 2\n",
///     )
/// );
/// ```
#[derive(Debug, Default)]
pub struct Exposition {
    families: Vec<Family>,
    /// Family name to its index in `families`.
    index: HashMap<String, usize>,
}

impl Exposition {
    pub fn new() -> Self {
        Self::default()
    }

    /// A counter without labels. By convention its name ends in `_total`.
    pub fn counter(&mut self, name: &str, help: &str, value: impl MetricValue) {
        self.sample(Kind::Counter, name, help, &[], value);
    }

    /// One labelled sample of a counter family; call once per label set.
    pub fn counter_with(
        &mut self,
        name: &str,
        help: &str,
        labels: &[(&str, &str)],
        value: impl MetricValue,
    ) {
        self.sample(Kind::Counter, name, help, labels, value);
    }

    /// A gauge without labels.
    pub fn gauge(&mut self, name: &str, help: &str, value: impl MetricValue) {
        self.sample(Kind::Gauge, name, help, &[], value);
    }

    /// One labelled sample of a gauge family; call once per label set.
    pub fn gauge_with(
        &mut self,
        name: &str,
        help: &str,
        labels: &[(&str, &str)],
        value: impl MetricValue,
    ) {
        self.sample(Kind::Gauge, name, help, labels, value);
    }

    /// The exposition text: each family's `# HELP`, `# TYPE` and samples, every line ending
    /// in a newline.
    pub fn finish(self) -> String {
        let mut out = String::with_capacity(
            self.families
                .iter()
                .map(|f| 2 * f.name.len() + f.help.len() + f.samples.len() + 32)
                .sum(),
        );
        for family in &self.families {
            out.push_str("# HELP ");
            out.push_str(&family.name);
            out.push(' ');
            escape_help(&family.help, &mut out);
            out.push_str("\n# TYPE ");
            out.push_str(&family.name);
            out.push(' ');
            out.push_str(family.kind.as_str());
            out.push('\n');
            out.push_str(&family.samples);
        }
        out
    }

    fn sample(
        &mut self,
        kind: Kind,
        name: &str,
        help: &str,
        labels: &[(&str, &str)],
        value: impl MetricValue,
    ) {
        debug_assert!(is_metric_name(name), "invalid metric name {name:?}");
        let i = match self.index.get(name) {
            Some(&i) => i,
            None => {
                self.families.push(Family {
                    name: name.to_owned(),
                    help: help.to_owned(),
                    kind,
                    samples: String::new(),
                });
                self.index.insert(name.to_owned(), self.families.len() - 1);
                self.families.len() - 1
            }
        };
        let family = &mut self.families[i];
        // One family has one type; the first call's help and type stand.
        debug_assert_eq!(family.kind, kind, "metric {name} written with two types");
        let out = &mut family.samples;
        out.push_str(name);
        if !labels.is_empty() {
            out.push('{');
            for (n, (label, value)) in labels.iter().enumerate() {
                debug_assert!(is_label_name(label), "invalid label name {label:?}");
                if n > 0 {
                    out.push(',');
                }
                out.push_str(label);
                out.push_str("=\"");
                escape_label_value(value, out);
                out.push('"');
            }
            out.push('}');
        }
        out.push(' ');
        value.write_to(out);
        out.push('\n');
    }
}

/// `# HELP` text: backslash and line feed are escaped (quotes are not, per the format).
fn escape_help(help: &str, out: &mut String) {
    for c in help.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

/// A label value: backslash, double quote and line feed are escaped.
fn escape_label_value(value: &str, out: &mut String) {
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

/// `[a-zA-Z_:][a-zA-Z0-9_:]*`
fn is_metric_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// `[a-zA-Z_][a-zA-Z0-9_]*`
fn is_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// What a scrape renders: the whole exposition text, computed afresh on every request.
pub type Render = Arc<dyn Fn() -> String + Send + Sync>;

/// Binds `addr`, logs the bound address and serves `families` on it until `shutdown`.
/// Returns the bound address (useful with port 0). Binding happens before this returns, so
/// an address in use is the caller's startup error rather than a warning lost in the logs.
pub async fn listen(
    addr: SocketAddr,
    families: impl Fn(&mut Exposition) + Send + Sync + 'static,
    shutdown: CancellationToken,
) -> Result<SocketAddr, crate::Error> {
    let bind_error = |source| crate::Error::MetricsListen { addr, source };
    let listener = TcpListener::bind(addr).await.map_err(bind_error)?;
    let bound = listener.local_addr().map_err(bind_error)?;
    tracing::info!(addr = %bound, "serving Prometheus metrics at http://{bound}/metrics");
    let render: Render = Arc::new(move || {
        let mut out = Exposition::new();
        families(&mut out);
        out.finish()
    });
    tokio::spawn(serve(listener, render, shutdown));
    Ok(bound)
}

/// Limits that keep a slow or hostile client from holding resources.
#[derive(Clone, Copy, Debug)]
struct Limits {
    /// Connections served at once; further ones wait in the listen backlog.
    connections: u32,
    /// The request line and headers; a scraper sends a few hundred bytes.
    head_bytes: usize,
    /// To receive the request head, and again to send the response.
    io_timeout: Duration,
    /// After the response: how long, and how many bytes, to drain before closing.
    linger: Duration,
    linger_bytes: usize,
}

const LIMITS: Limits = Limits {
    connections: 64,
    head_bytes: 8 * 1024,
    io_timeout: Duration::from_secs(10),
    linger: Duration::from_secs(2),
    linger_bytes: 256 * 1024,
};

/// Answers `GET /metrics` (and `HEAD`) on `listener` with `render()`, until `shutdown` is
/// cancelled; then stops accepting, ends open connections and returns.
///
/// Any other path is 404 and any other method 405. Each connection gets its own task and
/// carries one request (`Connection: close`): a scraper asks every few seconds, so keep-alive
/// would save nothing worth its state. The request head is read with a size limit and a
/// timeout, and whatever a client sends ends at worst in a 4xx and a closed connection.
pub async fn serve(listener: TcpListener, render: Render, shutdown: CancellationToken) {
    serve_with(listener, render, shutdown, LIMITS).await
}

async fn serve_with(
    listener: TcpListener,
    render: Render,
    shutdown: CancellationToken,
    limits: Limits,
) {
    // A permit per open connection; taking them all back at the end waits for the last one.
    let permits = Arc::new(Semaphore::new(limits.connections as usize));
    loop {
        let permit = tokio::select! {
            _ = shutdown.cancelled() => break,
            permit = permits.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break, // never closed
            },
        };
        let stream = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(error) => {
                    // Mostly out of file descriptors: pause rather than spin.
                    tracing::warn!(%error, "metrics endpoint cannot accept a connection");
                    tokio::select! {
                        _ = shutdown.cancelled() => break,
                        _ = tokio::time::sleep(Duration::from_millis(100)) => continue,
                    }
                }
            },
        };
        let render = render.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            tokio::select! {
                _ = shutdown.cancelled() => {}
                result = connection(stream, &*render, limits) => {
                    if let Err(error) = result {
                        tracing::debug!(%error, "metrics connection failed");
                    }
                }
            }
            drop(permit);
        });
    }
    let _ = permits.acquire_many(limits.connections).await;
}

enum Head {
    /// Request line and headers, up to the blank line.
    Complete(Vec<u8>),
    /// The client closed before finishing its request.
    Closed,
    TooLarge,
}

async fn connection(
    mut stream: TcpStream,
    render: &(dyn Fn() -> String + Send + Sync),
    limits: Limits,
) -> io::Result<()> {
    let response =
        match tokio::time::timeout(limits.io_timeout, read_head(&mut stream, limits.head_bytes))
            .await
        {
            Err(_) => Response::error(408, "Request Timeout"),
            Ok(Err(error)) => return Err(error),
            Ok(Ok(Head::Closed)) => return Ok(()),
            Ok(Ok(Head::TooLarge)) => Response::error(431, "Request Header Fields Too Large"),
            Ok(Ok(Head::Complete(head))) => respond(&head, render),
        };
    let bytes = response.into_bytes();
    tokio::time::timeout(limits.io_timeout, async {
        stream.write_all(&bytes).await?;
        stream.shutdown().await
    })
    .await
    .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "writing the response"))??;
    // Closing a socket with unread input resets the connection, and the reset can discard the
    // response before the client reads it (a 431 for a huge head, a 405 with a body). So read
    // and drop what the client still sends, until it closes or the linger time is up.
    let _ = tokio::time::timeout(limits.linger, async {
        let mut sink = [0u8; 1024];
        let mut left = limits.linger_bytes;
        while left > 0 {
            match stream.read(&mut sink).await {
                Ok(0) | Err(_) => break,
                Ok(n) => left = left.saturating_sub(n),
            }
        }
    })
    .await;
    Ok(())
}

async fn read_head(stream: &mut TcpStream, limit: usize) -> io::Result<Head> {
    let mut head = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    loop {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Ok(Head::Closed);
        }
        // Look for the blank line from just before the new bytes, in case it straddles reads.
        let from = head.len().saturating_sub(3);
        head.extend_from_slice(&chunk[..n]);
        if let Some(end) = blank_line(&head[from..]) {
            head.truncate(from + end);
            return Ok(Head::Complete(head));
        }
        if head.len() >= limit {
            return Ok(Head::TooLarge);
        }
    }
}

/// Where the head ends: after `\r\n\r\n`, or after `\n\n` from a lenient client.
fn blank_line(bytes: &[u8]) -> Option<usize> {
    bytes.windows(2).enumerate().find_map(|(i, w)| match w {
        b"\n\n" => Some(i + 2),
        b"\n\r" if bytes.get(i + 2) == Some(&b'\n') => Some(i + 3),
        _ => None,
    })
}

fn respond(head: &[u8], render: &(dyn Fn() -> String + Send + Sync)) -> Response {
    let line_end = head.iter().position(|&b| b == b'\n').unwrap_or(head.len());
    let Ok(line) = std::str::from_utf8(&head[..line_end]) else {
        return Response::error(400, "Bad Request");
    };
    let mut parts = line.trim_end_matches('\r').split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Response::error(400, "Bad Request");
    };
    if method.is_empty() || !version.starts_with("HTTP/1.") {
        return Response::error(400, "Bad Request");
    }
    let path = target.split_once('?').map_or(target, |(path, _)| path);
    if path != "/metrics" {
        return Response::error(404, "Not Found");
    }
    match method {
        "GET" => Response::ok(render(), true),
        "HEAD" => Response::ok(render(), false),
        _ => Response {
            extra_header: Some("Allow: GET, HEAD"),
            ..Response::error(405, "Method Not Allowed")
        },
    }
}

struct Response {
    status: u16,
    reason: &'static str,
    content_type: &'static str,
    extra_header: Option<&'static str>,
    body: String,
    /// False for `HEAD`: the headers describe the body, which is not sent.
    send_body: bool,
}

impl Response {
    fn ok(body: String, send_body: bool) -> Self {
        Response {
            status: 200,
            reason: "OK",
            content_type: CONTENT_TYPE,
            extra_header: None,
            body,
            send_body,
        }
    }

    fn error(status: u16, reason: &'static str) -> Self {
        Response {
            status,
            reason,
            content_type: "text/plain; charset=utf-8",
            extra_header: None,
            body: format!("{}\n", reason.to_ascii_lowercase()),
            send_body: true,
        }
    }

    fn into_bytes(self) -> Vec<u8> {
        let mut out = format!(
            "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n",
            self.status,
            self.reason,
            self.content_type,
            self.body.len()
        );
        if let Some(header) = self.extra_header {
            out.push_str(header);
            out.push_str("\r\n");
        }
        out.push_str("\r\n");
        if self.send_body {
            out.push_str(&self.body);
        }
        out.into_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_are_grouped_under_one_header_in_first_seen_order() {
        let mut out = Exposition::new();
        out.counter_with("a_total", "A.", &[("k", "1")], 1_u64);
        out.gauge("b", "B.", 2.5);
        out.counter_with("a_total", "A.", &[("k", "2")], 2_u64);
        out.gauge_with("c", "C.", &[("x", "y"), ("z", "w")], -3_i64);
        let text = out.finish();
        assert_eq!(
            text,
            "# HELP a_total A.\n# TYPE a_total counter\n\
             a_total{k=\"1\"} 1\na_total{k=\"2\"} 2\n\
             # HELP b B.\n# TYPE b gauge\nb 2.5\n\
             # HELP c C.\n# TYPE c gauge\nc{x=\"y\",z=\"w\"} -3\n"
        );
        assert_eq!(text.matches("# TYPE a_total").count(), 1);
    }

    #[test]
    fn label_values_and_help_are_escaped() {
        let mut out = Exposition::new();
        out.counter_with(
            "x_total",
            "Line one\nback\\slash \"quoted\"",
            &[("path", "C:\\dir \"q\"\nnext")],
            1_u64,
        );
        assert_eq!(
            out.finish(),
            "# HELP x_total Line one\\nback\\\\slash \"quoted\"\n\
             # TYPE x_total counter\n\
             x_total{path=\"C:\\\\dir \\\"q\\\"\\nnext\"} 1\n"
        );
    }

    #[test]
    fn values_use_prometheus_spelling() {
        let mut out = Exposition::new();
        out.gauge_with("g", "G.", &[("v", "nan")], f64::NAN);
        out.gauge_with("g", "G.", &[("v", "inf")], f64::INFINITY);
        out.gauge_with("g", "G.", &[("v", "-inf")], f64::NEG_INFINITY);
        out.gauge_with("g", "G.", &[("v", "max")], u64::MAX);
        let text = out.finish();
        assert!(text.contains("g{v=\"nan\"} NaN\n"));
        assert!(text.contains("g{v=\"inf\"} +Inf\n"));
        assert!(text.contains("g{v=\"-inf\"} -Inf\n"));
        assert!(text.contains("g{v=\"max\"} 18446744073709551615\n"));
        assert_eq!(Exposition::new().finish(), "");
    }

    #[test]
    fn names_are_checked() {
        assert!(is_metric_name("scope_collector_spies_total"));
        assert!(is_metric_name("a:b_c"));
        assert!(!is_metric_name("1abc"));
        assert!(!is_metric_name("a-b"));
        assert!(!is_metric_name(""));
        assert!(is_label_name("_topic"));
        assert!(!is_label_name("a:b"));
    }

    #[test]
    fn blank_line_ends_the_head() {
        assert_eq!(blank_line(b"GET / HTTP/1.1\r\n\r\nbody"), Some(18));
        assert_eq!(blank_line(b"GET / HTTP/1.1\n\n"), Some(16));
        assert_eq!(blank_line(b"GET / HTTP/1.1\r\nHost: x\r\n"), None);
    }

    async fn start(limits: Limits) -> (SocketAddr, CancellationToken, tokio::task::JoinHandle<()>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shutdown = CancellationToken::new();
        let render: Render = Arc::new(|| {
            let mut out = Exposition::new();
            out.counter("scope_test_requests_total", "Test counter.", 42_u64);
            out.finish()
        });
        let server = tokio::spawn(serve_with(listener, render, shutdown.clone(), limits));
        (addr, shutdown, server)
    }

    /// Sends `request` on a new connection, closes the sending side and reads until the
    /// server closes its side.
    async fn exchange(addr: SocketAddr, request: &[u8]) -> String {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream.write_all(request).await.unwrap();
        stream.shutdown().await.unwrap();
        read_all(stream).await
    }

    async fn read_all(mut stream: TcpStream) -> String {
        let mut response = Vec::new();
        tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut response))
            .await
            .expect("server closes the connection")
            .unwrap();
        String::from_utf8(response).unwrap()
    }

    #[tokio::test]
    async fn serves_metrics_and_survives_garbage() {
        let (addr, shutdown, server) = start(LIMITS).await;

        let ok = exchange(addr, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").await;
        assert!(ok.starts_with("HTTP/1.1 200 OK\r\n"), "{ok}");
        assert!(
            ok.contains("\r\nContent-Type: text/plain; version=0.0.4"),
            "{ok}"
        );
        let (head, body) = ok.split_once("\r\n\r\n").unwrap();
        assert!(
            head.contains(&format!("Content-Length: {}", body.len())),
            "{ok}"
        );
        assert!(body.contains("\nscope_test_requests_total 42\n"), "{body}");
        assert!(body.starts_with("# HELP scope_test_requests_total Test counter.\n"));

        let query = exchange(addr, b"GET /metrics?x=1 HTTP/1.0\r\n\r\n").await;
        assert!(query.starts_with("HTTP/1.1 200 OK\r\n"), "{query}");

        let head = exchange(addr, b"HEAD /metrics HTTP/1.1\r\n\r\n").await;
        assert!(head.starts_with("HTTP/1.1 200 OK\r\n") && head.ends_with("\r\n\r\n"));

        let missing = exchange(addr, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await;
        assert!(
            missing.starts_with("HTTP/1.1 404 Not Found\r\n"),
            "{missing}"
        );

        let post = exchange(addr, b"POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n").await;
        assert!(post.starts_with("HTTP/1.1 405 "), "{post}");
        assert!(post.contains("\r\nAllow: GET, HEAD\r\n"), "{post}");

        for garbage in [
            &b"\x00\xff\xfe garbage \x80\r\n\r\n"[..],
            b"GET\r\n\r\n",
            b"GET /metrics SPDY/3\r\n\r\n",
            b"GET  /metrics HTTP/1.1 extra\n\n",
        ] {
            let bad = exchange(addr, garbage).await;
            assert!(bad.starts_with("HTTP/1.1 400 "), "{garbage:?}: {bad}");
        }
        let huge = exchange(addr, &vec![b'A'; 64 * 1024]).await;
        assert!(huge.starts_with("HTTP/1.1 431 "), "{huge}");
        // Connect and hang up at once.
        drop(TcpStream::connect(addr).await.unwrap());
        // Half a request, then end of input: closed without an answer.
        let half = exchange(addr, b"GET /metr").await;
        assert!(half.is_empty(), "{half}");

        let again = exchange(addr, b"GET /metrics HTTP/1.1\r\n\r\n").await;
        assert!(
            again.contains("\nscope_test_requests_total 42\n"),
            "{again}"
        );

        shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(10), server)
            .await
            .expect("server stops on shutdown")
            .unwrap();
    }

    #[tokio::test]
    async fn a_silent_client_times_out_and_shutdown_ends_open_connections() {
        let limits = Limits {
            io_timeout: Duration::from_millis(200),
            ..LIMITS
        };
        let (addr, shutdown, server) = start(limits).await;
        // Sends half a request and nothing more: answered with 408 once the timeout passes.
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream
            .write_all(b"GET /metrics HTTP/1.1\r\n")
            .await
            .unwrap();
        let slow = read_all(stream).await;
        assert!(slow.starts_with("HTTP/1.1 408 "), "{slow}");

        // A connection still open at shutdown does not keep the server running.
        let _idle = TcpStream::connect(addr).await.unwrap();
        shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(10), server)
            .await
            .expect("server stops on shutdown")
            .unwrap();
    }

    #[tokio::test]
    async fn listen_reports_an_address_in_use() {
        let taken = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = taken.local_addr().unwrap();
        let error = listen(addr, |_| {}, CancellationToken::new())
            .await
            .unwrap_err();
        assert!(
            matches!(error, crate::Error::MetricsListen { .. }),
            "{error}"
        );
        assert!(error.to_string().contains(&addr.to_string()), "{error}");
    }
}
