//! The first reader of every Postgres connection, in front of pgwire: every length a client
//! declares is bounded before anything is buffered, as Postgres bounds them.
//!
//! The startup packet (and the SSL or GSS encryption request before it, which is refused
//! with `N` here, as pgwire would) may hold at most [`MAX_STARTUP_BYTES`], Postgres's
//! `MAX_STARTUP_PACKET_LENGTH`; a client declaring more gets a FATAL 08P01 and is closed,
//! before a session exists for it. Every later message is a tag and a length, at most
//! [`MAX_MESSAGE_BYTES`]; one longer ends the connection. pgwire bounds each message type
//! itself once it reads them, but only after the connection's session is set up, and
//! silently; and it allows queries of up to 1 GiB, as Postgres does.
//!
//! pgwire 0.41 also reads a message's fields without checking that they fill it: a field
//! running past its message's end is taken from the next message, bytes left after the
//! fields are read as the next message, and a read past what has arrived panics the session
//! (found by fuzzing, `fuzz/` target `postgres_wire`). So every message pgwire decodes field
//! by field (all but CopyData and later password messages, which it takes whole) is read
//! whole here and refused unless its fields fill it exactly, as Postgres refuses it
//! ("invalid message format").
//!
//! pgwire reads the bytes that pass from one end of a socket pair; its answers are copied
//! back to the client unchanged.

use std::{fmt, io, time::Duration};

use tokio::{
    io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt},
    net::TcpStream,
};

/// The largest startup packet, length included: Postgres's `MAX_STARTUP_PACKET_LENGTH`.
pub(super) const MAX_STARTUP_BYTES: u32 = 10_000;
/// The largest message after the startup packet, length included. Postgres allows 1 GB for
/// a query, a parse or a bind; a read-only endpoint over the map needs no statement or
/// parameters this large, and 64 connections each buffering one stay within 1 GiB.
pub(super) const MAX_MESSAGE_BYTES: u32 = 16 << 20;
/// How long a refused client's pending bytes are read before its connection is closed.
const DISCARD_FOR: Duration = Duration::from_secs(1);
/// The codes of the 8-byte requests for an encrypted connection.
const SSL_REQUEST: u32 = 80_877_103;
const GSSENC_REQUEST: u32 = 80_877_104;

/// A length a client declared outside its bounds, or a message whose fields do not fill
/// its declared length.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Refused {
    Startup(i32),
    Message { tag: u8, length: i32 },
    Malformed { tag: u8 },
}

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refused::Startup(length) => write!(
                f,
                "invalid length of startup packet: {length} bytes declared, 8 to \
                 {MAX_STARTUP_BYTES} allowed"
            ),
            Refused::Message { tag, length } => write!(
                f,
                "invalid message length: a {:?} message of {length} bytes declared, 4 to \
                 {MAX_MESSAGE_BYTES} allowed",
                char::from(*tag)
            ),
            Refused::Malformed { tag } => write!(
                f,
                "invalid message format: the fields of a {:?} message do not fill its length",
                char::from(*tag)
            ),
        }
    }
}

impl std::error::Error for Refused {}

fn refused(why: Refused) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, why)
}

/// The refusal inside `error`, when a bound was what ended the connection.
pub(super) fn refusal(error: &io::Error) -> Option<&Refused> {
    error.get_ref()?.downcast_ref()
}

/// Reads the client's startup packet (or cancel request), refusing its requests for
/// encryption on the way. A length out of bounds is an error whose [`refusal`] tells it.
pub(super) async fn read_startup(
    client: &mut (impl AsyncRead + AsyncWrite + Unpin),
) -> io::Result<Vec<u8>> {
    loop {
        let length = client.read_i32().await?;
        let Some(size) = u32::try_from(length)
            .ok()
            .filter(|size| (8..=MAX_STARTUP_BYTES).contains(size))
        else {
            return Err(refused(Refused::Startup(length)));
        };
        let mut packet = vec![0; size as usize];
        packet[..4].copy_from_slice(&length.to_be_bytes());
        client.read_exact(&mut packet[4..]).await?;
        let code = u32::from_be_bytes([packet[4], packet[5], packet[6], packet[7]]);
        if size == 8 && matches!(code, SSL_REQUEST | GSSENC_REQUEST) {
            client.write_all(b"N").await?;
            continue;
        }
        return Ok(packet);
    }
}

