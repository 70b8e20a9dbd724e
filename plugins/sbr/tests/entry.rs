#![allow(clippy::unwrap_used)]
//! The binary enters through `cni_core::plugin_main!` instead of std's
//! runtime: what std's start-up did for us must still hold. No root needed.

use std::io::Write;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Command, Stdio};

use cni_testkit::plugin::run_with_input;

const CONF: &[u8] = br#"{"cniVersion": "1.0.0", "name": "n", "type": "sbr"}"#;

fn version() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_sbr"));
    c.env_clear().env("CNI_COMMAND", "VERSION");
    c
}

#[test]
fn version_prints_the_result_and_exits_zero() {
    let mut c = version();
    let mut child = c.stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().unwrap();
    child.stdin.take().unwrap().write_all(CONF).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["cniVersion"], "1.0.0");
    assert!(v["supportedVersions"]
        .as_array()
        .unwrap()
        .contains(&"1.1.0".into()));
}

#[test]
fn closed_stdout_is_not_taken_by_the_log_file() {
    let dir = std::env::temp_dir().join(format!("sbr-entry-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let log = dir.join("sbr.log");
    let conf = serde_json::json!({
        "cniVersion": "1.0.0", "name": "n", "type": "sbr",
        "logFile": log, "logLevel": "debug",
    });
    // CHECK without CNI_NETNS: the log file is opened, then the error
    // (code 4) is printed on stdout.
    let mut c = Command::new(env!("CARGO_BIN_EXE_sbr"));
    c.env_clear().env("CNI_COMMAND", "CHECK");
    // SAFETY: close(2) is async-signal-safe; the child starts without fd 1.
    unsafe {
        c.pre_exec(|| {
            libc::close(1);
            Ok(())
        });
    }
    let status = run_with_input(&mut c, conf.to_string().as_bytes()).status;
    assert_eq!(status.code(), Some(1), "{status:?}");
    let text = std::fs::read_to_string(&log);
    std::fs::remove_dir_all(&dir).unwrap();
    // The log file was made and took the error line: the test exercised it.
    let text = text.expect("the plugin made no log file");
    assert!(
        text.contains("ERROR CHECK failed: required environment variables missing"),
        "the error is not in the log file: {text}"
    );
    assert!(
        !text.contains("\"code\""),
        "the result went into the log file: {text}"
    );
}

#[test]
fn a_reader_gone_is_a_write_error_not_sigpipe() {
    let mut c = version();
    let mut child = c
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // The reader goes away before the plugin can write its result.
    drop(child.stdout.take());
    child.stdin.take().unwrap().write_all(CONF).unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.signal(), None, "killed by a signal: {status:?}");
    assert!(!status.success());
}
