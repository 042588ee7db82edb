//! The replay of a fuzz target's corpus by the tests of the crate that owns its decoder, so
//! that an input that once crashed it fails `cargo test` if it crashes again.

/// Feeds every file of `fuzz/corpus/<target>/` to `replay`; a panic fails the test, after
/// the input that caused it is printed.
pub fn replay_all(manifest_dir: &str, target: &str, replay: fn(&[u8])) {
    let dir = format!("{manifest_dir}/../fuzz/corpus/{target}");
    let mut replayed = 0;
    for entry in std::fs::read_dir(&dir).expect(&dir) {
        let path = entry.expect(&dir).path();
        // Printed only if the test fails: the input that panicked.
        eprintln!("replaying {}", path.display());
        replay(&std::fs::read(&path).expect("a corpus file"));
        replayed += 1;
    }
    assert!(replayed > 0, "no corpus in {dir}");
}
