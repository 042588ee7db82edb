//! For the workspace's own tests, not an API: the gate in front of every test that needs root.
//!
//! It lives here because every crate with such tests (this one, the collector, `scope`)
//! already depends on this crate; the collector re-exports it for `scope`'s tests.

/// Whether a test that needs root can run. As root, `true`. Otherwise the test cannot run:
/// under `CI=true` that is a failure (a green run must mean the test ran), so this panics
/// saying what is missing; elsewhere it prints why the test is skipped and returns `false`,
/// and the caller returns.
pub fn root_or_skip(why: &str) -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } == 0 {
        return true;
    }
    skip_unless_ci(&format!("needs root: {why}"))
}

/// A test that cannot run here for `reason`: panics under `CI=true`, else prints that it was
/// skipped and returns `false`.
pub fn skip_unless_ci(reason: &str) -> bool {
    let test = std::thread::current()
        .name()
        .unwrap_or("this test")
        .to_owned();
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{test} cannot run here ({reason}), and CI=true: a skipped test fails under CI");
    }
    eprintln!("skipped {test}: {reason}");
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    // One test, because both cases set the process-wide CI variable.
    #[test]
    fn a_skip_panics_under_ci_and_only_prints_elsewhere() {
        let before = std::env::var_os("CI");
        // SAFETY: no other unit test of this crate reads or writes the environment.
        unsafe { std::env::set_var("CI", "true") };
        let under_ci = std::panic::catch_unwind(|| skip_unless_ci("no tool"));
        // SAFETY: as above.
        unsafe { std::env::remove_var("CI") };
        let message = *under_ci
            .expect_err("CI=true must turn a skip into a failure")
            .downcast::<String>()
            .unwrap();
        assert!(
            message.contains("no tool") && message.contains("CI=true"),
            "{message}"
        );
        assert!(!skip_unless_ci("no tool"));
        if let Some(before) = before {
            // SAFETY: as above.
            unsafe { std::env::set_var("CI", before) };
        }
    }
}
