#![allow(clippy::unwrap_used)]
//! vrf mode against this machine's kernel, in fresh namespaces. A kernel
//! without the vrf module (this build machine's) must refuse ADD with a
//! message that says so and leave nothing behind; where the kernel has it,
//! ADD, CHECK and DEL run through (the conformance suite's `vrf` cases run
//! the traffic on Debian's 6.1 kernel, `scripts/test-vm`).

use std::process::Command;

use cni_testkit::plugin::run_with_input;
use cni_testkit::Ns;
use serde_json::{json, Value};

fn cni(cmd: &str, ns: &Ns, conf: &Value) -> (bool, Value, String) {
    let out = run_with_input(
        Command::new(env!("CARGO_BIN_EXE_sbr"))
            .env("CNI_COMMAND", cmd)
            .env("CNI_CONTAINERID", "ctr1")
            .env("CNI_NETNS", ns.path())
            .env("CNI_IFNAME", "net1")
            .env("CNI_PATH", "/usr/lib/cni"),
        conf.to_string().as_bytes(),
    );
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    (
        out.status.success(),
        serde_json::from_str(&stdout).unwrap_or(Value::Null),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Rules (but the kernel's l3mdev rule, which stays), routes of every
/// table and the links' names and masters.
fn state(ns: &Ns) -> Vec<String> {
    let mut v = Vec::new();
    for fam in ["-4", "-6"] {
        for r in ns.ip_json(&[fam, "rule"]).as_array().unwrap() {
            if r.get("l3mdev").is_none() {
                v.push(format!("rule {r}"));
            }
        }
        for r in ns
            .ip_json(&[fam, "route", "show", "table", "all"])
            .as_array()
            .unwrap()
        {
            v.push(format!("route {r}"));
        }
    }
    for l in ns.ip_json(&["link"]).as_array().unwrap() {
        v.push(format!("link {} master {}", l["ifname"], l["master"]));
    }
    v.sort();
    v
}

#[test]
fn vrf_mode_add_check_del_or_a_clear_refusal() {
    cni_testkit::need_root!("vrf_mode_add_check_del_or_a_clear_refusal");
    let ctr = Ns::new("sbrvrf");
    let host = Ns::new("sbrvrfh");
    ctr.veth("net1", "h1", Some(&host));
    host.ip(&["addr", "add", "10.1.0.1/24", "dev", "h1"]);
    host.ip(&["link", "set", "h1", "up"]);
    ctr.ip(&["addr", "add", "10.1.0.2/24", "dev", "net1"]);
    ctr.ip(&["link", "set", "net1", "up"]);
    ctr.ip(&["route", "add", "10.9.0.0/16", "via", "10.1.0.1", "dev", "net1"]);
    let has_vrf = ctr
        .try_exec(&["ip", "link", "add", "probevrf", "type", "vrf", "table", "4242"])
        .is_ok();
    if has_vrf {
        ctr.ip(&["link", "del", "probevrf"]);
    }
    let before = state(&ctr);
    let conf = json!({
        "cniVersion": "1.0.0", "name": "sip", "type": "sbr", "mode": "vrf",
        "prevResult": {
            "cniVersion": "1.0.0",
            "interfaces": [{"name": "net1", "sandbox": "/var/run/netns/x"}],
            "ips": [{"address": "10.1.0.2/24", "gateway": "10.1.0.1", "interface": 0}]
        }
    });
    let (ok, out, err) = cni("ADD", &ctr, &conf);
    if !has_vrf {
        assert!(!ok, "ADD in vrf mode succeeded on a kernel without vrf: {out}");
        // What the config asks this node cannot do; no retry helps.
        assert_eq!(out["code"], 7, "{out}");
        let msg = out["msg"].as_str().unwrap_or_default();
        assert!(
            msg.contains("add vrf vrf-net1 table 100") && msg.contains("this kernel has no vrf devices"),
            "{out} {err}"
        );
        assert_eq!(state(&ctr), before, "a refused ADD left changes");
        let (ok, out, err) = cni("DEL", &ctr, &conf);
        assert!(ok, "{out} {err}");
        assert_eq!(state(&ctr), before);
        return;
    }
    assert!(ok, "{out} {err}");
    let l = ctr.ip_json(&["link", "show", "dev", "net1"]);
    assert_eq!(l[0]["master"], "vrf-net1");
    let t = ctr.ip(&["route", "show", "table", "100"]);
    assert!(
        t.contains("default via 10.1.0.1 dev net1") && t.contains("10.9.0.0/16 via 10.1.0.1"),
        "{t}"
    );
    assert!(!ctr.ip(&["route", "show"]).contains("10.9.0.0/16"));
    let (ok, out, err) = cni("CHECK", &ctr, &conf);
    assert!(ok, "{out} {err}");
    let (ok, out, err) = cni("DEL", &ctr, &conf);
    assert!(ok, "{out} {err}");
    assert_eq!(state(&ctr), before, "DEL left changes");
}
