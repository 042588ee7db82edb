//! `scope up` against hostile clients, as a child process whose log is searched for panics
//! and whose memory is read from /proc: garbage on the Kafka port, Postgres startup packets
//! declaring gigabytes, and a query that would take all memory.

mod support;

use std::{
    io::{Read, Write},
    net::{SocketAddr, TcpStream},
    process::{Command, Output},
    time::Duration,
};

use scope_testkit::{
    free_port, http_request,
    postgres::{client_available, psql_command, psql_found},
    rss_bytes, wait_for,
};
use support::Up;

const MIB: u64 = 1 << 20;

/// `psql -c sql` against `up`: (success, stdout, stderr).
fn psql(up: &Up, sql: &str) -> (bool, String, String) {
    let out = psql_command(up.postgres, "scope")
        .args(["-t", "-c", sql])
        .output()
        .expect("psql starts");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).trim().to_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The number `psql` answers to `sql`, once it answers one.
fn psql_count(up: &Up, sql: &str) -> Option<u64> {
    let (ok, out, _) = psql(up, sql);
    ok.then(|| out.parse().ok()).flatten()
}

/// Debian's kcat as a user runs it (see kafka/tests/clients.rs), with a deadline of its own.
fn kcat(args: &[&str]) -> Output {
    Command::new("timeout")
        .arg("30")
        .arg("kcat")
        .args(args)
        .env_remove("LD_LIBRARY_PATH")
        .output()
        .expect("kcat starts")
}

/// Bytes that look random and are the same at every run (xorshift64).
struct Noise(u64);

impl Noise {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

/// Sends `bytes` on a new connection, ends the sending side and reads until the server
/// closes: whatever the server does with them, it has done it when this returns. Errors are
/// the server refusing the garbage, which is what it may do.
fn send_and_drain(addr: SocketAddr, bytes: &[u8]) {
    let Ok(mut stream) = TcpStream::connect(addr) else {
        return;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let _ = stream.write_all(bytes);
    let _ = stream.shutdown(std::net::Shutdown::Write);
    let _ = stream.read_to_end(&mut Vec::new());
}

#[test]
fn garbage_on_the_kafka_port_panics_nothing_and_kcat_still_reads() {
    if !client_available("kcat", &["-V"], "kcat") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("up.log");
    let broker = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let up = Up::start(&broker.to_string(), &dir.path().join("data"), &log);
    let bootstrap = broker.to_string();
    let announced = || {
        let out = kcat(&["-C", "-b", &bootstrap, "-t", "scope.snapshots", "-e", "-q"]);
        (out.status.success() && !out.stdout.is_empty()).then_some(())
    };
    wait_for(
        "a snapshot announced on scope.snapshots",
        Duration::from_secs(60),
        announced,
    );

    // 300 connections: random bytes, frames of a plausible length holding random bytes,
    // negative lengths, lengths of up to 2 GiB.
    let mut noise = Noise(0x0005_c09e);
    for i in 0..300 {
        let garbage = match i % 4 {
            0 => {
                let n = 1 + noise.next() as usize % 2048;
                noise.bytes(n)
            }
            1 => {
                let n = 8 + noise.next() as usize % 512;
                let mut frame = (n as u32).to_be_bytes().to_vec();
                frame.extend(noise.bytes(n));
                frame
            }
            2 => {
                let mut frame = (-1 - (noise.next() % 0x7fff_ffff) as i32)
                    .to_be_bytes()
                    .to_vec();
                frame.extend(noise.bytes(64));
                frame
            }
            _ => {
                let mut frame = (0x0640_0001 + (noise.next() % 0x79bf_fffe) as u32)
                    .to_be_bytes()
                    .to_vec();
                frame.extend(noise.bytes(64));
                frame
            }
        };
        send_and_drain(broker, &garbage);
    }

    let listing = kcat(&["-L", "-b", &bootstrap]);
    let topics = String::from_utf8_lossy(&listing.stdout);
    assert!(
        listing.status.success() && topics.contains("topic \"scope.snapshots\""),
        "kcat -L after the garbage: {topics}{}",
        String::from_utf8_lossy(&listing.stderr)
    );
    assert!(
        announced().is_some(),
        "kcat -C reads nothing after the garbage"
    );
    let text = std::fs::read_to_string(&log).unwrap();
    let panics = text.matches("panicked").count();
    assert_eq!(panics, 0, "{panics} panics in the log of scope up:\n{text}");
    assert!(
        text.contains("closed a connection whose request frame declares"),
        "no refusal logged:\n{text}"
    );
    up.stop();
}

#[test]
fn startup_packets_declaring_2_gib_cost_no_memory_and_psql_still_works() {
    if !psql_found() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("up.log");
    let broker = format!("127.0.0.1:{}", free_port());
    let up = Up::start(&broker, &dir.path().join("data"), &log);
    let hosts = "select count(*) from hosts";
    wait_for("psql to count hosts", Duration::from_secs(60), || {
        psql_count(&up, hosts).filter(|&n| n > 0)
    });
    let before = rss_bytes(up.pid());

    // A startup packet of protocol 3.0 that declares 2 GiB; the client then waits, the
    // connection open, for what the server does.
    let mut packet = i32::MAX.to_be_bytes().to_vec();
    packet.extend_from_slice(&0x0003_0000u32.to_be_bytes());
    packet.extend_from_slice(b"user\0scope\0database\0scope\0\0");
    let mut held: Vec<TcpStream> = (0..100)
        .map(|_| {
            let mut stream = TcpStream::connect(up.postgres).expect("the endpoint accepts");
            stream.write_all(&packet).expect("the endpoint reads");
            stream
        })
        .collect();
    // What each was answered before the endpoint closed it (an error: reset, or still open).
    let answers: Vec<Result<String, String>> = held
        .iter_mut()
        .map(|stream| {
            stream
                .set_read_timeout(Some(Duration::from_secs(10)))
                .unwrap();
            let mut answer = Vec::new();
            match stream.read_to_end(&mut answer) {
                Ok(_) => Ok(String::from_utf8_lossy(&answer).into_owned()),
                Err(error) => Err(error.to_string()),
            }
        })
        .collect();
    let after = rss_bytes(up.pid());
    let refused = answers
        .iter()
        .flatten()
        .filter(|a| a.contains("C08P01") && a.contains("invalid length of startup packet"))
        .count();
    eprintln!(
        "RSS of scope up: {} MiB before 100 startup packets declaring 2 GiB, {} MiB after; \
         {refused} answered with 08P01",
        before / MIB,
        after / MIB
    );
    for answer in &answers {
        // Past the connection limit, while the first ones are being refused: 53300.
        assert!(
            answer
                .as_ref()
                .is_ok_and(|a| a.contains("C08P01") || a.contains("C53300")),
            "{answer:?}"
        );
    }
    assert!(refused > 0, "no connection was told why it was closed");
    assert!(
        after < before + 50 * MIB,
        "RSS grew from {} MiB to {} MiB",
        before / MIB,
        after / MIB
    );
    assert!(psql_count(&up, hosts).is_some(), "psql fails afterwards");
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.contains("invalid length of startup packet"),
        "the refusal is not logged:\n{text}"
    );
    up.stop();
}

/// Every process of every retained snapshot, three times over, sorted: a sort must hold what
/// it sorts, far more than the limit the test sets.
const HUGE: &str = "select a.name, b.name, c.name from history.processes a, \
    history.processes b, history.processes c order by a.name, b.pid, c.cmdline";

#[test]
fn a_query_over_its_memory_limit_fails_clearly_while_the_api_answers() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("up.log");
    let broker = format!("127.0.0.1:{}", free_port());
    let up = Up::start_under(
        &["env", "SCOPE_QUERY_MEMORY_LIMIT=128MiB"],
        &broker,
        &dir.path().join("data"),
        &log,
    );
    let sql_url = format!("{}/api/sql", up.api);
    let topology_url = format!("{}/api/topology", up.api);
    let count = |sql: &str| {
        let (status, body) = http_request("POST", &sql_url, &[], Some(sql));
        let rows: serde_json::Value = serde_json::from_slice(&body).ok()?;
        (status == 200).then(|| rows[0]["n"].as_u64()).flatten()
    };
    // 300 rows give 27 million combinations: the sort's input alone is well over 128 MiB.
    wait_for("300 processes in history", Duration::from_secs(90), || {
        count("select count(*) as n from history.processes").filter(|&n| n >= 300)
    });
    let before = rss_bytes(up.pid());

