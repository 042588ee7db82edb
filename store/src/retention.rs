//! Deleting files past `--retention`. Each writer sweeps the tables it writes (the mergers
//! the merged tables, the renderer the rendered ones) with this one rule, so `history.*`
//! covers the same span for every table.

use std::{
    fs,
    path::Path,
    time::{Duration, SystemTime},
};

use crate::{Error, files};

/// What one sweep deleted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Swept {
    pub files: u64,
    pub temp_files: u64,
}

impl Swept {
    pub fn total(self) -> u64 {
        self.files + self.temp_files
    }
}

/// Deletes the files of `tables` (any writer's) whose snapshot time is before
/// `now - retention`, and temporary files last modified before then: a temporary file's
/// name carries the time of a snapshot still being written, so only its age tells that the
/// writer crashed.
pub fn sweep(
    data_dir: &Path,
    tables: &[&str],
    retention: Duration,
    now: SystemTime,
) -> Result<Swept, Error> {
    let cutoff = now.checked_sub(retention).unwrap_or(SystemTime::UNIX_EPOCH);
    let cutoff_us = cutoff
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX));
    let mut swept = Swept::default();
    for table in tables {
        for file in files::list(data_dir, table)? {
            if file.snapshot_time_us < cutoff_us && remove(&file.path)? {
                swept.files += 1;
            }
        }
        swept.temp_files += remove_stale_temp_files(&data_dir.join(table), cutoff)?;
    }
    Ok(swept)
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
    // An entry that vanished or cannot be stat'ed mid-listing is another sweeper's or a
    // writer's rename; the next sweep sees it again if it is still there.
    for entry in entries.flatten() {
        let is_temp = entry.file_name().to_str().is_some_and(files::is_temp_file);
        let modified = entry.metadata().and_then(|m| m.modified()).ok();
        if is_temp && modified.is_some_and(|m| m < cutoff) && remove(&entry.path())? {
            count += 1;
        }
    }
    Ok(count)
}

/// Whether this call removed `path`.
fn remove(path: &Path) -> Result<bool, Error> {
    match fs::remove_file(path) {
        Ok(()) => Ok(true),
        // Another writer sweeping the same directory was first.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(source) => Err(Error::Delete {
            path: path.to_path_buf(),
            source,
        }),
    }
}

#[cfg(test)]
mod tests {
    use std::fs::File;

    use super::*;
    use crate::file_path;

    #[test]
    fn deletes_old_files_of_the_tables_asked_only_and_stale_temp_files() {
        let dir = tempfile::tempdir().unwrap();
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(10_000);
        let old_us = 5_000_000_000; // 5000 s
        let new_us = 9_500_000_000; // 9500 s
        let mut paths = Vec::new();
        for table in ["mine", "theirs"] {
            for t in [old_us, new_us] {
                let path = dir.path().join(file_path(table, t, "w"));
                fs::create_dir_all(path.parent().unwrap()).unwrap();
                fs::write(&path, b"x").unwrap();
                paths.push(path);
            }
        }
        let temp = dir.path().join("mine").join(".x.parquet.tmp-1");
        fs::write(&temp, b"x").unwrap();
        let their_temp = dir.path().join("theirs").join(".x.parquet.tmp-1");
        fs::write(&their_temp, b"x").unwrap();

        let retention = Duration::from_secs(1000);
        let swept = sweep(dir.path(), &["mine"], retention, now).unwrap();
        assert_eq!(
            swept,
            Swept {
                files: 1,
                temp_files: 0
            }
        );
        assert!(!paths[0].exists(), "the old file of a swept table goes");
        assert!(paths[1].exists() && paths[2].exists() && paths[3].exists());
        assert!(temp.exists(), "a fresh temporary file may be in use");

        // A temporary file goes once it is older than retention, whatever its name says.
        let old = SystemTime::now() - Duration::from_secs(7200);
        for t in [&temp, &their_temp] {
            File::options()
                .write(true)
                .open(t)
                .unwrap()
                .set_modified(old)
                .unwrap();
        }
        let swept = sweep(
            dir.path(),
            &["mine"],
            Duration::from_secs(3600),
            SystemTime::now(),
        );
        assert_eq!(
            swept.unwrap(),
            Swept {
                files: 1,
                temp_files: 1
            }
        );
        assert!(!temp.exists() && !paths[1].exists());
        assert!(their_temp.exists() && paths[2].exists() && paths[3].exists());

        assert_eq!(
            sweep(dir.path(), &["absent"], retention, now)
                .unwrap()
                .total(),
            0
        );
    }
}
