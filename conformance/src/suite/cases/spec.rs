//! The CNI spec as the dispatcher promises it: VERSION, negotiation, error
//! codes, each version's result format, prevResult conversion, GC, STATUS.

use serde_json::{json, Value};

use super::{call, conf_for, pod, versions_of, PLUGINS};
use crate::suite::pod::{bytes, ifb_name, Pod};
use crate::suite::{ensure, error_code, ok, Case, CaseResult, Ctx};
use cni_testkit::state::State;
use cni_testkit::Ns;

pub fn cases() -> Vec<Case> {
    let mut v = Vec::new();
    for p in PLUGINS {
        v.push(Case::new(
            "spec",
            format!("{p}: VERSION lists every version"),
            move |c| version(c, p),
        ));
        v.push(Case::new(
            "spec",
            format!("{p}: result format of each version"),
            move |c| results(c, p),
        ));
        v.push(Case::new(
            "spec",
            format!("{p}: version: cniVersion, else cniVersions, else 0.1.0"),
            move |c| cni_versions(c, p),
        ));
        v.push(Case::new(
            "spec",
            format!("{p}: dispatcher error codes"),
            move |c| error_codes(c, p),
        ));
        v.push(Case::new(
            "spec",
            format!("{p}: prevResult conversion"),
            move |c| prev_conversion(c, p),
        ));
        v.push(Case::new(
            "spec",
            format!("{p}: prevResult \"interface\": -1 is no interface"),
            move |c| interface_minus_one(c, p),
        ));
        v.push(Case::new(
            "spec",
            format!("{p}: GC and STATUS (1.1.0)"),
            move |c| gc_status(c, p),
        ));
        v.push(Case::new(
            "spec",
            format!("{p}: malformed CNI_ARGS ignored, as the reference ignores it"),
            move |c| malformed_args(c, p),
        ));
    }
    v
}

/// The reference never reads CNI_ARGS, so a malformed one (a pair without
/// `=`) is no reason to refuse an ADD or DEL.
fn malformed_args(ctx: &Ctx, plugin: &str) -> CaseResult {
    let p = pod(&format!("args-{plugin}"))?;
    let conf = conf_for(plugin, "1.0.0", Some(p.prev_result("1.0.0")));
    let dir = ctx.dir.display().to_string();
    for cmd in ["ADD", "DEL"] {
        let mut env = p.env(cmd, &dir);
        env.push(("CNI_ARGS".into(), "novalue;K8S_POD_NAME=web".into()));
        ok(cmd, &ctx.invoke(plugin, &p.host, &env, &bytes(&conf))?)?;
    }
    Ok(())
}

