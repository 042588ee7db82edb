//! A framing proxy in front of the embedded broker: it rewrites ApiVersions responses, and
//! follows consumer groups where tansu's coordinator would strand their partitions.
//!
//! Why it exists: tansu 0.6 ends every ApiVersions v3+ response with four tagged fields
//! written even at their default values (SupportedFeatures, FinalizedFeaturesEpoch = -1,
//! FinalizedFeatures, ZkMigrationReady). Apache Kafka omits a tagged field at its default,
//! and librdkafka 2.0.2 (Debian's, which Debian's kcat links) cannot read them: `kcat -L`
//! fails with `Protocol read buffer underflow for ApiVersion v3 at 267/272`. tansu's public
//! API has no hook into its encoder and its code may not be copied here, so the broker
//! listens on a private loopback port and this proxy, on the address clients are told,
//! drops those four fields when they hold their defaults. Every other frame, and every other
//! byte of an ApiVersions response, passes through unchanged; large frames (fetches) are
//! streamed, never buffered whole.
//!
//! The same proxy keeps tansu 0.6's group coordinator from stranding a dead member's
//! partitions: an empty SyncGroup assignment list is passed on as a null one
//! ([`sync_group`]), and a member whose connections closed without a LeaveGroup is made to
//! leave ([`members`]). Group requests and their answers, small, are read whole (and
//! forwarded unchanged but for that list).
//!
//! A frame this proxy cannot parse is forwarded as it came: the client then sees exactly
//! what the broker wrote, and the proxy logs why it did not rewrite it.
//!
//! It is also the broker's guard: tansu 0.6 allocates whatever length a request frame
//! declares, and a negative one panics it (`capacity overflow` in `TcpBytesService::req`).
//! So a request frame whose length is outside [`MIN_REQUEST_BYTES`]..=[`MAX_REQUEST_BYTES`]
//! never reaches it: the proxy closes that connection, counts it
//! (`scope_broker_rejected_frames_total`) and logs it, one line per peer at most every
//! [`LOG_EVERY`] with the number held back.

use std::{
    fmt, io,
    net::SocketAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use tokio::{
    io::{AsyncBufRead, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader},
    net::{TcpListener, TcpStream},
};

use scope_runtime::{
    metrics::Families,
    throttle::{LOG_EVERY, Throttle},
};

// Beside this file in both the crate and the fuzz target, which compiles this file alone.
#[path = "members.rs"]
mod members;
#[path = "sync_group.rs"]
mod sync_group;

const API_VERSIONS: i16 = 18;
/// The first ApiVersions version with a flexible (tagged-field) body.
const FIRST_FLEXIBLE: i16 = 3;
/// Bigger than any ApiVersions response (tansu's is under 300 bytes) or SyncGroup request
/// (a few hundred bytes a member); a bigger one is streamed through unchanged instead of
/// being buffered.
const MAX_REWRITTEN: u32 = 64 * 1024;
const BUFFER: usize = 64 * 1024;

/// The largest request frame passed to the broker, length field excluded: Apache Kafka's
/// `socket.request.max.bytes` default. tansu has no limit of its own.
pub(crate) const MAX_REQUEST_BYTES: u32 = 100 * 1024 * 1024;
/// The smallest: a request header v0 (api_key i16, api_version i16, correlation_id i32).
pub(crate) const MIN_REQUEST_BYTES: u32 = 8;

/// Connections closed for a request frame out of bounds, since the process started.
static REJECTED_FRAMES: AtomicU64 = AtomicU64::new(0);
static REJECTED_LOG: Mutex<Throttle> = Mutex::new(Throttle::new(LOG_EVERY));

/// The proxy's counters, as [`crate::EmbeddedBroker::write_metrics`] lists them.
pub(crate) fn write_metrics(out: &mut Families) {
    out.counter(
        "scope_broker_rejected_frames_total",
        "Connections to the embedded broker closed because a request frame declared a \
         negative length, or one below a request header or above the maximum (100 MiB).",
        REJECTED_FRAMES.load(Ordering::Relaxed),
    );
    out.counter(
        "scope_broker_departed_members_total",
        "Consumer group members the embedded broker made leave their group because their \
         connections closed without a LeaveGroup (a killed client).",
        members::DEPARTED.load(Ordering::Relaxed),
    );
}

/// A request frame whose declared length is out of bounds: the connection is closed.
#[derive(Debug)]
struct Rejected {
    /// As declared: a length is a signed 32-bit integer in the Kafka protocol.
    length: i32,
}

impl fmt::Display for Rejected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "request frame declares {} bytes; the broker takes {MIN_REQUEST_BYTES} to \
             {MAX_REQUEST_BYTES}",
            self.length
        )
    }
}

