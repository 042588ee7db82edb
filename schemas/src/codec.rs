//! Avro single-object encoding for Scope's records.
//!
//! Every Kafka value Scope writes is `C3 01`, the 8-byte little-endian CRC-64-AVRO (Rabin)
//! fingerprint of the writer schema's Parsing Canonical Form, then the Avro binary datum. A
//! reader that holds the `.avsc` files can therefore tell which schema wrote a message and decode
//! it with any Avro library; a message with another header or fingerprint is rejected, not
//! guessed at.
//!
//! A decoder reads what any released version of a record's schema (`avro/released/`) wrote: it
//! looks the writer's schema up by fingerprint and resolves the datum to the current schema, so
//! a consumer upgraded before its producers keeps their records.
//!
//! ```
//! use scope_schemas::{Record, RenderedNode};
//! let node = RenderedNode {
//!     view: "hosts".into(), id: "h1;<host>".into(), label: "h1".into(),
//!     label_minor: String::new(), rank: "h1".into(), shape: "circle".into(), pseudo: false,
//!     adjacency: vec![], metadata: Default::default(), snapshot_time_us: 0,
//! };
//! let bytes = node.encode().unwrap();
//! assert_eq!(&bytes[..2], &[0xC3, 0x01]);
//! assert_eq!(RenderedNode::decode(&bytes).unwrap(), node);
//! ```

use std::collections::HashSet;

use apache_avro::{
    Schema, rabin::Rabin, reader::datum::GenericDatumReader, schema::SchemaFingerprint,
    writer::datum::GenericDatumWriter,
};
use serde::{Serialize, de::DeserializeOwned};
use serde_json::Value as Json;

/// The two marker bytes that open every single-object encoded message.
pub const SINGLE_OBJECT_MAGIC: [u8; 2] = [0xC3, 0x01];
const HEADER_LEN: usize = 10;
/// The largest string, array or map a decoder allocates for.
pub const MAX_ALLOCATION_BYTES: usize = 16 << 20;

/// A schema parsed once, with its single-object header, its datum writer and reader, and a
/// resolving reader for every older released version of it.
///
/// The writers and readers are built once too: building one resolves the schema's names into
/// a fresh map, which cost more than encoding a connection event itself.
pub struct RecordSchema {
    name: &'static str,
    schema: &'static Schema,
    writer: GenericDatumWriter<'static>,
    reader: GenericDatumReader<'static>,
    header: [u8; HEADER_LEN],
    /// Fingerprints of other writer schemas this one reads, each with the reader that
    /// resolves their datums to `schema`, or `None` for a fingerprint of `schema` itself.
    writers: Vec<([u8; 8], Option<GenericDatumReader<'static>>)>,
}

impl RecordSchema {
    /// Parses the current `.avsc` text and every released version of it (oldest first; the
    /// newest equals the current one). Panics only on a malformed schema file, a build defect
    /// caught by this crate's tests, never by input data. Meant for a `static`: the schemas
    /// live as long as the program, borrowed by their writers and readers.
    pub fn parse(avsc: &str, released: &[&str]) -> Self {
        // A crafted length prefix must not make a decoder allocate apache-avro's default
        // 512 MiB; no Scope record comes near this bound (Kafka's own limit is 1 MiB).
        apache_avro::util::max_allocation_bytes(MAX_ALLOCATION_BYTES);
        let schema = leak_parsed(avsc);
        let current = fingerprint(avsc);
        let mut header = [0u8; HEADER_LEN];
        header[..2].copy_from_slice(&SINGLE_OBJECT_MAGIC);
        header[2..].copy_from_slice(&current);
        let writer = GenericDatumWriter::builder(schema)
            .validate(false)
            .human_readable(false)
            .build()
            .expect("a parsed .avsc resolves");
        let reader = GenericDatumReader::builder(schema)
            .human_readable(false)
            .build()
            .expect("a parsed .avsc resolves");
        let mut writers = Vec::new();
        let mut known = HashSet::from([current]);
        for &text in released.iter().chain([&avsc]) {
            let own = fingerprint(text);
            let same = own == current;
            let old = if same { schema } else { leak_parsed(text) };
            let resolving = || {
                GenericDatumReader::builder(old)
                    .reader_schema(schema)
                    .human_readable(false)
                    .build()
                    .expect("a released .avsc resolves")
            };
            // Scope builds before the fingerprint followed the specification wrote the one
            // apache-avro 0.22 computes (a logical type kept as `{"type":"long"}`); reading it
            // too lets a consumer be upgraded before the collectors that still write it.
            for fp in [own, legacy_fingerprint(old)] {
                if known.insert(fp) {
                    writers.push((fp, (!same).then(resolving)));
                }
            }
        }
        Self {
            name: schema.name().map_or("record", |n| n.name()),
            schema,
            writer,
            reader,
            header,
            writers,
        }
    }

