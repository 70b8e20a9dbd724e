//! Shared by the root tests: the kit's pod, with the plugin run inside its
//! host namespace.

#![allow(clippy::unwrap_used, dead_code)]

use std::path::Path;
use std::process::Child;

pub use bandwidth::ifb::name as ifb_name;
pub use cni_testkit::plugin::Out;
use cni_testkit::plugin::{in_ns, spawn_plugin};
pub use cni_testkit::pod::Pod;
pub use cni_testkit::{root_or_skip, Ns};
use serde_json::{json, Value};

pub const BIN: &str = env!("CARGO_BIN_EXE_bandwidth");
pub const REFERENCE: &str = "/usr/lib/cni/bandwidth";

/// A pod in fresh namespaces, `None` (and the skip said) without root.
pub fn setup(tag: &str) -> Option<Pod> {
    root_or_skip(tag).then(|| Pod::new(&format!("ctr-{tag}")).unwrap())
}

/// Another pod on `host`: `vh{subnet}` to a container namespace of its own.
pub fn attach(host: &Pod, container_id: &str, subnet: u8) -> Pod {
    let ctr = std::sync::Arc::new(Ns::new("pod"));
    let veth = format!("vh{subnet}");
    Pod::attach(host.host.clone(), ctr, container_id, "eth0", &veth, subnet).unwrap()
}

/// A 1.0.0 config for `pod` with `extra` fields.
pub fn conf(pod: &Pod, network: &str, extra: Value) -> Value {
    let mut c = json!({"cniVersion": "1.0.0", "name": network, "type": "bandwidth"});
    c["prevResult"] = pod.prev_result("1.0.0");
    for (k, v) in extra.as_object().unwrap() {
        c[k] = v.clone();
    }
    c
}

/// 10 Mbit/s with 1 Mbit bucket in, 20 Mbit/s with 2 Mbit out.
pub fn both() -> Value {
    limits((10_000_000, 1_000_000), (20_000_000, 2_000_000))
}

/// Four limits at top level.
pub fn limits(ingress: (u64, u64), egress: (u64, u64)) -> Value {
    json!({"ingressRate": ingress.0, "ingressBurst": ingress.1, "egressRate": egress.0, "egressBurst": egress.1})
}

/// `bin` for `pod` inside its host namespace.
pub fn run_as(bin: &str, pod: &Pod, cmd: &str, conf: &Value) -> Out {
    let netns = pod.netns();
    Out::wait(spawn(
        bin,
        &pod.host,
        cmd,
        &pod.container_id,
        Some(Path::new(&netns)),
        &pod.ifname,
        conf,
    ))
}

/// This plugin for `pod`.
pub fn run(pod: &Pod, cmd: &str, conf: &Value) -> Out {
    run_as(BIN, pod, cmd, conf)
}

/// A plugin run inside `host`, left running (the child's pid is the plugin's).
pub fn spawn(
    bin: &str,
    host: &Ns,
    cmd: &str,
    cid: &str,
    netns: Option<&Path>,
    ifname: &str,
    conf: &Value,
) -> Child {
    spawn_plugin(in_ns(host, bin), cmd, cid, netns, ifname, conf)
}

/// `tc -j qdisc show dev DEV`.
pub fn qdiscs(host: &Ns, dev: &str) -> Vec<Value> {
    host.tc_json(&["qdisc", "show", "dev", dev])
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// Names of the ifbs in `host`.
pub fn ifb_names(host: &Ns) -> Vec<String> {
    host.ip_json(&["link", "show", "type", "ifb"])
        .as_array()
        .into_iter()
        .flatten()
        .map(|l| l["ifname"].as_str().unwrap().to_string())
        .collect()
}
