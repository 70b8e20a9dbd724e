//! The configurations the suite runs on a pod, and the ifb name it expects.

use serde_json::{json, Value};
use sha2::{Digest, Sha512};

pub use cni_testkit::pod::Pod;

/// The ifb name as docs/bandwidth.md states the reference's rule: `bwp` and
/// the first 12 hex digits of SHA-512(network name + container ID).
pub fn ifb_name(network: &str, container_id: &str) -> String {
    let digest = Sha512::new()
        .chain_update(network)
        .chain_update(container_id)
        .finalize();
    let hex: String = digest.iter().take(6).map(|b| format!("{b:02x}")).collect();
    format!("bwp{hex}")
}

/// An sbr config around `prev` (left out when `None`).
pub fn sbr_conf(version: &str, prev: Option<Value>) -> Value {
    let mut c = json!({"cniVersion": version, "name": "sbrnet", "type": "sbr"});
    if let Some(p) = prev {
        c["prevResult"] = p;
    }
    c
}

/// A bandwidth config with the given limits (bits/s, bits) around `prev`.
pub fn bw_conf(version: &str, limits: &[(&str, u64)], prev: Option<Value>) -> Value {
    let mut c = json!({"cniVersion": version, "name": "bwnet", "type": "bandwidth"});
    for (k, v) in limits {
        c[*k] = json!(v);
    }
    if let Some(p) = prev {
        c["prevResult"] = p;
    }
    c
}

/// The four limits: (rate bit/s, burst bits) in, then out.
pub fn limits(ingress: (u64, u64), egress: (u64, u64)) -> [(&'static str, u64); 4] {
    [
        ("ingressRate", ingress.0),
        ("ingressBurst", ingress.1),
        ("egressRate", egress.0),
        ("egressBurst", egress.1),
    ]
}

/// 1 Mbit/s each way with a 100 kbit burst (above a 1500 MTU).
pub const BOTH: &[(&str, u64)] = &[
    ("ingressRate", 1_000_000),
    ("ingressBurst", 100_000),
    ("egressRate", 2_000_000),
    ("egressBurst", 200_000),
];

pub fn bytes(v: &Value) -> Vec<u8> {
    serde_json::to_vec(v).unwrap_or_default()
}