    let query = std::thread::spawn({
        let sql_url = sql_url.clone();
        move || {
            let started = std::time::Instant::now();
            let answer = http_request("POST", &sql_url, &[], Some(HUGE));
            (answer, started.elapsed())
        }
    });
    let mut slowest = Duration::ZERO;
    let mut peak = before;
    let mut answered = 0;
    while !query.is_finished() {
        let started = std::time::Instant::now();
        let (status, _) = http_request("GET", &topology_url, &[], None);
        assert_eq!(status, 200, "/api/topology during the query");
        slowest = slowest.max(started.elapsed());
        answered += 1;
        peak = peak.max(rss_bytes(up.pid()));
    }
    let ((status, body), took) = query.join().unwrap();
    let body = String::from_utf8_lossy(&body[..body.len().min(2000)]);
    eprintln!(
        "the query failed after {took:?} with {status} {body}; /api/topology answered \
         {answered} times meanwhile, the slowest in {slowest:?}; RSS {} MiB before, peak {} MiB",
        before / MIB,
        peak / MIB
    );
    assert_eq!(status, 507, "{body}");
    let error: serde_json::Value = serde_json::from_str(&body).expect("a JSON error");
    let message = error["error"].as_str().unwrap_or_default();
    assert!(
        message.starts_with("out of memory: a query may hold 128 MiB")
            && message.contains("--query-memory-limit"),
        "{message}"
    );
    assert!(
        answered > 0,
        "the query ended before /api/topology was asked"
    );
    assert!(
        slowest < Duration::from_secs(5),
        "/api/topology took {slowest:?}"
    );
    // What the query held is returned: RSS is back near where it was.
    let bound = before + 200 * MIB;
    let after = wait_for("RSS to come back", Duration::from_secs(20), || {
        Some(rss_bytes(up.pid())).filter(|&rss| rss < bound)
    });
    eprintln!("RSS {} MiB after the query", after / MIB);

    if psql_found() {
        let (ok, _, stderr) = psql(&up, HUGE);
        assert!(!ok && stderr.contains("53200"), "{stderr}");
        assert!(stderr.contains("a query may hold 128 MiB"), "{stderr}");
    }
    up.stop();
}
