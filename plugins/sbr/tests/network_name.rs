#![allow(clippy::unwrap_used)]
//! The reference's network name rule, applied by the dispatcher: ADD and
//! CHECK with a name the spec forbids are code 7 in the reference's words;
//! DEL takes it, so an attachment stays removable. No root needed: the
//! namespace path is in the test's own directory and cannot be one, so
//! nothing is there to change.

use std::process::Command;

use cni_testkit::plugin::run_with_input;

fn sbr(cmd: &str, netns: &std::path::Path, name: &str) -> (Option<i32>, serde_json::Value) {
    let conf = serde_json::json!({
        "cniVersion": "1.0.0", "name": name, "type": "sbr",
        "prevResult": {"cniVersion": "1.0.0", "ips": [{"address": "10.1.0.2/24"}]}
    });
    let mut c = Command::new(env!("CARGO_BIN_EXE_sbr"));
    c.env_clear()
        .env("CNI_COMMAND", cmd)
        .env("CNI_CONTAINERID", "nametest")
        .env("CNI_NETNS", netns)
        .env("CNI_IFNAME", "namenone0")
        .env("CNI_PATH", "/usr/lib/cni");
    let out = run_with_input(&mut c, conf.to_string().as_bytes());
    let json = serde_json::from_slice(&out.stdout).unwrap_or_default();
    (out.status.code(), json)
}

#[test]
fn forbidden_names_are_code_7_except_on_del() {
    let dir = std::env::temp_dir().join(format!("sbr-name-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let netns = dir.join("no-such-netns");
    for (name, words) in [
        ("bad name", "invalid characters found in network name"),
        ("", "missing network name"),
        ("-lead", "invalid characters found in network name"),
    ] {
        for cmd in ["ADD", "CHECK"] {
            let (code, json) = sbr(cmd, &netns, name);
            assert_eq!(code, Some(1), "{cmd} {name:?}: {json}");
            assert_eq!(json["code"], 7, "{cmd} {name:?}: {json}");
            let msg = json["msg"].as_str().unwrap();
            assert!(msg.contains(words), "{cmd} {name:?}: {msg:?} lacks {words:?}");
            if !name.is_empty() {
                assert_eq!(json["details"], name, "{json}");
            }
        }
        // The namespace is gone, so DEL has nothing to do, and succeeds.
        let (code, json) = sbr("DEL", &netns, name);
        assert_eq!(code, Some(0), "DEL {name:?}: {json}");
    }
    // A valid name gets past the rule: ADD fails on the namespace instead.
    let (_, json) = sbr("ADD", &netns, "good-name_1.0");
    assert_eq!(json["code"], 4, "{json}");
    assert!(!netns.exists(), "something was made at the netns path");
    std::fs::remove_dir_all(&dir).unwrap();
}
