//! The one owner of the snapshot data dir: where it is and how long files stay
//! ([`StorageArgs`]), how files are named ([`file_path`], [`parse_file_name`]), finding them
//! ([`list`], [`files_at`]), writing one durably ([`write`]), reading one back ([`read`],
//! [`rows`]) and deleting them past retention
//! ([`sweep`]). The mergers, the renderer, its API and Postgres endpoint and `scope sql` all go
//! through here, so they agree on the layout:
//! `<data_dir>/<table>/<snapshot_time_us, 20 digits>-<writer>.parquet`.
//!
//! Arrow and Parquet only: the merger links this without DataFusion.

mod args;
mod files;
mod retention;

use std::{io, path::PathBuf};

use parquet::errors::ParquetError;

pub use args::{StorageArgs, default_data_dir};
pub use files::{
    TableFile, Written, file_path, files_at, is_temp_file, list, parse_file_name, read, rows, write,
};
pub use retention::{Swept, sweep};

/// Why the data dir could not be listed, written or swept; each names the path.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Listing a table directory failed (a missing one is simply empty): permissions, or a
    /// failing mount. Fix access to `--data-dir`.
    #[error("reading directory {path}: {source}")]
    ReadDir { path: PathBuf, source: io::Error },
    /// Creating a table directory, or creating, syncing or renaming a file, failed: a full
    /// disk, permissions or a read-only mount. Free space or fix access; the next write retries.
    #[error("writing {path}: {source}")]
    WriteFile { path: PathBuf, source: io::Error },
    /// Encoding batches into the temporary Parquet file failed, usually because the disk
    /// filled or failed underneath the writer (or a batch does not match the schema given).
    #[error("writing Parquet file {path}: {source}")]
    WriteParquet { path: PathBuf, source: ParquetError },
    /// Opening or decoding a Parquet file failed: it was removed by retention meanwhile,
    /// permissions, or a file that is not what its name says (written by something else).
    #[error("reading Parquet file {path}: {source}")]
    ReadParquet { path: PathBuf, source: ParquetError },
    /// Retention could not remove an old file or stale temporary file (one another process
    /// already removed is fine): fix permissions on `--data-dir`.
    #[error("deleting {path}: {source}")]
    Delete { path: PathBuf, source: io::Error },
}
