//! Avro single-object encoding for Scope's records.
//!
//! Every Kafka value Scope writes is `C3 01`, the 8-byte little-endian CRC-64-AVRO (Rabin)
//! fingerprint of the writer schema's canonical form, then the Avro binary datum. A reader
//! that holds the `.avsc` files can therefore tell which schema wrote a message and decode it
//! with any Avro library; a message with another header or fingerprint is rejected, not guessed at.
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

use apache_avro::{
    Schema, rabin::Rabin, reader::datum::GenericDatumReader, schema::SchemaFingerprint,
    writer::datum::GenericDatumWriter,
};
use serde::{Serialize, de::DeserializeOwned};

/// The two marker bytes that open every single-object encoded message.
pub const SINGLE_OBJECT_MAGIC: [u8; 2] = [0xC3, 0x01];
const HEADER_LEN: usize = 10;
/// The largest string, array or map a decoder allocates for.
pub const MAX_ALLOCATION_BYTES: usize = 16 << 20;

/// A schema parsed once, with its single-object header and its datum writer and reader.
///
/// The writer and reader are built once too: building one resolves the schema's names into
/// a fresh map, which cost more than encoding a connection event itself.
pub struct RecordSchema {
    schema: &'static Schema,
    writer: GenericDatumWriter<'static>,
    reader: GenericDatumReader<'static>,
    header: [u8; HEADER_LEN],
}

impl RecordSchema {
    /// Parses `.avsc` text; panics only on a malformed schema file, which is a build defect
    /// caught by this crate's tests, never by input data. Meant for a `static`: the schema
    /// lives as long as the program, borrowed by its writer and reader.
    pub fn parse(avsc: &str) -> Self {
        // A crafted length prefix must not make a decoder allocate apache-avro's default
        // 512 MiB; no Scope record comes near this bound (Kafka's own limit is 1 MiB).
        apache_avro::util::max_allocation_bytes(MAX_ALLOCATION_BYTES);
        let schema: &'static Schema = Box::leak(Box::new(
            Schema::parse_str(avsc).expect("embedded .avsc must parse"),
        ));
        let SchemaFingerprint { bytes } = schema.fingerprint::<Rabin>();
        let mut header = [0u8; HEADER_LEN];
        header[..2].copy_from_slice(&SINGLE_OBJECT_MAGIC);
        header[2..].copy_from_slice(&bytes[..8]);
        let writer = GenericDatumWriter::builder(schema)
            .validate(false)
            .human_readable(false)
            .build()
            .expect("a parsed .avsc resolves");
        let reader = GenericDatumReader::builder(schema)
            .human_readable(false)
            .build()
            .expect("a parsed .avsc resolves");
        Self {
            schema,
            writer,
            reader,
            header,
        }
    }

    pub fn schema(&self) -> &Schema {
        self.schema
    }

    /// `C3 01` followed by the schema fingerprint.
    pub fn header(&self) -> &[u8; HEADER_LEN] {
        &self.header
    }
}

/// A record with an Avro schema, encoded with single-object encoding.
pub trait Record: Serialize + DeserializeOwned {
    /// The `.avsc` text.
    const AVSC: &'static str;

    /// The parsed schema; implementors keep it in a `static LazyLock`.
    fn record_schema() -> &'static RecordSchema;

    fn encode(&self) -> Result<Vec<u8>, EncodeError> {
        let rs = Self::record_schema();
        let mut out = Vec::with_capacity(128);
        out.extend_from_slice(&rs.header);
        rs.writer.write_ser(&mut out, self).map_err(EncodeError)?;
        Ok(out)
    }

    fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let rs = Self::record_schema();
        if bytes.len() < HEADER_LEN || bytes[..2] != SINGLE_OBJECT_MAGIC {
            return Err(DecodeError::NotSingleObject);
        }
        if bytes[..HEADER_LEN] != rs.header {
            return Err(DecodeError::UnknownSchema {
                expected: Self::NAME,
                fingerprint: u64::from_le_bytes(bytes[2..HEADER_LEN].try_into().unwrap_or([0; 8])),
            });
        }
        let mut body = &bytes[HEADER_LEN..];
        let value = rs.reader.read_deser(&mut body).map_err(DecodeError::Avro)?;
        if !body.is_empty() {
            return Err(DecodeError::TrailingBytes(body.len()));
        }
        Ok(value)
    }

    /// The record's name, for errors and logs.
    const NAME: &'static str;
}

/// Declares the `Record` impl of a type from its `.avsc` file.
macro_rules! avro_record {
    ($ty:ty, $file:literal) => {
        impl $crate::codec::Record for $ty {
            const AVSC: &'static str = include_str!(concat!("../avro/", $file));
            const NAME: &'static str = stringify!($ty);
            fn record_schema() -> &'static $crate::codec::RecordSchema {
                static SCHEMA: std::sync::LazyLock<$crate::codec::RecordSchema> =
                    std::sync::LazyLock::new(|| {
                        $crate::codec::RecordSchema::parse(<$ty as $crate::codec::Record>::AVSC)
                    });
                &SCHEMA
            }
        }
    };
}
pub(crate) use avro_record;

#[derive(Debug, thiserror::Error)]
#[error("encoding an Avro record: {0}")]
pub struct EncodeError(#[source] apache_avro::Error);

#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("not Avro single-object encoding (no C3 01 header)")]
    NotSingleObject,
    #[error("written with a schema other than {expected}'s (fingerprint {fingerprint:#018x})")]
    UnknownSchema {
        expected: &'static str,
        fingerprint: u64,
    },
    #[error("malformed Avro datum: {0}")]
    Avro(#[source] apache_avro::Error),
    #[error("{0} bytes left over after the Avro datum")]
    TrailingBytes(usize),
}
