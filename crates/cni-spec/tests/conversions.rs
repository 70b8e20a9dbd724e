#![allow(clippy::unwrap_used)]
//! Result conversions on fixtures: `fixtures/reference/` holds results the
//! reference Go `ptp` + `host-local` (containernetworking-plugins v1.1.1)
//! printed. `ptp-1.0.0-twin-of-V.json` came from the same IPAM ranges as
//! `ptp-V.json`, so Go's own conversion of the twin to V is `ptp-V.json`
//! (up to the random veth names and MACs).

use cni_spec::version::{self, Family};
use cni_spec::{Code, IpConfig, NetConf, NetResult};
use serde_json::{json, Value};

fn fixture(name: &str) -> Value {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

fn parse(v: &Value) -> NetResult {
    NetResult::parse("1.0.0", v).unwrap()
}

/// Copies `interfaces` of `from` into `to`: veth names, MACs and the
/// sandbox path differ between the twin runs.
fn same_interfaces(to: &mut Value, from: &Value) {
    let a = to["interfaces"].as_array().unwrap().len();
    let b = from["interfaces"].as_array().unwrap().len();
    assert_eq!(a, b, "interface count");
    for (x, y) in to["interfaces"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .zip(from["interfaces"].as_array().unwrap())
    {
        // The twins ran in another container namespace (cfx-c2).
        assert_eq!(x.get("sandbox").is_some(), y.get("sandbox").is_some());
        *x = y.clone();
    }
}

#[test]
fn reference_results_round_trip_in_their_own_version() {
    for v in ["0.2.0", "0.3.1", "0.4.0", "1.0.0"] {
        let raw = fixture(&format!("reference/ptp-{v}.json"));
        let res = NetResult::parse("0.1.0", &raw).unwrap();
        assert_eq!(res.cni_version, v, "its own cniVersion wins");
        assert_eq!(res.to_json(v).unwrap(), raw, "round trip of {v}");
    }
}

#[test]
fn reference_results_parse_to_expected_content() {
    let res = parse(&fixture("reference/ptp-0.3.1.json"));
    assert_eq!(res.interfaces.len(), 2);
    assert_eq!(res.interfaces[1].name, "eth2");
    assert_eq!(res.interfaces[1].sandbox.as_deref(), Some("/run/netns/cfx-c1"));
    assert_eq!(res.ips.len(), 2);
    assert_eq!(res.ips[0].address.to_string(), "10.77.2.2/24");
    assert_eq!(res.ips[0].interface, Some(1));
    assert!(
        res.ips[0].extra.is_empty(),
        "version is not kept as an extra field"
    );
    assert_eq!(res.ips[1].gateway.unwrap().to_string(), "fd77:2::1");
    assert_eq!(res.routes.len(), 3);
    assert_eq!(res.dns.nameservers, vec!["10.77.0.53"]);

    let legacy = parse(&fixture("reference/ptp-0.2.0.json"));
    assert!(legacy.interfaces.is_empty());
    assert_eq!(legacy.ips.len(), 2);
    assert_eq!(legacy.ips[0].interface, None);
    let dsts: Vec<String> = legacy.routes.iter().map(|r| r.dst.to_string()).collect();
    assert_eq!(
        dsts,
        ["0.0.0.0/0", "192.168.1.0/24", "::/0"],
        "ip4 then ip6 routes, merged"
    );
}

#[test]
fn down_from_1_0_matches_go_conversion() {
    for v in ["0.2.0", "0.3.1", "0.4.0"] {
        let twin = parse(&fixture(&format!("reference/ptp-1.0.0-twin-of-{v}.json")));
        let go = fixture(&format!("reference/ptp-{v}.json"));
        let mut ours = twin.to_json(v).unwrap();
        if version::family(v) != Some(Family::Legacy) {
            same_interfaces(&mut ours, &go);
        } else {
            assert!(ours.get("interfaces").is_none());
        }
        assert_eq!(ours, go, "1.0.0 -> {v}");
    }
}

#[test]
fn up_to_1_0_matches_go_output() {
    for v in ["0.3.1", "0.4.0"] {
        let old = parse(&fixture(&format!("reference/ptp-{v}.json")));
        let mut twin = fixture(&format!("reference/ptp-1.0.0-twin-of-{v}.json"));
        let ours = old.to_json("1.0.0").unwrap();
        same_interfaces(&mut twin, &ours);
        assert_eq!(ours, twin, "{v} -> 1.0.0");
    }
    // 0.2.0 has no interfaces, so neither do its ips.
    let old = parse(&fixture("reference/ptp-0.2.0.json"));
    let mut twin = fixture("reference/ptp-1.0.0-twin-of-0.2.0.json");
    twin.as_object_mut().unwrap().remove("interfaces");
    for ip in twin["ips"].as_array_mut().unwrap() {
        ip.as_object_mut().unwrap().remove("interface");
    }
    assert_eq!(old.to_json("1.0.0").unwrap(), twin);
}

#[test]
fn legacy_to_0_4_adds_ip_versions() {
    let old = parse(&fixture("reference/ptp-0.2.0.json"));
    let out = old.to_json("0.4.0").unwrap();
    assert_eq!(out["cniVersion"], "0.4.0");
    assert_eq!(out["ips"][0]["version"], "4");
    assert_eq!(out["ips"][1]["version"], "6");
    assert_eq!(out["routes"].as_array().unwrap().len(), 3);
    assert!(out.get("ip4").is_none());
}

#[test]
fn v0_1_round_trips_and_goes_up() {
    let raw = fixture("result-0.1.0-v4only.json");
    let res = NetResult::parse("0.1.0", &raw).unwrap();
    assert_eq!(res.to_json("0.1.0").unwrap(), raw);
    let up = res.to_json("1.1.0").unwrap();
    assert_eq!(
        up,
        json!({
            "cniVersion": "1.1.0",
            "ips": [{"address": "192.168.5.7/16", "gateway": "192.168.0.1"}],
            "routes": [{"dst": "0.0.0.0/0"}, {"dst": "10.0.0.0/8", "gw": "192.168.0.254"}],
            "dns": {}
        })
    );
}

#[test]
fn v1_1_fields_survive_1_1_and_vanish_below() {
    let raw = fixture("result-1.1.0-full.json");
    let res = NetResult::parse("1.1.0", &raw).unwrap();
    assert_eq!(res.interfaces[1].pci_id.as_deref(), Some("0000:00:1f.6"));
    assert_eq!(res.routes[0].table, Some(100));
    assert_eq!(
        res.to_json("1.1.0").unwrap(),
        raw,
        "1.1.0 round trip keeps everything"
    );

    let v10 = res.to_json("1.0.0").unwrap();
    for iface in v10["interfaces"].as_array().unwrap() {
        for k in ["mtu", "socketPath", "pciID"] {
            assert!(iface.get(k).is_none(), "1.0.0 interface has {k}");
        }
    }
    for k in ["mtu", "advmss", "priority", "table", "scope"] {
        assert!(v10["routes"][0].get(k).is_none(), "1.0.0 route has {k}");
    }
    assert_eq!(v10["routes"][0], json!({"dst": "0.0.0.0/0", "gw": "10.0.0.1"}));
    // Unknown fields are passed on at every level.
    assert_eq!(v10["x-vendor"], raw["x-vendor"]);
    assert_eq!(v10["interfaces"][0]["x-host"], true);
    assert_eq!(v10["ips"][0]["x-ip-note"], "primary");
    assert_eq!(v10["routes"][2]["x-route-tag"], 7);
    assert!(v10["ips"][0].get("version").is_none());

    let v04 = res.to_json("0.4.0").unwrap();
    assert_eq!(v04["cniVersion"], "0.4.0");
    let versions: Vec<&str> = v04["ips"]
        .as_array()
        .unwrap()
        .iter()
        .map(|ip| ip["version"].as_str().unwrap())
        .collect();
    assert_eq!(versions, ["4", "4", "6"]);
    assert!(v04["interfaces"][1].get("pciID").is_none());
    assert!(v04["routes"][0].get("table").is_none());
    assert_eq!(v04["x-vendor"], raw["x-vendor"]);
    // And back up: nothing but the dropped fields is lost.
    let back = NetResult::parse("0.4.0", &v04).unwrap().to_json("1.0.0").unwrap();
    assert_eq!(back, v10);
}

#[test]
fn down_to_0_2_keeps_first_address_of_each_family_and_splits_routes() {
    let res = NetResult::parse("1.1.0", &fixture("result-1.1.0-full.json")).unwrap();
    let out = res.to_json("0.2.0").unwrap();
    assert_eq!(
        out["ip4"],
        json!({"ip": "10.0.0.2/24", "gateway": "10.0.0.1", "x-ip-note": "primary",
               "routes": [{"dst": "0.0.0.0/0", "gw": "10.0.0.1"}, {"dst": "10.10.0.0/16"}]})
    );
    assert_eq!(
        out["ip6"],
        json!({"ip": "fd00::2/64", "gateway": "fd00::1", "routes": [{"dst": "::/0", "gw": "fd00::1", "x-route-tag": 7}]})
    );
    assert!(out.get("interfaces").is_none() && out.get("ips").is_none() && out.get("routes").is_none());
    assert_eq!(out["dns"]["search"], json!(["a.test", "b.test"]));
}

#[test]
fn down_to_0_2_with_one_family_drops_the_other_routes() {
    let v6only = json!({"cniVersion": "1.0.0", "ips": [{"address": "fd00::5/64"}],
                        "routes": [{"dst": "0.0.0.0/0"}, {"dst": "::/0"}]});
    let out = parse(&v6only).to_json("0.2.0").unwrap();
    assert!(out.get("ip4").is_none());
    assert_eq!(
        out["ip6"],
        json!({"ip": "fd00::5/64", "routes": [{"dst": "::/0"}]})
    );
}

#[test]
fn down_to_0_2_without_address_is_an_error() {
    let none =
        json!({"cniVersion": "1.0.0", "interfaces": [{"name": "eth0"}], "routes": [{"dst": "0.0.0.0/0"}]});
    for v in ["0.1.0", "0.2.0"] {
        let e = parse(&none).to_json(v).unwrap_err();
        assert_eq!(e.code, Code::IncompatibleVersion);
        assert!(e.msg.contains("no ip address"), "{}", e.msg);
    }
    // Newer versions are fine with it.
    assert!(parse(&none).to_json("0.3.0").is_ok());
}

#[test]
fn interface_index_out_of_range_is_kept() {
    let res = parse(&json!({"cniVersion": "1.0.0", "interfaces": [{"name": "eth0"}],
                            "ips": [{"address": "10.0.0.1/8", "interface": 3}, {"address": "10.0.0.2/8", "interface": 0}]}));
    assert_eq!(res.ips[0].interface, Some(3));
    assert!(res.interface_of(&res.ips[0]).is_none());
    assert_eq!(res.interface_of(&res.ips[1]).unwrap().name, "eth0");
    assert_eq!(res.to_json("1.0.0").unwrap()["ips"][0]["interface"], 3);
}

/// Go reads `"interface": -1` into its `*int` and writes it back; it names
/// no interface. Kept through conversions that have the field, dropped in
/// 0.2.0, which has none.
#[test]
fn negative_interface_index_is_no_interface() {
    let res = parse(&json!({"cniVersion": "1.0.0", "interfaces": [{"name": "eth0"}],
                            "ips": [{"address": "10.0.0.1/8", "interface": -1}]}));
    assert_eq!(res.ips[0].interface, Some(-1));
    assert_eq!(res.ips[0].interface_index(), None);
    assert!(res.interface_of(&res.ips[0]).is_none());
    for v in ["1.1.0", "1.0.0", "0.4.0", "0.3.1", "0.3.0"] {
        let out = res.to_json(v).unwrap();
        assert_eq!(out["ips"][0]["interface"], -1, "{v}: {out}");
        assert_eq!(parse(&out).ips[0].interface, Some(-1), "{v}");
    }
    let legacy = res.to_json("0.2.0").unwrap();
    assert_eq!(legacy["ip4"]["ip"], "10.0.0.1/8");
    assert!(legacy["ip4"].get("interface").is_none(), "{legacy}");
    // A 0.4.0 result says so too.
    let old = parse(&json!({"cniVersion": "0.4.0",
                            "ips": [{"version": "4", "address": "10.0.0.1/8", "interface": -1}]}));
    assert_eq!(old.ips[0].interface, Some(-1));
    assert_eq!(
        IpConfig {
            interface: Some(0),
            ..old.ips[0].clone()
        }
        .interface_index(),
        Some(0)
    );
}

#[test]
fn unknown_versions_are_code_1() {
    let e = NetResult::parse("1.0.0", &json!({"cniVersion": "2.0.0"})).unwrap_err();
    assert_eq!(e.code, Code::IncompatibleVersion);
    assert!(e.msg.contains("2.0.0"));
    let e = NetResult::parse("9.9.9", &json!({"ips": []})).unwrap_err();
    assert_eq!(e.code, Code::IncompatibleVersion);
    let e = parse(&json!({"cniVersion": "1.0.0"}))
        .to_json("0.5.0")
        .unwrap_err();
    assert_eq!(e.code, Code::IncompatibleVersion);
}

#[test]
fn malformed_results_are_code_6_naming_the_field() {
    let cases = [
        (json!([1, 2]), "not a json object"),
        (json!({"cniVersion": 1}), "cniVersion"),
        (
            json!({"cniVersion": "1.0.0", "ips": [{"address": "banana"}]}),
            "ips[0]",
        ),
        (
            json!({"cniVersion": "1.0.0", "ips": [{"gateway": "10.0.0.1"}]}),
            "ips[0]",
        ),
        (
            json!({"cniVersion": "1.0.0", "ips": {"address": "10.0.0.1/8"}}),
            "ips",
        ),
        (
            json!({"cniVersion": "1.0.0", "ips": [{"address": "10.0.0.1/8", "interface": 1.5}]}),
            "ips[0]",
        ),
        (
            json!({"cniVersion": "1.0.0", "ips": [{"address": "10.0.0.1/8", "interface": "0"}]}),
            "ips[0]",
        ),
        (
            json!({"cniVersion": "1.0.0", "routes": [{"dst": "10.0.0.0/33"}]}),
            "routes",
        ),
        (json!({"cniVersion": "1.0.0", "interfaces": "eth0"}), "interfaces"),
        (
            json!({"cniVersion": "1.0.0", "dns": {"nameservers": "1.1.1.1"}}),
            "dns",
        ),
        (
            json!({"cniVersion": "0.2.0", "ip4": {"gateway": "10.0.0.1"}}),
            "ip4",
        ),
        (
            json!({"cniVersion": "0.2.0", "ip6": {"ip": "fd00::1/64", "gateway": "x"}}),
            "ip6.gateway",
        ),
        (json!({"cniVersion": "0.2.0", "ip4": 4}), "ip4"),
        (
            json!({"cniVersion": "1.1.0", "routes": [{"dst": "0.0.0.0/0", "scope": 300}]}),
            "routes",
        ),
    ];
    for (v, want) in cases {
        let e = NetResult::parse("1.0.0", &v).unwrap_err();
        assert_eq!(e.code, Code::Decode, "{v}");
        assert!(e.msg.contains(want), "{v}: {} lacks {want}", e.msg);
    }
}

#[test]
fn result_version_defaults_to_the_callers() {
    let legacy_shape = json!({"ip4": {"ip": "10.1.2.3/24"}});
    let res = NetResult::parse("0.2.0", &legacy_shape).unwrap();
    assert_eq!(res.cni_version, "0.2.0");
    assert_eq!(res.ips[0].address.to_string(), "10.1.2.3/24");
    // In a 1.0.0 reading the same object has no addresses: `ip4` is an extra.
    let res = NetResult::parse("1.0.0", &legacy_shape).unwrap();
    assert!(res.ips.is_empty());
    assert!(res.extra.contains_key("ip4"));
    // ... which never leaks into the output of another family.
    let out = res.to_json("1.0.0").unwrap();
    assert!(out.get("ip4").is_none());
}

#[test]
fn prev_result_without_version_is_read_in_the_config_version() {
    let conf = br#"{"cniVersion":"0.2.0","name":"n","type":"sbr",
        "prevResult":{"ip4":{"ip":"10.9.0.2/16","gateway":"10.9.0.1"},"dns":{}}}"#;
    let c = NetConf::parse(conf).unwrap();
    let prev = c.prev_result.unwrap();
    assert_eq!(prev.cni_version, "0.2.0");
    assert_eq!(prev.ips[0].gateway.unwrap().to_string(), "10.9.0.1");

    let conf = br#"{"cniVersion":"0.4.0","name":"n","type":"sbr",
        "prevResult":{"interfaces":[{"name":"eth0"}],"ips":[{"version":"4","address":"10.9.0.2/16","interface":0}]}}"#;
    let prev = NetConf::parse(conf).unwrap().prev_result.unwrap();
    assert_eq!(prev.cni_version, "0.4.0");
    assert_eq!(prev.ips[0].interface, Some(0));

    // A prevResult with its own version is read in that one.
    let conf = br#"{"cniVersion":"0.4.0","name":"n","type":"sbr",
        "prevResult":{"cniVersion":"0.2.0","ip4":{"ip":"10.9.0.2/16"}}}"#;
    let prev = NetConf::parse(conf).unwrap().prev_result.unwrap();
    assert_eq!(prev.cni_version, "0.2.0");
    assert_eq!(prev.ips.len(), 1);
    assert_eq!(prev.to_json("0.4.0").unwrap()["ips"][0]["version"], "4");
}