/// Sends a client a FATAL error and closes its connection. What it sent meanwhile is read
/// and dropped, a little and briefly, first: closing a socket with unread input resets the
/// connection, and a client may then lose the error before reading it.
pub(super) async fn refuse(mut client: TcpStream, code: &str, message: &str) {
    // The client may be gone, or not a Postgres client at all: the caller logs either way.
    let _ = client.write_all(&fatal(code, message)).await;
    let _ = client.shutdown().await;
    let mut sink = [0u8; 4096];
    let mut left = 64 * 1024;
    let _ = tokio::time::timeout(DISCARD_FOR, async {
        while left > 0 {
            match client.read(&mut sink).await {
                Ok(0) | Err(_) => break,
                Ok(n) => left -= n.min(left),
            }
        }
    })
    .await;
}

/// Copies the client's messages after the startup packet to pgwire, each checked against
/// [`MAX_MESSAGE_BYTES`] before any of it is copied, and those pgwire reads field by field
/// against their format ([`Format::of`]). Returns at a clean end of stream between messages.
pub(super) async fn relay_messages(
    mut from: impl AsyncRead + Unpin,
    mut to: impl AsyncWrite + Unpin,
) -> io::Result<()> {
    let mut buffer = vec![0; 8 * 1024];
    let mut password_messages = 0;
    loop {
        let mut head = [0u8; 5];
        match from.read(&mut head[..1]).await? {
            0 => return Ok(()),
            _ => from.read_exact(&mut head[1..]).await?,
        };
        let length = i32::from_be_bytes([head[1], head[2], head[3], head[4]]);
        let Some(size) = u32::try_from(length)
            .ok()
            .filter(|size| (4..=MAX_MESSAGE_BYTES).contains(size))
        else {
            let tag = head[0];
            return Err(refused(Refused::Message { tag, length }));
        };
        let tag = head[0];
        if tag == b'p' {
            password_messages += 1;
        }
        if let Some(format) = Format::of(tag, password_messages) {
            // Within MAX_MESSAGE_BYTES, as every connection may buffer.
            let mut body = vec![0; size as usize - 4];
            from.read_exact(&mut body).await?;
            if !format.fills(&body) {
                return Err(refused(Refused::Malformed { tag }));
            }
            to.write_all(&head).await?;
            to.write_all(&body).await?;
            continue;
        }
        to.write_all(&head).await?;
        let mut left = size as usize - 4;
        while left > 0 {
            let n = left.min(buffer.len());
            from.read_exact(&mut buffer[..n]).await?;
            to.write_all(&buffer[..n]).await?;
            left -= n;
        }
    }
}

/// The layout of a message pgwire reads field by field, without bounds checks (Postgres's
/// protocol-message-formats.html).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Format {
    /// Sync, Flush, Terminate, CopyDone: no fields.
    Empty,
    /// Query and CopyFail: one string.
    Text,
    /// Statement name, query, parameter type OIDs.
    Parse,
    /// Portal, statement, parameter formats, parameter values, result formats.
    Bind,
    /// Describe and Close: a target kind ('S' or 'P') and its name.
    Target,
    /// Portal name and row limit.
    Execute,
    /// Mechanism name and its optional initial data: what pgwire's SASL authentication reads
    /// the first password message as.
    SaslInitialResponse,
}

