//! The known workload: a real server process and real client processes on loopback, whose
//! connections the clients write down as they open and close them. That record is the
//! ground truth the snapshots are judged against.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    sync::atomic::{AtomicU16, Ordering},
    time::Duration,
};

use scope_testkit::Process;

/// Accepts every connection and closes its end as soon as the client closes: the server end
/// lives exactly as long as the client's, so a connection's lifetime is the client's record.
const SERVER: &str = r#"
import selectors, socket
sel = selectors.DefaultSelector()
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(('127.0.0.1', 0))
s.listen(1024)
s.setblocking(False)
sel.register(s, selectors.EVENT_READ)
print(s.getsockname()[1], flush=True)
while True:
    for key, _ in sel.select():
        if key.fileobj is s:
            c, _ = s.accept()
            sel.register(c, selectors.EVENT_READ)
        elif not key.fileobj.recv(4096):
            sel.unregister(key.fileobj)
            key.fileobj.close()
"#;

/// Opens and closes connections when told on stdin (`open N`, `close PORT...`), or keeps
/// opening RATE a second that each live LIFE seconds (`churn RATE LIFE`), and appends
/// `open|close PORT MICROS` to the record for each. The time is taken after an open and
/// before a close, so the recorded lifetime lies within the real one.
///
/// Each connection binds the next port of the client's own block, skipping those in use:
/// on loopback Linux reuses a port in TIME_WAIT for the next connect (`tcp_tw_reuse`), and
/// then a port would no longer name one connection of the window.
const CLIENT: &str = r#"
import socket, sys, threading, time
port, record = int(sys.argv[1]), open(sys.argv[2], 'a', buffering=1)
ports, lock, held = iter(range(int(sys.argv[3]), int(sys.argv[4]))), threading.Lock(), {}
def note(kind, p):
    with lock:
        record.write(f'{kind} {p} {time.time_ns() // 1000}\n')
def connect():
    while True:
        c = socket.socket()
        try:
            with lock:
                c.bind(('127.0.0.1', next(ports)))
            c.connect(('127.0.0.1', port))
            break
        except OSError:
            c.close()
    note('open', c.getsockname()[1])
    return c
def close(c):
    note('close', c.getsockname()[1])
    c.close()
def churn(rate, life):
    live = []
    while True:
        t = time.time()
        live.append((t + life, connect()))
        while live[0][0] <= t:
            close(live.pop(0)[1])
        time.sleep(1 / rate)
for line in sys.stdin:
    cmd, *args = line.split()
    if cmd == 'open':
        opened = [connect() for _ in range(int(args[0]))]
        for c in opened:
            held[c.getsockname()[1]] = c
        print('opened', *[c.getsockname()[1] for c in opened], flush=True)
    elif cmd == 'close':
        for p in args:
            close(held.pop(int(p)))
        print('closed', flush=True)
    elif cmd == 'churn':
        threading.Thread(target=churn, args=(float(args[0]), float(args[1])), daemon=True).start()
        print('churning', flush=True)
"#;

const REPLY: Duration = Duration::from_secs(10);

/// Client ports: blocks below the kernel's ephemeral range (32768 and up here), one per client
/// of this test binary, so that no two clients, and no port the kernel hands out, share one.
const CLIENT_PORTS: std::ops::Range<u16> = 12_000..32_000;
const PORTS_PER_CLIENT: u16 = 2_000;
static CLIENTS: AtomicU16 = AtomicU16::new(0);

/// The server every client of a test connects to.
pub struct Server {
    pub process: Process,
    pub port: u16,
}

impl Server {
    pub fn start() -> Server {
        let process = Process::python(SERVER, &[]);
        let port = process
            .line(REPLY, "the server's port")
            .parse()
            .expect("the server prints its port");
        Server { process, port }
    }
}

/// A client process, writing its connections to `record`.
pub struct Client {
    pub process: Process,
}

impl Client {
    pub fn start(server: &Server, record: &Path) -> Client {
        let blocks = CLIENT_PORTS.len() as u16 / PORTS_PER_CLIENT;
        let first = CLIENT_PORTS.start
            + CLIENTS.fetch_add(1, Ordering::Relaxed) % blocks * PORTS_PER_CLIENT;
        let ports = [server.port, first, first + PORTS_PER_CLIENT].map(|p| p.to_string());
        let record = record.to_str().expect("a UTF-8 path");
        Client {
            process: Process::python(CLIENT, &[&ports[0], record, &ports[1], &ports[2]]),
        }
    }

    /// Opens `n` connections and holds them; their client ports.
    pub fn open(&mut self, n: usize) -> Vec<u16> {
        self.process.write_line(&format!("open {n}"));
        let reply = self.process.line(REPLY, "the opened ports");
        let ports: Vec<u16> = reply
            .strip_prefix("opened")
            .unwrap_or_else(|| panic!("unexpected reply {reply:?}"))
            .split_whitespace()
            .map(|p| p.parse().expect("a port"))
            .collect();
        assert_eq!(ports.len(), n, "{reply}");
        ports
    }

    pub fn close(&mut self, ports: &[u16]) {
        let ports: Vec<String> = ports.iter().map(u16::to_string).collect();
        self.process
            .write_line(&format!("close {}", ports.join(" ")));
        assert_eq!(self.process.line(REPLY, "closed"), "closed");
    }

    /// From now on, `rate` new connections a second, each closed after `life`.
    pub fn churn(&mut self, rate: u32, life: Duration) {
        self.process
            .write_line(&format!("churn {rate} {}", life.as_secs_f64()));
        assert_eq!(self.process.line(REPLY, "churning"), "churning");
    }
}

/// One connection as its client recorded it: µs since the epoch, the collector's clock.
#[derive(Clone, Copy, Debug)]
pub struct Lifetime {
    pub opened_us: i64,
    pub closed_us: Option<i64>,
}

impl Lifetime {
    /// Open at some moment of `[from_us, to_us]`.
    pub fn open_within(&self, from_us: i64, to_us: i64) -> bool {
        self.opened_us <= to_us && self.closed_us.is_none_or(|closed| closed >= from_us)
    }
}

/// What the clients recorded so far, by client port (every client connects to one server
/// address, so the port names the connection).
pub struct Truth {
    pub connections: BTreeMap<u16, Lifetime>,
}

impl Truth {
    pub fn read(records: &[PathBuf]) -> Truth {
        let mut connections = BTreeMap::new();
        for path in records {
            let text = std::fs::read_to_string(path).unwrap_or_default();
            // The last line may be half-written while a client is running.
            for line in text
                .split_inclusive('\n')
                .filter_map(|l| l.strip_suffix('\n'))
            {
                let mut fields = line.split(' ');
                let (Some(kind), Some(Ok(port)), Some(Ok(at))) = (
                    fields.next(),
                    fields.next().map(str::parse::<u16>),
                    fields.next().map(str::parse::<i64>),
                ) else {
                    panic!("a malformed record line: {line:?}");
                };
                match kind {
                    "open" => {
                        let earlier = connections.insert(
                            port,
                            Lifetime {
                                opened_us: at,
                                closed_us: None,
                            },
                        );
                        // Each client binds each port of its block once.
                        assert!(earlier.is_none(), "client port {port} was reused");
                    }
                    "close" => {
                        connections
                            .get_mut(&port)
                            .unwrap_or_else(|| panic!("{port} closed before it opened"))
                            .closed_us = Some(at);
                    }
                    _ => panic!("a malformed record line: {line:?}"),
                }
            }
        }
        Truth { connections }
    }
}