impl std::error::Error for Rejected {}

/// What the proxy follows of one connection: the requests whose answers it reads, the group
/// members heard from on it.
pub(crate) type Pending = Arc<Mutex<members::Connection>>;

/// Accepts clients on `listener` and relays each to `broker`, until the task is dropped.
pub(crate) async fn serve(listener: TcpListener, broker: SocketAddr) {
    let groups = members::Groups::default();
    loop {
        match listener.accept().await {
            Ok((client, peer)) => {
                let groups = groups.clone();
                tokio::spawn(async move {
                    if let Err(error) = relay(client, broker, groups).await {
                        ended(peer, &error);
                    }
                });
            }
            Err(error) => {
                // Out of file descriptors, typically: back off instead of spinning.
                tracing::warn!(%error, "embedded broker proxy could not accept a connection");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

fn ended(peer: SocketAddr, error: &io::Error) {
    let Some(rejected) = error.get_ref().and_then(|e| e.downcast_ref::<Rejected>()) else {
        tracing::debug!(%peer, %error, "embedded broker connection ended");
        return;
    };
    REJECTED_FRAMES.fetch_add(1, Ordering::Relaxed);
    let allowed = REJECTED_LOG
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .allow();
    if let Some(held_back) = allowed {
        tracing::warn!(
            %peer,
            length = rejected.length,
            held_back,
            "embedded broker: closed a connection whose {rejected} (not Kafka, or a client \
             gone wrong)"
        );
    }
}

async fn relay(client: TcpStream, broker: SocketAddr, groups: members::Groups) -> io::Result<()> {
    client.set_nodelay(true)?;
    let upstream = TcpStream::connect(broker).await?;
    upstream.set_nodelay(true)?;
    let (client_read, client_write) = client.into_split();
    let (broker_read, broker_write) = upstream.into_split();
    let pending = Pending::new(Mutex::new(members::Connection::new(groups.clone())));
    let relayed = tokio::try_join!(
        requests(
            BufReader::with_capacity(BUFFER, client_read),
            broker_write,
            pending.clone()
        ),
        responses(
            BufReader::with_capacity(BUFFER, broker_read),
            client_write,
            pending.clone()
        ),
    );
    // Both directions have ended, however: the members heard from here may be gone.
    let gone = lock(&pending).closed();
    if !gone.is_empty() {
        tokio::spawn(members::depart(groups, broker, gone));
    }
    relayed.map(drop)
}

/// Copies requests to the broker, noting the version of each ApiVersions request, the group
/// requests [`members`] follows, and passing SyncGroup requests through
/// [`sync_group::null_empty_assignments`].
pub(crate) async fn requests(
    mut from: impl AsyncBufRead + Unpin,
    mut to: impl AsyncWrite + Unpin,
    pending: Pending,
) -> io::Result<()> {
    while let Some(len) = frame_length(&mut from).await? {
        if !(MIN_REQUEST_BYTES..=MAX_REQUEST_BYTES).contains(&len) {
            let length = i32::from_be_bytes(len.to_be_bytes());
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                Rejected { length },
            ));
        }
        // Request header: api_key i16, api_version i16, correlation_id i32.
        let mut head = [0u8; 12];
        head[..4].copy_from_slice(&len.to_be_bytes());
        from.read_exact(&mut head[4..]).await?;
        let api_key = i16::from_be_bytes([head[4], head[5]]);
        if api_key == API_VERSIONS {
            let version = i16::from_be_bytes([head[6], head[7]]);
            let correlation = i32::from_be_bytes([head[8], head[9], head[10], head[11]]);
            lock(&pending).api_versions(correlation, version);
        }
        let group_request = [
            members::JOIN_GROUP,
            members::HEARTBEAT,
            members::LEAVE_GROUP,
            members::SYNC_GROUP,
        ]
        .contains(&api_key);
        if group_request && len <= MAX_REWRITTEN {
            let mut frame = head.to_vec();
            frame.resize(4 + len as usize, 0);
            from.read_exact(&mut frame[12..]).await?;
            let request = &mut frame[4..];
            if api_key == sync_group::API_KEY {
                match sync_group::null_empty_assignments(request) {
                    Ok(sync_group::Outcome::Nulled) => {
                        tracing::debug!("SyncGroup with no assignments passed on with a null list")
                    }
                    Ok(sync_group::Outcome::Unchanged) => {}
                    // The broker answers it as it would have: nothing to add at warn level
                    // about a client's malformed request.
                    Err(reason) => {
                        tracing::debug!(
                            reason,
                            "SyncGroup request not understood; forwarded unchanged"
                        )
                    }
                }
            }
            if let Err(reason) = lock(&pending).request(api_key, request) {
                tracing::debug!(
                    api_key,
                    reason,
                    "group request not understood; forwarded unchanged"
                );
            }
            to.write_all(&frame).await?;
            continue;
        }
        to.write_all(&head).await?;
        copy_exact(&mut from, &mut to, u64::from(len) - 8).await?;
    }
    to.shutdown().await
}

/// Copies responses to the client, rewriting those answering a flexible ApiVersions request.
pub(crate) async fn responses(
    mut from: impl AsyncBufRead + Unpin,
    mut to: impl AsyncWrite + Unpin,
    pending: Pending,
) -> io::Result<()> {
    while let Some(len) = frame_length(&mut from).await? {
        // Response header v0 (ApiVersions always uses it): correlation_id i32.
        let mut head = [0u8; 8];
        head[..4].copy_from_slice(&len.to_be_bytes());
        let n = len.min(4) as usize;
        from.read_exact(&mut head[4..4 + n]).await?;
        let answered = (n == 4)
            .then(|| {
                lock(&pending).answered(i32::from_be_bytes([head[4], head[5], head[6], head[7]]))
            })
            .flatten();
        match answered {
            Some(members::InFlight::ApiVersions(version))
                if version >= FIRST_FLEXIBLE && len <= MAX_REWRITTEN =>
            {
                let mut body = vec![0; len as usize - 4];
                from.read_exact(&mut body).await?;
                let body = match without_default_tags(&body) {
                    Ok(rewritten) => rewritten,
                    Err(reason) => {
                        tracing::warn!(
                            version,
                            reason,
                            "ApiVersions response not understood; forwarded unchanged"
                        );
                        body
                    }
                };
                let mut frame = Vec::with_capacity(8 + body.len());
                frame.extend_from_slice(&(body.len() as u32 + 4).to_be_bytes());
                frame.extend_from_slice(&head[4..8]);
                frame.extend_from_slice(&body);
                to.write_all(&frame).await?;
            }
            Some(
                group @ (members::InFlight::JoinGroup { .. } | members::InFlight::SyncGroup { .. }),
            ) if len <= MAX_REWRITTEN => {
                let mut frame = head.to_vec();
                frame.resize(4 + len as usize, 0);
                from.read_exact(&mut frame[8..]).await?;
                if let Err(reason) = lock(&pending).answer(&group, &frame[8..]) {
                    tracing::warn!(
                        ?group,
                        reason,
                        "group answer not understood; forwarded unchanged"
                    );
                }
                to.write_all(&frame).await?;
            }
            _ => {
                to.write_all(&head[..4 + n]).await?;
                copy_exact(&mut from, &mut to, u64::from(len) - n as u64).await?;
            }
        }
    }
    to.shutdown().await
}

fn lock(pending: &Pending) -> std::sync::MutexGuard<'_, members::Connection> {
    // The map is left consistent by every holder, so a poisoned lock is still usable.
    pending
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The next frame's length, or `None` at a clean end of stream between frames. The length
/// is read as unsigned: a negative one is larger than any bound.
async fn frame_length(from: &mut (impl AsyncRead + Unpin)) -> io::Result<Option<u32>> {
    let mut len = [0u8; 4];
    let mut got = 0;
    while got < 4 {
        match from.read(&mut len[got..]).await? {
            0 if got == 0 => return Ok(None),
            0 => return Err(io::ErrorKind::UnexpectedEof.into()),
            n => got += n,
        }
    }
    Ok(Some(u32::from_be_bytes(len)))
}

async fn copy_exact(
    from: &mut (impl AsyncBufRead + Unpin),
    to: &mut (impl AsyncWrite + Unpin),
    n: u64,
) -> io::Result<()> {
    let copied = tokio::io::copy_buf(&mut from.take(n), to).await?;
    if copied == n {
        Ok(())
    } else {
        Err(io::ErrorKind::UnexpectedEof.into())
    }
}

/// An ApiVersions v3+ response body (after the correlation id) without the top-level tagged
/// fields that hold their default values. Fields with other values, and unknown tags, stay.
pub(crate) fn without_default_tags(body: &[u8]) -> Result<Vec<u8>, &'static str> {
    let mut r = Reader::new(body);
    r.skip(2, "error_code")?;
    let entries = r.uvarint("api_keys length")?;
    for _ in 1..entries {
        r.skip(6, "api_keys entry")?;
        r.tagged_fields()?;
    }
    r.skip(4, "throttle_time_ms")?;
    let fixed = r.at;
    let fields = r.tagged_fields()?;
    if r.at != body.len() {
        return Err("bytes after the tagged fields");
    }
    let kept: Vec<_> = fields
        .into_iter()
        .filter(|&(tag, value)| !is_default(tag, value))
        .collect();
    let mut out = body[..fixed].to_vec();
    put_uvarint(&mut out, kept.len() as u32);
    for (tag, value) in kept {
        put_uvarint(&mut out, tag);
        put_uvarint(&mut out, value.len() as u32);
        out.extend_from_slice(value);
    }
    Ok(out)
}

/// The defaults of ApiVersionsResponse's tagged fields, encoded.
fn is_default(tag: u32, value: &[u8]) -> bool {
    match tag {
        // SupportedFeatures, FinalizedFeatures: empty compact arrays (length + 1 = 1).
        0 | 2 => value == [1],
        // FinalizedFeaturesEpoch: -1.
        1 => value == [0xff; 8],
        // ZkMigrationReady: false.
        3 => value == [0],
        _ => false,
    }
}

/// A string as [`Reader::string`] reads it (compact lengths under 127 only): how the tests
/// of the group-protocol readers build their requests.
#[cfg(test)]
fn encode_string(compact: bool, s: &str) -> Vec<u8> {
    let mut out = if compact {
        vec![s.len() as u8 + 1]
    } else {
        (s.len() as i16).to_be_bytes().to_vec()
    };
    out.extend_from_slice(s.as_bytes());
    out
}

struct Reader<'a> {
    buf: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Reader { buf, at: 0 }
    }

    fn i16(&mut self, what: &'static str) -> Result<i16, &'static str> {
        let b = self.take(2, what)?;
        Ok(i16::from_be_bytes([b[0], b[1]]))
    }

    fn i32(&mut self, what: &'static str) -> Result<i32, &'static str> {
        let b = self.take(4, what)?;
        Ok(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// A (NULLABLE_)STRING, or in flexible versions a COMPACT_(NULLABLE_)STRING: an int16
    /// length (-1 for null) or an unsigned varint length plus one (0 for null), then the
    /// bytes. `None` for null.
    fn string(
        &mut self,
        compact: bool,
        what: &'static str,
    ) -> Result<Option<&'a [u8]>, &'static str> {
        let len = if compact {
            match self.uvarint(what)? {
                0 => return Ok(None),
                n => n as usize - 1,
            }
        } else {
            match self.i16(what)? {
                -1 => return Ok(None),
                n => usize::try_from(n).map_err(|_| what)?,
            }
        };
        self.take(len, what).map(Some)
    }

    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], &'static str> {
        let end = self.at.checked_add(n).filter(|&end| end <= self.buf.len());
        let bytes = end.map(|end| &self.buf[self.at..end]).ok_or(what)?;
        self.at += n;
        Ok(bytes)
    }

    fn skip(&mut self, n: usize, what: &'static str) -> Result<(), &'static str> {
        self.take(n, what).map(drop)
    }

    fn uvarint(&mut self, what: &'static str) -> Result<u32, &'static str> {
        let mut value = 0u32;
        for shift in (0..35).step_by(7) {
            let byte = self.take(1, what)?[0];
            if shift == 28 && byte > 0x0f {
                return Err("unsigned varint overflows 32 bits");
            }
            value |= u32::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err("unsigned varint longer than 5 bytes")
    }

    /// A tagged-field section: (tag, value) pairs.
    fn tagged_fields(&mut self) -> Result<Vec<(u32, &'a [u8])>, &'static str> {
        let count = self.uvarint("tagged field count")?;
        let mut fields = Vec::new();
        for _ in 0..count {
            let tag = self.uvarint("tag")?;
            let size = self.uvarint("tagged field size")?;
            fields.push((tag, self.take(size as usize, "tagged field value")?));
        }
        Ok(fields)
    }
}

fn put_uvarint(out: &mut Vec<u8>, mut value: u32) {
    while value >= 0x80 {
        out.push(value as u8 | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// error_code 0, one api key (18, 0..4) with no tags, throttle 0, then `tags`.
    fn body(tags: &[u8]) -> Vec<u8> {
        let mut b = vec![0, 0, 2, 0, 18, 0, 0, 0, 4, 0, 0, 0, 0, 0];
        b.extend_from_slice(tags);
        b
    }

    const TANSU_DEFAULTS: &[u8] = &[
        4, // four fields
        0, 1, 1, // SupportedFeatures = []
        1, 8, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, // FinalizedFeaturesEpoch = -1
        2, 1, 1, // FinalizedFeatures = []
        3, 1, 0, // ZkMigrationReady = false
    ];

    #[test]
    fn default_tagged_fields_are_dropped() {
        assert_eq!(without_default_tags(&body(TANSU_DEFAULTS)), Ok(body(&[0])));
    }

    #[test]
    fn fields_with_values_and_unknown_tags_stay() {
        let tags = [
            4, 1, 8, 0, 0, 0, 0, 0, 0, 0, 7, 3, 1, 0, 3, 1, 1, 9, 2, 0xab, 0xcd,
        ];
        assert_eq!(
            without_default_tags(&body(&tags)),
            Ok(body(&[
                3, 1, 8, 0, 0, 0, 0, 0, 0, 0, 7, 3, 1, 1, 9, 2, 0xab, 0xcd
            ]))
        );
    }

    #[test]
    fn malformed_bodies_are_errors_not_panics() {
        let full = body(TANSU_DEFAULTS);
        for end in 0..full.len() {
            assert!(without_default_tags(&full[..end]).is_err(), "cut at {end}");
        }
        let mut trailing = full.clone();
        trailing.push(0);
        assert!(without_default_tags(&trailing).is_err());
        // A huge api_keys count, size or varint must not allocate or overflow.
        assert!(without_default_tags(&[0, 0, 0xff, 0xff, 0xff, 0xff, 0x0f]).is_err());
        assert!(without_default_tags(&[0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]).is_err());
        assert!(without_default_tags(&body(&[1, 0, 0xff, 0xff, 0xff, 0xff, 0x0f])).is_err());
    }

    /// Frames whose declared length runs past the end of the stream, or is too short to
    /// hold a header, end the connection with an error or pass through; none panics.
    #[tokio::test]
    async fn truncated_and_tiny_frames() {
        let pending = Pending::default();
        let mut out = Vec::new();
        let short = [0u8, 0, 0, 2, 0, 18];
        responses(&short[..], &mut out, pending.clone())
            .await
            .unwrap();
        assert_eq!(out, short);
        let cut = [0u8, 0, 1, 0, 0, 0];
        assert!(
            requests(&cut[..], Vec::new(), pending.clone())
                .await
                .is_err()
        );
        let half_length = [0u8, 0];
        assert!(
            responses(&half_length[..], Vec::new(), pending)
                .await
                .is_err()
        );
    }

    /// A length below a request header, above the maximum or negative ends the connection
    /// before anything of the frame is forwarded; the bounds themselves pass.
    #[tokio::test]
    async fn request_frames_out_of_bounds_are_rejected_before_forwarding() {
        let rejected = |length: i32| {
            let mut frame = length.to_be_bytes().to_vec();
            frame.extend_from_slice(&[0, 18, 0, 3, 0, 0, 0, 7, 0, 0]);
            frame
        };
        let max = MAX_REQUEST_BYTES as i32;
        for length in [-1, i32::MIN, 0, 7, max + 1, i32::MAX] {
            let mut forwarded = Vec::new();
            let error = requests(&rejected(length)[..], &mut forwarded, Pending::default())
                .await
                .expect_err("out of bounds");
            let refusal = error.get_ref().and_then(|e| e.downcast_ref::<Rejected>());
            assert_eq!(refusal.map(|r| r.length), Some(length), "{error}");
            assert!(forwarded.is_empty(), "{length}: {forwarded:?}");
        }
        for length in [8, max] {
            let mut forwarded = Vec::new();
            let error = requests(&rejected(length)[..], &mut forwarded, Pending::default())
                .await
                .expect_err("the stream ends inside the frame");
            assert_eq!(
                error.kind(),
                io::ErrorKind::UnexpectedEof,
                "{length}: {error}"
            );
            assert_eq!(&forwarded[..12], &rejected(length)[..12]);
        }
    }

    /// A response to a flexible ApiVersions request is rewritten with its new length;
    /// a response to anything else passes through byte for byte.
    #[tokio::test]
    async fn only_api_versions_responses_are_rewritten() {
        let pending = Pending::default();
        let request = [0u8, 0, 0, 8, 0, 18, 0, 3, 0, 0, 0, 7];
        let mut forwarded = Vec::new();
        requests(&request[..], &mut forwarded, pending.clone())
            .await
            .unwrap();
        assert_eq!(forwarded, request);

        let frame = |correlation: u8, body: &[u8]| {
            let mut f = (body.len() as u32 + 4).to_be_bytes().to_vec();
            f.extend_from_slice(&[0, 0, 0, correlation]);
            f.extend_from_slice(body);
            f
        };
        let mut stream = frame(7, &body(TANSU_DEFAULTS));
        stream.extend(frame(8, &body(TANSU_DEFAULTS)));
        let mut out = Vec::new();
        responses(&stream[..], &mut out, pending).await.unwrap();
        let mut expected = frame(7, &body(&[0]));
        expected.extend(frame(8, &body(TANSU_DEFAULTS)));
        assert_eq!(out, expected);
    }
}