impl Format {
    /// The format to check a message with tag `tag` against, if pgwire needs one checked;
    /// `password_messages` counts the password messages so far, this one included.
    fn of(tag: u8, password_messages: u32) -> Option<Format> {
        match tag {
            b'S' | b'H' | b'X' | b'c' => Some(Format::Empty),
            b'Q' | b'f' => Some(Format::Text),
            b'P' => Some(Format::Parse),
            b'B' => Some(Format::Bind),
            b'D' | b'C' => Some(Format::Target),
            b'E' => Some(Format::Execute),
            b'p' if password_messages == 1 => Some(Format::SaslInitialResponse),
            _ => None,
        }
    }

    /// Whether `body` holds this format's fields and nothing after them.
    fn fills(self, body: &[u8]) -> bool {
        let mut fields = Fields(body);
        self.read(&mut fields).is_some() && fields.0.is_empty()
    }

    fn read(self, fields: &mut Fields<'_>) -> Option<()> {
        match self {
            Format::Empty => Some(()),
            Format::Text => fields.cstring(),
            Format::Parse => {
                fields.cstring()?;
                fields.cstring()?;
                let types = fields.u16()?;
                fields.skip(4 * usize::from(types))
            }
            Format::Bind => {
                fields.cstring()?;
                fields.cstring()?;
                let formats = fields.u16()?;
                fields.skip(2 * usize::from(formats))?;
                for _ in 0..fields.u16()? {
                    // pgwire reads any negative length as NULL, with no value after it.
                    let length = fields.i32()?;
                    fields.skip(usize::try_from(length).unwrap_or(0))?;
                }
                let results = fields.u16()?;
                fields.skip(2 * usize::from(results))
            }
            Format::Target => {
                fields.skip(1)?;
                fields.cstring()
            }
            Format::Execute => {
                fields.cstring()?;
                fields.skip(4)
            }
            Format::SaslInitialResponse => {
                fields.cstring()?;
                match fields.i32()? {
                    -1 => Some(()),
                    length => fields.skip(usize::try_from(length).ok()?),
                }
            }
        }
    }
}

/// The unread rest of a message body.
struct Fields<'a>(&'a [u8]);

impl Fields<'_> {
    fn skip(&mut self, n: usize) -> Option<()> {
        self.0 = self.0.get(n..)?;
        Some(())
    }

    fn cstring(&mut self) -> Option<()> {
        let end = self.0.iter().position(|&b| b == 0)?;
        self.skip(end + 1)
    }

    fn u16(&mut self) -> Option<u16> {
        let (bytes, rest) = self.0.split_first_chunk()?;
        self.0 = rest;
        Some(u16::from_be_bytes(*bytes))
    }

    fn i32(&mut self) -> Option<i32> {
        let (bytes, rest) = self.0.split_first_chunk()?;
        self.0 = rest;
        Some(i32::from_be_bytes(*bytes))
    }
}

