#![allow(clippy::unwrap_used)]
//! NetConf parsing and the plugin's own fields, with Go-style key folding.

use cni_spec::{Code, NetConf};
use serde::Deserialize;
use serde_json::json;

#[derive(Debug, Default, Deserialize, PartialEq)]
struct Entry {
    #[serde(rename = "ingressRate", default)]
    ingress_rate: u64,
    #[serde(rename = "ingressBurst", default)]
    ingress_burst: u64,
}

#[derive(Debug, Default, Deserialize, PartialEq)]
struct Runtime {
    #[serde(default)]
    bandwidth: Option<Entry>,
}

#[derive(Debug, Deserialize, PartialEq)]
struct Own {
    name: String,
    #[serde(rename = "ingressRate", default)]
    ingress_rate: Option<u64>,
    #[serde(rename = "egressBurst", default)]
    egress_burst: Option<u64>,
    #[serde(rename = "runtimeConfig", default)]
    runtime_config: Runtime,
    #[serde(rename = "tableIDs", default)]
    table_ids: Vec<Entry>,
}

fn conf(v: serde_json::Value) -> NetConf {
    NetConf::parse(v.to_string().as_bytes()).unwrap()
}

#[test]
fn spec_fields_are_parsed() {
    let c = conf(json!({
        "cniVersion": "1.1.0", "cniVersions": ["1.0.0", "1.1.0"], "name": "n", "type": "sbr",
        "capabilities": {"bandwidth": true}, "runtimeConfig": {"bandwidth": {"ingressRate": 1}},
        "args": {"cni": {"x": 1}}, "ipam": {"type": "host-local"}, "dns": {"nameservers": []},
        "logLevel": "debug", "logFile": "/tmp/x.log",
        "cni.dev/valid-attachments": [{"containerID": "c", "ifname": "eth0"}],
        "mine": 5
    }));
    assert_eq!(c.cni_version, "1.1.0");
    assert_eq!(c.cni_versions, ["1.0.0", "1.1.0"]);
    assert_eq!((c.name.as_str(), c.plugin_type.as_str()), ("n", "sbr"));
    assert_eq!(c.capabilities["bandwidth"], true);
    assert_eq!(c.runtime_config["bandwidth"]["ingressRate"], 1);
    assert_eq!(c.args.unwrap()["cni"]["x"], 1);
    assert_eq!(c.ipam.unwrap()["type"], "host-local");
    assert!(c.dns.is_some());
    assert_eq!(c.log_level.as_deref(), Some("debug"));
    assert_eq!(c.log_file.unwrap().to_str(), Some("/tmp/x.log"));
    assert_eq!(c.valid_attachments.unwrap()[0].container_id, "c");
    assert_eq!(c.raw["mine"], 5);
    assert!(c.prev_result.is_none());
}

