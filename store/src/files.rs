//! File names, listing, the durable write and reading back.
//!
//! A name that does not have exactly the shape of [`file_path`] is not a snapshot file:
//! temporary files (`.<name>.tmp-<pid>`) and anything else in a table directory are never
//! read.

use std::{
    fs::{self, File},
    path::{Path, PathBuf},
    sync::Arc,
};

use arrow::{datatypes::SchemaRef, record_batch::RecordBatch};
use parquet::{
    arrow::{ArrowWriter, arrow_reader::ParquetRecordBatchReaderBuilder},
    basic::{Compression, ZstdLevel},
    errors::ParquetError,
    file::properties::WriterProperties,
};

use crate::Error;

/// Path of one table's file of one snapshot, relative to the data dir:
/// `<table>/<snapshot_time_us, 20 digits>-<writer>.parquet`. Sorting file names sorts by time.
pub fn file_path(table: &str, snapshot_time_us: i64, writer: &str) -> String {
    format!("{table}/{snapshot_time_us:020}-{writer}.parquet")
}

/// Splits a snapshot file name (made by [`file_path`]) into its time and writer.
pub fn parse_file_name(name: &str) -> Option<(i64, &str)> {
    let stem = name.strip_suffix(".parquet")?;
    let (time, writer) = stem.split_at_checked(20)?;
    let writer = writer.strip_prefix('-')?;
    if !time.bytes().all(|b| b.is_ascii_digit()) || writer.is_empty() {
        return None;
    }
    Some((time.parse().ok()?, writer))
}

/// Whether `name` is a temporary file of [`write`] (hidden, never ending in `.parquet`).
/// Older mergers named theirs `.<name>.tmp`, which this covers too, so retention removes them.
pub fn is_temp_file(name: &str) -> bool {
    name.starts_with('.') && name.contains(".parquet.tmp")
}

/// One Parquet file of one table of one snapshot.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct TableFile {
    pub snapshot_time_us: i64,
    pub writer: String,
    pub path: PathBuf,
}

/// Every snapshot file of `table`, sorted by time then writer. A missing directory has none.
pub fn list(data_dir: &Path, table: &str) -> Result<Vec<TableFile>, Error> {
    let dir = data_dir.join(table);
    let read_dir_error = |source| Error::ReadDir {
        path: dir.clone(),
        source,
    };
    let entries = match fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => return Err(read_dir_error(source)),
    };
    let mut files = Vec::new();
    for entry in entries {
        let entry = entry.map_err(read_dir_error)?;
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

/// A file [`write`] made.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Written {
    pub path: PathBuf,
    pub bytes: u64,
}

/// Writes `batches` (which must have `schema`) as the file of `table` at `snapshot_time_us` by
/// `writer`, zstd-compressed: to a temporary file in the table's directory (created if
/// missing), fsynced, renamed over the final name, then the directory fsynced. Readers see
/// the old file or the whole new one, and once this returns a crash does not lose it, so a
/// snapshot may be announced after its files are written.
pub fn write(
    data_dir: &Path,
    table: &str,
    snapshot_time_us: i64,
    writer: &str,
    schema: &SchemaRef,
    batches: &[RecordBatch],
) -> Result<Written, Error> {
    let path = data_dir.join(file_path(table, snapshot_time_us, writer));
    let dir = path
        .parent()
        .map_or_else(|| data_dir.to_path_buf(), Path::to_path_buf);
    let write_error = |path: &Path| {
        let path = path.to_path_buf();
        move |source| Error::WriteFile { path, source }
    };
    fs::create_dir_all(&dir).map_err(write_error(&dir))?;
    let file_name = path.file_name().and_then(|n| n.to_str()).unwrap_or(table);
    // The pid keeps two processes writing the same name from sharing a temporary file.
    let tmp = dir.join(format!(".{file_name}.tmp-{}", std::process::id()));

    let result = write_temp(&tmp, schema, batches).and_then(|bytes| {
        fs::rename(&tmp, &path)
            .map_err(write_error(&path))
            .map(|()| bytes)
    });
    let bytes = match result {
        Ok(bytes) => bytes,
        Err(e) => {
            // Best effort: retention removes what is left once it is stale.
            let _ = fs::remove_file(&tmp);
            return Err(e);
        }
    };
    // The rename is durable once the directory is.
    File::open(&dir)
        .and_then(|d| d.sync_all())
        .map_err(write_error(&dir))?;
    Ok(Written { path, bytes })
}

/// Every row of a file [`write`] made, in the order written.
pub fn read(path: &Path) -> Result<Vec<RecordBatch>, Error> {
    reader(path)?
        .build()
        .and_then(|batches| {
            batches
                .collect::<Result<_, _>>()
                .map_err(ParquetError::from)
        })
        .map_err(read_error(path))
}

/// The number of rows of a file [`write`] made, from its footer alone.
pub fn rows(path: &Path) -> Result<usize, Error> {
    let rows = reader(path)?.metadata().file_metadata().num_rows();
    Ok(usize::try_from(rows).unwrap_or(0))
}