#[test]
fn version_strings_compare_and_negotiate() {
    use std::cmp::Ordering;
    assert_eq!(version::compare("0.10.0", "0.4.0"), Some(Ordering::Greater));
    assert_eq!(version::compare("1.0", "1.0.0"), Some(Ordering::Equal));
    assert_eq!(version::compare("", "0.1.0"), Some(Ordering::Equal));
    assert_eq!(version::compare("1.x", "1.0.0"), None);
    assert_eq!(version::parse_version("1.2.3.4"), None);
    assert_eq!(version::parse_version("-1.0.0"), None);
    assert!(version::greater_or_equal("1.1.0", "1.1.0"));
    assert!(!version::greater_or_equal("1.0.0", "1.1.0"));
    assert!(!version::greater_or_equal("junk", "0.1.0"));

    let ours: &[&str] = &["0.3.1", "0.4.0", "1.0.0", "1.1.0"];
    let offered = |l: &[&str]| l.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert_eq!(version::negotiate("1.0.0", &[], ours).unwrap(), "1.0.0");
    // A non-empty cniVersion is the runtime's choice; the list is not read.
    assert_eq!(
        version::negotiate("1.0.0", &offered(&["1.0.0", "1.1.0", "2.0.0"]), ours).unwrap(),
        "1.0.0"
    );
    assert_eq!(
        version::negotiate("0.4.0", &offered(&["9.0.0"]), ours).unwrap(),
        "0.4.0"
    );
    let e = version::negotiate("0.2.0", &offered(&["1.1.0"]), ours).unwrap_err();
    assert_eq!(e.code, Code::IncompatibleVersion);
    assert!(e.msg.contains("0.2.0") && e.msg.contains("1.1.0"), "{}", e.msg);
    // Without it, the list's highest common entry.
    assert_eq!(
        version::negotiate("", &offered(&["0.4.0", "0.3.1"]), ours).unwrap(),
        "0.4.0"
    );
    assert_eq!(
        version::negotiate("", &offered(&["2.0.0"]), ours)
            .unwrap_err()
            .code,
        Code::IncompatibleVersion
    );
    // Without either, 0.1.0 (skel's DecodeVersion).
    assert_eq!(version::negotiate("", &[], version::ALL).unwrap(), "0.1.0");
    let e = version::negotiate("", &[], ours).unwrap_err();
    assert_eq!(e.code, Code::IncompatibleVersion);
    assert!(e.msg.contains("0.1.0"), "{}", e.msg);
    assert_eq!(
        version::highest_common(&offered(&["0.10.0", "0.4.0"]), &["0.4.0", "0.10.0"]).unwrap(),
        "0.10.0"
    );
}

