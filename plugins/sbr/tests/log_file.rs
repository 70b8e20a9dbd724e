#![allow(clippy::unwrap_used)]
//! A `logFile` that is a FIFO nobody reads must not hang the plugin, and one
//! under a symlinked directory must not be written through: both are code 7
//! before any change is made (no root needed: logging starts first).

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_sbr");

/// Runs ADD with `logFile`; kills the plugin after 10 s.
fn add_with_log_file(log_file: &Path) -> (Option<i32>, serde_json::Value) {
    let conf = serde_json::json!({
        "cniVersion": "1.0.0", "name": "logtest", "type": "sbr",
        "logFile": log_file,
        "prevResult": {"cniVersion": "1.0.0", "ips": [{"address": "10.1.0.2/24"}]}
    });
    let mut child = Command::new(BIN)
        .env_clear()
        .env("CNI_COMMAND", "ADD")
        .env("CNI_CONTAINERID", "logtest")
        .env("CNI_NETNS", "/proc/self/ns/net")
        .env("CNI_IFNAME", "eth0")
        .env("CNI_PATH", "/usr/lib/cni")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(conf.to_string().as_bytes())
        .unwrap();
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > Duration::from_secs(10) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("sbr hangs opening logFile {}", log_file.display());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    let json = serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null);
    (out.status.code(), json)
}

#[test]
fn fifo_and_symlinked_directory_are_code_7() {
    let dir = std::env::temp_dir().join(format!("sbr-logfile-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let real = dir.join("real");
    std::fs::create_dir_all(&real).unwrap();
    let fifo = real.join("fifo.log");
    assert!(Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    std::os::unix::fs::symlink(&real, dir.join("linked")).unwrap();

    for (path, why) in [(fifo.clone(), "fifo"), (dir.join("linked/x.log"), "symlink")] {
        let (status, json) = add_with_log_file(&path);
        assert_eq!(status, Some(1), "{json}");
        assert_eq!(json["code"], 7, "{json}");
        let msg = json["msg"].as_str().unwrap();
        assert!(msg.contains(path.to_str().unwrap()) && msg.contains(why), "{msg}");
    }
    assert!(!real.join("x.log").exists());
    std::fs::remove_dir_all(&dir).unwrap();
}
