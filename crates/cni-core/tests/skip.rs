#![allow(clippy::unwrap_used)]
//! The skip protocol, seen from outside: this test binary runs its own
//! ignored probe, which skips, once with `CNI_TEST_NO_SKIP` and once without.

use std::process::{Command, Output};

use cni_testkit::skip::{skip, NO_SKIP_ENV, SKIP_TAG};

/// Run only through `a_skip_is_reported_and_fails_where_forbidden`.
#[test]
#[ignore = "a probe run by a_skip_is_reported_and_fails_where_forbidden"]
fn probe_that_skips() {
    skip("probe_that_skips", "the probe always skips");
}

fn run_probe(no_skip: bool) -> Output {
    let mut c = Command::new(std::env::current_exe().unwrap());
    c.args(["--ignored", "--exact", "probe_that_skips", "--test-threads", "1"])
        .env_remove(NO_SKIP_ENV);
    if no_skip {
        c.env(NO_SKIP_ENV, "1");
    }
    c.output().unwrap()
}

#[test]
fn a_skip_is_reported_and_fails_where_forbidden() {
    let line = format!("{SKIP_TAG} probe_that_skips: the probe always skips");

    let allowed = run_probe(false);
    let stdout = String::from_utf8_lossy(&allowed.stdout);
    let stderr = String::from_utf8_lossy(&allowed.stderr);
    assert!(allowed.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("1 passed"), "the probe did not run: {stdout}");
    // Not swallowed by libtest's capture of passing tests.
    assert!(stderr.contains(&line), "no skip line in: {stderr}");

    let forbidden = run_probe(true);
    let stdout = String::from_utf8_lossy(&forbidden.stdout);
    let stderr = String::from_utf8_lossy(&forbidden.stderr);
    assert!(
        !forbidden.status.success(),
        "a skip passed with {NO_SKIP_ENV}=1: {stdout}"
    );
    assert!(stdout.contains("1 failed"), "{stdout}");
    assert!(stderr.contains(&line), "no skip line in: {stderr}");
    assert!(
        stdout.contains(NO_SKIP_ENV) || stderr.contains(NO_SKIP_ENV),
        "the failure does not say why: {stdout}\n{stderr}"
    );
}
