#![allow(clippy::unwrap_used)]
//! Every dispatcher path, through `run_with` with a fake plugin and injected
//! environment and streams.

use std::cell::RefCell;
use std::collections::HashMap;

use cni_core::{run_with, CniError, CniResult, Code, Command, NetResult, Plugin, Request};
use serde_json::{json, Value};

struct Fake {
    seen: RefCell<Vec<Request>>,
    fail: Option<CniError>,
    versions: &'static [&'static str],
}

impl Fake {
    fn new() -> Fake {
        Fake {
            seen: RefCell::new(Vec::new()),
            fail: None,
            versions: cni_core::version::ALL,
        }
    }
}

impl Plugin for Fake {
    fn about(&self) -> String {
        "CNI fake plugin v0.0.1".into()
    }
    fn supported_versions(&self) -> &'static [&'static str] {
        self.versions
    }
    fn add(&self, req: &Request) -> CniResult<NetResult> {
        self.seen.borrow_mut().push(req.clone());
        if let Some(e) = &self.fail {
            return Err(e.clone());
        }
        Ok(req.conf.prev_result.clone().unwrap_or_default())
    }
    fn del(&self, req: &Request) -> CniResult<()> {
        self.seen.borrow_mut().push(req.clone());
        self.fail.clone().map_or(Ok(()), Err)
    }
    fn check(&self, req: &Request) -> CniResult<()> {
        self.seen.borrow_mut().push(req.clone());
        self.fail.clone().map_or(Ok(()), Err)
    }
    fn gc(&self, req: &Request) -> CniResult<()> {
        self.seen.borrow_mut().push(req.clone());
        self.fail.clone().map_or(Ok(()), Err)
    }
    fn status(&self, req: &Request) -> CniResult<()> {
        self.seen.borrow_mut().push(req.clone());
        self.fail.clone().map_or(Ok(()), Err)
    }
}

struct Out {
    status: i32,
    stdout: String,
    stderr: String,
}

impl Out {
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not json ({e}): {}", self.stdout))
    }

    /// Asserts a spec error with `code` whose message contains `want`.
    fn error(&self, code: u32, want: &str) -> Value {
        assert_eq!(self.status, 1, "stdout: {}", self.stdout);
        let v = self.json();
        assert_eq!(v["code"], code, "{v}");
        let msg = v["msg"].as_str().unwrap();
        assert!(msg.contains(want), "message {msg:?} lacks {want:?}");
        assert!(v["cniVersion"].is_string(), "{v}");
        v
    }
}

fn run(plugin: &Fake, env: &[(&str, &str)], stdin: &str) -> Out {
    let env: HashMap<String, String> = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    let lookup = move |k: &str| env.get(k).cloned();
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let status = run_with(plugin, &lookup, &mut stdin.as_bytes(), &mut out, &mut err);
    Out {
        status,
        stdout: String::from_utf8(out).unwrap(),
        stderr: String::from_utf8(err).unwrap(),
    }
}

const CONF: &str = r#"{"cniVersion":"1.0.0","name":"net","type":"fake"}"#;

fn full_env(cmd: &'static str) -> Vec<(&'static str, &'static str)> {
    vec![
        ("CNI_COMMAND", cmd),
        ("CNI_CONTAINERID", "c0ffee"),
        ("CNI_NETNS", "/run/netns/test"),
        ("CNI_IFNAME", "eth0"),
        ("CNI_PATH", "/opt/cni/bin:/usr/lib/cni"),
    ]
}

fn with(
    mut env: Vec<(&'static str, &'static str)>,
    k: &'static str,
    v: &'static str,
) -> Vec<(&'static str, &'static str)> {
    env.retain(|(x, _)| *x != k);
    env.push((k, v));
    env
}

fn without(mut env: Vec<(&'static str, &'static str)>, k: &str) -> Vec<(&'static str, &'static str)> {
    env.retain(|(x, _)| *x != k);
    env
}

#[test]
fn no_command_prints_about_on_stderr() {
    let p = Fake::new();
    for env in [vec![], vec![("CNI_COMMAND", "")]] {
        let out = run(&p, &env, "");
        assert_eq!(out.status, 0);
        assert_eq!(out.stdout, "");
        assert_eq!(out.stderr, "CNI fake plugin v0.0.1\n");
    }
}

#[test]
fn unknown_command_is_code_4() {
    let out = run(&Fake::new(), &full_env("ADDX"), CONF);
    out.error(4, "ADDX");
    assert_eq!(
        out.json()["cniVersion"],
        "1.0.0",
        "errors speak the config's version"
    );
}

