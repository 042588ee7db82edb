//! Every committed version of every `.avsc` file must stay readable by the current one:
//! a consumer upgraded first still decodes what older collectors publish.

use std::{path::Path, process::Command};

use apache_avro::{Schema, schema_compatibility::SchemaCompatibility};

fn schema_files() -> Vec<String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("avro");
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .expect("schemas/avro exists")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".avsc"))
        .collect();
    files.sort();
    files
}

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

#[test]
fn every_committed_version_is_readable_by_the_current_schema() {
    let Some(_) = git(&["rev-parse", "--git-dir"]) else {
        eprintln!("not a git checkout: no history to compare against");
        return;
    };
    let mut compared = 0;
    for file in schema_files() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("avro")
            .join(&file);
        let current = Schema::parse_str(&std::fs::read_to_string(&path).unwrap())
            .unwrap_or_else(|e| panic!("{file} does not parse: {e}"));
        let rel = format!("avro/{file}");
        let commits = git(&["log", "--format=%H", "--", &rel]).unwrap_or_default();
        for commit in commits.lines() {
            let Some(text) = git(&["show", &format!("{commit}:./{rel}")]) else {
                continue;
            };
            let old = Schema::parse_str(&text)
                .unwrap_or_else(|e| panic!("{file} at {commit} does not parse: {e}"));
            if let Err(e) = SchemaCompatibility::can_read(&old, &current) {
                panic!("{file}: the current schema cannot read data written with {commit}'s: {e}");
            }
            compared += 1;
        }
    }
    eprintln!("{compared} committed schema versions checked");
}

#[test]
fn the_checker_rejects_a_breaking_change() {
    // Guards the test above: a new field without a default must be refused.
    let old = Schema::parse_str(
        r#"{"type":"record","name":"R","fields":[{"name":"a","type":"string"}]}"#,
    )
    .unwrap();
    let breaking = Schema::parse_str(
        r#"{"type":"record","name":"R","fields":[{"name":"a","type":"string"},{"name":"b","type":"int"}]}"#,
    )
    .unwrap();
    let compatible = Schema::parse_str(
        r#"{"type":"record","name":"R","fields":[{"name":"a","type":"string"},{"name":"b","type":"int","default":0}]}"#,
    )
    .unwrap();
    assert!(SchemaCompatibility::can_read(&old, &breaking).is_err());
    assert!(SchemaCompatibility::can_read(&old, &compatible).is_ok());
}
