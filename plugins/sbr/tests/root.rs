#![allow(clippy::unwrap_used)]
//! Root integration tests: the built plugin against real namespaces, beside
//! the reference where they share one (scenarios compared with the reference
//! live in the conformance suite). Each test makes its own namespaces (a container and a "host" peer);
//! the machine's root namespace is never touched.

use cni_testkit::plugin::run_with_input;
use std::path::Path;
use std::process::Command;

use cni_testkit::{root_or_skip, Ns};
use serde_json::{json, Value};

const REFERENCE: &str = "/usr/lib/cni/sbr";

fn ours() -> &'static str {
    env!("CARGO_BIN_EXE_sbr")
}

/// A container namespace with `net1` (10.1.0.2/24) whose peer `h1`
/// (10.1.0.1/24) sits in a host namespace.
struct Pod {
    ctr: Ns,
    host: Ns,
}

impl Pod {
    fn new(tag: &str, ipv6: bool) -> Pod {
        let ctr = Ns::new(tag);
        let host = Ns::new(&format!("{tag}h"));
        if !ipv6 {
            // The reference moves fe80::/64 into IPv4 tables; scenarios
            // run beside it are IPv4 only so both plugins see the same thing.
            ctr.exec(&["sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1"]);
            ctr.exec(&["sysctl", "-qw", "net.ipv6.conf.default.disable_ipv6=1"]);
        }
        let pod = Pod { ctr, host };
        pod.link("net1", "h1", "10.1.0");
        pod
    }

    /// Another veth `name` with 10.x.0.2/24 here and .1 on the host side.
    fn link(&self, name: &str, peer: &str, prefix: &str) {
        self.ctr.veth(name, peer, Some(&self.host));
        self.host
            .ip(&["addr", "add", &format!("{prefix}.1/24"), "dev", peer]);
        self.host.ip(&["link", "set", peer, "up"]);
        self.ctr
            .ip(&["addr", "add", &format!("{prefix}.2/24"), "dev", name]);
        self.ctr.ip(&["link", "set", name, "up"]);
    }

    fn state(&self) -> State {
        state(&self.ctr)
    }
}

/// Rules and routes of every table, sorted, as `ip -j` prints them.
#[derive(Debug, Clone, PartialEq)]
struct State {
    rules: Vec<String>,
    routes: Vec<String>,
}

fn state(ns: &Ns) -> State {
    let list = |v: Value| -> Vec<String> {
        let mut out: Vec<String> = v.as_array().unwrap().iter().map(|x| x.to_string()).collect();
        out.sort();
        out
    };
    State {
        rules: list(ns.ip_json(&["rule"])),
        routes: list(ns.ip_json(&["route", "show", "table", "all"]))
            .into_iter()
            .chain(list(ns.ip_json(&["-6", "route", "show", "table", "all"])))
            .collect(),
    }
}

struct Out {
    ok: bool,
    json: Value,
    stderr: String,
}

