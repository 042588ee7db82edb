//! Where the snapshots live and how long they are kept. The mergers write them and the
//! renderer writes its tables beside them, each deleting its own tables' files past
//! retention, so both take these flags (flattened), and `scope up` gives both one.

use std::{path::PathBuf, time::Duration};

/// What `--retention` is when neither it nor `SCOPE_RETENTION` says.
const DEFAULT_RETENTION: &str = "1h";

/// `--data-dir` and `--retention`.
#[derive(clap::Args, Clone, Debug)]
pub struct StorageArgs {
    /// Directory of the snapshot Parquet files, shared by the mergers, the renderer and
    /// `scope sql`.
    #[arg(long, env = "SCOPE_DATA_DIR", default_value_os_t = default_data_dir())]
    pub data_dir: PathBuf,
    /// Files of snapshots older than this are deleted ("1h", "30m").
    #[arg(long, env = "SCOPE_RETENTION", default_value = DEFAULT_RETENTION,
          value_parser = humantime::parse_duration)]
    pub retention: Duration,
}

impl StorageArgs {
    /// `data_dir` with the default retention.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        StorageArgs {
            data_dir: data_dir.into(),
            retention: humantime::parse_duration(DEFAULT_RETENTION)
                .expect("the default is a duration"),
        }
    }

    /// Checks the settings without touching the disk; the reason names the flag.
    pub fn validate(&self) -> Result<(), String> {
        if self.data_dir.as_os_str().is_empty() {
            return Err("--data-dir must not be empty".into());
        }
        if self.retention < Duration::from_secs(1) {
            return Err(format!(
                "--retention must be at least 1s, got {}",
                humantime::format_duration(self.retention)
            ));
        }
        Ok(())
    }
}

/// Where snapshots live when neither `--data-dir` nor `SCOPE_DATA_DIR` says:
/// `$XDG_DATA_HOME/scope`, else `$HOME/.local/share/scope`, else `./scope-data`. Relative
/// values of those variables are ignored, as the XDG spec asks. Every component and
/// `scope sql` use this one default, so they find each other's files.
pub fn default_data_dir() -> PathBuf {
    let absolute = |var: &str| {
        std::env::var_os(var)
            .map(PathBuf::from)
            .filter(|p| p.is_absolute())
    };
    if let Some(xdg) = absolute("XDG_DATA_HOME") {
        xdg.join("scope")
    } else if let Some(home) = absolute("HOME") {
        home.join(".local/share/scope")
    } else {
        PathBuf::from("scope-data")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_retention_parses_and_bad_settings_are_named() {
        assert_eq!(StorageArgs::new("/d").retention, Duration::from_secs(3600));
        assert!(StorageArgs::new("/d").validate().is_ok());
        let error = StorageArgs::new("").validate().unwrap_err();
        assert!(error.contains("--data-dir"), "{error}");
        let short = StorageArgs {
            retention: Duration::from_millis(10),
            ..StorageArgs::new("/d")
        };
        assert!(short.validate().unwrap_err().contains("--retention"));
    }

    #[test]
    fn default_data_dir_is_absolute_when_home_is_known() {
        let dir = default_data_dir();
        if std::env::var_os("HOME").is_some_and(|h| PathBuf::from(h).is_absolute()) {
            assert!(dir.is_absolute());
        }
        assert!(dir.ends_with("scope") || dir.ends_with("scope-data"));
    }
}
