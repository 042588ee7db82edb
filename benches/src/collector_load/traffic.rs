//! The connections the collector is asked to see: a server on 127.0.0.1 in this process,
//! connections held open to it, and a paced load of short ones.
//!
//! Every connection, long or short, does the same exchange: the client sends one byte, the
//! server answers one byte. A short connection then closes from the client side; the server
//! end closes when it reads end-of-file. Short connections are opened by a
//! [`tokio::time::interval`] ticking `rate` times a second (missed ticks burst, so the average
//! rate holds when the runtime is late), each in its own task so a slow one never delays the
//! next. Only connections begun while [`Load::measure`] is on are recorded, by client port.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context as _;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;

/// The load server: accepts on 127.0.0.1, answers one byte per connection, until cancelled.
pub struct Server {
    pub addr: SocketAddr,
    stop: CancellationToken,
}

impl Server {
    pub async fn start() -> anyhow::Result<Self> {
        let listener = TcpListener::bind(("127.0.0.1", 0))
            .await
            .context("binding the load server on 127.0.0.1")?;
        let addr = listener
            .local_addr()
            .context("reading the load server's address")?;
        let stop = CancellationToken::new();
        tokio::spawn(serve(listener, stop.clone()));
        Ok(Server { addr, stop })
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn serve(listener: TcpListener, stop: CancellationToken) {
    loop {
        let accepted = tokio::select! {
            () = stop.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, _)) => {
                let stop = stop.clone();
                tokio::spawn(async move {
                    tokio::select! {
                        () = stop.cancelled() => {}
                        _ = answer(stream) => {}
                    }
                });
            }
            Err(error) => {
                // Out of descriptors, typically: back off rather than spin.
                tracing::warn!(%error, "load server: accept failed");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}

/// One byte in, one byte out, then hold the connection until the client closes it.
async fn answer(mut stream: TcpStream) -> std::io::Result<()> {
    let mut byte = [0u8; 1];
    stream.read_exact(&mut byte).await?;
    stream.write_all(&byte).await?;
    let mut rest = [0u8; 64];
    while stream.read(&mut rest).await? > 0 {}
    Ok(())
}

/// Opens a connection to `server` and does the one-byte exchange; returns it open.
pub async fn exchange(server: SocketAddr) -> std::io::Result<TcpStream> {
    let mut stream = TcpStream::connect(server).await?;
    stream.set_nodelay(true)?;
    stream.write_all(b"x").await?;
    let mut byte = [0u8; 1];
    stream.read_exact(&mut byte).await?;
    Ok(stream)
}

/// `count` connections to `server`, held open until dropped.
pub async fn hold_open(server: SocketAddr, count: u32) -> anyhow::Result<Vec<TcpStream>> {
    let mut held = Vec::with_capacity(count as usize);
    for i in 0..count {
        held.push(
            exchange(server)
                .await
                .with_context(|| format!("opening long-lived connection {i} to {server}"))?,
        );
    }
    Ok(held)
}

/// What the short connections begun while measuring did.
#[derive(Debug, Default)]
pub struct Tally {
    /// Connections that completed the exchange.
    pub made: AtomicU64,
    pub failed: AtomicU64,
    pub first_error: Mutex<Option<String>>,
    /// Completed connections by client port (a port may come back once its previous
    /// connection has left TIME_WAIT).
    pub ports: Mutex<HashMap<u16, u32>>,
}

impl Tally {
    pub fn made(&self) -> u64 {
        self.made.load(Ordering::SeqCst)
    }

    pub fn failed(&self) -> u64 {
        self.failed.load(Ordering::SeqCst)
    }

    pub fn first_error(&self) -> Option<String> {
        self.first_error.lock().ok().and_then(|e| e.clone())
    }

    pub fn ports(&self) -> HashMap<u16, u32> {
        self.ports.lock().map(|p| p.clone()).unwrap_or_default()
    }

    fn record(&self, result: std::io::Result<u16>) {
        match result {
            Ok(port) => {
                if let Ok(mut ports) = self.ports.lock() {
                    *ports.entry(port).or_default() += 1;
                }
                self.made.fetch_add(1, Ordering::SeqCst);
            }
            Err(error) => {
                self.failed.fetch_add(1, Ordering::SeqCst);
                if let Ok(mut first) = self.first_error.lock() {
                    first.get_or_insert_with(|| error.to_string());
                }
            }
        }
    }
}

/// A running paced load of short connections.
pub struct Load {
    measuring: Arc<AtomicBool>,
    pub tally: Arc<Tally>,
    stop: CancellationToken,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Load {
    /// Starts opening `rate` connections a second to `server` (none at rate 0).
    pub fn start(server: SocketAddr, rate: u32) -> Self {
        let measuring = Arc::new(AtomicBool::new(false));
        let tally = Arc::new(Tally::default());
        let stop = CancellationToken::new();
        let task = (rate > 0).then(|| {
            tokio::spawn(pace(
                server,
                rate,
                Arc::clone(&measuring),
                Arc::clone(&tally),
                stop.clone(),
            ))
        });
        Load {
            measuring,
            tally,
            stop,
            task,
        }
    }

    /// Records the connections begun from now on (`true`) or stops recording (`false`).
    pub fn measure(&self, on: bool) {
        self.measuring.store(on, Ordering::SeqCst);
    }

    /// Stops opening connections and waits (up to `timeout`) for those in flight.
    pub async fn stop(mut self, timeout: Duration) -> anyhow::Result<()> {
        self.stop.cancel();
        if let Some(task) = self.task.take() {
            tokio::time::timeout(timeout, task)
                .await
                .context("the load's connections in flight did not finish")?
                .context("the load task panicked")?;
        }
        Ok(())
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn pace(
    server: SocketAddr,
    rate: u32,
    measuring: Arc<AtomicBool>,
    tally: Arc<Tally>,
    stop: CancellationToken,
) {
    let mut tick = tokio::time::interval(Duration::from_secs(1) / rate);
    tick.set_missed_tick_behavior(MissedTickBehavior::Burst);
    let mut in_flight = JoinSet::new();
    loop {
        tokio::select! {
            () = stop.cancelled() => break,
            _ = tick.tick() => {}
        }
        while in_flight.try_join_next().is_some() {}
        let recorded = measuring.load(Ordering::SeqCst).then(|| Arc::clone(&tally));
        in_flight.spawn(async move {
            let result = short_connection(server).await;
            if let Some(tally) = recorded {
                tally.record(result);
            }
        });
    }
    while in_flight.join_next().await.is_some() {}
}

/// Connect, one byte each way, close; returns the client port.
async fn short_connection(server: SocketAddr) -> std::io::Result<u16> {
    let stream = exchange(server).await?;
    let port = stream.local_addr()?.port();
    drop(stream);
    Ok(port)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn paced_load_records_only_while_measuring() {
        let server = Server::start().await.unwrap();
        let held = hold_open(server.addr, 3).await.unwrap();
        assert_eq!(held.len(), 3);
        let load = Load::start(server.addr, 200);
        tokio::time::sleep(Duration::from_millis(100)).await;
        load.measure(true);
        tokio::time::sleep(Duration::from_millis(500)).await;
        load.measure(false);
        let tally = Arc::clone(&load.tally);
        load.stop(Duration::from_secs(5)).await.unwrap();
        let made = tally.made();
        assert!((60..=140).contains(&made), "made {made} in 0.5 s at 200/s");
        assert_eq!(tally.failed(), 0, "{:?}", tally.first_error());
        assert_eq!(
            tally.ports().values().map(|&n| u64::from(n)).sum::<u64>(),
            made
        );
    }
}