fn cni(bin: &str, cmd: &str, netns: &Path, ifname: &str, conf: &Value) -> Out {
    let out = run_with_input(
        Command::new(bin)
            .env("CNI_COMMAND", cmd)
            .env("CNI_CONTAINERID", "ctr1")
            .env("CNI_NETNS", netns)
            .env("CNI_IFNAME", ifname)
            .env("CNI_PATH", "/usr/lib/cni"),
        conf.to_string().as_bytes(),
    );
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    Out {
        ok: out.status.success(),
        json: serde_json::from_str(&stdout).unwrap_or(Value::Null),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn must(out: Out, what: &str) -> Value {
    assert!(out.ok, "{what} failed: {} {}", out.json, out.stderr);
    out.json
}

/// The config the runtime would send: `prev` as prevResult and `extra`
/// plugin fields.
fn conf(version: &str, prev: Value, extra: Value) -> Value {
    let mut c = json!({"cniVersion": version, "name": "sip", "type": "sbr", "prevResult": prev});
    for (k, v) in extra.as_object().unwrap() {
        c[k] = v.clone();
    }
    c
}

/// net1's prevResult: 10.1.0.2/24 via 10.1.0.1 with a default route.
fn prev_v4() -> Value {
    json!({
        "cniVersion": "1.0.0",
        "interfaces": [{"name": "net1", "sandbox": "/var/run/netns/x"}],
        "ips": [{"address": "10.1.0.2/24", "gateway": "10.1.0.1", "interface": 0}],
        "routes": [{"dst": "0.0.0.0/0"}]
    })
}

/// What the main plugin of net1 does: its default route in main.
fn main_plugin_routes(p: &Pod) {
    p.ctr
        .ip(&["route", "add", "default", "via", "10.1.0.1", "dev", "net1"]);
    p.ctr
        .ip(&["route", "add", "10.9.0.0/16", "via", "10.1.0.1", "dev", "net1"]);
}

#[test]
fn add_after_reference_add_reuses_its_table() {
    if !root_or_skip("add_after_reference_add_reuses_its_table") {
        return;
    }
    let p = Pod::new("afterref", false);
    main_plugin_routes(&p);
    let c = conf("1.0.0", prev_v4(), json!({}));
    let before = p.state();
    must(cni(REFERENCE, "ADD", &p.ctr.path(), "net1", &c), "reference ADD");
    let after_ref = p.state();
    must(
        cni(ours(), "ADD", &p.ctr.path(), "net1", &c),
        "ADD over the reference's",
    );
    assert_eq!(p.state(), after_ref);
    must(cni(ours(), "CHECK", &p.ctr.path(), "net1", &c), "CHECK");
    // Our DEL undoes the reference's ADD completely (its own DEL leaves the table).
    must(cni(ours(), "DEL", &p.ctr.path(), "net1", &c), "DEL");
    assert_eq!(p.state(), before);
}

#[test]
fn dual_stack_and_two_addresses() {
    if !root_or_skip("dual_stack_and_two_addresses") {
        return;
    }
    let p = Pod::new("dual", true);
    p.ctr.ip(&["addr", "add", "10.1.0.3/24", "dev", "net1"]);
    p.ctr
        .ip(&["addr", "add", "2001:db8::2/64", "dev", "net1", "nodad"]);
    p.host
        .ip(&["addr", "add", "2001:db8::1/64", "dev", "h1", "nodad"]);
    main_plugin_routes(&p);
    p.ctr.ip(&[
        "-6",
        "route",
        "add",
        "default",
        "via",
        "2001:db8::1",
        "dev",
        "net1",
    ]);
    let prev = json!({
        "cniVersion": "1.0.0",
        "interfaces": [{"name": "net1"}],
        "ips": [
            {"address": "10.1.0.2/24", "gateway": "10.1.0.1", "interface": 0},
            {"address": "2001:db8::2/64", "gateway": "2001:db8::1", "interface": 0},
            {"address": "10.1.0.3/24", "gateway": "10.1.0.1", "interface": 0}
        ],
        "routes": [{"dst": "0.0.0.0/0"}, {"dst": "::/0"}]
    });
    let c = conf("1.0.0", prev, json!({}));
    let before = p.state();
    must(cni(ours(), "ADD", &p.ctr.path(), "net1", &c), "ADD");
    let rules = p.ctr.ip(&["rule"]) + &p.ctr.ip(&["-6", "rule"]);
    for want in [
        "from 10.1.0.2 lookup 100",
        "from 2001:db8::2 lookup 101",
        "from 10.1.0.3 lookup 102",
    ] {
        assert!(rules.contains(want), "missing {want}: {rules}");
    }
    for (table, fam, gw) in [
        ("100", "-4", "10.1.0.1"),
        ("101", "-6", "2001:db8::1"),
        ("102", "-4", "10.1.0.1"),
    ] {
        let r = p.ctr.ip(&[fam, "route", "show", "table", table]);
        assert!(
            r.contains(&format!("default via {gw} dev net1")),
            "table {table}: {r}"
        );
    }
    // IPv4 tables hold no IPv6 route (the reference puts fe80::/64 there).
    let all6 = p.ctr.ip(&["-6", "route", "show", "table", "all"]);
    assert!(!all6.contains("table 100"), "{all6}");
    assert!(all6.contains("fe80::/64 dev net1 table 101"), "{all6}");
    // Main keeps nothing of net1.
    assert!(!p.ctr.ip(&["route"]).contains("net1"), "{}", p.ctr.ip(&["route"]));
    assert!(
        !p.ctr.ip(&["-6", "route"]).contains("net1"),
        "{}",
        p.ctr.ip(&["-6", "route"])
    );
    must(cni(ours(), "CHECK", &p.ctr.path(), "net1", &c), "CHECK");
    must(cni(ours(), "DEL", &p.ctr.path(), "net1", &c), "DEL");
    assert_eq!(p.state(), before);
}

#[test]
fn rollback_on_unreachable_static_gateway() {
    if !root_or_skip("rollback_on_unreachable_static_gateway") {
        return;
    }
    let p = Pod::new("rbgw", true);
    // No default in main (a default there would win over the gateway, as
    // with the reference).
    p.ctr
        .ip(&["route", "add", "10.9.0.0/16", "via", "10.1.0.1", "dev", "net1"]);
    let before = p.state();
    let c = conf("1.0.0", prev_v4(), json!({"gateways": ["10.77.0.1"]}));
    let out = cni(ours(), "ADD", &p.ctr.path(), "net1", &c);
    assert!(!out.ok);
    assert_eq!(out.json["code"], 7, "{}", out.json);
    assert_eq!(
        out.json["msg"],
        "failed to add route default via 10.77.0.1 dev net1 to table 100: network is unreachable"
    );
    assert_eq!(p.state(), before, "failed ADD left changes behind");
}

#[test]
fn rollback_puts_moved_routes_back_into_main() {
    if !root_or_skip("rollback_puts_moved_routes_back_into_main") {
        return;
    }
    let p = Pod::new("rbmain", true);
    main_plugin_routes(&p);
    let before = p.state();
    // The prevResult names an address the link lacks: the source hint,
    // the last step (after the routes left main), is refused.
    let prev = json!({
        "cniVersion": "1.0.0",
        "interfaces": [{"name": "net1"}],
        "ips": [{"address": "10.1.0.9/24", "gateway": "10.1.0.1", "interface": 0}],
        "routes": [{"dst": "0.0.0.0/0"}]
    });
    let c = conf("1.0.0", prev, json!({"addSourceHints": true}));
    let out = cni(ours(), "ADD", &p.ctr.path(), "net1", &c);
    assert!(!out.ok);
    let msg = out.json["msg"].as_str().unwrap();
    assert!(
        msg.starts_with("failed to add route 10.1.0.0/24 dev net1 src 10.1.0.9 scope link to table main:"),
        "{msg}"
    );
    assert_eq!(out.json["code"], 7, "{}", out.json);
    assert!(
        out.json["details"].as_str().unwrap().contains("rolled back"),
        "{}",
        out.json
    );
    assert_eq!(p.state(), before, "failed ADD left changes behind");
}

/// Only a namespace that is gone is nothing to do for DEL: a stale file
/// where it was is, a path that cannot be opened (here a symlink loop,
/// ELOOP, as EACCES or EMFILE) fails naming the path, so the runtime
/// retries instead of leaking the rules.
#[test]
fn del_fails_when_the_namespace_cannot_be_opened() {
    if !root_or_skip("del_fails_when_the_namespace_cannot_be_opened") {
        return;
    }
    let dir = std::env::temp_dir().join(format!("sbrfix-del-open-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let c = conf("1.0.0", prev_v4(), json!({}));
    let stale = dir.join("stale");
    std::fs::write(&stale, b"").unwrap();
    must(cni(ours(), "DEL", &stale, "net1", &c), "DEL with a stale file");
    let a = dir.join("a");
    std::os::unix::fs::symlink(dir.join("b"), &a).unwrap();
    std::os::unix::fs::symlink(&a, dir.join("b")).unwrap();
    let out = cni(ours(), "DEL", &a, "net1", &c);
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(!out.ok, "DEL through a symlink loop succeeded");
    assert_eq!(out.json["code"], 4, "{}", out.json);
    let msg = out.json["msg"].as_str().unwrap();
    assert!(
        msg.contains("failed to open network namespace") && msg.contains(a.to_str().unwrap()),
        "{msg}"
    );
}

#[test]
fn del_with_link_or_prev_result_gone() {
    if !root_or_skip("del_with_link_or_prev_result_gone") {
        return;
    }
    let p = Pod::new("dellink", false);
    main_plugin_routes(&p);
    let c = conf("1.0.0", prev_v4(), json!({}));
    // prevResult gone: the link's address still finds the rule.
    let before = p.state();
    must(cni(ours(), "ADD", &p.ctr.path(), "net1", &c), "ADD");
    let mut no_prev = c.clone();
    no_prev.as_object_mut().unwrap().remove("prevResult");
    must(
        cni(ours(), "DEL", &p.ctr.path(), "net1", &no_prev),
        "DEL without prevResult",
    );
    assert!(!p.ctr.ip(&["rule"]).contains("10.1.0.2"));
    // Main's default through net1 is back, as the rest.
    assert_eq!(p.state(), before, "DEL without prevResult did not restore");
    // Link gone: rules from prevResult addresses go, DEL succeeds.
    must(cni(ours(), "ADD", &p.ctr.path(), "net1", &c), "ADD");
    p.ctr.ip(&["link", "del", "net1"]);
    must(cni(ours(), "DEL", &p.ctr.path(), "net1", &c), "DEL without link");
    assert!(
        !p.ctr.ip(&["rule"]).contains("10.1.0.2"),
        "{}",
        p.ctr.ip(&["rule"])
    );
}

#[test]
fn check_passes_after_add_and_names_what_is_missing() {
    if !root_or_skip("check_passes_after_add_and_names_what_is_missing") {
        return;
    }
    let p = Pod::new("check", false);
    main_plugin_routes(&p);
    let c = conf("1.0.0", prev_v4(), json!({}));
    let path = p.ctr.path();
    let out = cni(ours(), "CHECK", &path, "net1", &c);
    assert!(!out.ok);
    assert!(
        out.json["msg"]
            .as_str()
            .unwrap()
            .contains("missing rule from 10.1.0.2/32"),
        "{}",
        out.json
    );
    must(cni(ours(), "ADD", &path, "net1", &c), "ADD");
    must(cni(ours(), "CHECK", &path, "net1", &c), "CHECK");

    p.ctr.ip(&["route", "del", "default", "table", "100"]);
    let out = cni(ours(), "CHECK", &path, "net1", &c);
    assert!(!out.ok);
    assert_eq!(out.json["code"], 100, "{}", out.json);
    assert_eq!(
        out.json["msg"],
        "missing route default via 10.1.0.1 dev net1 in table 100"
    );

    p.ctr.ip(&[
        "route", "add", "default", "via", "10.1.0.1", "dev", "net1", "table", "100",
    ]);
    p.ctr.ip(&["route", "del", "10.1.0.0/24", "table", "100"]);
    let out = cni(ours(), "CHECK", &path, "net1", &c);
    assert_eq!(out.json["msg"], "missing route 10.1.0.0/24 dev net1 in table 100");

    p.ctr.ip(&["rule", "del", "from", "10.1.0.2", "lookup", "100"]);
    let out = cni(ours(), "CHECK", &path, "net1", &c);
    assert!(
        out.json["msg"]
            .as_str()
            .unwrap()
            .contains("missing rule from 10.1.0.2/32"),
        "{}",
        out.json
    );
}

#[test]
fn table_option_adds_rules_only() {
    if !root_or_skip("table_option_adds_rules_only") {
        return;
    }
    let p = Pod::new("tableopt", false);
    main_plugin_routes(&p);
    let before = p.state();
    let c = conf("1.0.0", prev_v4(), json!({"table": 500, "priority": 777}));
    must(cni(ours(), "ADD", &p.ctr.path(), "net1", &c), "ADD");
    assert!(
        p.ctr.ip(&["rule"]).contains("777:\tfrom 10.1.0.2 lookup 500"),
        "{}",
        p.ctr.ip(&["rule"])
    );
    assert!(p.ctr.ip(&["route"]).contains("default via 10.1.0.1 dev net1"));
    must(cni(ours(), "ADD", &p.ctr.path(), "net1", &c), "ADD again");
    must(cni(ours(), "CHECK", &p.ctr.path(), "net1", &c), "CHECK");
    must(cni(ours(), "DEL", &p.ctr.path(), "net1", &c), "DEL");
    assert_eq!(p.state(), before);
}

#[test]
fn source_hints_keep_the_subnet_route() {
    if !root_or_skip("source_hints_keep_the_subnet_route") {
        return;
    }
    let p = Pod::new("hints", true);
    p.ctr
        .ip(&["addr", "add", "2001:db8::2/64", "dev", "net1", "nodad"]);
    main_plugin_routes(&p);
    let before = p.state();
    let prev = json!({
        "cniVersion": "1.0.0",
        "interfaces": [{"name": "net1"}],
        "ips": [
            {"address": "10.1.0.2/24", "gateway": "10.1.0.1", "interface": 0},
            {"address": "2001:db8::2/64", "interface": 0}
        ],
        "routes": [{"dst": "0.0.0.0/0"}]
    });
    let c = conf("1.0.0", prev, json!({"addSourceHints": true}));
    must(cni(ours(), "ADD", &p.ctr.path(), "net1", &c), "ADD");
    let main4 = p.ctr.ip(&["route"]);
    assert!(
        main4.contains("10.1.0.0/24 dev net1 proto kernel scope link src 10.1.0.2"),
        "{main4}"
    );
    assert!(!main4.contains("default via 10.1.0.1"), "{main4}");
    assert!(!main4.contains("10.9.0.0/16"), "{main4}");
    let main6 = p.ctr.ip(&["-6", "route"]);
    assert!(
        main6.contains("2001:db8::/64 dev net1 proto 83 src 2001:db8::2"),
        "{main6}"
    );
    must(cni(ours(), "CHECK", &p.ctr.path(), "net1", &c), "CHECK");
    must(cni(ours(), "ADD", &p.ctr.path(), "net1", &c), "ADD again");
    must(cni(ours(), "DEL", &p.ctr.path(), "net1", &c), "DEL");
    assert_eq!(p.state(), before);
}

#[test]
fn chained_only_and_addresses_required() {
    if !root_or_skip("chained_only_and_addresses_required") {
        return;
    }
    let p = Pod::new("errs", false);
    let before = p.state();
    let out = cni(
        ours(),
        "ADD",
        &p.ctr.path(),
        "net1",
        &json!({"cniVersion": "1.0.0", "name": "n", "type": "sbr"}),
    );
    assert_eq!(out.json["code"], 7, "{}", out.json);
    // The reference's words exactly; ours in details.
    assert_eq!(
        out.json["msg"], "This plugin must be called as chained plugin",
        "{}",
        out.json
    );
    assert!(
        out.json["details"].as_str().unwrap().contains("no prevResult"),
        "{}",
        out.json
    );
    // No IPs at all: code 7, as the reference ("No IP addresses supplied").
    let none = json!({"cniVersion": "1.0.0", "interfaces": [{"name": "net1"}], "ips": []});
    for verb in ["ADD", "CHECK"] {
        let out = cni(
            ours(),
            verb,
            &p.ctr.path(),
            "net1",
            &conf("1.0.0", none.clone(), json!({})),
        );
        assert_eq!(out.json["code"], 7, "{verb}: {}", out.json);
        assert_eq!(
            out.json["msg"], "No IP addresses supplied on interface: net1",
            "{verb}: {}",
            out.json
        );
    }
    assert!(
        !cni(
            REFERENCE,
            "ADD",
            &p.ctr.path(),
            "net1",
            &conf("1.0.0", none, json!({}))
        )
        .ok
    );
    assert_eq!(p.state(), before);
}

/// IPs only for other interfaces: the reference's ADD succeeds (and strips
/// main of net1's routes with no rule instead); sbr changes nothing, says
/// so, and passes the prevResult on. CHECK agrees, DEL is harmless.
#[test]
fn no_address_for_the_interface_changes_nothing() {
    if !root_or_skip("no_address_for_the_interface_changes_nothing") {
        return;
    }
    let p = Pod::new("otherif", false);
    main_plugin_routes(&p);
    let before = p.state();
    let prev = json!({"cniVersion": "1.0.0", "interfaces": [{"name": "eth0"}],
        "ips": [{"address": "10.0.0.2/24", "interface": 0}]});
    let c = conf("1.0.0", prev.clone(), json!({}));
    let out = cni(ours(), "ADD", &p.ctr.path(), "net1", &c);
    assert!(out.ok, "ADD: {} {}", out.json, out.stderr);
    assert_eq!(out.json["ips"], prev["ips"], "the prevResult is not passed on");
    assert!(out.stderr.contains("no ip address for net1"), "{}", out.stderr);
    assert_eq!(p.state(), before, "ADD changed the namespace");
    must(cni(ours(), "CHECK", &p.ctr.path(), "net1", &c), "CHECK");
    must(cni(ours(), "DEL", &p.ctr.path(), "net1", &c), "DEL");
    assert_eq!(p.state(), before);
    // The reference accepts it too (the acceptance boundary).
    let r = Pod::new("otherifr", false);
    must(cni(REFERENCE, "ADD", &r.ctr.path(), "net1", &c), "reference ADD");
}

#[test]
fn gc_status_and_version() {
    if !root_or_skip("gc_status_and_version") {
        return;
    }
    let c = json!({"cniVersion": "1.1.0", "name": "n", "type": "sbr"});
    for cmd in ["GC", "STATUS"] {
        let out = run_with_input(
            Command::new(ours())
                .env("CNI_COMMAND", cmd)
                .env("CNI_PATH", "/usr/lib/cni"),
            c.to_string().as_bytes(),
        );
        assert!(
            out.status.success(),
            "{cmd}: {}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
    let v = cni(ours(), "VERSION", Path::new("/nonexistent"), "net1", &c).json;
    let versions: Vec<&str> = v["supportedVersions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_str().unwrap())
        .collect();
    assert_eq!(
        versions,
        ["0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"]
    );
}

/// What ptp leaves in the container: the kernel's subnet route replaced by
/// a host route to the gateway and the subnet via the gateway.
fn ptp_routes(p: &Pod) {
    p.ctr.ip(&["route", "del", "10.1.0.0/24", "dev", "net1"]);
    p.ctr.ip(&[
        "route",
        "add",
        "10.1.0.1/32",
        "dev",
        "net1",
        "scope",
        "link",
        "src",
        "10.1.0.2",
    ]);
    p.ctr.ip(&[
        "route",
        "add",
        "10.1.0.0/24",
        "via",
        "10.1.0.1",
        "dev",
        "net1",
        "src",
        "10.1.0.2",
    ]);
    p.ctr
        .ip(&["route", "add", "default", "via", "10.1.0.1", "dev", "net1"]);
}

#[test]
fn ptp_layout_add_check_del() {
    if !root_or_skip("ptp_layout_add_check_del") {
        return;
    }
    let p = Pod::new("ptp", false);
    ptp_routes(&p);
    let c = conf("1.0.0", prev_v4(), json!({}));
    let path = p.ctr.path();
    let before = p.state();
    must(cni(ours(), "ADD", &path, "net1", &c), "ADD");
    let t100 = p.ctr.ip(&["route", "show", "table", "100"]);
    for want in [
        "default via 10.1.0.1 dev net1",
        "10.1.0.0/24 via 10.1.0.1 dev net1 src 10.1.0.2",
        "10.1.0.1 dev net1 scope link src 10.1.0.2",
    ] {
        assert!(t100.contains(want), "table 100 lacks {want}: {t100}");
    }
    assert!(!p.ctr.ip(&["route"]).contains("net1"), "{}", p.ctr.ip(&["route"]));
    must(cni(ours(), "CHECK", &path, "net1", &c), "CHECK");
    p.ctr.ip(&["route", "del", "10.1.0.0/24", "table", "100"]);
    let out = cni(ours(), "CHECK", &path, "net1", &c);
    assert_eq!(out.json["code"], 100, "{}", out.json);
    assert_eq!(out.json["msg"], "missing route 10.1.0.0/24 dev net1 in table 100");
    p.ctr.ip(&[
        "route",
        "add",
        "10.1.0.0/24",
        "via",
        "10.1.0.1",
        "dev",
        "net1",
        "src",
        "10.1.0.2",
        "table",
        "100",
    ]);
    must(cni(ours(), "CHECK", &path, "net1", &c), "CHECK again");
    must(cni(ours(), "DEL", &path, "net1", &c), "DEL");
    assert_eq!(p.state(), before, "ADD then DEL did not restore");
    // Without prevResult too.
    must(cni(ours(), "ADD", &path, "net1", &c), "ADD 2");
    let mut no_prev = c.clone();
    no_prev.as_object_mut().unwrap().remove("prevResult");
    must(
        cni(ours(), "DEL", &path, "net1", &no_prev),
        "DEL without prevResult",
    );
    assert_eq!(p.state(), before, "DEL without prevResult did not restore");
}

#[test]
fn several_interfaces_del_adds_no_default() {
    if !root_or_skip("several_interfaces_del_adds_no_default") {
        return;
    }
    // eth0 owns main's default; net1 and net2 have gateways but no default
    // in main. DEL, with or without prevResult, must not give them one.
    let p = Pod::new("several", false);
    p.link("net2", "h2", "10.2.0");
    p.link("eth0", "h0", "10.0.0");
    p.ctr
        .ip(&["route", "add", "default", "via", "10.0.0.1", "dev", "eth0"]);
    let prev = |ifname: &str, prefix: &str| {
        json!({
            "cniVersion": "1.0.0",
            "interfaces": [{"name": ifname}],
            "ips": [{"address": format!("{prefix}.2/24"), "gateway": format!("{prefix}.1"), "interface": 0}],
            "routes": [{"dst": "0.0.0.0/0"}]
        })
    };
    let path = p.ctr.path();
    let c1 = conf("1.0.0", prev("net1", "10.1.0"), json!({}));
    let c2 = conf("1.0.0", prev("net2", "10.2.0"), json!({}));
    let before = p.state();
    must(cni(ours(), "ADD", &path, "net1", &c1), "ADD net1");
    must(cni(ours(), "ADD", &path, "net2", &c2), "ADD net2");
    must(cni(ours(), "DEL", &path, "net1", &c1), "DEL net1");
    let mut no_prev = c2.clone();
    no_prev.as_object_mut().unwrap().remove("prevResult");
    must(cni(ours(), "DEL", &path, "net2", &no_prev), "DEL net2");
    assert_eq!(p.state(), before);
}

/// Issue 12: other tools' rules and tables, present before ADD or added
/// between ADD and DEL, are never adopted, emptied or deleted.
#[test]
fn foreign_rules_and_tables_survive_add_and_del() {
    if !root_or_skip("foreign_rules_and_tables_survive_add_and_del") {
        return;
    }
    let p = Pod::new("foreign", false);
    main_plugin_routes(&p);
    p.ctr.ip(&["addr", "add", "10.1.0.77/24", "dev", "net1"]);
    // Someone's policy for the pod address, and a rule for another address
    // of the link, each with a table through net1.
    for args in [
        &[
            "rule",
            "add",
            "from",
            "10.1.0.2",
            "to",
            "198.51.100.0/24",
            "lookup",
            "200",
            "pref",
            "90",
        ][..],
        &[
            "route",
            "add",
            "198.51.100.0/24",
            "via",
            "10.1.0.1",
            "dev",
            "net1",
            "table",
            "200",
        ],
        &["rule", "add", "from", "10.1.0.77", "lookup", "201", "pref", "91"],
        &[
            "route",
            "add",
            "203.0.113.0/24",
            "via",
            "10.1.0.1",
            "dev",
            "net1",
            "table",
            "201",
        ],
    ] {
        p.ctr.ip(args);
    }
    let before = p.state();
    let c = conf("1.0.0", prev_v4(), json!({}));
    // DEL without ADD changes nothing.
    must(cni(ours(), "DEL", &p.ctr.path(), "net1", &c), "DEL before ADD");
    assert_eq!(p.state(), before, "DEL without ADD changed the namespace");
    must(cni(ours(), "ADD", &p.ctr.path(), "net1", &c), "ADD");
    let rules = p.ctr.ip(&["rule"]);
    assert!(rules.contains("from 10.1.0.2 lookup 100 proto 83"), "{rules}");
    // Added between ADD and DEL: another rule for the pod address.
    p.ctr.ip(&[
        "rule", "add", "from", "10.1.0.2", "iif", "lo", "lookup", "202", "pref", "92",
    ]);
    must(cni(ours(), "DEL", &p.ctr.path(), "net1", &c), "DEL");
    let mut want = before.clone();
    want.rules
        .push(r#"{"priority":92,"src":"10.1.0.2","iif":"lo","table":"202"}"#.to_string());
    want.rules.sort();
    assert_eq!(p.state(), want, "DEL changed someone else's rules or tables");
}

/// Issue 12 item 3: after someone deletes sbr's rule, CHECK says so, ADD
/// puts it back into the same table, and DEL (also instead of that ADD)
/// gives main its routes back.
#[test]
fn a_deleted_rule_is_repaired_by_add_and_cleaned_by_del() {
    if !root_or_skip("a_deleted_rule_is_repaired_by_add_and_cleaned_by_del") {
        return;
    }
    let p = Pod::new("repair", false);
    main_plugin_routes(&p);
    let before = p.state();
    let c = conf("1.0.0", prev_v4(), json!({}));
    let path = p.ctr.path();
    for repair_first in [true, false] {
        must(cni(ours(), "ADD", &path, "net1", &c), "ADD");
        p.ctr.ip(&["rule", "del", "from", "10.1.0.2", "lookup", "100"]);
        let out = cni(ours(), "CHECK", &path, "net1", &c);
        assert!(!out.ok);
        assert!(
            out.json["msg"]
                .as_str()
                .unwrap()
                .contains("missing rule from 10.1.0.2/32"),
            "{}",
            out.json
        );
        if repair_first {
            must(
                cni(ours(), "ADD", &path, "net1", &c),
                "ADD after the rule was deleted",
            );
            let rules = p.ctr.ip(&["rule"]);
            assert!(rules.contains("from 10.1.0.2 lookup 100 proto 83"), "{rules}");
            must(cni(ours(), "CHECK", &path, "net1", &c), "CHECK after repair");
        }
        must(cni(ours(), "DEL", &path, "net1", &c), "DEL");
        assert_eq!(p.state(), before, "repair first: {repair_first}");
    }
}

/// Issue 12 item 4: DEL gives main exactly what ADD took, whatever the
/// prevResult lists.
#[test]
fn del_restores_main_exactly_whatever_the_prev_result_lists() {
    if !root_or_skip("del_restores_main_exactly_whatever_the_prev_result_lists") {
        return;
    }
    let no_routes = json!({
        "cniVersion": "1.0.0",
        "interfaces": [{"name": "net1"}],
        "ips": [{"address": "10.1.0.2/24", "interface": 0}]
    });
    // Main has a default through net1, the prevResult lists no route.
    let p = Pod::new("exact1", false);
    main_plugin_routes(&p);
    let before = p.state();
    let c = conf("1.0.0", no_routes, json!({}));
    must(cni(ours(), "ADD", &p.ctr.path(), "net1", &c), "ADD");
    must(cni(ours(), "DEL", &p.ctr.path(), "net1", &c), "DEL");
    assert_eq!(p.state(), before, "main lost its default");
    // The prevResult lists 0.0.0.0/0, main had none through net1.
    let p = Pod::new("exact2", false);
    p.ctr
        .ip(&["route", "add", "10.9.0.0/16", "via", "10.1.0.1", "dev", "net1"]);
    let before = p.state();
    let c = conf("1.0.0", prev_v4(), json!({}));
    must(cni(ours(), "ADD", &p.ctr.path(), "net1", &c), "ADD");
    must(cni(ours(), "DEL", &p.ctr.path(), "net1", &c), "DEL");
    assert_eq!(p.state(), before, "DEL made a default route");
}

/// A node upgraded in place: the reference's ADD, then our DEL.
#[test]
fn del_cleans_up_after_the_reference() {
    if !root_or_skip("del_cleans_up_after_the_reference") {
        return;
    }
    let p = Pod::new("upgrade", false);
    main_plugin_routes(&p);
    let before = p.state();
    let c = conf("1.0.0", prev_v4(), json!({}));
    must(cni(REFERENCE, "ADD", &p.ctr.path(), "net1", &c), "reference ADD");
    must(
        cni(ours(), "CHECK", &p.ctr.path(), "net1", &c),
        "CHECK of the reference's state",
    );
    must(
        cni(ours(), "ADD", &p.ctr.path(), "net1", &c),
        "ADD over the reference's state",
    );
    assert!(
        !p.ctr.ip(&["rule"]).contains("proto 83"),
        "ADD replaced the reference's rule"
    );
    must(cni(ours(), "DEL", &p.ctr.path(), "net1", &c), "DEL");
    // The reference's default in table 100 (made from the gateway) looks
    // like main's moved one: main had that same default, so it is back.
    assert_eq!(p.state(), before);
}

/// Issue 12 items 5 and 6: gateways the kernel refuses or that are no
/// gateway are code 7 and change nothing.
#[test]
fn bad_gateways_are_code_7_and_change_nothing() {
    if !root_or_skip("bad_gateways_are_code_7_and_change_nothing") {
        return;
    }
    let p = Pod::new("badgw", true);
    p.ctr
        .ip(&["addr", "add", "2001:db8::2/64", "dev", "net1", "nodad"]);
    let prev = json!({
        "cniVersion": "1.0.0",
        "interfaces": [{"name": "net1"}],
        "ips": [
            {"address": "10.1.0.2/24", "interface": 0},
            {"address": "2001:db8::2/64", "interface": 0}
        ]
    });
    let before = p.state();
    for (gateways, words) in [
        (json!(["0.0.0.0"]), "invalid static gateway IP address: 0.0.0.0"),
        (json!(["::"]), "invalid static gateway IP address: ::"),
        (
            json!(["2001:db8:ffff::1"]),
            "failed to add route default via 2001:db8:ffff::1 dev net1 to table 101",
        ),
        (
            json!(["10.77.0.1"]),
            "failed to add route default via 10.77.0.1 dev net1 to table 100",
        ),
    ] {
        let c = conf("1.0.0", prev.clone(), json!({ "gateways": gateways }));
        let out = cni(ours(), "ADD", &p.ctr.path(), "net1", &c);
        assert!(!out.ok, "{gateways}");
        assert_eq!(out.json["code"], 7, "{gateways}: {}", out.json);
        assert!(
            out.json["msg"].as_str().unwrap().contains(words),
            "{gateways}: {}",
            out.json
        );
        assert_eq!(p.state(), before, "{gateways}: failed ADD left changes behind");
    }
}

/// DEL never refuses over sbr's own fields: a runtime tears down a failed
/// ADD with the same config, and a refusal would stop the chain's DEL (the
/// main plugin's IPAM address would leak). The reference accepts these too.
#[test]
fn del_with_fields_add_refuses_exits_0_and_cleans_up() {
    if !root_or_skip("del_with_fields_add_refuses_exits_0_and_cleans_up") {
        return;
    }
    let p = Pod::new("delbad", false);
    main_plugin_routes(&p);
    let before = p.state();
    let good = conf("1.0.0", prev_v4(), json!({}));
    for extra in [json!({"table": -1}), json!({"priority": "x"})] {
        let bad = conf("1.0.0", prev_v4(), extra.clone());
        let out = cni(ours(), "ADD", &p.ctr.path(), "net1", &bad);
        assert_eq!(out.json["code"], 7, "ADD {extra}: {}", out.json);
        assert_eq!(p.state(), before, "ADD {extra} changed the namespace");
        must(cni(ours(), "ADD", &p.ctr.path(), "net1", &good), "ADD");
        assert_ne!(p.state(), before);
        // The table reads as absent: DEL removes what the ADD made.
        must(
            cni(ours(), "DEL", &p.ctr.path(), "net1", &bad),
            &format!("DEL {extra}"),
        );
        assert_eq!(p.state(), before, "DEL {extra} did not clean up");
        must(
            cni(REFERENCE, "DEL", &p.ctr.path(), "net1", &bad),
            &format!("reference DEL {extra}"),
        );
    }
}

/// The /32 layout: the address is alone in its subnet and reaches its
/// gateway 169.254.1.1 through a link route. Main's default via it is the
/// address's: it moves into the table in place of sbr's own, the pod keeps
/// a way out, CHECK passes, DEL gives main exactly its routes back.
#[test]
fn slash32_layout_add_check_del() {
    if !root_or_skip("slash32_layout_add_check_del") {
        return;
    }
    let p = Pod::new("s32", false);
    p.ctr.ip(&["addr", "del", "10.1.0.2/24", "dev", "net1"]);
    p.ctr.ip(&["addr", "add", "10.5.0.7/32", "dev", "net1"]);
    p.ctr
        .ip(&["route", "add", "169.254.1.1", "dev", "net1", "scope", "link"]);
    p.ctr
        .ip(&["route", "add", "default", "via", "169.254.1.1", "dev", "net1"]);
    p.host.ip(&["addr", "add", "169.254.1.1/32", "dev", "h1"]);
    p.host.ip(&["route", "add", "10.5.0.7/32", "dev", "h1"]);
    p.host.ip(&["addr", "add", "10.99.0.1/32", "dev", "lo"]);
    let path = p.ctr.path();
    let before = p.state();
    for gateway in [json!("169.254.1.1"), Value::Null] {
        let mut ip = json!({"address": "10.5.0.7/32", "interface": 0});
        if !gateway.is_null() {
            ip["gateway"] = gateway.clone();
        }
        let prev = json!({
            "cniVersion": "1.0.0",
            "interfaces": [{"name": "net1", "sandbox": "/var/run/netns/x"}],
            "ips": [ip],
            "routes": [{"dst": "0.0.0.0/0"}]
        });
        let c = conf("1.0.0", prev, json!({}));
        must(cni(ours(), "ADD", &path, "net1", &c), "ADD");
        let t100 = p.ctr.ip(&["route", "show", "table", "100"]);
        let main = p.ctr.ip(&["route"]);
        assert!(t100.contains("169.254.1.1 dev net1 scope link"), "{t100}");
        if gateway.is_null() {
            // No one's: it stays in main, where the table's miss falls through.
            assert!(!t100.contains("default"), "{t100}");
            assert!(main.contains("default via 169.254.1.1 dev net1"), "{main}");
        } else {
            // Main's own default (not sbr's: no proto 83) took the table's place.
            assert!(
                t100.lines()
                    .any(|l| l.starts_with("default via 169.254.1.1 dev net1") && !l.contains("proto")),
                "{t100}"
            );
            assert!(!main.contains("net1"), "{main}");
        }
        must(cni(ours(), "CHECK", &path, "net1", &c), "CHECK");
        p.ctr.exec(&[
            "busybox",
            "ping",
            "-c",
            "1",
            "-W",
            "2",
            "-I",
            "10.5.0.7",
            "10.99.0.1",
        ]);
        must(cni(ours(), "DEL", &path, "net1", &c), "DEL");
        assert_eq!(p.state(), before, "gateway {gateway}: main is not as before");
    }
}

/// Routes of the link that belong to no prevResult address (the subnet
/// route of another address of net1 and a route via that subnet's gateway)
/// stay in main through ADD, with a warning naming them, and main after DEL
/// is exactly main before ADD.
#[test]
fn routes_of_another_address_stay_in_main() {
    if !root_or_skip("routes_of_another_address_stay_in_main") {
        return;
    }
    let p = Pod::new("otheraddr", false);
    main_plugin_routes(&p);
    p.ctr.ip(&["addr", "add", "10.3.0.2/24", "dev", "net1"]);
    p.ctr
        .ip(&["route", "add", "192.0.2.0/24", "via", "10.3.0.1", "dev", "net1"]);
    let path = p.ctr.path();
    let before = p.state();
    let c = conf("1.0.0", prev_v4(), json!({}));
    let out = cni(ours(), "ADD", &path, "net1", &c);
    assert!(out.ok, "ADD: {} {}", out.json, out.stderr);
    for route in [
        "route 192.0.2.0/24 via 10.3.0.1 dev net1",
        "route 10.3.0.0/24 dev net1 src 10.3.0.2 scope link",
    ] {
        assert!(
            out.stderr.contains(&format!(
                "{route} stays in table main: it belongs to no address of net1"
            )),
            "{}",
            out.stderr
        );
    }
    let main = p.ctr.ip(&["route"]);
    assert!(main.contains("192.0.2.0/24 via 10.3.0.1 dev net1"), "{main}");
    assert!(
        main.contains("10.3.0.0/24 dev net1 proto kernel scope link src 10.3.0.2"),
        "{main}"
    );
    assert!(
        !main.contains("10.1.0.0/24") && !main.contains("default"),
        "{main}"
    );
    must(cni(ours(), "CHECK", &path, "net1", &c), "CHECK");
    must(cni(ours(), "DEL", &path, "net1", &c), "DEL");
    assert_eq!(p.state(), before, "main is not as before ADD");
}

/// `addSourceHints` with an IPv6 address still in DAD (macvlan or ipvlan
/// with static IPAM and no IPv6 gateway: nothing waited for DAD): the
/// kernel refuses a tentative source, upstream only warns. ADD succeeds,
/// main keeps the subnet route as it was, CHECK passes, DEL restores.
#[test]
fn source_hints_with_an_ipv6_address_in_dad() {
    if !root_or_skip("source_hints_with_an_ipv6_address_in_dad") {
        return;
    }
    let p = Pod::new("dad", true);
    // net1's link-local address finishes its DAD first, so that nothing
    // changes on its own while the test compares states.
    let settled = || {
        !p.ctr
            .ip(&["-6", "addr", "show", "dev", "net1"])
            .contains("tentative")
    };
    for _ in 0..100 {
        if settled() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(settled(), "{}", p.ctr.ip(&["-6", "addr", "show", "dev", "net1"]));
    // A thousand probes a second apart: tentative for the whole test.
    p.ctr
        .exec(&["sysctl", "-qw", "net.ipv6.conf.net1.dad_transmits=1000"]);
    p.ctr.ip(&["addr", "add", "2001:db8::2/64", "dev", "net1"]);
    main_plugin_routes(&p);
    let tentative = || {
        p.ctr
            .ip(&["-6", "addr", "show", "dev", "net1", "tentative"])
            .contains("2001:db8::2/64")
    };
    assert!(tentative());
    let before = p.state();
    let prev = json!({
        "cniVersion": "1.0.0",
        "interfaces": [{"name": "net1"}],
        "ips": [
            {"address": "10.1.0.2/24", "gateway": "10.1.0.1", "interface": 0},
            {"address": "2001:db8::2/64", "interface": 0}
        ],
        "routes": [{"dst": "0.0.0.0/0"}]
    });
    let c = conf("1.0.0", prev, json!({"addSourceHints": true}));
    let path = p.ctr.path();
    let out = cni(ours(), "ADD", &path, "net1", &c);
    assert!(out.ok, "ADD: {} {}", out.json, out.stderr);
    assert!(
        out.stderr.contains("no source hint for 2001:db8::/64 on net1"),
        "{}",
        out.stderr
    );
    let main4 = p.ctr.ip(&["route"]);
    assert!(
        main4.contains("10.1.0.0/24 dev net1 proto kernel scope link src 10.1.0.2"),
        "{main4}"
    );
    let main6 = p.ctr.ip(&["-6", "route"]);
    assert!(
        main6.contains("2001:db8::/64 dev net1 proto kernel metric 256"),
        "{main6}"
    );
    assert!(!main6.contains("proto 83"), "{main6}");
    let t101 = p.ctr.ip(&["-6", "route", "show", "table", "101"]);
    assert!(t101.contains("2001:db8::/64 dev net1"), "{t101}");
    must(cni(ours(), "CHECK", &path, "net1", &c), "CHECK");
    must(cni(ours(), "DEL", &path, "net1", &c), "DEL");
    assert!(tentative(), "DAD finished during the test: it proved nothing");
    assert_eq!(p.state(), before);
}

// Issue 20: a pod with eth0 10.99.0.2/24 owning main's default, and links
// in 10.77.0.0/24.

impl Pod {
    /// eth0 10.99.0.2/24 with main's default via 10.99.0.1; IPv4 only.
    fn eth0_owns_default(tag: &str) -> Pod {
        let ctr = Ns::new(tag);
        let host = Ns::new(&format!("{tag}h"));
        ctr.exec(&["sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1"]);
        ctr.exec(&["sysctl", "-qw", "net.ipv6.conf.default.disable_ipv6=1"]);
        let p = Pod { ctr, host };
        p.link("eth0", "h0", "10.99.0");
        p.ctr
            .ip(&["route", "add", "default", "via", "10.99.0.1", "dev", "eth0"]);
        p
    }

    /// A veth `name` with `addr` (and `flags` such as `noprefixroute`).
    fn link_with(&self, name: &str, peer: &str, addr: &str, flags: &[&str]) {
        self.ctr.veth(name, peer, Some(&self.host));
        self.host.ip(&["link", "set", peer, "up"]);
        let mut args = vec!["addr", "add", addr, "dev", name];
        args.extend_from_slice(flags);
        self.ctr.ip(&args);
        self.ctr.ip(&["link", "set", name, "up"]);
    }
}

/// The prevResult of `ifname` with `addr` via 10.77.0.1.
fn prev20(ifname: &str, addr: &str) -> Value {
    json!({
        "cniVersion": "1.0.0",
        "interfaces": [{"name": ifname, "sandbox": "/var/run/netns/x"}],
        "ips": [{"address": addr, "gateway": "10.77.0.1", "interface": 0}]
    })
}

fn conf20(ifname: &str, addr: &str, extra: Value) -> Value {
    conf("1.0.0", prev20(ifname, addr), extra)
}

fn run20(p: &Pod, cmd: &str, ifname: &str, c: &Value) -> Value {
    must(
        cni(ours(), cmd, &p.ctr.path(), ifname, c),
        &format!("{cmd} {ifname}"),
    )
}

/// Issue 20 item 3: net1 and net2 both carry 10.77.0.2/24. Each keeps its
/// own table; DEL of either leaves the other's rule and table, and both
/// DELs restore the namespace.
#[test]
fn two_links_with_one_address_keep_their_own_state() {
    if !root_or_skip("two_links_with_one_address_keep_their_own_state") {
        return;
    }
    for (tag, order) in [("i3a", ["net2", "net1"]), ("i3b", ["net1", "net2"])] {
        let p = Pod::eth0_owns_default(tag);
        p.link("net1", "h1", "10.77.0");
        p.link("net2", "h2", "10.77.0");
        let before = p.state();
        let c = |i: &str| conf20(i, "10.77.0.2/24", json!({}));
        run20(&p, "ADD", "net1", &c("net1"));
        run20(&p, "ADD", "net2", &c("net2"));
        for (t, i) in [("100", "net1"), ("101", "net2")] {
            let table = p.ctr.ip(&["route", "show", "table", t]);
            assert!(table.contains(&format!("10.77.0.0/24 dev {i}")), "{t}: {table}");
            run20(&p, "CHECK", i, &c(i));
        }
        run20(&p, "DEL", order[0], &c(order[0]));
        run20(&p, "CHECK", order[1], &c(order[1]));
        run20(&p, "DEL", order[1], &c(order[1]));
        assert_eq!(p.state(), before, "{order:?}");
    }
}

/// Issue 20 item 4: a subnet shared with eth0: DEL gives back
/// `10.77.0.0/24 dev net1` beside eth0's, ADD, DEL, ADD works; the same
/// with net1 and net2 in one subnet, deleted in Multus order.
#[test]
fn a_shared_subnet_survives_add_del_add() {
    if !root_or_skip("a_shared_subnet_survives_add_del_add") {
        return;
    }
    let ctr = Ns::new("i4a");
    let host = Ns::new("i4ah");
    ctr.exec(&["sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1"]);
    let p = Pod { ctr, host };
    p.link_with("eth0", "h0", "10.77.0.5/24", &[]);
    p.host.ip(&["addr", "add", "10.77.0.1/24", "dev", "h0"]);
    p.ctr
        .ip(&["route", "add", "default", "via", "10.77.0.1", "dev", "eth0"]);
    p.link_with("net1", "h1", "10.77.0.2/24", &[]);
    let before = p.state();
    let c = conf20("net1", "10.77.0.2/24", json!({}));
    run20(&p, "ADD", "net1", &c);
    run20(&p, "DEL", "net1", &c);
    assert_eq!(p.state(), before);
    run20(&p, "ADD", "net1", &c);
    run20(&p, "CHECK", "net1", &c);
    run20(&p, "DEL", "net1", &c);
    assert_eq!(p.state(), before);

    let p = Pod::eth0_owns_default("i4b");
    p.link_with("net1", "h1", "10.77.0.2/24", &[]);
    p.link_with("net2", "h2", "10.77.0.3/24", &[]);
    let before = p.state();
    let c1 = conf20("net1", "10.77.0.2/24", json!({}));
    let c2 = conf20("net2", "10.77.0.3/24", json!({}));
    run20(&p, "ADD", "net1", &c1);
    run20(&p, "ADD", "net2", &c2);
    run20(&p, "DEL", "net1", &c1);
    run20(&p, "DEL", "net2", &c2);
    assert_eq!(p.state(), before);
}

/// Issue 20 items 5 and 8: a route someone adds to sbr's table after ADD
/// stays there, and a rule someone adds into it does not keep DEL from
/// giving main its routes back.
#[test]
fn del_gives_back_only_what_add_moved() {
    if !root_or_skip("del_gives_back_only_what_add_moved") {
        return;
    }
    let p = Pod::eth0_owns_default("i5");
    p.link("net1", "h1", "10.77.0");
    let main_before = p.ctr.ip(&["route"]);
    let c = conf20("net1", "10.77.0.2/24", json!({}));
    run20(&p, "ADD", "net1", &c);
    p.ctr.ip(&[
        "route",
        "add",
        "default",
        "via",
        "10.77.0.254",
        "dev",
        "net1",
        "metric",
        "5",
        "table",
        "100",
        "proto",
        "static",
        "onlink",
    ]);
    p.ctr.ip(&[
        "rule",
        "add",
        "from",
        "10.77.0.2",
        "lookup",
        "100",
        "proto",
        "static",
        "pref",
        "500",
    ]);
    run20(&p, "DEL", "net1", &c);
    assert_eq!(p.ctr.ip(&["route"]), main_before);
    let t100 = p.ctr.ip(&["route", "show", "table", "100"]);
    assert_eq!(
        t100.trim(),
        "default via 10.77.0.254 dev net1 proto static metric 5 onlink"
    );
    assert!(p
        .ctr
        .ip(&["rule"])
        .contains("500:\tfrom 10.77.0.2 lookup 100 proto static"));
    let get = p.ctr.ip(&["route", "get", "192.0.2.1"]);
    assert!(get.contains("dev eth0"), "{get}");
}

/// Issue 20 item 6: an operator's rule for the address into their own
/// table is neither filled by ADD nor deleted by DEL; with `table: 500` a
/// rule into 500 that was there before stays.
#[test]
fn an_operators_rule_and_table_survive_add_and_del() {
    if !root_or_skip("an_operators_rule_and_table_survive_add_and_del") {
        return;
    }
    let p = Pod::eth0_owns_default("i6");
    p.link("net1", "h1", "10.77.0");
    p.ctr.ip(&[
        "rule",
        "add",
        "from",
        "10.77.0.2",
        "lookup",
        "200",
        "pref",
        "1000",
    ]);
    p.ctr.ip(&[
        "route",
        "add",
        "198.51.100.0/24",
        "via",
        "10.77.0.1",
        "dev",
        "net1",
        "table",
        "200",
    ]);
    let before = p.state();
    let c = conf20("net1", "10.77.0.2/24", json!({}));
    run20(&p, "ADD", "net1", &c);
    let t200 = p.ctr.ip(&["route", "show", "table", "200"]);
    assert_eq!(t200.trim(), "198.51.100.0/24 via 10.77.0.1 dev net1", "{t200}");
    run20(&p, "CHECK", "net1", &c);
    run20(&p, "DEL", "net1", &c);
    assert_eq!(p.state(), before);

    let p = Pod::eth0_owns_default("i6t");
    p.link("net1", "h1", "10.77.0");
    p.ctr.ip(&[
        "rule",
        "add",
        "from",
        "10.77.0.2",
        "lookup",
        "500",
        "pref",
        "1000",
    ]);
    let before = p.state();
    let c = conf20("net1", "10.77.0.2/24", json!({"table": 500}));
    run20(&p, "ADD", "net1", &c);
    run20(&p, "DEL", "net1", &c);
    assert_eq!(p.state(), before);
}

/// Issue 20 item 7: `addSourceHints` with the address added
/// `noprefixroute` and only a host route to the gateway: CHECK right after
/// ADD passes, a second ADD changes nothing, DEL restores.
#[test]
fn source_hints_on_a_noprefixroute_address() {
    if !root_or_skip("source_hints_on_a_noprefixroute_address") {
        return;
    }
    let p = Pod::eth0_owns_default("i7");
    p.link_with("net1", "h1", "10.77.0.2/24", &["noprefixroute"]);
    p.host.ip(&["addr", "add", "10.77.0.1/24", "dev", "h1"]);
    p.ctr
        .ip(&["route", "add", "10.77.0.1", "dev", "net1", "scope", "link"]);
    let before = p.state();
    let c = conf20("net1", "10.77.0.2/24", json!({"addSourceHints": true}));
    run20(&p, "ADD", "net1", &c);
    run20(&p, "CHECK", "net1", &c);
    let added = p.state();
    run20(&p, "ADD", "net1", &c);
    assert_eq!(p.state(), added, "a second ADD changed the namespace");
    run20(&p, "DEL", "net1", &c);
    assert_eq!(p.state(), before);
}

/// Issue 20 item 9: a route in main with protocol 83 that sbr did not make
/// is moved by ADD and given back by DEL as it was.
#[test]
fn a_proto_83_route_in_main_comes_back() {
    if !root_or_skip("a_proto_83_route_in_main_comes_back") {
        return;
    }
    let p = Pod::eth0_owns_default("i9");
    p.link("net1", "h1", "10.77.0");
    p.ctr.ip(&[
        "route",
        "add",
        "198.51.100.0/24",
        "via",
        "10.77.0.1",
        "dev",
        "net1",
        "proto",
        "83",
    ]);
    let before = p.state();
    let c = conf20("net1", "10.77.0.2/24", json!({}));
    run20(&p, "ADD", "net1", &c);
    run20(&p, "DEL", "net1", &c);
    assert_eq!(p.state(), before);
}

/// Issue 20 item 10: after the reference's ADD, DEL without prevResult
/// removes its rule and table and gives main the link's routes back.
#[test]
fn del_without_prev_result_after_the_references_add() {
    if !root_or_skip("del_without_prev_result_after_the_references_add") {
        return;
    }
    let p = Pod::eth0_owns_default("i10");
    p.link("net1", "h1", "10.77.0");
    let before = p.state();
    let c = conf20("net1", "10.77.0.2/24", json!({}));
    must(cni(REFERENCE, "ADD", &p.ctr.path(), "net1", &c), "reference ADD");
    let mut bare = c.clone();
    bare.as_object_mut().unwrap().remove("prevResult");
    run20(&p, "DEL", "net1", &bare);
    assert_eq!(p.state(), before);
}

/// The markers beside the routes ADD moved change no lookup: with and
/// without them the kernel picks the same route.
#[test]
fn markers_change_no_lookup() {
    if !root_or_skip("markers_change_no_lookup") {
        return;
    }
    let p = Pod::eth0_owns_default("imk");
    p.link("net1", "h1", "10.77.0");
    p.ctr.ip(&[
        "route",
        "add",
        "198.51.100.0/24",
        "via",
        "10.77.0.1",
        "dev",
        "net1",
    ]);
    let c = conf20("net1", "10.77.0.2/24", json!({}));
    run20(&p, "ADD", "net1", &c);
    let t100 = p.ctr.ip(&["route", "show", "table", "100"]);
    assert!(
        t100.contains("throw 10.77.0.0/24 proto 83 metric 2147483648")
            && t100.contains("throw 198.51.100.0/24 proto 83 metric 2147483648"),
        "{t100}"
    );
    let lookups = |p: &Pod| -> Vec<String> {
        ["10.77.0.9", "198.51.100.7", "192.0.2.1"]
            .iter()
            .map(|d| p.ctr.ip(&["route", "get", d, "from", "10.77.0.2"]))
            .collect()
    };
    let with = lookups(&p);
    assert!(with[0].contains("dev net1 table 100"), "{with:?}");
    assert!(with[1].contains("via 10.77.0.1 dev net1 table 100"), "{with:?}");
    assert!(with[2].contains("via 10.77.0.1 dev net1 table 100"), "{with:?}");
    for m in ["10.77.0.0/24", "198.51.100.0/24"] {
        p.ctr
            .ip(&["route", "del", "throw", m, "table", "100", "metric", "2147483648"]);
    }
    assert_eq!(lookups(&p), with);
}

/// The same for IPv6, where the kernel keeps a throw route on `lo`.
#[test]
fn ipv6_markers_change_no_lookup() {
    if !root_or_skip("ipv6_markers_change_no_lookup") {
        return;
    }
    let p = Pod::new("imk6", true);
    p.ctr
        .ip(&["addr", "add", "2001:db8::2/64", "dev", "net1", "nodad"]);
    p.host
        .ip(&["addr", "add", "2001:db8::1/64", "dev", "h1", "nodad"]);
    p.ctr.ip(&[
        "-6",
        "route",
        "add",
        "2001:db8:5::/64",
        "via",
        "2001:db8::1",
        "dev",
        "net1",
    ]);
    let before = p.state();
    let prev = json!({
        "cniVersion": "1.0.0",
        "interfaces": [{"name": "net1"}],
        "ips": [{"address": "2001:db8::2/64", "gateway": "2001:db8::1", "interface": 0}]
    });
    let c = conf("1.0.0", prev, json!({}));
    run20(&p, "ADD", "net1", &c);
    let t = p.ctr.ip(&["-6", "route", "show", "table", "100"]);
    // Metrics 256 (the kernel's subnet route) and 1024 (`ip route add`).
    for m in [
        "throw 2001:db8::/64 dev lo proto 83 metric 2147483904",
        "throw 2001:db8:5::/64 dev lo proto 83 metric 2147484672",
    ] {
        assert!(t.contains(m), "{t}");
    }
    let lookups = |p: &Pod| -> Vec<String> {
        ["2001:db8::9", "2001:db8:5::7", "2001:db8:9::1"]
            .iter()
            .map(|d| p.ctr.ip(&["-6", "route", "get", d, "from", "2001:db8::2"]))
            .map(|s| s.split(" pref").next().unwrap_or_default().to_string())
            .collect()
    };
    let with = lookups(&p);
    assert!(with[0].contains("dev net1 table 100"), "{with:?}");
    assert!(with[1].contains("via 2001:db8::1 dev net1 table 100"), "{with:?}");
    assert!(with[2].contains("via 2001:db8::1 dev net1 table 100"), "{with:?}");
    let markers: Vec<String> = t
        .lines()
        .filter(|l| l.starts_with("throw "))
        .map(str::to_string)
        .collect();
    for m in &markers {
        let mut args = vec!["-6", "route", "del"];
        args.extend(m.split_whitespace().filter(|w| *w != "pref" && *w != "medium"));
        args.extend(["table", "100"]);
        p.ctr.ip(&args);
    }
    assert_eq!(lookups(&p), with);
    // Without its markers the table is one made before them: DEL still
    // gives main everything back.
    run20(&p, "DEL", "net1", &c);
    assert_eq!(p.state(), before);
}
