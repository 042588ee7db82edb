//! The websocket handshake (RFC 6455) and the socket it opens, over tungstenite's stream
//! rather than axum's `WebSocketUpgrade`: axum sends a message as one frame, which tungstenite
//! copies whole into the connection's write buffer, and that buffer keeps its capacity. At
//! 10,000 processes a view's first message is ~15 MB, so 100 open sockets held 1.5 GB of
//! buffers after it. Here a long message goes out in frames of [`FRAME`] bytes, each written
//! before the next is copied, and what a client may send is bounded as small as what it
//! needs to send (nothing but control frames).

use std::future::Future;

use axum::{
    body::{Body, Bytes},
    extract::FromRequestParts,
    http::{HeaderValue, Method, StatusCode, header, request::Parts},
    response::Response,
};
use futures_util::{SinkExt as _, StreamExt as _};
use hyper::upgrade::{OnUpgrade, Upgraded};
use hyper_util::rt::TokioIo;
use tokio_tungstenite::{
    WebSocketStream,
    tungstenite::{
        self, Message, Utf8Bytes,
        handshake::derive_accept_key,
        protocol::{
            Role, WebSocketConfig,
            frame::{
                Frame,
                coding::{Data, OpCode},
            },
        },
    },
};

use super::Failure;

/// The longest frame sent: what a connection's write buffer grows to at most.
const FRAME: usize = 64 * 1024;
/// The longest message or frame read. Browsers and Scope's UI send nothing on these sockets;
/// a ping's payload is at most 125 bytes.
const MAX_READ: usize = 4 * 1024;

/// A websocket handshake request, checked, and the connection to take over once answered.
pub(super) struct Upgrade {
    key: HeaderValue,
    on_upgrade: OnUpgrade,
}

impl<S: Send + Sync> FromRequestParts<S> for Upgrade {
    type Rejection = Failure;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Failure> {
        let refuse = |why: &str| {
            Err(Failure(
                StatusCode::BAD_REQUEST,
                format!("not a websocket handshake: {why}"),
            ))
        };
        let lists = |name: header::HeaderName, token: &str| {
            parts
                .headers
                .get_all(name)
                .iter()
                .filter_map(|value| value.to_str().ok())
                .flat_map(|value| value.split(','))
                .any(|item| item.trim().eq_ignore_ascii_case(token))
        };
        if parts.method != Method::GET {
            return refuse("the method is not GET");
        }
        if !lists(header::CONNECTION, "upgrade") || !lists(header::UPGRADE, "websocket") {
            return refuse("no `Connection: upgrade` and `Upgrade: websocket`");
        }
        if parts
            .headers
            .get(header::SEC_WEBSOCKET_VERSION)
            .is_none_or(|version| version != "13")
        {
            return refuse("Sec-WebSocket-Version is not 13");
        }
        let Some(key) = parts.headers.get(header::SEC_WEBSOCKET_KEY).cloned() else {
            return refuse("no Sec-WebSocket-Key");
        };
        let Some(on_upgrade) = parts.extensions.remove::<OnUpgrade>() else {
            return refuse("this connection cannot be upgraded (HTTP/1.1 only)");
        };
        Ok(Upgrade { key, on_upgrade })
    }
}

impl Upgrade {
    /// Answers the handshake, and runs `serve` on the socket once the client has it.
    pub fn on_upgrade<F, Fut>(self, serve: F) -> Response
    where
        F: FnOnce(Socket) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send,
    {
        let accept = derive_accept_key(self.key.as_bytes());
        let on_upgrade = self.on_upgrade;
        tokio::spawn(async move {
            let Ok(upgraded) = on_upgrade.await else {
                return;
            };
            let config = WebSocketConfig::default()
                .read_buffer_size(MAX_READ)
                .write_buffer_size(0)
                .max_message_size(Some(MAX_READ))
                .max_frame_size(Some(MAX_READ));
            let stream = WebSocketStream::from_raw_socket(
                TokioIo::new(upgraded),
                Role::Server,
                Some(config),
            )
            .await;
            serve(Socket(stream)).await;
        });
        let mut response = Response::new(Body::empty());
        *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
        let headers = response.headers_mut();
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        if let Ok(accept) = HeaderValue::from_str(&accept) {
            headers.insert(header::SEC_WEBSOCKET_ACCEPT, accept);
        }
        response
    }
}

/// An open websocket, server side.
pub(super) struct Socket(WebSocketStream<TokioIo<Upgraded>>);

impl Socket {
    /// Sends `text` as one message, in frames of at most [`FRAME`] bytes.
    pub async fn send_text(&mut self, text: Utf8Bytes) -> Result<(), tungstenite::Error> {
        if text.len() <= FRAME {
            return self.0.send(Message::Text(text)).await;
        }
        let bytes = Bytes::from(text);
        let mut sent = 0;
        while sent < bytes.len() {
            let end = bytes.len().min(sent + FRAME);
            let opcode = if sent == 0 {
                Data::Text
            } else {
                Data::Continue
            };
            let frame = Frame::message(
                bytes.slice(sent..end),
                OpCode::Data(opcode),
                end == bytes.len(),
            );
            self.0.send(Message::Frame(frame)).await?;
            sent = end;
        }
        Ok(())
    }

    /// The next message from the client: None once it closed or broke the protocol.
    pub async fn recv(&mut self) -> Option<Message> {
        self.0.next().await?.ok()
    }

    /// Closes the socket, as a server going away.
    pub async fn close(mut self) {
        let _ = self.0.close(None).await;
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    use super::*;

    /// A route that sends `text` on each socket, then closes it.
    async fn serve(text: String) -> std::net::SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let text = Utf8Bytes::from(text);
        let app = axum::Router::new().route(
            "/ws",
            axum::routing::get(move |upgrade: Upgrade| async move {
                upgrade.on_upgrade(move |mut socket| async move {
                    socket.send_text(text).await.expect("sent");
                    socket.close().await;
                })
            }),
        );
        tokio::spawn(axum::serve(listener, app).into_future());
        addr
    }

    #[tokio::test]
    async fn a_long_message_arrives_whole_in_short_frames() {
        let text: String = (0..60_000).map(|i| format!("{i},")).collect();
        assert!(text.len() > 4 * FRAME);
        let addr = serve(text.clone()).await;
        // A client that refuses any frame longer than ours: one frame of it all would fail.
        let config = WebSocketConfig::default().max_frame_size(Some(FRAME));
        let received = tokio::time::timeout(Duration::from_secs(10), async {
            let url = format!("ws://{addr}/ws");
            let (mut client, _) =
                tokio_tungstenite::connect_async_with_config(url, Some(config), false)
                    .await
                    .expect("the handshake");
            client
                .next()
                .await
                .expect("a message")
                .expect("a valid message")
        })
        .await
        .expect("within 10 s");
        assert_eq!(received.into_text().unwrap().as_str(), text);
    }

    #[tokio::test]
    async fn a_request_that_is_no_handshake_is_refused() {
        let addr = serve(String::new()).await;
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        stream
            .write_all(b"GET /ws HTTP/1.1\r\nHost: scope\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut answer = String::new();
        tokio::time::timeout(Duration::from_secs(10), stream.read_to_string(&mut answer))
            .await
            .expect("within 10 s")
            .unwrap();
        assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
        assert!(answer.contains("not a websocket handshake"), "{answer}");
    }
}
