//! Shared by the root integration tests: a host and container namespace
//! joined by a veth, and the plugin binary run inside the host namespace.

#![allow(clippy::unwrap_used, dead_code)]

use std::path::Path;

pub use cni_testkit::plugin::Out;
use cni_testkit::plugin::{in_ns, spawn_plugin};
pub use cni_testkit::{root_or_skip, Ns};
use serde_json::{json, Value};

pub const BIN: &str = env!("CARGO_BIN_EXE_bandwidth");
pub const REFERENCE: &str = "/usr/lib/cni/bandwidth";

/// One container's attachment: `eth0` in `ctr`, its peer `veth` in a host
/// namespace owned by the caller.
pub struct Attachment {
    pub ctr: Ns,
    pub veth: String,
    pub cid: String,
    pub host_ip: String,
    pub ctr_ip: String,
}

impl Attachment {
    /// Subnet 10.`n / 250`.`n % 250`.0/30-ish: .1 host, .2 container.
    pub fn new(host: &Ns, tag: &str, n: u32) -> Attachment {
        let ctr = Ns::new(tag);
        let veth = format!("vb{n}x{}", std::process::id() % 10000);
        host.veth(&veth, "eth0", Some(&ctr));
        let net = format!("10.{}.{}", 100 + n / 250, n % 250);
        let (host_ip, ctr_ip) = (format!("{net}.1"), format!("{net}.2"));
        host.ip(&["addr", "add", &format!("{host_ip}/24"), "dev", &veth]);
        host.ip(&["link", "set", &veth, "up"]);
        ctr.ip(&["addr", "add", &format!("{ctr_ip}/24"), "dev", "eth0"]);
        ctr.ip(&["link", "set", "eth0", "up"]);
        Attachment {
            ctr,
            veth,
            cid: format!("ctr-{tag}-{n}"),
            host_ip,
            ctr_ip,
        }
    }

    /// A ptp-style prevResult: host veth without sandbox, container side with.
    pub fn prev_result(&self, version: &str) -> Value {
        json!({
            "cniVersion": version,
            "interfaces": [
                {"name": self.veth},
                {"name": "eth0", "sandbox": self.ctr.path()}
            ],
            "ips": [{"address": format!("{}/24", self.ctr_ip), "interface": 1}]
        })
    }

    /// A config with `extra` fields and this attachment's prevResult.
    pub fn conf(&self, network: &str, extra: Value) -> Value {
        self.conf_v("1.0.0", network, extra)
    }

    pub fn conf_v(&self, version: &str, network: &str, extra: Value) -> Value {
        let mut c = json!({"cniVersion": version, "name": network, "type": "bandwidth"});
        c["prevResult"] = self.prev_result(version);
        for (k, v) in extra.as_object().unwrap() {
            c[k] = v.clone();
        }
        c
    }

    pub fn run(&self, host: &Ns, cmd: &str, conf: &Value) -> Out {
        cni(BIN, host, cmd, &self.cid, Some(&self.ctr.path()), "eth0", conf)
    }
}

/// A host namespace with one attachment, `None` (and the skip said) without root.
pub fn setup(tag: &str) -> Option<(Ns, Attachment)> {
    if !root_or_skip(tag) {
        return None;
    }
    let host = Ns::new(tag);
    let a = Attachment::new(&host, tag, 1);
    Some((host, a))
}

/// 10 Mbit/s with 1 Mbit bucket in, 20 Mbit/s with 2 Mbit out.
pub fn both() -> Value {
    limits((10_000_000, 1_000_000), (20_000_000, 2_000_000))
}

/// Four limits at top level.
pub fn limits(ingress: (u64, u64), egress: (u64, u64)) -> Value {
    json!({"ingressRate": ingress.0, "ingressBurst": ingress.1, "egressRate": egress.0, "egressBurst": egress.1})
}

/// Runs a plugin binary inside `host`'s namespace (its "host namespace").
pub fn cni(
    bin: &str,
    host: &Ns,
    cmd: &str,
    cid: &str,
    netns: Option<&Path>,
    ifname: &str,
    conf: &Value,
) -> Out {
    Out::wait(spawn(bin, host, cmd, cid, netns, ifname, conf))
}

/// The same, left running (the child's pid is the plugin's).
pub fn spawn(
    bin: &str,
    host: &Ns,
    cmd: &str,
    cid: &str,
    netns: Option<&Path>,
    ifname: &str,
    conf: &Value,
) -> std::process::Child {
    spawn_plugin(in_ns(host, bin), cmd, cid, netns, ifname, conf)
}

/// `tc -j qdisc show dev DEV`.
pub fn qdiscs(host: &Ns, dev: &str) -> Vec<Value> {
    host.tc_json(&["qdisc", "show", "dev", dev])
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// The root TBF's (rate, burst) as tc prints them, if any.
pub fn root_tbf(host: &Ns, dev: &str) -> Option<(u64, u64)> {
    qdiscs(host, dev)
        .into_iter()
        .find(|q| q["kind"] == "tbf" && q["root"] == true)
        .map(|q| {
            (
                q["options"]["rate"].as_u64().unwrap(),
                q["options"]["burst"].as_u64().unwrap(),
            )
        })
}

pub fn has_ingress_qdisc(host: &Ns, dev: &str) -> bool {
    qdiscs(host, dev).iter().any(|q| q["kind"] == "ingress")
}

/// Names of the ifbs in `host` (the `bwp` ones).
pub fn ifbs(host: &Ns) -> Vec<Value> {
    host.ip_json(&["-d", "link", "show", "type", "ifb"])
        .as_array()
        .cloned()
        .unwrap_or_default()
}

pub fn ifb_names(host: &Ns) -> Vec<String> {
    ifbs(host)
        .iter()
        .map(|l| l["ifname"].as_str().unwrap().to_string())
        .collect()
}

/// The mirred actions of the filters on DEV's ingress: (to_dev, control).
pub fn redirects(host: &Ns, dev: &str) -> Vec<(String, String)> {
    let f = host.tc_json(&["filter", "show", "dev", dev, "ingress"]);
    let mut out = Vec::new();
    for filter in f.as_array().cloned().unwrap_or_default() {
        for a in filter["options"]["actions"]
            .as_array()
            .cloned()
            .unwrap_or_default()
        {
            out.push((
                a["to_dev"].as_str().unwrap_or_default().to_string(),
                a["control_action"]["type"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            ));
        }
    }
    out
}

#[allow(unused_imports)]
pub use bandwidth::ifb::name as ifb_name;
