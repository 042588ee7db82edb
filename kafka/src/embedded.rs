//! An in-process Kafka-protocol broker: tansu with memory storage, behind a small proxy
//! ([`crate::api_versions`]) that makes its ApiVersions responses readable by older clients
//! (Debian's kcat and librdkafka 2.0.2) and a dead group member's partitions reach the
//! others.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

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
    broker: JoinHandle<()>,
    proxy: JoinHandle<()>,
}

impl EmbeddedBroker {
    /// Starts a broker on `addr`. Port 0 picks a free port, which [`Self::addr`] tells.
    pub async fn start(addr: SocketAddr) -> Result<Self, Error> {
        let fail = |reason: String| Error::Embedded { addr, reason };
        // Clients are told (advertised) the proxy's address, so every connection they
        // open, not only the bootstrap one, goes through the proxy; tansu itself listens on
        // a private loopback port.
        let public = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| fail(e.to_string()))?;
        let addr = public.local_addr().map_err(|e| fail(e.to_string()))?;
        let loopback = match addr.ip() {
            IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::LOCALHOST),
        };
        // tansu binds the port its listener URL names, so a free one is chosen here first.
        let private = std::net::TcpListener::bind((loopback, 0))
            .and_then(|probe| probe.local_addr())
            .map_err(|e| fail(e.to_string()))?;
        let advertised = Url::parse(&format!("tcp://{addr}")).map_err(|e| fail(e.to_string()))?;
        let listener = Url::parse(&format!("tcp://{private}")).map_err(|e| fail(e.to_string()))?;
        let storage = Url::parse("memory://tansu/").map_err(|e| fail(e.to_string()))?;
        let mut broker = Broker::<Controller<StorageContainer>, StorageContainer>::builder()
            .node_id(1)
            .cluster_id("scope")
            .incarnation_id(uuid::Uuid::new_v4())
            .advertised_listener(advertised)
            .storage(storage)
            .listener(listener)
            .silent(true)
            .build()
            .await
            .map_err(|e| fail(format!("{e:?}")))?;
        let broker = tokio::spawn(async move {
            if let Err(error) = broker.serve(tokio::time::Instant::now()).await {
                tracing::error!(?error, "embedded broker stopped");
            }
        });
        wait_listening(private).await.map_err(fail)?;
        let proxy = tokio::spawn(crate::api_versions::serve(public, private));
        tracing::info!(%addr, "embedded Kafka broker listening");
        Ok(EmbeddedBroker {
            addr,
            broker,
            proxy,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The `bootstrap.servers` value for clients of this broker.
    pub fn bootstrap(&self) -> String {
        self.addr.to_string()
    }

    /// The counters of every embedded broker of this process (its proxy's refusals).
    pub fn write_metrics(out: &mut scope_runtime::metrics::Families) {
        crate::api_versions::write_metrics(out);
    }
}

impl Drop for EmbeddedBroker {
    fn drop(&mut self) {
        self.proxy.abort();
        self.broker.abort();
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
