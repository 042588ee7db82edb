//! An in-process Kafka-protocol broker: tansu with memory storage.

use std::net::SocketAddr;

use tansu_broker::{broker::Broker, coordinator::group::administrator::Controller};
use tansu_storage::StorageContainer;
use tokio::task::JoinHandle;
use url::Url;

use crate::Error;

/// A broker serving the Kafka protocol on a local address until dropped.
///
/// Messages live in memory: they are gone when the broker stops.
pub struct EmbeddedBroker {
    addr: SocketAddr,
    task: JoinHandle<()>,
}

impl EmbeddedBroker {
    /// Starts a broker on `addr`. Port 0 picks a free port, which [`Self::addr`] tells.
    pub async fn start(addr: SocketAddr) -> Result<Self, Error> {
        let fail = |reason: String| Error::Embedded { addr, reason };
        // tansu binds the port its listener URL names and advertises that same URL, so a
        // free port is chosen here first when the caller asked for any.
        let addr = if addr.port() == 0 {
            let probe = std::net::TcpListener::bind(addr).map_err(|e| fail(e.to_string()))?;
            probe.local_addr().map_err(|e| fail(e.to_string()))?
        } else {
            // Fail fast, with a clear reason, if the port is taken.
            drop(std::net::TcpListener::bind(addr).map_err(|e| fail(e.to_string()))?);
            addr
        };
        let url = Url::parse(&format!("tcp://{addr}")).map_err(|e| fail(e.to_string()))?;
        let storage = Url::parse("memory://tansu/").map_err(|e| fail(e.to_string()))?;
        let mut broker = Broker::<Controller<StorageContainer>, StorageContainer>::builder()
            .node_id(1)
            .cluster_id("scope")
            .incarnation_id(uuid::Uuid::new_v4())
            .advertised_listener(url.clone())
            .storage(storage)
            .listener(url)
            .silent(true)
            .build()
            .await
            .map_err(|e| fail(format!("{e:?}")))?;
        let task = tokio::spawn(async move {
            if let Err(error) = broker.serve(tokio::time::Instant::now()).await {
                tracing::error!(?error, "embedded broker stopped");
            }
        });
        wait_listening(addr).await.map_err(fail)?;
        tracing::info!(%addr, "embedded Kafka broker listening");
        Ok(EmbeddedBroker { addr, task })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The `bootstrap.servers` value for clients of this broker.
    pub fn bootstrap(&self) -> String {
        self.addr.to_string()
    }
}

impl Drop for EmbeddedBroker {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn wait_listening(addr: SocketAddr) -> Result<(), String> {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        match tokio::net::TcpStream::connect(addr).await {
            Ok(_) => return Ok(()),
            Err(e) if tokio::time::Instant::now() > deadline => {
                return Err(format!("not listening after 10 s: {e}"));
            }
            Err(_) => tokio::time::sleep(std::time::Duration::from_millis(20)).await,
        }
    }
}
