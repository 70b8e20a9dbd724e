//! Shared by sbr's test crates.

use std::io::Write;
use std::process::{Command, Output, Stdio};

/// Runs `cmd` with `input` on stdin (closed after it), stdout and stderr captured.
pub fn run_with_input(cmd: &mut Command, input: &[u8]) -> Output {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // A plugin that exits before reading all of it is the caller's to judge.
    let _ = child.stdin.take().unwrap().write_all(input);
    child.wait_with_output().unwrap()
}