    pub fn schema(&self) -> &Schema {
        self.schema
    }

    /// `C3 01` followed by the schema fingerprint.
    pub fn header(&self) -> &[u8; HEADER_LEN] {
        &self.header
    }

    /// The fingerprint of every writer schema [`Self::decode`] reads, as the `u64` whose
    /// little-endian bytes follow `C3 01`: the current schema's first.
    pub fn writer_fingerprints(&self) -> impl Iterator<Item = u64> + '_ {
        std::iter::once(&self.header[2..])
            .chain(self.writers.iter().map(|(fp, _)| &fp[..]))
            .map(fingerprint_u64)
    }

    /// Whether `bytes` open with the header of a schema [`Self::decode`] reads: how a
    /// consumer of a topic carrying several record types picks the decoder.
    pub fn reads(&self, bytes: &[u8]) -> bool {
        bytes.len() >= HEADER_LEN
            && (bytes[..HEADER_LEN] == self.header
                || (bytes[..2] == SINGLE_OBJECT_MAGIC
                    && self
                        .writers
                        .iter()
                        .any(|(fp, _)| fp[..] == bytes[2..HEADER_LEN])))
    }

    pub fn encode<T: Serialize>(&self, record: &T) -> Result<Vec<u8>, EncodeError> {
        let mut out = Vec::with_capacity(128);
        out.extend_from_slice(&self.header);
        self.writer
            .write_ser(&mut out, record)
            .map_err(EncodeError)?;
        Ok(out)
    }

    pub fn decode<T: DeserializeOwned>(&self, bytes: &[u8]) -> Result<T, DecodeError> {
        if bytes.len() < HEADER_LEN || bytes[..2] != SINGLE_OBJECT_MAGIC {
            return Err(DecodeError::NotSingleObject);
        }
        let mut body = &bytes[HEADER_LEN..];
        let value = if bytes[..HEADER_LEN] == self.header {
            self.reader.read_deser(&mut body)
        } else {
            match self
                .writers
                .iter()
                .find(|(fp, _)| fp[..] == bytes[2..HEADER_LEN])
            {
                Some((_, None)) => self.reader.read_deser(&mut body),
                // apache-avro resolves only into a generic value, not while deserialising.
                Some((_, Some(resolving))) => resolving
                    .read_value(&mut body)
                    .and_then(|v| apache_avro::from_value(&v)),
                None => {
                    return Err(DecodeError::UnknownSchema {
                        expected: self.name,
                        fingerprint: fingerprint_u64(&bytes[2..HEADER_LEN]),
                    });
                }
            }
        }
        .map_err(DecodeError::Avro)?;
        if !body.is_empty() {
            return Err(DecodeError::TrailingBytes(body.len()));
        }
        Ok(value)
    }
}

fn leak_parsed(avsc: &str) -> &'static Schema {
    Box::leak(Box::new(
        Schema::parse_str(avsc).expect("embedded .avsc must parse"),
    ))
}

fn fingerprint_u64(bytes: &[u8]) -> u64 {
    u64::from_le_bytes(bytes.try_into().unwrap_or([0; 8]))
}

/// What Scope wrote before its headers followed the specification.
fn legacy_fingerprint(schema: &Schema) -> [u8; 8] {
    let SchemaFingerprint { bytes } = schema.fingerprint::<Rabin>();
    bytes[..8].try_into().unwrap_or([0; 8])
}