/// The runtime side's choice for a conflist, as libcni's ConfListFromBytes
/// makes it (conformance's cni-run uses it).
#[test]
fn list_version_is_libcnis() {
    let l = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    // Without cniVersions, cniVersion as written, whatever it is.
    assert_eq!(version::list_version("1.0.0", None).unwrap(), "1.0.0");
    assert_eq!(version::list_version("junk", None).unwrap(), "junk");
    // With it, the highest of both that is not newer than 1.1.0.
    let two = l(&["1.0.0", "1.1.0", "2.0.0"]);
    assert_eq!(version::list_version("1.0.0", Some(&two)).unwrap(), "1.1.0");
    assert_eq!(
        version::list_version("1.0.0", Some(&l(&["0.4.0"]))).unwrap(),
        "1.0.0"
    );
    assert_eq!(
        version::list_version("2.0.0", Some(&l(&["0.4.0"]))).unwrap(),
        "0.4.0"
    );
    assert_eq!(
        version::list_version("", Some(&l(&["0.3.1", "0.4.0"]))).unwrap(),
        "0.4.0"
    );
    assert_eq!(version::list_version("2.0.0", Some(&[])).unwrap(), "2.0.0");
    // Not versions: code 7 naming them.
    let e = version::list_version("1.0.0", Some(&l(&["0.4.0", "x"]))).unwrap_err();
    assert_eq!(e.code, Code::InvalidConfig);
    assert!(e.msg.contains("\"x\"") && e.msg.contains("index 1"), "{}", e.msg);
    let e = version::list_version("y", Some(&l(&["1.0.0"]))).unwrap_err();
    assert!(e.msg.contains("cniVersion \"y\""), "{}", e.msg);
}

#[test]
fn network_names_follow_the_container_id_rule() {
    use cni_spec::names::{valid_container_id, valid_network_name};
    for name in ["net", "a", "Net_1.x-y", "-x", "_x", ".x", "a b", "a/b", "ä", ""] {
        assert_eq!(valid_network_name(name), valid_container_id(name), "{name:?}");
    }
    assert!(valid_network_name("mynet-1.0_x"));
    assert!(!valid_network_name("my net"));
    assert!(!valid_network_name(""));
}