#[test]
fn version_prints_supported_versions() {
    let p = Fake::new();
    for stdin in ["", "not json", r#"{"cniVersion":"7.0.0"}"#] {
        let out = run(&p, &[("CNI_COMMAND", "VERSION")], stdin);
        assert_eq!(out.status, 0);
        assert_eq!(
            out.json(),
            json!({"cniVersion": "1.1.0", "supportedVersions": cni_core::version::ALL})
        );
    }
    let out = run(&p, &[("CNI_COMMAND", "VERSION")], r#"{"cniVersion":"0.4.0"}"#);
    assert_eq!(
        out.json()["cniVersion"],
        "0.4.0",
        "the runtime's version when we speak it"
    );
    let out = run(
        &p,
        &[("CNI_COMMAND", "VERSION")],
        r#"{"cniVersions":["0.4.0","1.0.0","3.0.0"]}"#,
    );
    assert_eq!(out.json()["cniVersion"], "1.0.0");
    // cniVersion wins over cniVersions; neither is 0.1.0, as skel reads it.
    for (stdin, want) in [
        (r#"{"cniVersion":"0.4.0","cniVersions":["1.0.0"]}"#, "0.4.0"),
        (r#"{"cniVersion":"","cniVersions":["0.3.1","1.0.0"]}"#, "1.0.0"),
        (r#"{}"#, "0.1.0"),
        (r#"{"cniVersion":""}"#, "0.1.0"),
    ] {
        let out = run(&p, &[("CNI_COMMAND", "VERSION")], stdin);
        assert_eq!(out.json()["cniVersion"], want, "{stdin}");
    }
    // A plugin without 0.1.0 answers in its latest.
    let newer = Fake {
        versions: &["0.4.0", "1.0.0"],
        ..Fake::new()
    };
    let out = run(&newer, &[("CNI_COMMAND", "VERSION")], "{}");
    assert_eq!(out.json()["cniVersion"], "1.0.0");
    assert!(p.seen.borrow().is_empty());
}

#[test]
fn add_prints_the_result_in_the_config_version() {
    let p = Fake::new();
    let conf = r#"{"cniVersion":"0.4.0","name":"net","type":"fake","prevResult":{"cniVersion":"0.4.0",
        "interfaces":[{"name":"eth0","sandbox":"/run/netns/test"}],
        "ips":[{"version":"4","address":"10.0.0.2/24","interface":0}]}}"#;
    let env = with(full_env("ADD"), "CNI_ARGS", "IgnoreUnknown=1;K8S_POD_NAME=web");
    let out = run(&p, &env, conf);
    assert_eq!(out.status, 0, "{}", out.stdout);
    let v = out.json();
    assert_eq!(v["cniVersion"], "0.4.0");
    assert_eq!(
        v["ips"][0],
        json!({"version": "4", "interface": 0, "address": "10.0.0.2/24"})
    );
    let seen = p.seen.borrow();
    let req = &seen[0];
    assert_eq!(req.command, Command::Add);
    assert_eq!(req.container_id, "c0ffee");
    assert_eq!(
        req.netns.as_deref(),
        Some(std::path::Path::new("/run/netns/test"))
    );
    assert_eq!(req.ifname, "eth0");
    assert_eq!(req.arg("K8S_POD_NAME"), Some("web"));
    assert_eq!(req.args.len(), 2);
    assert_eq!(req.cni_path.len(), 2);
    assert_eq!(req.conf.name, "net");
}

#[test]
fn add_converts_to_negotiated_version() {
    let p = Fake::new();
    let conf = r#"{"cniVersion":"0.2.0","name":"net","type":"fake","prevResult":{"cniVersion":"1.0.0",
        "ips":[{"address":"10.0.0.2/24"},{"address":"fd00::2/64"}],"routes":[{"dst":"::/0"}]}}"#;
    let out = run(&p, &full_env("ADD"), conf);
    assert_eq!(out.status, 0, "{}", out.stdout);
    assert_eq!(
        out.json(),
        json!({"cniVersion": "0.2.0", "ip4": {"ip": "10.0.0.2/24"},
               "ip6": {"ip": "fd00::2/64", "routes": [{"dst": "::/0"}]}, "dns": {}})
    );
    // Conversion impossible: a typed error in the config's version.
    let out = run(
        &p,
        &full_env("ADD"),
        r#"{"cniVersion":"0.2.0","name":"net","type":"fake"}"#,
    );
    out.error(1, "no ip address");
    assert_eq!(out.json()["cniVersion"], "0.2.0");
}

/// The spec: `cniVersion` is the version the runtime selected; skel never
/// reads `cniVersions`. A list counts only when `cniVersion` is missing or
/// empty, and then its highest entry the plugin speaks wins.
#[test]
fn cni_version_wins_and_cni_versions_counts_only_without_it() {
    let p = Fake {
        versions: &["0.4.0", "1.0.0"],
        ..Fake::new()
    };
    let prev = r#""prevResult":{"ips":[{"address":"10.0.0.2/24"}]}"#;
    for (versions, want) in [
        (
            r#""cniVersion":"0.4.0","cniVersions":["0.4.0","1.0.0","1.1.0"]"#,
            "0.4.0",
        ),
        (
            r#""cniVersion":"","cniVersions":["0.4.0","1.0.0","1.1.0"]"#,
            "1.0.0",
        ),
        (r#""cniVersions":["0.3.1","0.4.0","1.1.0"]"#, "0.4.0"),
    ] {
        p.seen.borrow_mut().clear();
        let conf = format!(r#"{{{versions},"name":"net","type":"fake",{prev}}}"#);
        let out = run(&p, &full_env("ADD"), &conf);
        assert_eq!(out.status, 0, "{versions}: {}", out.stdout);
        assert_eq!(out.json()["cniVersion"], want, "{versions}");
        let seen = p.seen.borrow();
        assert_eq!(seen[0].conf.cni_version, want);
        // The version-less prevResult is read in the negotiated version.
        let prev = seen[0].conf.prev_result.as_ref().unwrap();
        assert_eq!(prev.cni_version, want);
        assert_eq!(prev.ips.len(), 1);
    }
    // cniVersion as given even when the list offers one the plugin speaks.
    let out = run(
        &p,
        &full_env("ADD"),
        r#"{"cniVersion":"1.1.0","cniVersions":["1.0.0"],"name":"net","type":"fake"}"#,
    );
    out.error(1, "1.1.0");
}

/// skel's DecodeVersion: a config without `cniVersion` (or with an empty one)
/// and without `cniVersions` is 0.1.0, spoken by a plugin that supports it
/// (as the reference sbr does) and code 1 for one that does not (as the
/// reference bandwidth answers).
#[test]
fn no_version_at_all_is_0_1_0() {
    let prev = r#""prevResult":{"ip4":{"ip":"10.0.0.2/24"}}"#;
    for versions in [
        "",
        r#""cniVersion":"","#,
        r#""cniVersion":null,"cniVersions":[],"#,
    ] {
        let conf = format!(r#"{{{versions}"name":"net","type":"fake",{prev}}}"#);
        let p = Fake::new();
        let out = run(&p, &full_env("ADD"), &conf);
        assert_eq!(out.status, 0, "{conf}: {}", out.stdout);
        assert_eq!(
            out.json(),
            json!({"cniVersion": "0.1.0", "ip4": {"ip": "10.0.0.2/24"}, "dns": {}}),
            "{conf}"
        );
        assert_eq!(p.seen.borrow()[0].conf.cni_version, "0.1.0");
        let out = run(&p, &full_env("DEL"), &conf);
        assert_eq!(out.status, 0, "{conf}: {}", out.stdout);

        let newer = Fake {
            versions: &["0.3.0", "1.0.0", "1.1.0"],
            ..Fake::new()
        };
        for cmd in ["ADD", "DEL"] {
            let v = run(&newer, &full_env(cmd), &conf).error(1, "0.1.0");
            assert_eq!(v["cniVersion"], "1.1.0", "{v}");
        }
        assert!(newer.seen.borrow().is_empty());
    }
}

#[test]
fn unsupported_version_is_code_1() {
    let p = Fake {
        versions: &["0.4.0", "1.0.0"],
        ..Fake::new()
    };
    let out = run(
        &p,
        &full_env("ADD"),
        r#"{"cniVersion":"0.3.1","name":"net","type":"fake"}"#,
    );
    out.error(1, "0.3.1");
    assert_eq!(
        out.json()["cniVersion"],
        "1.0.0",
        "an unspoken version is not echoed"
    );
    let out = run(
        &p,
        &full_env("DEL"),
        r#"{"cniVersions":["2.0.0"],"name":"net","type":"fake"}"#,
    );
    out.error(1, "2.0.0");
    let out = run(
        &p,
        &full_env("ADD"),
        r#"{"cniVersion":"banana","name":"net","type":"fake"}"#,
    );
    out.error(1, "banana");
    assert!(p.seen.borrow().is_empty());
}

#[test]
fn check_needs_0_4_and_gc_status_need_1_1() {
    let p = Fake::new();
    let out = run(
        &p,
        &full_env("CHECK"),
        r#"{"cniVersion":"0.3.1","name":"net","type":"fake"}"#,
    );
    out.error(1, "CHECK");
    for cmd in ["GC", "STATUS"] {
        let out = run(&p, &[("CNI_COMMAND", cmd), ("CNI_PATH", "/usr/lib/cni")], CONF);
        out.error(1, cmd);
    }
    assert!(p.seen.borrow().is_empty());
    let conf11 = r#"{"cniVersion":"1.1.0","name":"net","type":"fake"}"#;
    for cmd in ["GC", "STATUS"] {
        let out = run(&p, &[("CNI_COMMAND", cmd), ("CNI_PATH", "/usr/lib/cni")], conf11);
        assert_eq!((out.status, out.stdout.as_str()), (0, ""), "{cmd}");
    }
    let out = run(
        &p,
        &full_env("CHECK"),
        r#"{"cniVersion":"0.4.0","name":"net","type":"fake"}"#,
    );
    assert_eq!((out.status, out.stdout.as_str()), (0, ""));
    let seen = p.seen.borrow();
    assert_eq!(
        seen.iter().map(|r| r.command).collect::<Vec<_>>(),
        [Command::Gc, Command::Status, Command::Check]
    );
    assert!(seen[0].container_id.is_empty() && seen[0].ifname.is_empty() && seen[0].netns.is_none());
}

#[test]
fn gc_gets_valid_attachments() {
    let p = Fake::new();
    let conf = r#"{"cniVersion":"1.1.0","name":"net","type":"fake",
        "cni.dev/valid-attachments":[{"containerID":"a1","ifname":"eth0"}]}"#;
    let out = run(&p, &[("CNI_COMMAND", "GC"), ("CNI_PATH", "/x")], conf);
    assert_eq!(out.status, 0, "{}", out.stdout);
    let seen = p.seen.borrow();
    let att = seen[0].conf.valid_attachments.as_ref().unwrap();
    assert_eq!(
        (att[0].container_id.as_str(), att[0].ifname.as_str()),
        ("a1", "eth0")
    );
}

#[test]
fn missing_variables_are_code_4_per_command() {
    let p = Fake::new();
    for (cmd, var) in [
        ("ADD", "CNI_CONTAINERID"),
        ("ADD", "CNI_NETNS"),
        ("ADD", "CNI_IFNAME"),
        ("ADD", "CNI_PATH"),
        ("CHECK", "CNI_NETNS"),
        ("CHECK", "CNI_PATH"),
        ("DEL", "CNI_CONTAINERID"),
        ("DEL", "CNI_IFNAME"),
        ("DEL", "CNI_PATH"),
    ] {
        let out = run(&p, &without(full_env(cmd), var), CONF);
        out.error(4, var);
        // Empty counts as missing.
        let out = run(&p, &with(full_env(cmd), var, ""), CONF);
        out.error(4, var);
    }
    let conf11 = r#"{"cniVersion":"1.1.0","name":"net","type":"fake"}"#;
    let out = run(&p, &[("CNI_COMMAND", "GC")], conf11);
    out.error(4, "CNI_PATH");
    assert!(p.seen.borrow().is_empty());
    // Several at once are named together.
    let out = run(&p, &[("CNI_COMMAND", "ADD")], CONF);
    out.error(4, "CNI_CONTAINERID, CNI_NETNS, CNI_IFNAME, CNI_PATH");
}

#[test]
fn del_without_netns_and_status_without_path_are_fine() {
    let p = Fake::new();
    let out = run(&p, &without(full_env("DEL"), "CNI_NETNS"), CONF);
    assert_eq!((out.status, out.stdout.as_str()), (0, ""));
    let out = run(
        &p,
        &[("CNI_COMMAND", "STATUS")],
        r#"{"cniVersion":"1.1.0","name":"net","type":"fake"}"#,
    );
    assert_eq!((out.status, out.stdout.as_str()), (0, ""));
    let seen = p.seen.borrow();
    assert!(seen[0].netns.is_none());
    assert_eq!(seen[1].command, Command::Status);
}

#[test]
fn container_ids_are_checked() {
    let p = Fake::new();
    for bad in ["-abc", "_x", ".x", "a b", "a/b", "ab:c", "ä", "x\n"] {
        let out = run(&p, &with(full_env("ADD"), "CNI_CONTAINERID", bad), CONF);
        out.error(4, "CNI_CONTAINERID");
    }
    for good in [
        "a",
        "0",
        "abc-DEF_1.2",
        "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
    ] {
        let out = run(&p, &with(full_env("DEL"), "CNI_CONTAINERID", good), CONF);
        assert_eq!(out.status, 0, "{good}: {}", out.stdout);
    }
}

#[test]
fn interface_names_are_checked() {
    let p = Fake::new();
    let cases = [
        ("0123456789abcdef", "longer than 15"),
        (".", "is . or .."),
        ("..", "is . or .."),
        ("eth/0", "contains /"),
        ("eth:0", "contains :"),
        ("eth 0", "whitespace"),
        ("eth\t0", "whitespace"),
    ];
    for (bad, why) in cases {
        let out = run(&p, &with(full_env("ADD"), "CNI_IFNAME", bad), CONF);
        out.error(4, why);
    }
    for good in ["0123456789abcde", "eth0.100", "net-1", "ä"] {
        let out = run(&p, &with(full_env("CHECK"), "CNI_IFNAME", good), CONF);
        assert_eq!(out.status, 0, "{good}: {}", out.stdout);
    }
}

#[test]
fn malformed_cni_args_pairs_are_left_out_not_refused() {
    let p = Fake::new();
    for bad in ["K", "K=1;V", "=1", "K=1=2", "K=1;;=x"] {
        let out = run(&p, &with(full_env("ADD"), "CNI_ARGS", bad), CONF);
        assert_eq!(out.status, 0, "{bad}: {}", out.stdout);
    }
    assert_eq!(p.seen.borrow()[1].args, [("K".to_string(), "1".to_string())]);
    p.seen.borrow_mut().clear();
    let out = run(&p, &with(full_env("DEL"), "CNI_ARGS", "A=;B=2;"), CONF);
    assert_eq!(out.status, 0, "{}", out.stdout);
    assert_eq!(
        p.seen.borrow()[0].args,
        [
            ("A".to_string(), String::new()),
            ("B".to_string(), "2".to_string())
        ]
    );
}

#[test]
fn config_errors_have_their_codes() {
    let p = Fake::new();
    let cases = [
        ("", 6, "decode"),
        ("{", 6, "decode"),
        ("[1]", 6, "not a json object"),
        (
            r#"{"cniVersion":1,"name":"net","type":"fake"}"#,
            7,
            "cniVersion must be a string",
        ),
        (
            r#"{"cniVersion":"1.0.0","type":"fake"}"#,
            7,
            "missing network name",
        ),
        (r#"{"cniVersion":"1.0.0","name":"net"}"#, 7, "missing type"),
        (
            r#"{"cniVersion":"1.0.0","name":"net","type":3}"#,
            7,
            "type must be a string",
        ),
        (
            r#"{"cniVersion":"1.0.0","name":"net","type":"fake","runtimeConfig":[]}"#,
            7,
            "runtimeConfig",
        ),
        (
            r#"{"cniVersion":"1.0.0","name":"net","type":"fake","capabilities":"x"}"#,
            7,
            "capabilities",
        ),
        (
            r#"{"cniVersion":"1.0.0","name":"net","type":"fake","cniVersions":"1.0.0"}"#,
            7,
            "cniVersions",
        ),
        (
            r#"{"cniVersion":"1.0.0","name":"net","type":"fake","prevResult":[]}"#,
            6,
            "prevResult",
        ),
        (
            r#"{"cniVersion":"1.0.0","name":"net","type":"fake","prevResult":{"ips":[{"address":"x"}]}}"#,
            6,
            "prevResult",
        ),
        (
            r#"{"cniVersion":"1.0.0","name":"net","type":"fake","prevResult":{"cniVersion":"5.0.0"}}"#,
            1,
            "prevResult",
        ),
        (
            r#"{"cniVersion":"1.1.0","name":"net","type":"fake","cni.dev/valid-attachments":[{"ifname":"x"}]}"#,
            7,
            "valid-attachments",
        ),
    ];
    for (conf, code, want) in cases {
        let out = run(&p, &full_env("ADD"), conf);
        out.error(code, want);
    }
    assert!(p.seen.borrow().is_empty());
}

/// The reference ignores `logLevel` and `logFile`: no value of either makes
/// any command fail, and the plugin still runs. The file that cannot be used
/// is left alone (see tests/logging.rs and the plugins' log_file tests).
#[test]
fn logging_settings_fail_no_command() {
    let dir = std::env::temp_dir().join(format!("cni-core-dispatch-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let settings = [
        r#""logLevel":"loud""#.to_string(),
        r#""logLevel":2"#.to_string(),
        r#""logFile":false"#.to_string(),
        format!(r#""logFile":"{}/no/such/dir/log""#, dir.display()),
        format!(r#""logFile":"{}""#, dir.display()),
    ];
    for setting in &settings {
        for cmd in ["ADD", "DEL", "CHECK", "GC", "STATUS"] {
            let p = Fake::new();
            let conf = format!(r#"{{"cniVersion":"1.1.0","name":"net","type":"fake",{setting}}}"#);
            let out = run(&p, &full_env(cmd), &conf);
            assert_eq!(out.status, 0, "{cmd} with {setting}: {}", out.stdout);
            assert_eq!(
                p.seen.borrow().len(),
                1,
                "{cmd} with {setting}: plugin not called"
            );
        }
    }
    assert!(!dir.join("no").exists());
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The reference's skel: a missing or malformed network name is code 7 in
/// its words for every command but VERSION, before the plugin is called.
/// Ours takes any name on DEL, so an attachment stays removable.
#[test]
fn network_name_rule_on_every_command_but_del_and_version() {
    let cases = [
        (r#""name":"bad name""#, "invalid characters found in network name"),
        (r#""name":"""#, "missing network name"),
        (r#""name":"-x""#, "invalid characters found in network name"),
        (r#""name":"net/1""#, "invalid characters found in network name"),
    ];
    for (name, words) in cases {
        let conf = format!(r#"{{"cniVersion":"1.1.0",{name},"type":"fake"}}"#);
        for cmd in ["ADD", "CHECK", "GC", "STATUS"] {
            let p = Fake::new();
            let v = run(&p, &full_env(cmd), &conf).error(7, words);
            if words.starts_with("invalid") {
                assert!(v["details"].as_str().is_some_and(|d| name.contains(d)), "{v}");
            }
            assert!(p.seen.borrow().is_empty(), "{cmd} {name}: plugin called");
        }
        let p = Fake::new();
        let out = run(&p, &full_env("DEL"), &conf);
        assert_eq!(out.status, 0, "DEL {name}: {}", out.stdout);
        assert_eq!(p.seen.borrow().len(), 1);
        let out = run(&p, &full_env("VERSION"), &conf);
        assert_eq!(out.status, 0, "VERSION {name}: {}", out.stdout);
    }
    // Valid names pass on every command.
    let p = Fake::new();
    let conf = r#"{"cniVersion":"1.1.0","name":"My-net_1.0","type":"fake"}"#;
    for cmd in ["ADD", "CHECK", "GC", "STATUS", "DEL"] {
        assert_eq!(run(&p, &full_env(cmd), conf).status, 0, "{cmd}");
    }
    assert_eq!(p.seen.borrow().len(), 5);
}

#[test]
fn plugin_errors_are_printed_with_code_and_details() {
    let p = Fake {
        fail: Some(CniError::new(Code::TryAgainLater, "failed to add rule").with_details("device busy")),
        ..Fake::new()
    };
    for cmd in ["ADD", "DEL", "CHECK"] {
        let out = run(&p, &full_env(cmd), CONF);
        let v = out.error(11, "failed to add rule");
        assert_eq!(
            v,
            json!({"cniVersion": "1.0.0", "code": 11, "msg": "failed to add rule", "details": "device busy"})
        );
    }
}

#[test]
fn unreadable_stdin_is_code_5() {
    struct Broken;
    impl std::io::Read for Broken {
        fn read(&mut self, _: &mut [u8]) -> std::io::Result<usize> {
            Err(std::io::Error::other("boom"))
        }
    }
    let env = |k: &str| {
        full_env("ADD")
            .iter()
            .find(|(x, _)| *x == k)
            .map(|(_, v)| v.to_string())
    };
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let status = run_with(&Fake::new(), &env, &mut Broken, &mut out, &mut err);
    assert_eq!(status, 1);
    let v: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(v["code"], 5);
    assert!(v["msg"].as_str().unwrap().contains("stdin"));
}
