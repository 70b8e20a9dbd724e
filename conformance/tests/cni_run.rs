#![allow(clippy::unwrap_used)]
//! cni-run's libcni semantics against fake plugins (shell scripts that log
//! what they were given): no root, no kernel.

use std::path::PathBuf;
use std::process::{Command, Output};

use serde_json::Value;

const FAKE: &str = r#"#!/bin/sh
in=$(cat)
me=$(basename "$0")
printf '%s\t%s\t%s\t%s\t%s\n' "$CNI_COMMAND" "$me" "$CNI_CONTAINERID" "$CNI_IFNAME" "$in" >> "$FAKE_LOG"
if [ "$FAKE_FAIL" = "$me" ]; then
  printf '{"cniVersion":"1.0.0","code":7,"msg":"%s refuses","details":"why"}' "$me"
  exit 1
fi
if [ "$FAKE_HANG" = "$me" ]; then sleep 30; fi
if [ "$CNI_COMMAND" = ADD ]; then
  printf '{"cniVersion":"1.0.0","interfaces":[{"name":"%s"}],"ips":[{"address":"10.0.0.2/24"}]}' "$me"
fi
"#;

/// The cni-run binary cargo built beside this test (target/<profile>/).
fn cni_run() -> PathBuf {
    if let Some(p) = option_env!("CARGO_BIN_EXE_cni-run") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().unwrap();
    exe.parent().unwrap().parent().unwrap().join("cni-run")
}

struct Env {
    dir: PathBuf,
}