#[test]
fn gc_attachments_under_either_key() {
    let c = conf(json!({"cniVersion": "1.1.0", "name": "n", "type": "t",
                        "cni.dev/attachments": [{"containerID": "x", "ifname": "net1"}]}));
    assert_eq!(c.valid_attachments.unwrap()[0].ifname, "net1");
    let c = conf(json!({"cniVersion": "1.1.0", "name": "n", "type": "t", "cni.dev/valid-attachments": []}));
    assert_eq!(c.valid_attachments.unwrap().len(), 0);
    let c = conf(json!({"cniVersion": "1.1.0", "name": "n", "type": "t"}));
    assert!(c.valid_attachments.is_none());
    let e = NetConf::parse(br#"{"cniVersion":"1.1.0","name":"n","type":"t","cni.dev/attachments":{}}"#)
        .unwrap_err();
    assert_eq!(e.code, Code::InvalidConfig);
    assert!(e.msg.contains("cni.dev/attachments"), "{}", e.msg);
}

#[test]
fn nulls_count_as_absent() {
    let c = conf(
        json!({"cniVersion": "1.0.0", "name": "n", "type": "t", "runtimeConfig": null,
                        "prevResult": null, "logFile": null, "args": null, "cniVersions": null}),
    );
    assert!(
        c.runtime_config.is_empty() && c.prev_result.is_none() && c.log_file.is_none() && c.args.is_none()
    );
}

/// skel reads a missing or empty `cniVersion` as 0.1.0: no refusal, and a
/// version-less prevResult is read in 0.1.0; a non-empty `cniVersion` wins
/// over `cniVersions` for it too.
#[test]
fn no_cni_version_is_0_1_0() {
    for v in [json!({}), json!({"cniVersion": ""}), json!({"cniVersion": null})] {
        let mut c = v.as_object().unwrap().clone();
        c.insert("name".into(), json!("n"));
        c.insert("type".into(), json!("t"));
        c.insert("prevResult".into(), json!({"ip4": {"ip": "10.0.0.1/8"}}));
        let c = conf(serde_json::Value::Object(c));
        assert_eq!(c.cni_version, "");
        let prev = c.prev_result.unwrap();
        assert_eq!(prev.cni_version, "0.1.0");
        assert_eq!(prev.ips[0].address.to_string(), "10.0.0.1/8");
    }
    let c = conf(
        json!({"cniVersion": "0.4.0", "cniVersions": ["1.0.0"], "name": "n", "type": "t",
                        "prevResult": {"ips": [{"address": "10.0.0.1/8"}]}}),
    );
    assert_eq!(c.prev_result.unwrap().cni_version, "0.4.0");
}

#[test]
fn cni_versions_alone_is_enough() {
    let c = conf(
        json!({"cniVersions": ["0.4.0", "1.0.0"], "name": "n", "type": "t",
                        "prevResult": {"ips": [{"address": "10.0.0.1/8"}]}}),
    );
    assert_eq!(c.cni_version, "");
    assert_eq!(c.prev_result.unwrap().cni_version, "1.0.0");
}

#[test]
fn plugin_fields_exact() {
    let c = conf(
        json!({"cniVersion": "1.0.0", "name": "n", "type": "bandwidth", "ingressRate": 8,
                        "runtimeConfig": {"bandwidth": {"ingressRate": 9, "ingressBurst": 10}}}),
    );
    let own: Own = c.plugin(false).unwrap();
    assert_eq!(own.ingress_rate, Some(8));
    assert_eq!(
        own.runtime_config.bandwidth,
        Some(Entry {
            ingress_rate: 9,
            ingress_burst: 10
        })
    );
}

#[test]
fn plugin_fields_fold_case_like_go() {
    let c = conf(json!({"cniVersion": "1.0.0", "name": "n", "type": "bandwidth",
        "IngressRate": 8, "EGRESSBURST": 3,
        "RuntimeConfig": {"Bandwidth": {"INGRESSrate": 9, "ingressburst": 10}},
        "tableids": [{"IngressRate": 1}]}));
    let own: Own = c.plugin(true).unwrap();
    assert_eq!(own.name, "n");
    assert_eq!(own.ingress_rate, Some(8));
    assert_eq!(own.egress_burst, Some(3));
    assert_eq!(
        own.runtime_config.bandwidth,
        Some(Entry {
            ingress_rate: 9,
            ingress_burst: 10
        })
    );
    assert_eq!(
        own.table_ids,
        [Entry {
            ingress_rate: 1,
            ingress_burst: 0
        }]
    );
    // Case-sensitive reading ignores them.
    let own: Own = c.plugin(false).unwrap();
    assert_eq!(own.ingress_rate, None);
    assert_eq!(own.runtime_config.bandwidth, None);
}

#[test]
fn folded_duplicates_take_the_later_key() {
    let c =
        conf(json!({"cniVersion": "1.0.0", "name": "n", "type": "t", "ingressRate": 1, "INGRESSRATE": 2}));
    assert_eq!(c.plugin::<Own>(true).unwrap().ingress_rate, Some(2));
    let c =
        conf(json!({"cniVersion": "1.0.0", "name": "n", "type": "t", "INGRESSRATE": 2, "ingressRate": 1}));
    assert_eq!(c.plugin::<Own>(true).unwrap().ingress_rate, Some(1));
}

#[test]
fn plugin_type_mismatch_is_code_7() {
    let c = conf(json!({"cniVersion": "1.0.0", "name": "n", "type": "t", "IngressRate": "fast"}));
    let e = c.plugin::<Own>(true).unwrap_err();
    assert_eq!(e.code, Code::InvalidConfig);
    assert!(e.msg.contains("invalid type"), "{}", e.msg);
    // Exact matching does not see the key at all.
    assert_eq!(c.plugin::<Own>(false).unwrap().ingress_rate, None);
    let c = conf(json!({"cniVersion": "1.0.0", "name": "n", "type": "t", "runtimeConfig": {"bandwidth": 3}}));
    for ci in [true, false] {
        assert_eq!(c.plugin::<Own>(ci).unwrap_err().code, Code::InvalidConfig);
    }
}

#[test]
fn broken_and_mistyped_configs() {
    assert_eq!(NetConf::parse(b"").unwrap_err().code, Code::Decode);
    assert_eq!(NetConf::parse(b"\xff\xfe").unwrap_err().code, Code::Decode);
    assert_eq!(NetConf::parse(b"null").unwrap_err().code, Code::Decode);
    assert_eq!(
        NetConf::parse(br#"{"cniVersion":"1.0.0","name":"n","type":"t","cniVersions":[1]}"#)
            .unwrap_err()
            .code,
        Code::InvalidConfig
    );
    assert_eq!(
        NetConf::parse(br#"{"cniVersion":"1.0.0","name":["n"],"type":"t"}"#)
            .unwrap_err()
            .code,
        Code::InvalidConfig
    );
}

#[test]
fn mistyped_logging_settings_are_left_out_with_a_warning() {
    let c = conf(json!({"cniVersion": "1.0.0", "name": "n", "type": "t", "logLevel": 2, "logFile": false}));
    assert!(c.log_level.is_none() && c.log_file.is_none());
    assert_eq!(
        c.warnings,
        [
            "ignoring logLevel 2: not a string",
            "ignoring logFile false: not a string"
        ]
    );
    assert!(conf(json!({"cniVersion": "1.0.0", "name": "n", "type": "t"}))
        .warnings
        .is_empty());
}