fn reader(path: &Path) -> Result<ParquetRecordBatchReaderBuilder<File>, Error> {
    File::open(path)
        .map_err(|e| ParquetError::External(Box::new(e)))
        .and_then(ParquetRecordBatchReaderBuilder::try_new)
        .map_err(read_error(path))
}

fn read_error(path: &Path) -> impl FnOnce(ParquetError) -> Error {
    let path = path.to_path_buf();
    move |source| Error::ReadParquet { path, source }
}

/// Writes and fsyncs the temporary file; returns its length.
fn write_temp(tmp: &Path, schema: &SchemaRef, batches: &[RecordBatch]) -> Result<u64, Error> {
    let parquet_error = |source| Error::WriteParquet {
        path: tmp.to_path_buf(),
        source,
    };
    let io_error = |source| Error::WriteFile {
        path: tmp.to_path_buf(),
        source,
    };
    let file = File::create(tmp).map_err(io_error)?;
    let props = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::default()))
        .build();
    let mut writer =
        ArrowWriter::try_new(file, Arc::clone(schema), Some(props)).map_err(parquet_error)?;
    for batch in batches {
        writer.write(batch).map_err(parquet_error)?;
    }
    let file = writer.into_inner().map_err(parquet_error)?;
    file.sync_all().map_err(io_error)?;
    Ok(file.metadata().map_err(io_error)?.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::{
        array::{AsArray, Int64Array, StringArray},
        datatypes::{DataType, Field, Schema},
    };

    #[test]
    fn file_names_sort_by_time_and_parse_back() {
        let early = file_path("hosts", 999_000_000, "m-1");
        let late = file_path("hosts", 1_000_000_000, "m-1");
        assert!(early < late);
        let name = late.strip_prefix("hosts/").unwrap();
        assert_eq!(parse_file_name(name), Some((1_000_000_000, "m-1")));
        assert_eq!(
            parse_file_name("00000001700000000000-merger-a-1.parquet"),
            Some((1_700_000_000_000, "merger-a-1"))
        );
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
        assert!(is_temp_file(".00000001700000000000-w.parquet.tmp"));
        assert!(!is_temp_file("00000001700000000000-w.parquet"));
    }

    fn batch(rows: i64) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("n", DataType::Int64, false),
            Field::new("s", DataType::Utf8, true),
        ]));
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int64Array::from_iter_values(0..rows)),
                Arc::new(StringArray::from_iter((0..rows).map(|_| Some("x")))),
            ],
        )
        .unwrap()
    }

    #[test]
    fn written_files_read_back_are_listed_and_leave_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let schema = batch(0).schema();
        let written = write(dir.path(), "t", 42, "w1", &schema, &[batch(2), batch(3)]).unwrap();
        assert_eq!(written.path, dir.path().join(file_path("t", 42, "w1")));
        assert_eq!(written.bytes, fs::metadata(&written.path).unwrap().len());
        let batches = read(&written.path).unwrap();
        assert_eq!(batches.iter().map(RecordBatch::num_rows).sum::<usize>(), 5);
        let n = batches[0]
            .column(0)
            .as_primitive::<arrow::datatypes::Int64Type>();
        assert_eq!(n.values(), &[0, 1, 0, 1, 2], "in the order written");
        assert_eq!(rows(&written.path).unwrap(), 5);
        let missing = dir.path().join("missing.parquet");
        assert!(matches!(read(&missing), Err(Error::ReadParquet { .. })));

        // An empty table still gets its file, so a reader can tell "no rows" from "not yet".
        write(dir.path(), "t", 42, "w0", &schema, &[]).unwrap();
        write(dir.path(), "t", 7, "w1", &schema, &[batch(1)]).unwrap();
        let names: Vec<String> = fs::read_dir(dir.path().join("t"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert!(!names.iter().any(|n| is_temp_file(n)), "{names:?}");
        let listed: Vec<(i64, String)> = list(dir.path(), "t")
            .unwrap()
            .into_iter()
            .map(|f| (f.snapshot_time_us, f.writer))
            .collect();
        assert_eq!(
            listed,
            [(7, "w1".into()), (42, "w0".into()), (42, "w1".into())]
        );
        assert_eq!(files_at(dir.path(), "t", 42).unwrap().len(), 2);
        assert!(list(dir.path(), "missing").unwrap().is_empty());
    }

    #[test]
    fn a_batch_that_does_not_fit_the_schema_is_an_error_and_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let other = Arc::new(Schema::new(vec![Field::new("x", DataType::Utf8, false)]));
        let error = write(dir.path(), "t", 1, "w", &other, &[batch(1)]).unwrap_err();
        assert!(matches!(error, Error::WriteParquet { .. }), "{error}");
        assert_eq!(fs::read_dir(dir.path().join("t")).unwrap().count(), 0);
    }
}