/// An ErrorResponse of severity FATAL, as Postgres encodes it.
fn fatal(code: &str, message: &str) -> Vec<u8> {
    let mut fields = Vec::new();
    for (field, value) in [
        (b'S', "FATAL"),
        (b'V', "FATAL"),
        (b'C', code),
        (b'M', message),
    ] {
        fields.push(field);
        fields.extend_from_slice(value.as_bytes());
        fields.push(0);
    }
    fields.push(0);
    let mut frame = vec![b'E'];
    frame.extend_from_slice(&(fields.len() as u32 + 4).to_be_bytes());
    frame.extend_from_slice(&fields);
    frame
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(tag: u8, length: i32, body: &[u8]) -> Vec<u8> {
        let mut m = vec![tag];
        m.extend_from_slice(&length.to_be_bytes());
        m.extend_from_slice(body);
        m
    }

    #[tokio::test]
    async fn messages_within_bounds_pass_unchanged() {
        let mut input = message(b'Q', 13, b"SELECT 1\0");
        input.extend(message(b'X', 4, b""));
        let mut out = Vec::new();
        relay_messages(&input[..], &mut out).await.unwrap();
        assert_eq!(out, input);
    }

    #[tokio::test]
    async fn lengths_out_of_bounds_end_the_relay_before_copying() {
        let max = MAX_MESSAGE_BYTES as i32;
        for length in [-1, i32::MIN, 0, 3, max + 1, i32::MAX] {
            let mut input = message(b'Q', 13, b"SELECT 1\0");
            input.extend(message(b'Q', length, b"SELECT"));
            let mut out = Vec::new();
            let error = relay_messages(&input[..], &mut out).await.unwrap_err();
            assert_eq!(
                refusal(&error),
                Some(&Refused::Message { tag: b'Q', length }),
                "{length}: {error}"
            );
            assert_eq!(out, message(b'Q', 13, b"SELECT 1\0"), "{length}");
        }
        // At the bound: copied until the input ends inside it.
        let error = relay_messages(&message(b'd', max, b"x")[..], Vec::new())
            .await
            .unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::UnexpectedEof);
    }

    fn framed(tag: u8, body: &[u8]) -> Vec<u8> {
        message(tag, body.len() as i32 + 4, body)
    }

    /// Messages whose fields fill them pass whole, the first password message as a SASL
    /// initial response and later ones as anything.
    #[tokio::test]
    async fn messages_whose_fields_fill_them_pass() {
        let input: Vec<u8> = [
            framed(b'p', b"SCRAM-SHA-256\0\0\0\0\x03n,,"),
            framed(b'p', b"c=biws,r=abc"),
            framed(b'Q', b"SELECT 1\0"),
            framed(b'P', b"s1\0SELECT $1\0\0\x01\0\0\0\x17"),
            framed(
                b'B',
                b"\0s1\0\0\x01\0\0\0\x02\0\0\0\x017\xff\xff\xff\xff\0\x01\0\0",
            ),
            framed(b'D', b"P\0"),
            framed(b'E', b"\0\0\0\0\0"),
            framed(b'C', b"Ss1\0"),
            framed(b'd', b"any bytes"),
            framed(b'S', b""),
            framed(b'X', b""),
        ]
        .concat();
        let mut out = Vec::new();
        relay_messages(&input[..], &mut out).await.unwrap();
        assert_eq!(out, input);
    }

    /// pgwire reads fields past a message's end from the next one, reads bytes left after
    /// them as the next message, and panics when a read runs past what has arrived (the fuzz
    /// target `postgres_wire` found a Parse and a Sync doing so): such a message ends the
    /// relay before any of it is copied.
    #[tokio::test]
    async fn messages_whose_fields_do_not_fill_them_are_refused() {
        let sync = framed(b'S', b"");
        for bad in [
            framed(b'P', b"s1\0SELECT $1\0\0\x01"),
            framed(b'P', b"s1\0SELECT 1\0\0\0trailing"),
            framed(b'S', b"B\0\0\0\x08"),
            framed(b'Q', b"SELECT 1"),
            framed(b'Q', b"SELECT 1\0X"),
            framed(b'B', b"\0\0\0\0\0\x01\0\0\0\x09ab\0\0"),
            framed(b'D', b""),
            framed(b'E', b"\0\0\0"),
            framed(b'p', b"password\0"),
            framed(b'p', b"SCRAM-SHA-256\0\xff\xff\xff\xfe"),
        ] {
            let input = [sync.clone(), bad.clone()].concat();
            let mut out = Vec::new();
            let error = relay_messages(&input[..], &mut out).await.unwrap_err();
            let tag = bad[0];
            assert_eq!(
                refusal(&error),
                Some(&Refused::Malformed { tag }),
                "{bad:?}"
            );
            assert_eq!(out, sync, "{bad:?}");
        }
    }

    #[test]
    fn a_fatal_error_is_a_postgres_error_response() {
        let frame = fatal("08P01", "no");
        assert_eq!(frame[0], b'E');
        assert_eq!(
            u32::from_be_bytes([frame[1], frame[2], frame[3], frame[4]]) as usize,
            frame.len() - 1
        );
        assert_eq!(&frame[5..], b"SFATAL\0VFATAL\0C08P01\0Mno\0\0");
    }
}
