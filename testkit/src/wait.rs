//! Deadlines instead of sleeps: a test waits for the condition it needs, for as long as a
//! loaded machine may take, and fails saying what it waited for.

use std::{
    fmt,
    time::{Duration, Instant},
};

use rdkafka::{
    consumer::{Consumer as _, StreamConsumer},
    message::BorrowedMessage,
};
use scope_kafka::KafkaArgs;

/// A wait that ran out, for callers that fail with what they saw so far: the state a
/// [`consume_until`] folded is borrowed by it until it returns.
#[derive(Debug)]
pub struct TimedOut {
    limit: Duration,
}

impl fmt::Display for TimedOut {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "timed out after {:?}", self.limit)
    }
}

/// A consumer of `topics` from their first message, in a group of its own, for
/// [`consume_until`].
pub fn consumer_from_start(kafka: &KafkaArgs, topics: &[&str]) -> StreamConsumer {
    let group = format!("test-{}-{:?}", std::process::id(), Instant::now());
    let consumer: StreamConsumer = kafka
        .client_config(&[("group.id", &group), ("auto.offset.reset", "earliest")])
        .create()
        .expect("a consumer of the test's broker");
    consumer.subscribe(topics).expect("subscribing");
    consumer
}

/// Reads `consumer`, folding each message into `state`, until `done(state)` holds or `limit`
/// has passed.
///
/// `done` is checked before the first read, so a condition that messages of an earlier call
/// already met does not wait for another message (a compacted topic may send none). Consumer
/// errors are printed and retried: a broker still electing a coordinator reports some, and
/// the deadline bounds them.
pub async fn consume_until<S>(
    consumer: &StreamConsumer,
    limit: Duration,
    state: &mut S,
    mut fold: impl FnMut(&mut S, &BorrowedMessage<'_>),
    done: impl Fn(&S) -> bool,
) -> Result<(), TimedOut> {
    let deadline = tokio::time::Instant::now() + limit;
    while !done(state) {
        match tokio::time::timeout_at(deadline, consumer.recv()).await {
            Err(_) => return Err(TimedOut { limit }),
            Ok(Err(error)) => eprintln!("consumer error, retrying: {error}"),
            Ok(Ok(message)) => fold(state, &message),
        }
    }
    Ok(())
}

/// Polls `check` until it returns a value, which it returns, or fails the test after `limit`
/// naming `what`. For tests without a runtime; twice a second, because the checks of those
/// tests run processes (`scope sql`).
pub fn wait_for<T>(what: &str, limit: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(value) = poll(what, limit, deadline, &mut check) {
            return value;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// [`wait_for`] inside a Tokio runtime, which keeps running the components under test
/// between checks. Every 50 ms: these checks read in-process state or a local socket.
pub async fn wait_for_async<T>(
    what: &str,
    limit: Duration,
    mut check: impl FnMut() -> Option<T>,
) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(value) = poll(what, limit, deadline, &mut check) {
            return value;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// One check of a wait, failing the test once it finds nothing after `deadline`.
fn poll<T>(
    what: &str,
    limit: Duration,
    deadline: Instant,
    check: &mut impl FnMut() -> Option<T>,
) -> Option<T> {
    let value = check();
    assert!(
        value.is_some() || Instant::now() < deadline,
        "timed out after {limit:?} waiting for {what}"
    );
    value
}