/// The CRC-64-AVRO fingerprint of a schema's Parsing Canonical Form, as the little-endian
/// bytes single-object encoding writes.
///
/// Computed here from the `.avsc` JSON rather than by apache-avro: its 0.22 canonical form
/// strips a logical type but keeps the primitive as an object (`{"type":"long"}`), while the
/// specification's [PRIMITIVES] rule and the Java and Python libraries write `"long"`, so
/// every other library rejected our headers.
fn fingerprint(avsc: &str) -> [u8; 8] {
    let json: Json = serde_json::from_str(avsc).expect("embedded .avsc is JSON");
    let mut pcf = String::new();
    canonical_form(&json, "", &mut HashSet::new(), &mut pcf);
    crc64_avro(pcf.as_bytes()).to_le_bytes()
}

/// Appends the Parsing Canonical Form of `schema` to `out`: full names, only the attributes
/// that matter for parsing, in the specification's order, a named type written in full once.
fn canonical_form(schema: &Json, namespace: &str, seen: &mut HashSet<String>, out: &mut String) {
    const PRIMITIVES: [&str; 8] = [
        "null", "boolean", "int", "long", "float", "double", "bytes", "string",
    ];
    let quoted = |s: &str| Json::from(s).to_string();
    let map = match schema {
        Json::String(name) if PRIMITIVES.contains(&name.as_str()) => {
            return out.push_str(&quoted(name));
        }
        Json::String(reference) => return out.push_str(&quoted(&full_name(reference, namespace))),
        Json::Array(branches) => {
            out.push('[');
            for (i, branch) in branches.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                canonical_form(branch, namespace, seen, out);
            }
            return out.push(']');
        }
        Json::Object(map) => map,
        // Schema::parse_str has refused anything else before a fingerprint is taken.
        other => return out.push_str(&other.to_string()),
    };
    let kind = match map.get("type") {
        Some(Json::String(kind)) => kind.as_str(),
        Some(inner) => return canonical_form(inner, namespace, seen, out),
        None => return out.push_str("null"),
    };
    match kind {
        "array" | "map" => {
            let attr = if kind == "array" { "items" } else { "values" };
            out.push_str(&format!(r#"{{"type":"{kind}","{attr}":"#));
            canonical_form(map.get(attr).unwrap_or(&Json::Null), namespace, seen, out);
            out.push('}');
        }
        "record" | "error" | "enum" | "fixed" => {
            let name = map.get("name").and_then(Json::as_str).unwrap_or_default();
            let ns = match map.get("namespace") {
                Some(Json::String(ns)) => ns.as_str(),
                _ => namespace,
            };
            let full = full_name(name, ns);
            if !seen.insert(full.clone()) {
                return out.push_str(&quoted(&full));
            }
            let inner = full.rsplit_once('.').map_or("", |(ns, _)| ns);
            out.push_str(&format!(r#"{{"name":{},"type":"{kind}""#, quoted(&full)));
            let empty = Vec::new();
            let list = |attr: &str| map.get(attr).and_then(Json::as_array).unwrap_or(&empty);
            match kind {
                "enum" => {
                    let symbols: Vec<String> =
                        list("symbols").iter().map(Json::to_string).collect();
                    out.push_str(&format!(r#","symbols":[{}]"#, symbols.join(",")));
                }
                "fixed" => {
                    let size = match map.get("size") {
                        Some(Json::String(s)) => s.clone(),
                        Some(size) => size.to_string(),
                        None => "0".into(),
                    };
                    out.push_str(&format!(r#","size":{size}"#));
                }
                _ => {
                    out.push_str(r#","fields":["#);
                    for (i, field) in list("fields").iter().enumerate() {
                        if i > 0 {
                            out.push(',');
                        }
                        let field_name = field.get("name").and_then(Json::as_str).unwrap_or("");
                        out.push_str(&format!(r#"{{"name":{},"type":"#, quoted(field_name)));
                        canonical_form(field.get("type").unwrap_or(&Json::Null), inner, seen, out);
                        out.push('}');
                    }
                    out.push(']');
                }
            }
            out.push('}');
        }
        // A primitive with attributes (a logical type): only the primitive parses data.
        other => canonical_form(&Json::from(other), namespace, seen, out),
    }
}

fn full_name(name: &str, namespace: &str) -> String {
    if name.contains('.') || namespace.is_empty() {
        name.to_string()
    } else {
        format!("{namespace}.{name}")
    }
}

/// The 64-bit Rabin fingerprint of the Avro specification ("Schema Fingerprints").
fn crc64_avro(data: &[u8]) -> u64 {
    const EMPTY: u64 = 0xc15d_213a_a4d7_a795;
    const TABLE: [u64; 256] = {
        let mut table = [0u64; 256];
        let mut i = 0;
        while i < 256 {
            let mut fp = i as u64;
            let mut bit = 0;
            while bit < 8 {
                fp = (fp >> 1) ^ (EMPTY & (fp & 1).wrapping_neg());
                bit += 1;
            }
            table[i] = fp;
            i += 1;
        }
        table
    };
    data.iter().fold(EMPTY, |fp, &b| {
        (fp >> 8) ^ TABLE[((fp ^ u64::from(b)) & 0xff) as usize]
    })
}

/// A record with an Avro schema, encoded with single-object encoding.
pub trait Record: Serialize + DeserializeOwned {
    /// The current `.avsc` text.
    const AVSC: &'static str;

    /// The parsed schema; implementors keep it in a `static LazyLock`.
    fn record_schema() -> &'static RecordSchema;

    fn encode(&self) -> Result<Vec<u8>, EncodeError> {
        Self::record_schema().encode(self)
    }

    fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        Self::record_schema().decode(bytes)
    }

    /// The record's name, for errors and logs.
    const NAME: &'static str;
}

/// Declares the `Record` impl of a type from `avro/<name>.avsc` and its released versions
/// `avro/released/<name>.v<N>.avsc`, listed oldest first.
macro_rules! avro_record {
    ($ty:ty, $name:literal, released: [$($version:literal),+]) => {
        impl $crate::codec::Record for $ty {
            const AVSC: &'static str = include_str!(concat!("../avro/", $name, ".avsc"));
            const NAME: &'static str = stringify!($ty);
            fn record_schema() -> &'static $crate::codec::RecordSchema {
                static SCHEMA: std::sync::LazyLock<$crate::codec::RecordSchema> =
                    std::sync::LazyLock::new(|| {
                        $crate::codec::RecordSchema::parse(
                            <$ty as $crate::codec::Record>::AVSC,
                            &[$(include_str!(concat!(
                                "../avro/released/", $name, ".v", $version, ".avsc"
                            ))),+],
                        )
                    });
                &SCHEMA
            }
        }
    };
}
pub(crate) use avro_record;

/// Why a record could not be encoded: its value does not fit its own Avro schema, because the
/// Rust type and its `.avsc` disagree. Retrying or other input will not help; report the bug.
#[derive(Debug, thiserror::Error)]
#[error("encoding an Avro record: {0}")]
pub struct EncodeError(#[source] apache_avro::Error);

/// Why bytes read from Kafka are not a record of the expected type. Consumers count such a
/// message as malformed and skip it; the variant says who wrote it wrong.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// The message is shorter than the 10-byte header or does not start with `C3 01`: some
    /// other producer (plain JSON, another encoding) wrote to a Scope topic. Find and stop it.
    #[error("not Avro single-object encoding (no C3 01 header)")]
    NotSingleObject,
    /// The header's fingerprint is no released version of this record's schema: a writer
    /// newer than this reader, or a record of another type on the topic. Upgrade the reader.
    #[error(
        "written with a schema that is no released version of {expected}'s (fingerprint {fingerprint:#018x})"
    )]
    UnknownSchema {
        expected: &'static str,
        fingerprint: u64,
    },
    /// The header is known but the body does not decode with that schema: truncated or
    /// corrupted bytes, or a string, array or map longer than [`MAX_ALLOCATION_BYTES`].
    #[error("malformed Avro datum: {0}")]
    Avro(#[source] apache_avro::Error),
    /// The datum decoded but bytes follow it: the writer appended data, or its schema is not
    /// the one its fingerprint names. The record is refused rather than half trusted.
    #[error("{0} bytes left over after the Avro datum")]
    TrailingBytes(usize),
}
