//! The cases, by group. Each runs against one plugin directory ([`Ctx`]).

pub mod acceptance;
pub mod bandwidth;
pub mod chains;
pub mod containerd;
pub mod foreign;
pub mod fq_codel;
pub mod podman;
pub mod robust;
pub mod sbr;
pub mod spec;
pub mod traffic;
pub mod upstream;
pub mod vrf;

use serde_json::Value;

use super::pod::{bw_conf, bytes, sbr_conf, Pod, BOTH};
use super::{ensure, Case, CaseResult, Ctx, Failure};
use cni_runtime::exec::{Outcome, PluginError};
use cni_testkit::state::State;
use cni_testkit::Ns;

/// The plugins of this project, each checked by the spec and robustness cases.
pub use cni_testkit::PLUGINS;

/// Every case in table order.
pub fn all() -> Vec<Case> {
    let mut v = Vec::new();
    v.extend(spec::cases());
    v.extend(sbr::cases());
    v.extend(bandwidth::cases());
    v.extend(fq_codel::cases());
    v.extend(chains::cases());
    v.extend(acceptance::cases());
    v.extend(foreign::cases());
    v.extend(traffic::cases());
    v.extend(vrf::cases());
    v.extend(upstream::cases());
    v.extend(robust::cases());
    v.extend(podman::cases());
    v.extend(containerd::cases());
    v
}

/// Runs `plugin` with `cmd` for `pod`, `conf` on stdin.
pub fn call(ctx: &Ctx, plugin: &str, pod: &Pod, cmd: &str, conf: &Value) -> Result<Outcome, String> {
    let dir = ctx.dir.display().to_string();
    ctx.invoke(plugin, &pod.host, &pod.env(cmd, &dir), &bytes(conf))
}

/// Versions a plugin must speak.
pub fn versions_of(plugin: &str) -> &'static [&'static str] {
    match plugin {
        "sbr" => &["0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"],
        _ => &["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"],
    }
}

/// The plugin's usual config in `version` around `prev`.
pub fn conf_for(plugin: &str, version: &str, prev: Option<Value>) -> Value {
    match plugin {
        "sbr" => sbr_conf(version, prev),
        _ => bw_conf(version, BOTH, prev),
    }
}

/// A pod with its default route, as the plugins expect to find it.
pub fn pod(container_id: &str) -> Result<Pod, String> {
    let p = Pod::new(container_id)?;
    p.default_route()?;
    Ok(p)
}

/// Fails unless each namespace is as it was `before`.
pub fn unchanged(now: &[State], before: &[State], what: &str) -> CaseResult {
    let d: String = now
        .iter()
        .zip(before)
        .map(|(a, b)| a.diff(b, "after", "before"))
        .collect();
    ensure(d.is_empty(), || format!("{what}:\n{d}"))
}

/// Fails unless a line of `text` (what `what` names) contains `needle`.
pub fn has_line(what: &str, text: &str, needle: &str) -> CaseResult {
    ensure(text.lines().any(|l| l.contains(needle)), || {
        format!("{what}: no line with {needle:?} in:\n{text}")
    })
}

/// `ip` commands in `ns`, each written as on the command line.
pub fn ip(ns: &Ns, cmds: &[&str]) -> Result<String, String> {
    let mut out = String::new();
    for c in cmds {
        out += &ns.try_ip_line(c)?;
    }
    Ok(out)
}

/// A case about what the reference lacks or gets wrong (its known bugs):
/// a skip for the reference, naming why, so its column counts what it does.
pub fn not_reference(ctx: &Ctx, why: &str) -> CaseResult {
    if ctx.is_reference() {
        return Err(Failure::Skip(format!("ours only: {why}")));
    }
    Ok(())
}

/// Fails unless `out` (of `what`) is refused with `code` and a message
/// containing `cause`; the error, for a closer look.
pub fn refused(what: &str, out: &Outcome, code: u64, cause: &str) -> Result<PluginError, Failure> {
    let e = out
        .error()
        .ok_or_else(|| format!("{what}: succeeded, want code {code} ({cause})"))?;
    ensure(e.code == Some(code) && e.msg.contains(cause), || {
        format!("{what}: want code {code} with {cause:?}, got {e}")
    })?;
    Ok(e)
}