fn version(ctx: &Ctx, plugin: &str) -> CaseResult {
    let ns = Ns::try_new("cnf")?;
    let env = vec![("CNI_COMMAND".to_string(), "VERSION".to_string())];
    let out = ctx.invoke(plugin, &ns, &env, br#"{"cniVersion":"1.0.0"}"#)?;
    let v = ok("VERSION", &out)?.ok_or("VERSION printed no json")?;
    ensure(v.get("cniVersion").is_some_and(Value::is_string), || {
        format!("no cniVersion in {v}")
    })?;
    let listed: Vec<&str> = v
        .get("supportedVersions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    let missing: Vec<&&str> = versions_of(plugin)
        .iter()
        .filter(|x| !listed.contains(x))
        .collect();
    ensure(missing.is_empty(), || {
        format!("supportedVersions {listed:?} lacks {missing:?}")
    })
}

/// Checks the shape of a result printed for a `version` config.
fn result_shape(version: &str, r: &Value) -> Result<(), String> {
    if r.get("cniVersion").and_then(Value::as_str) != Some(version) {
        return Err(format!("result cniVersion is {:?}", r.get("cniVersion")));
    }
    match version {
        "0.1.0" | "0.2.0" => {
            if r.get("ip4").and_then(|x| x.get("ip")).is_none() || r.get("ips").is_some() {
                return Err(format!("not a {version} result (ip4.ip): {r}"));
            }
        }
        _ => {
            let ips = r
                .get("ips")
                .and_then(Value::as_array)
                .ok_or_else(|| format!("no ips in {r}"))?;
            for ip in ips {
                let has_version = ip.get("version").is_some();
                if version.starts_with("0.") != has_version {
                    return Err(format!("ips entry {ip} wrong for {version} (\"version\" field)"));
                }
            }
            // Optional: a 0.2.0 prevResult converted up has none.
            if r.get("interfaces").is_some_and(|i| !i.is_array()) {
                return Err(format!("interfaces is not a list in {r}"));
            }
        }
    }
    Ok(())
}

fn results(ctx: &Ctx, plugin: &str) -> CaseResult {
    let mut bad = Vec::new();
    for &ver in versions_of(plugin) {
        let p = pod("spec-results")?;
        let conf = conf_for(plugin, ver, Some(p.prev_result(ver)));
        let out = call(ctx, plugin, &p, "ADD", &conf)?;
        match out.error() {
            Some(e) => bad.push(format!("{ver}: ADD failed: {e}")),
            None => match out.stdout_json() {
                None => bad.push(format!("{ver}: no json result")),
                Some(r) => {
                    if let Err(e) = result_shape(ver, &r) {
                        bad.push(format!("{ver}: {e}"));
                    }
                    if plugin == "bandwidth" && !r.to_string().contains(&ifb_name("bwnet", &p.container_id)) {
                        bad.push(format!("{ver}: ifb not appended to interfaces: {r}"));
                    }
                }
            },
        }
        if let Some(e) = call(ctx, plugin, &p, "DEL", &conf)?.error() {
            bad.push(format!("{ver}: DEL failed: {e}"));
        }
    }
    ensure(bad.is_empty(), || bad.join("\n"))
}

/// The spec and skel's reading of a config's version: a non-empty
/// `cniVersion` is the runtime's choice; a 1.1 `cniVersions` list counts only
/// without it (its highest entry spoken); neither is 0.1.0 (skel's
/// DecodeVersion), which sbr speaks and bandwidth answers with code 1, as
/// the reference plugins do.
fn cni_versions(ctx: &Ctx, plugin: &str) -> CaseResult {
    let p = pod("spec-versions")?;
    let base = conf_for(plugin, "1.1.0", Some(p.prev_result("1.1.0")));
    let versions = |own: Option<&str>, list: Option<Value>| {
        let mut c = base.clone();
        if let Some(o) = c.as_object_mut() {
            o.remove("cniVersion");
            if let Some(v) = own {
                o.insert("cniVersion".into(), json!(v));
            }
            if let Some(l) = list {
                o.insert("cniVersions".into(), l);
            }
        }
        c
    };
    for (what, conf, want) in [
        (
            "cniVersions alone",
            versions(None, Some(json!(["0.4.0", "1.1.0", "1.0.0", "42.0.0"]))),
            "1.1.0",
        ),
        (
            "cniVersion 1.0.0 beside cniVersions",
            versions(Some("1.0.0"), Some(json!(["1.0.0", "1.1.0"]))),
            "1.0.0",
        ),
    ] {
        let out = call(ctx, plugin, &p, "ADD", &conf)?;
        let r = ok(&format!("ADD with {what}"), &out)?.ok_or("no result")?;
        ensure(r.get("cniVersion").and_then(Value::as_str) == Some(want), || {
            format!("{what}: negotiated {:?}, want {want}", r.get("cniVersion"))
        })?;
        ok(&format!("DEL with {what}"), &call(ctx, plugin, &p, "DEL", &conf)?)?;
    }
    let conf = versions(None, None);
    let before = p.states()?;
    let out = call(ctx, plugin, &p, "ADD", &conf)?;
    if versions_of(plugin).contains(&"0.1.0") {
        let r = ok("ADD without cniVersion", &out)?.ok_or("no result")?;
        result_shape("0.1.0", &r).map_err(|e| format!("without cniVersion: {e}"))?;
        ok("DEL without cniVersion", &call(ctx, plugin, &p, "DEL", &conf)?)?;
    } else {
        let code = error_code(&out)?;
        ensure(code == 1, || {
            format!("without cniVersion: code {code}, want 1 (0.1.0 is not spoken)")
        })?;
    }
    let after = p.states()?;
    let d: String = after
        .iter()
        .zip(before.iter())
        .map(|(a, b)| a.diff(b, "after", "before"))
        .collect();
    ensure(d.is_empty(), || format!("without cniVersion, not restored:\n{d}"))
}

/// One row: environment changes, stdin, the codes that are right.
pub struct Row<'a> {
    what: &'static str,
    env: Vec<(&'static str, Option<&'a str>)>,
    stdin: Vec<u8>,
    codes: &'static [u64],
}

fn with_env(p: &Pod, dir: &str, changes: &[(&str, Option<&str>)]) -> Vec<(String, String)> {
    let mut env = p.env("ADD", dir);
    for (k, v) in changes {
        env.retain(|(x, _)| x != k);
        if let Some(v) = v {
            env.push(((*k).to_string(), (*v).to_string()));
        }
    }
    env
}

/// Runs a table of bad calls: each must fail with one of its codes and
/// leave both namespaces as they were.
pub fn run_rows(ctx: &Ctx, plugin: &str, p: &Pod, rows: &[Row<'_>]) -> CaseResult {
    let dir = ctx.dir.display().to_string();
    let mut bad = Vec::new();
    let mut before = p.states()?;
    for r in rows {
        let out = ctx.invoke(plugin, &p.host, &with_env(p, &dir, &r.env), &r.stdin)?;
        match error_code(&out) {
            Ok(c) if r.codes.contains(&c) => {}
            Ok(c) => bad.push(format!(
                "{}: code {c}, want {:?} ({})",
                r.what,
                r.codes,
                out.error().map(|e| e.to_string()).unwrap_or_default()
            )),
            Err(e) => bad.push(format!("{}: {e}", r.what)),
        }
        let now = p.states()?;
        for (i, (a, b)) in now.iter().zip(before.iter()).enumerate() {
            let d = a.diff(b, "after", "before");
            if !d.is_empty() {
                bad.push(format!("{}: namespace {i} changed:\n{d}", r.what));
            }
        }
        // Each row is judged on its own change only.
        before = now;
    }
    ensure(bad.is_empty(), || bad.join("\n"))
}

pub fn row<'a>(
    what: &'static str,
    env: Vec<(&'static str, Option<&'a str>)>,
    stdin: Vec<u8>,
    codes: &'static [u64],
) -> Row<'a> {
    Row {
        what,
        env,
        stdin,
        codes,
    }
}

