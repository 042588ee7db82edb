//! The data dir's Parquet files: finding a table's files by snapshot time, and writing one
//! durably.
//!
//! Layout (shared with the merger, see `scope_schemas::snapshot::file_path`):
//! `<data_dir>/<table>/<snapshot_time_us, 20 digits>-<writer>.parquet`. A name that does not
//! have exactly that shape is not a snapshot file: temporary files (`.<name>.tmp-<pid>`, or
//! whatever another writer uses that does not end in `.parquet` or start with the 20 digits)
//! are never read.

use std::{
    fs::{self, File},
    path::{Path, PathBuf},
    sync::Arc,
};

use arrow::{datatypes::SchemaRef, record_batch::RecordBatch};
use parquet::{
    arrow::ArrowWriter,
    basic::{Compression, ZstdLevel},
    file::properties::WriterProperties,
};

use crate::Error;

/// The writer name of the files the renderer writes.
pub const RENDERER_WRITER: &str = "renderer";

/// One Parquet file of one table of one snapshot.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct TableFile {
    pub snapshot_time_us: i64,
    pub writer: String,
    pub path: PathBuf,
}

/// Splits a snapshot file name into its time and writer.
pub fn parse_file_name(name: &str) -> Option<(i64, &str)> {
    let stem = name.strip_suffix(".parquet")?;
    let (time, writer) = stem.split_at_checked(20)?;
    let writer = writer.strip_prefix('-')?;
    if !time.bytes().all(|b| b.is_ascii_digit()) || writer.is_empty() {
        return None;
    }
    Some((time.parse().ok()?, writer))
}

/// Every snapshot file of `table`, sorted by time then writer. A missing directory has none.
pub fn list(data_dir: &Path, table: &str) -> Result<Vec<TableFile>, Error> {
    let dir = data_dir.join(table);
    let entries = match fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => return Err(Error::ReadDir { path: dir, source }),
    };
    let mut files = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|source| Error::ReadDir {
            path: dir.clone(),
            source,
        })?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if let Some((snapshot_time_us, writer)) = parse_file_name(name) {
            files.push(TableFile {
                snapshot_time_us,
                writer: writer.to_owned(),
                path: entry.path(),
            });
        }
    }
    files.sort();
    Ok(files)
}

/// The files of `table` for one snapshot time, all writers.
pub fn files_at(
    data_dir: &Path,
    table: &str,
    snapshot_time_us: i64,
) -> Result<Vec<PathBuf>, Error> {
    Ok(list(data_dir, table)?
        .into_iter()
        .filter(|f| f.snapshot_time_us == snapshot_time_us)
        .map(|f| f.path)
        .collect())
}

/// Whether `name` is a temporary file written by [`write_parquet`].
pub fn is_temp_file(name: &str) -> bool {
    name.starts_with('.') && name.contains(".parquet.tmp-")
}

/// Writes `batches` (which must have `schema`) as the file of `table` at `snapshot_time_us` by
/// `writer`, zstd-compressed: to a temporary file in the same directory, fsynced, renamed over
/// the final name, then the directory fsynced. Readers see the old file or the whole new one.
pub fn write_parquet(
    data_dir: &Path,
    table: &str,
    snapshot_time_us: i64,
    writer: &str,
    schema: &SchemaRef,
    batches: &[RecordBatch],
) -> Result<PathBuf, Error> {
    let path = data_dir.join(scope_schemas::snapshot::file_path(
        table,
        snapshot_time_us,
        writer,
    ));
    let dir = path
        .parent()
        .map_or_else(|| data_dir.to_path_buf(), Path::to_path_buf);
    fs::create_dir_all(&dir).map_err(|source| Error::WriteFile {
        path: dir.clone(),
        source,
    })?;
    let file_name = path.file_name().and_then(|n| n.to_str()).unwrap_or(table);
    let tmp = dir.join(format!(".{file_name}.tmp-{}", std::process::id()));

    let result = write_file(&tmp, schema, batches);
    if let Err(e) = result {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    fs::rename(&tmp, &path).map_err(|source| {
        let _ = fs::remove_file(&tmp);
        Error::WriteFile {
            path: path.clone(),
            source,
        }
    })?;
    // The rename is durable once the directory is.
    File::open(&dir)
        .and_then(|d| d.sync_all())
        .map_err(|source| Error::WriteFile {
            path: dir.clone(),
            source,
        })?;
    Ok(path)
}

fn write_file(tmp: &Path, schema: &SchemaRef, batches: &[RecordBatch]) -> Result<(), Error> {
    let parquet_err = |source| Error::WriteParquet {
        path: tmp.to_path_buf(),
        source,
    };
    let file = File::create(tmp).map_err(|source| Error::WriteFile {
        path: tmp.to_path_buf(),
        source,
    })?;
    let props = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::default()))
        .build();
    let mut writer =
        ArrowWriter::try_new(file, Arc::clone(schema), Some(props)).map_err(parquet_err)?;
    for batch in batches {
        writer.write(batch).map_err(parquet_err)?;
    }
    let file = writer.into_inner().map_err(parquet_err)?;
    file.sync_all().map_err(|source| Error::WriteFile {
        path: tmp.to_path_buf(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names() {
        let name = "00000001700000000000-merger-a-1.parquet";
        assert_eq!(
            parse_file_name(name),
            Some((1_700_000_000_000, "merger-a-1"))
        );
        let made = scope_schemas::snapshot::file_path("hosts", 42, "w");
        let made = made.strip_prefix("hosts/").unwrap();
        assert_eq!(parse_file_name(made), Some((42, "w")));
        for bad in [
            ".00000001700000000000-w.parquet.tmp-12",
            "00000001700000000000-w.parquet.tmp",
            "0000000170000000000-w.parquet",
            "00000001700000000000-.parquet",
            "00000001700000000000w.parquet",
            "x0000001700000000000-w.parquet",
        ] {
            assert_eq!(parse_file_name(bad), None, "{bad}");
        }
        assert!(is_temp_file(".00000001700000000000-w.parquet.tmp-12"));
    }
}
