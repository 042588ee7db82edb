//! Retention of the renderer's own files: the rendered tables of snapshots older than
//! `--retention`, and temporary files a crash left behind. The merger deletes the merged
//! tables with the same rule, so `history.*` covers the same span for every table.

use std::{
    fs,
    path::Path,
    time::{Duration, SystemTime},
};

use scope_schemas::snapshot::table;

use crate::{Error, store};

/// What one pass deleted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Deleted {
    pub files: u64,
    pub temp_files: u64,
}

/// Deletes the rendered tables' files with a snapshot time before `now - retention`, and
/// temporary files last modified before then.
pub fn apply(data_dir: &Path, retention: Duration, now: SystemTime) -> Result<Deleted, Error> {
    let cutoff = now.checked_sub(retention).unwrap_or(SystemTime::UNIX_EPOCH);
    let cutoff_us = cutoff
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX));
    let mut deleted = Deleted::default();
    for name in table::RENDERED {
        for file in store::list(data_dir, name)? {
            if file.snapshot_time_us < cutoff_us {
                remove(&file.path)?;
                deleted.files += 1;
            }
        }
        deleted.temp_files += remove_stale_temp_files(&data_dir.join(name), cutoff)?;
    }
    Ok(deleted)
}

fn remove_stale_temp_files(dir: &Path, cutoff: SystemTime) -> Result<u64, Error> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(source) => {
            return Err(Error::ReadDir {
                path: dir.to_path_buf(),
                source,
            });
        }
    };
    let mut count = 0;
    for entry in entries.flatten() {
        let is_temp = entry.file_name().to_str().is_some_and(store::is_temp_file);
        let modified = entry.metadata().and_then(|m| m.modified()).ok();
        if is_temp && modified.is_some_and(|m| m < cutoff) {
            remove(&entry.path())?;
            count += 1;
        }
    }
    Ok(count)
}

fn remove(path: &Path) -> Result<(), Error> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        // Someone else (another renderer on the same dir) was first.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(Error::Delete {
            path: path.to_path_buf(),
            source,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deletes_old_rendered_files_only() {
        let dir = tempfile::tempdir().unwrap();
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(10_000);
        let old_us = 5_000_000_000; // 5000 s
        let new_us = 9_500_000_000; // 9500 s
        let mut paths = Vec::new();
        for name in [table::GRAPH_NODES, table::HOSTS] {
            for t in [old_us, new_us] {
                let path = dir
                    .path()
                    .join(scope_schemas::snapshot::file_path(name, t, "w"));
                fs::create_dir_all(path.parent().unwrap()).unwrap();
                fs::write(&path, b"x").unwrap();
                paths.push(path);
            }
        }
        let temp = dir.path().join(table::GRAPH_NODES).join(".x.parquet.tmp-1");
        fs::write(&temp, b"x").unwrap();

        let deleted = apply(dir.path(), Duration::from_secs(1000), now).unwrap();
        assert_eq!(
            deleted,
            Deleted {
                files: 1,
                temp_files: 0
            }
        );
        assert!(!paths[0].exists(), "old graph_nodes file deleted");
        assert!(paths[1].exists() && paths[2].exists() && paths[3].exists());
        assert!(temp.exists(), "a fresh temporary file may be in use");

        let later = SystemTime::now() + Duration::from_secs(7200);
        let deleted = apply(dir.path(), Duration::from_secs(3600), later).unwrap();
        assert_eq!(deleted.temp_files, 1);
        assert!(!temp.exists());
    }
}