fn error_codes(ctx: &Ctx, plugin: &str) -> CaseResult {
    let p = pod("spec-codes")?;
    let good = bytes(&conf_for(plugin, "1.0.0", Some(p.prev_result("1.0.0"))));
    let with_version = |v: &str| bytes(&conf_for(plugin, v, Some(p.prev_result(v))));
    let named = |name: &str| {
        let mut c = conf_for(plugin, "1.0.0", Some(p.prev_result("1.0.0")));
        if let Some(o) = c.as_object_mut() {
            o.insert("name".into(), json!(name));
        }
        bytes(&c)
    };
    let rows = vec![
        row(
            "unknown CNI_COMMAND",
            vec![("CNI_COMMAND", Some("FROB"))],
            good.clone(),
            &[4],
        ),
        row(
            "ADD without CNI_CONTAINERID",
            vec![("CNI_CONTAINERID", None)],
            good.clone(),
            &[4],
        ),
        row(
            "ADD without CNI_NETNS",
            vec![("CNI_NETNS", None)],
            good.clone(),
            &[4],
        ),
        row(
            "ADD without CNI_IFNAME",
            vec![("CNI_IFNAME", None)],
            good.clone(),
            &[4],
        ),
        row(
            "ADD without CNI_PATH",
            vec![("CNI_PATH", None)],
            good.clone(),
            &[4],
        ),
        row("broken JSON", vec![], b"{\"cniVersion\": ".to_vec(), &[6]),
        row("JSON that is no object", vec![], b"[1,2]".to_vec(), &[6]),
        row(
            "config without type",
            vec![],
            br#"{"cniVersion":"1.0.0","name":"n"}"#.to_vec(),
            &[7],
        ),
        row(
            "config without name",
            vec![],
            format!(r#"{{"cniVersion":"1.0.0","type":"{plugin}"}}"#).into_bytes(),
            &[7],
        ),
        // The reference's skel refuses these on every command but VERSION
        // (this project's plugins take them on DEL).
        row("network name with a space", vec![], named("bad name"), &[7]),
        row("empty network name", vec![], named(""), &[7]),
        row(
            "CHECK with a network name with a space",
            vec![("CNI_COMMAND", Some("CHECK"))],
            named("bad name"),
            &[7],
        ),
        row("unknown cniVersion", vec![], with_version("42.0.0"), &[1]),
        row(
            "CHECK on a 0.3.1 config",
            vec![("CNI_COMMAND", Some("CHECK"))],
            with_version("0.3.1"),
            &[1],
        ),
        row(
            "GC on a 1.0.0 config",
            vec![("CNI_COMMAND", Some("GC"))],
            with_version("1.0.0"),
            &[1],
        ),
        row(
            "STATUS on a 1.0.0 config",
            vec![("CNI_COMMAND", Some("STATUS"))],
            with_version("1.0.0"),
            &[1],
        ),
        row(
            "ADD without prevResult",
            vec![],
            bytes(&conf_for(plugin, "1.0.0", None)),
            &[7],
        ),
    ];
    run_rows(ctx, plugin, &p, &rows)
}

fn prev_conversion(ctx: &Ctx, plugin: &str) -> CaseResult {
    let mut pairs = vec![
        ("1.0.0", "0.4.0"),
        ("0.4.0", "1.0.0"),
        ("1.0.0", "0.3.1"),
        ("1.1.0", "1.0.0"),
        ("0.3.1", "1.1.0"),
    ];
    if plugin == "sbr" {
        pairs.push(("1.0.0", "0.2.0"));
    }
    let mut bad = Vec::new();
    for (conf_v, prev_v) in pairs {
        let p = pod("spec-conv")?;
        let conf = conf_for(plugin, conf_v, Some(p.prev_result(prev_v)));
        let out = call(ctx, plugin, &p, "ADD", &conf)?;
        let tag = format!("config {conf_v} with prevResult {prev_v}");
        match (out.error(), out.stdout_json()) {
            (Some(e), _) => bad.push(format!("{tag}: {e}")),
            (None, None) => bad.push(format!("{tag}: no json result")),
            (None, Some(r)) => {
                if let Err(e) = result_shape(conf_v, &r) {
                    bad.push(format!("{tag}: {e}"));
                }
                if !r.to_string().contains(&p.cidr()) {
                    bad.push(format!("{tag}: address {} lost in {r}", p.cidr()));
                }
            }
        }
        // The plugin acted on the converted result.
        let st = p.states()?;
        let acted = match plugin {
            "sbr" => !st[1].extra_rules().is_empty(),
            _ => st[0].has_link(&ifb_name("bwnet", &p.container_id)),
        };
        if out.success() && !acted {
            bad.push(format!("{tag}: ADD succeeded but changed nothing"));
        }
    }
    ensure(bad.is_empty(), || bad.join("\n"))
}

/// Go reads an IP's `interface` into an `*int`; -1 (some plugins write it
/// for "none") is accepted, names no interface, and comes back unchanged.
/// The address is then this attachment's (sbr routes it).
fn interface_minus_one(ctx: &Ctx, plugin: &str) -> CaseResult {
    let mut bad = Vec::new();
    for v in ["1.0.0", "0.4.0"] {
        let p = pod("spec-ifm1")?;
        let mut prev = p.prev_result(v);
        prev["ips"][0]["interface"] = json!(-1);
        let conf = conf_for(plugin, v, Some(prev));
        let out = call(ctx, plugin, &p, "ADD", &conf)?;
        let tag = format!("{v} ADD");
        match (out.error(), out.stdout_json()) {
            (Some(e), _) => bad.push(format!("{tag}: {e}")),
            (None, None) => bad.push(format!("{tag}: no json result")),
            (None, Some(r)) => {
                if r["ips"][0]["interface"] != json!(-1) {
                    bad.push(format!("{tag}: want interface -1 back, got {r}"));
                }
            }
        }
        let st = p.states()?;
        let acted = match plugin {
            "sbr" => !st[1].extra_rules().is_empty(),
            _ => st[0].has_link(&ifb_name("bwnet", &p.container_id)),
        };
        if out.success() && !acted {
            bad.push(format!("{tag}: succeeded but changed nothing"));
        }
        let del = call(ctx, plugin, &p, "DEL", &conf)?;
        if let Some(e) = del.error() {
            bad.push(format!("{v} DEL: {e}"));
        }
    }
    ensure(bad.is_empty(), || bad.join("\n"))
}

fn gc_status(ctx: &Ctx, plugin: &str) -> CaseResult {
    let ns = Ns::try_new("cnf")?;
    let dir = ctx.dir.display().to_string();
    let mut conf = conf_for(plugin, "1.1.0", None);
    conf["cni.dev/valid-attachments"] = json!([{"containerID": "keep", "ifname": "eth0"}]);
    let env = |cmd: &str| {
        vec![
            ("CNI_COMMAND".to_string(), cmd.to_string()),
            ("CNI_PATH".to_string(), dir.clone()),
        ]
    };
    ok("GC", &ctx.invoke(plugin, &ns, &env("GC"), &bytes(&conf))?)?;
    let conf = conf_for(plugin, "1.1.0", None);
    // Its probes run in namespaces of their own, and it prints nothing.
    let before = State::read(&ns)?;
    let out = ok("STATUS", &ctx.invoke(plugin, &ns, &env("STATUS"), &bytes(&conf))?)?;
    ensure(out.is_none(), || format!("STATUS printed {out:?}"))?;
    let d = State::read(&ns)?.diff(&before, "after STATUS", "before");
    ensure(d.is_empty(), || format!("STATUS changed the namespace:\n{d}"))
}
