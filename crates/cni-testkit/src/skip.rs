//! How this workspace's tests skip: a test that cannot
//! run here must say so where a reader of the test run sees it, and where
//! every test must run (scripts/test sets [`NO_SKIP_ENV`]) it fails instead,
//! so a skipped test never counts as a pass in CI.

use std::io::Write;
use std::path::Path;

/// Starts every skip line; scripts/test counts the lines that carry it.
pub const SKIP_TAG: &str = "cni-test-skip:";

/// Set to a non-empty value where no test may skip (scripts/test, CI).
pub const NO_SKIP_ENV: &str = "CNI_TEST_NO_SKIP";

/// Whether skipping is forbidden in this run.
pub fn no_skip() -> bool {
    std::env::var_os(NO_SKIP_ENV).is_some_and(|v| !v.is_empty())
}

/// The running test's name: libtest names each test's thread after it.
fn test_name(label: &str) -> String {
    match std::thread::current().name() {
        Some(n) if n != "main" && n != label => format!("{n} ({label})"),
        _ => label.to_string(),
    }
}

/// Records that the test `label` cannot run because of `why`: one line
/// `cni-test-skip: TEST: WHY` written straight to stderr (libtest captures
/// only the print macros, so the line shows in the run's output), then a
/// panic when [`NO_SKIP_ENV`] is set. The caller returns after it.
pub fn skip(label: &str, why: &str) {
    let name = test_name(label);
    let line = format!("{SKIP_TAG} {name}: {why}\n");
    // The line is the report; a failed write leaves nothing better to do.
    let _ = std::io::stderr().lock().write_all(line.as_bytes());
    assert!(
        !no_skip(),
        "{name} cannot run: {why}; {NO_SKIP_ENV} is set, so a skip is a failure here"
    );
}

/// Returns from the calling test, after [`skip`]ping it, unless running
/// as root: the one guard every root test starts with.
#[macro_export]
macro_rules! need_root {
    ($label:expr) => {
        if !$crate::root_or_skip($label) {
            return;
        }
    };
}

/// True when running as root; otherwise [`skip`]s the test.
pub fn root_or_skip(label: &str) -> bool {
    let root = nix::unistd::geteuid().is_root();
    if !root {
        skip(label, "needs root (network namespaces)");
    }
    root
}

/// True when `program` is an executable on PATH; otherwise [`skip`]s.
pub fn program_or_skip(label: &str, program: &str) -> bool {
    let found = std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| is_executable(&dir.join(program))));
    if !found {
        skip(label, &format!("needs {program} on PATH"));
    }
    found
}

/// True when `path` exists; otherwise [`skip`]s (e.g. the reference plugins).
pub fn path_or_skip(label: &str, path: &str) -> bool {
    let found = Path::new(path).exists();
    if !found {
        skip(label, &format!("needs {path}"));
    }
    found
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}