impl Env {
    fn new(tag: &str, list: &str) -> Env {
        let dir = std::env::temp_dir().join(format!("cni-run-test-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        for d in ["bin", "net.d", "cache"] {
            std::fs::create_dir_all(dir.join(d)).unwrap();
        }
        for p in ["one", "two"] {
            let path = dir.join("bin").join(p);
            std::fs::write(&path, FAKE).unwrap();
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        std::fs::write(dir.join("net.d/10-test.conflist"), list).unwrap();
        Env { dir }
    }

    /// Runs with no extra environment; fails the test unless it succeeds.
    fn ok(&self, args: &[&str]) {
        let out = self.run(args, &[]);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn run(&self, args: &[&str], extra: &[(&str, &str)]) -> Output {
        let mut c = Command::new(cni_run());
        c.args(args)
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("NETCONFPATH", self.dir.join("net.d"))
            .env("CNI_PATH", self.dir.join("bin"))
            .env("CNI_CACHE_DIR", self.dir.join("cache"))
            .env("FAKE_LOG", self.dir.join("log"));
        for (k, v) in extra {
            c.env(k, v);
        }
        c.output().unwrap()
    }

    /// (command, plugin, container id, ifname, stdin as json) per call.
    fn calls(&self) -> Vec<(String, String, String, String, Value)> {
        let log = std::fs::read_to_string(self.dir.join("log")).unwrap_or_default();
        log.lines()
            .map(|l| {
                let f: Vec<&str> = l.splitn(5, '\t').collect();
                (
                    f[0].into(),
                    f[1].into(),
                    f[2].into(),
                    f[3].into(),
                    serde_json::from_str(f[4]).unwrap(),
                )
            })
            .collect()
    }

    fn cache_file(&self, id: &str) -> PathBuf {
        self.dir.join("cache/results").join(format!("net-{id}-eth0"))
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

const LIST: &str = r#"{"cniVersion":"1.0.0","name":"net","plugins":[
  {"type":"one","capabilities":{"bandwidth":true}},
  {"type":"two","name":"ignored","capabilities":{"portMappings":true}}]}"#;

fn id_of(netns: &str) -> String {
    use sha2::{Digest, Sha512};
    let d = Sha512::digest(netns.as_bytes());
    format!(
        "cnitool-{}",
        d.iter().take(10).map(|b| format!("{b:02x}")).collect::<String>()
    )
}

#[test]
fn add_chains_results_and_caches_like_libcni() {
    let e = Env::new("add", LIST);
    let out = e.run(
        &["add", "net", "/run/netns/x"],
        &[("CAP_ARGS", r#"{"bandwidth":{"a":1},"other":2}"#)],
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let result: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(result["interfaces"][0]["name"], "two");
    let calls = e.calls();
    assert_eq!(calls.len(), 2);
    let id = id_of("/run/netns/x");
    let (cmd, plugin, cid, ifname, conf) = &calls[0];
    assert_eq!(
        (cmd.as_str(), plugin.as_str(), cid, ifname.as_str()),
        ("ADD", "one", &id, "eth0")
    );
    assert_eq!(conf["name"], "net");
    assert_eq!(conf["cniVersion"], "1.0.0");
    assert!(conf.get("prevResult").is_none());
    assert_eq!(conf["runtimeConfig"], serde_json::json!({"bandwidth":{"a":1}}));
    let conf2 = &calls[1].4;
    assert_eq!(conf2["name"], "net");
    assert_eq!(conf2["prevResult"]["interfaces"][0]["name"], "one");
    assert!(conf2.get("runtimeConfig").is_none());

    let cached: Value = serde_json::from_slice(&std::fs::read(e.cache_file(&id)).unwrap()).unwrap();
    assert_eq!(cached["kind"], "cniCacheV1");
    assert_eq!(cached["containerId"], id.as_str());
    assert_eq!(cached["networkName"], "net");
    assert_eq!(cached["ifName"], "eth0");
    assert_eq!(cached["result"], result);
    let config = cni_runtime::cache::base64_decode(cached["config"].as_str().unwrap()).unwrap();
    assert_eq!(config, LIST.as_bytes());
}

#[test]
fn del_runs_in_reverse_with_cached_result_and_drops_cache() {
    let e = Env::new("del", LIST);
    e.ok(&["add", "net", "/run/netns/y", "--container-id", "c1"]);
    let out = e.run(&["del", "net", "/run/netns/y", "--container-id", "c1"], &[]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let calls = e.calls();
    let dels: Vec<_> = calls.iter().filter(|c| c.0 == "DEL").collect();
    assert_eq!(
        dels.iter().map(|c| c.1.as_str()).collect::<Vec<_>>(),
        ["two", "one"]
    );
    for d in &dels {
        assert_eq!(d.4["prevResult"]["interfaces"][0]["name"], "two");
    }
    assert!(!e.cache_file("c1").exists());
    // Again, without a cache: no prevResult, still success.
    e.ok(&["del", "net", "/run/netns/y", "--container-id", "c1"]);
    assert!(e
        .calls()
        .iter()
        .filter(|c| c.0 == "DEL")
        .skip(2)
        .all(|c| c.4.get("prevResult").is_none()));
}

#[test]
fn check_needs_0_4_0_and_uses_cache() {
    let e = Env::new("check", LIST);
    e.ok(&["add", "net", "/run/netns/z", "-i", "net1"]);
    e.ok(&["check", "net", "/run/netns/z", "-i", "net1"]);
    let checks: Vec<_> = e.calls().into_iter().filter(|c| c.0 == "CHECK").collect();
    assert_eq!(checks.len(), 2);
    assert_eq!(checks[0].3, "net1");
    assert_eq!(checks[0].4["prevResult"]["interfaces"][0]["name"], "two");

    let old = Env::new("check-old", &LIST.replace("1.0.0", "0.3.1"));
    let out = old.run(&["check", "net", "/run/netns/z"], &[]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("does not support the CHECK command"));
}

#[test]
fn plugin_error_shows_code_and_stops_the_chain() {
    let e = Env::new("err", LIST);
    let out = e.run(&["add", "net", "/run/netns/x"], &[("FAKE_FAIL", "one")]);
    assert_eq!(out.status.code(), Some(7));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("[code 7] one refuses; why"), "{err}");
    assert_eq!(e.calls().len(), 1);
    assert!(!e.cache_file(&id_of("/run/netns/x")).exists());
}

#[test]
fn hanging_plugin_is_killed() {
    let e = Env::new("hang", LIST);
    let t = std::time::Instant::now();
    let out = e.run(
        &["add", "net", "/run/netns/x", "--timeout", "0.5"],
        &[("FAKE_HANG", "one")],
    );
    assert_eq!(out.status.code(), Some(124));
    assert!(t.elapsed() < std::time::Duration::from_secs(10));
    assert!(String::from_utf8_lossy(&out.stderr).contains("timed out"));
}

#[test]
fn gc_and_status_on_1_1_0() {
    let e = Env::new("gc", &LIST.replace("1.0.0", "1.1.0"));
    e.ok(&["add", "net", "/run/netns/a", "--container-id", "keep"]);
    e.ok(&["add", "net", "/run/netns/b", "--container-id", "stale"]);
    // A runtime that only knows "keep": the stale one is deleted, then GC.
    let out = e.run(&["gc", "net", "--valid", "keep:eth0"], &[]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let calls = e.calls();
    let dels: Vec<_> = calls.iter().filter(|c| c.0 == "DEL").collect();
    assert_eq!(dels.len(), 2);
    assert!(dels.iter().all(|c| c.2 == "stale"));
    let gcs: Vec<_> = calls.iter().filter(|c| c.0 == "GC").collect();
    assert_eq!(gcs.len(), 2);
    assert_eq!(
        gcs[0].4["cni.dev/valid-attachments"],
        serde_json::json!([{"containerID":"keep","ifname":"eth0"}])
    );
    assert!(gcs[0].2.is_empty());
    assert!(!e.cache_file("stale").exists());
    assert!(e.cache_file("keep").exists());
    // Without --valid every cached attachment is valid.
    e.ok(&["gc", "net"]);
    let last = e.calls().into_iter().rev().find(|c| c.0 == "GC").unwrap();
    assert_eq!(
        last.4["cni.dev/valid-attachments"],
        serde_json::json!([{"containerID":"keep","ifname":"eth0"}])
    );

    e.ok(&["status", "net"]);
    assert_eq!(e.calls().iter().filter(|c| c.0 == "STATUS").count(), 2);
    let failing = e.run(&["status", "net"], &[("FAKE_FAIL", "two")]);
    assert_eq!(failing.status.code(), Some(7));
}

#[test]
fn single_conf_is_found_when_no_list_matches() {
    let e = Env::new("single", LIST);
    std::fs::write(
        e.dir.join("net.d/20-single.conf"),
        r#"{"cniVersion":"0.4.0","name":"solo","type":"one"}"#,
    )
    .unwrap();
    let out = e.run(&["add", "solo", "/run/netns/s"], &[]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(e.calls()[0].4["name"], "solo");
    let missing = e.run(&["add", "nosuch", "/run/netns/s"], &[]);
    assert!(String::from_utf8_lossy(&missing.stderr).contains("no net configuration with name \"nosuch\""));
}
