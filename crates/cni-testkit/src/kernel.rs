//! Kernel features a case needs beyond what every supported kernel has
//! (a qdisc or link kind that may be built as a module, or not at all).
//! Each is probed once per run, by making one in a scratch namespace: a
//! module the kernel can load is loaded then, as it would be for a plugin.
//!
//! A case that needs a feature this kernel lacks does not run here and is
//! shown as `n/a`; `scripts/test-vm` boots a kernel that has them all and
//! runs the suite with `--require-features`, where `n/a` fails.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use crate::ns::Ns;

/// The features a case may name, and how each is made.
const FEATURES: &[(&str, Probe)] = &[
    ("fq_codel", Probe::Qdisc("fq_codel")),
    ("fq", Probe::Qdisc("fq")),
    ("cake", Probe::Qdisc("cake")),
    ("netem", Probe::Qdisc("netem")),
    ("vrf", Probe::Link(&["type", "vrf", "table", "4242"])),
    ("dummy", Probe::Link(&["type", "dummy"])),
];

#[derive(Debug, Clone, Copy)]
enum Probe {
    /// A root qdisc of this kind on `lo`.
    Qdisc(&'static str),
    /// `ip link add probe0 ARGS...`
    Link(&'static [&'static str]),
}

fn probe(p: Probe) -> Result<bool, String> {
    let ns = Ns::try_new("probe")?;
    Ok(match p {
        Probe::Qdisc(kind) => ns.try_tc(&["qdisc", "add", "dev", "lo", "root", kind]).is_ok(),
        Probe::Link(args) => {
            let mut v = vec!["link", "add", "probe0"];
            v.extend_from_slice(args);
            ns.try_ip(&v).is_ok()
        }
    })
}

/// Whether this kernel has `feature` (one of [`FEATURES`]); an unknown
/// name is an error, so a typo cannot make a case silently not run.
pub fn has(feature: &str) -> Result<bool, String> {
    static SEEN: OnceLock<Mutex<HashMap<String, bool>>> = OnceLock::new();
    let seen = SEEN.get_or_init(Mutex::default);
    if let Some(v) = seen
        .lock()
        .map_err(|_| "kernel feature cache poisoned")?
        .get(feature)
    {
        return Ok(*v);
    }
    let (_, p) = FEATURES
        .iter()
        .find(|(name, _)| *name == feature)
        .ok_or_else(|| format!("unknown kernel feature {feature:?} (known: {})", names()))?;
    let v = probe(*p)?;
    seen.lock()
        .map_err(|_| "kernel feature cache poisoned")?
        .insert(feature.to_string(), v);
    Ok(v)
}

fn names() -> String {
    FEATURES.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ")
}

/// The features of `needs` this kernel lacks.
pub fn missing(needs: &[&str]) -> Result<Vec<String>, String> {
    let mut v = Vec::new();
    for n in needs {
        if !has(n)? {
            v.push((*n).to_string());
        }
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unknown_feature_is_an_error_not_a_lack() {
        let e = has("fq_codle").expect_err("a typo must not read as missing");
        assert!(e.contains("unknown kernel feature"), "{e}");
        assert!(e.contains("fq_codel"), "{e}");
    }
}
