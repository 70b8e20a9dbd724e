#![allow(clippy::unwrap_used)]
//! Arbitrary bytes as config and as prevResult: never a panic, always a typed
//! error with a spec code and a message.

use cni_core::{run_with, CniResult, NetConf, NetResult, Plugin, Request};
use proptest::prelude::*;
use serde_json::Value;

struct Echo;

impl Plugin for Echo {
    fn about(&self) -> String {
        "echo".into()
    }
    fn supported_versions(&self) -> &'static [&'static str] {
        cni_core::version::ALL
    }
    fn add(&self, req: &Request) -> CniResult<NetResult> {
        Ok(req.conf.prev_result.clone().unwrap_or_default())
    }
    fn del(&self, _: &Request) -> CniResult<()> {
        Ok(())
    }
    fn check(&self, _: &Request) -> CniResult<()> {
        Ok(())
    }
}

const CODES: &[u64] = &[1, 4, 5, 6, 7];

fn dispatch(stdin: &[u8]) -> (i32, Vec<u8>) {
    let env = |k: &str| {
        match k {
            "CNI_COMMAND" => Some("ADD"),
            "CNI_CONTAINERID" => Some("c1"),
            "CNI_NETNS" => Some("/run/netns/x"),
            "CNI_IFNAME" => Some("eth0"),
            "CNI_PATH" => Some("/usr/lib/cni"),
            _ => None,
        }
        .map(str::to_string)
    };
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let status = run_with(&Echo, &env, &mut &stdin[..], &mut out, &mut err);
    (status, out)
}

fn check_output(status: i32, out: &[u8]) {
    let v: Value = serde_json::from_slice(out).unwrap();
    if status == 0 {
        assert!(v["cniVersion"].is_string());
    } else {
        assert_eq!(status, 1);
        let code = v["code"].as_u64().unwrap();
        assert!(CODES.contains(&code), "code {code}: {v}");
        assert!(!v["msg"].as_str().unwrap().is_empty());
    }
}

/// JSON-ish values, so the search reaches past the JSON parser.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        prop_oneof![
            Just("10.0.0.2/24".to_string()),
            Just("fd00::1".to_string()),
            Just("0.3.1".to_string()),
            Just("1.1.0".to_string()),
            Just("0.2.0".to_string()),
            ".{0,12}",
        ]
        .prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 40, 6, |inner| {
        let key = prop_oneof![
            Just("cniVersion"),
            Just("ips"),
            Just("ip4"),
            Just("ip6"),
            Just("ip"),
            Just("address"),
            Just("gateway"),
            Just("interface"),
            Just("interfaces"),
            Just("routes"),
            Just("dst"),
            Just("gw"),
            Just("dns"),
            Just("version"),
            Just("mtu"),
            Just("scope"),
            Just("x"),
        ];
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec((key, inner), 0..6)
                .prop_map(|kv| Value::Object(kv.into_iter().map(|(k, v)| (k.to_string(), v)).collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_as_config(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        if let Err(e) = NetConf::parse(&bytes) {
            prop_assert!(!e.msg.is_empty());
        }
        let (status, out) = dispatch(&bytes);
        check_output(status, &out);
    }

    #[test]
    fn arbitrary_bytes_as_prev_result(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        let text = String::from_utf8_lossy(&bytes);
        let conf = format!(r#"{{"cniVersion":"1.0.0","name":"n","type":"t","prevResult":{text}}}"#);
        let (status, out) = dispatch(conf.as_bytes());
        check_output(status, &out);
    }

    #[test]
    fn structured_prev_results(prev in json_value(), version in prop::sample::select(cni_core::version::ALL)) {
        let conf = serde_json::json!({"cniVersion": version, "name": "n", "type": "t", "prevResult": prev});
        let (status, out) = dispatch(conf.to_string().as_bytes());
        check_output(status, &out);
        for v in cni_core::version::ALL {
            if let Ok(res) = NetResult::parse(v, &prev) {
                for to in cni_core::version::ALL {
                    // Either a result or a typed error; a result parses back.
                    if let Ok(json) = res.to_json(to) {
                        prop_assert!(NetResult::parse(to, &json).is_ok(), "{json}");
                    }
                }
            }
        }
    }
}
