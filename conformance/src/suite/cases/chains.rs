//! ptp (host-local) + bandwidth + sbr as one conflist through cni-run,
//! itself run inside the test host namespace, for 0.3.1, 0.4.0 and 1.0.0.

use std::path::Path;

use serde_json::{json, Value};

use crate::suite::pod::{ifb_name, Pod};
use crate::suite::{block_on, ensure, ok, ran, Case, CaseResult, Ctx, Failure};
use cni_runtime::cache;
use cni_runtime::exec::Outcome;
use cni_testkit::state::{text, State};
use cni_testkit::Ns;

pub fn cases() -> Vec<Case> {
    (0u8..)
        .zip(["0.3.1", "0.4.0", "1.0.0"])
        .map(|(i, v)| {
            Case::new(
                "chains",
                format!("ptp+bandwidth+sbr {v} via cni-run: ADD CHECK DEL"),
                move |c| chain(c, v, i, false),
            )
        })
        .chain(std::iter::once(Case::new(
            "chains",
            "cni-run gc and status on a 1.1.0 list",
            gc_status,
        )))
        .collect()
}

pub const CAPS: &str = r#"{"bandwidth":{"ingressRate":8000000,"ingressBurst":400000,"egressRate":8000000,"egressBurst":400000}}"#;

/// The conflist: ptp with host-local in `subnet`, then bandwidth, then sbr.
pub fn conflist(name: &str, version: &str, subnet: &str, data_dir: &Path, with_ptp: bool) -> Value {
    let mut plugins = Vec::new();
    if with_ptp {
        plugins.push(json!({"type": "ptp", "ipMasq": false, "ipam": {
            "type": "host-local", "subnet": subnet, "dataDir": data_dir,
            "routes": [{"dst": "0.0.0.0/0"}]}}));
    }
    plugins.push(json!({"type": "bandwidth", "capabilities": {"bandwidth": true}}));
    plugins.push(json!({"type": "sbr"}));
    json!({"cniVersion": version, "name": name, "plugins": plugins})
}

/// Runs cni-run inside `host` with the given environment.
pub fn cni_run(ctx: &Ctx, host: &Ns, args: &[&str], env: &[(&str, String)]) -> Result<Outcome, String> {
    let mut inv = cni_runtime::exec::Invocation::new(&ctx.cni_run);
    inv.wrapper = vec![
        "ip".into(),
        "netns".into(),
        "exec".into(),
        host.name.clone().into(),
    ];
    inv.args = vec![
        "--timeout".into(),
        ctx.timeout.as_secs().max(1).to_string().into(),
    ];
    inv.args.extend(args.iter().map(|a| (*a).into()));
    inv.clear_env = true;
    inv.env = env.iter().map(|(k, v)| ((*k).to_string(), v.clone())).collect();
    // cni-run's own deadline per plugin comes first; this one is a backstop.
    inv.timeout = ctx.timeout * 4;
    block_on(inv.run()).map_err(|e| e.to_string())
}

pub fn chain(ctx: &Ctx, version: &str, k: u8, del_again: bool) -> CaseResult {
    if ctx.reference.is_none() && !ctx.has_plugin("ptp") {
        return Err(Failure::Skip(
            "no ptp/host-local (reference plugins not installed)".into(),
        ));
    }
    let base = ctx.scratch(&format!("chain-{version}"))?;
    let (netd, netd_check, cache_dir, ipam) = (
        base.join("net.d"),
        base.join("net.d-check"),
        base.join("cache"),
        base.join("ipam"),
    );
    for d in [&netd, &netd_check, &ipam] {
        std::fs::create_dir_all(d).map_err(|e| format!("mkdir {}: {e}", d.display()))?;
    }
    let name = format!("chain{}", version.replace('.', ""));
    let subnet = format!("10.252.{k}.0/24");
    let write = |dir: &Path, v: &Value| {
        std::fs::write(
            dir.join(format!("{name}.conflist")),
            serde_json::to_vec_pretty(v).unwrap_or_default(),
        )
        .map_err(|e| format!("failed to write conflist: {e}"))
    };
    write(&netd, &conflist(&name, version, &subnet, &ipam, true))?;
    // Debian's ptp CHECK looks for its gateway route in the main table,
    // which sbr moves out by design; CHECK runs the list without ptp over
    // the same cached result.
    write(&netd_check, &conflist(&name, version, &subnet, &ipam, false))?;

    let host = Ns::try_new("cnf")?;
    let ctr = Ns::try_new("cnf")?;
    let host_before = State::read(&host)?;
    let ctr_before = State::read(&ctr)?;
    let env = |dir: &Path| {
        vec![
            ("NETCONFPATH", dir.display().to_string()),
            ("CNI_PATH", ctx.cni_path()),
            ("CNI_CACHE_DIR", cache_dir.display().to_string()),
            ("CAP_ARGS", CAPS.to_string()),
        ]
    };
    let netns = ctr.path_str();
    let out = cni_run(ctx, &host, &["add", &name, &netns], &env(&netd))?;
    let result = ran("cni-run add", &out)?.ok_or("cni-run add printed no result")?;
    ensure(text(&result, "cniVersion") == version, || {
        format!("result version {}", text(&result, "cniVersion"))
    })?;

    let ip = result
        .pointer("/ips/0/address")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let addr = ip.split('/').next().unwrap_or_default().to_string();
    let gw = result
        .pointer("/ips/0/gateway")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let host_veth = result
        .pointer("/interfaces/0/name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let hs = State::read(&host)?;
    let cs = State::read(&ctr)?;
    let rule = cs.extra_rules().into_iter().find(|r| text(r, "src") == addr);
    let table = rule
        .as_ref()
        .map(|r| text(r, "table"))
        .ok_or_else(|| format!("no rule from {addr}: {:?}", cs.rules))?;
    ensure(
        cs.routes_in(&table)
            .iter()
            .any(|r| text(r, "dst") == "default" && text(r, "gateway") == gw),
        || format!("table {table} lacks default via {gw}"),
    )?;
    let cid = {
        let e = cache::entries(&cache_dir);
        let e = e.first().ok_or("cni-run add wrote no cache entry")?;
        ensure(
            e.network == name && e.ifname == "eth0" && e.result.is_some(),
            || format!("bad cache entry {e:?}"),
        )?;
        e.container_id.clone()
    };
    let ifb = ifb_name(&name, &cid);
    ensure(hs.has_link(&ifb), || format!("no ifb {ifb} on the host"))?;
    ensure(
        hs.qdiscs_of(&host_veth).iter().any(|q| text(q, "kind") == "tbf"),
        || format!("no tbf on host veth {host_veth}"),
    )?;

    // A failed CHECK is reported at the end: DEL and cleanup are still judged.
    let mut check_failed = None;
    // The DEL-twice variant leaves CHECK to the plain chain cases.
    if version != "0.3.1" && !del_again {
        let out = cni_run(ctx, &host, &["check", &name, &netns], &env(&netd_check))?;
        if let Err(Failure::Fail(e) | Failure::Skip(e) | Failure::NotHere(e)) = ran("cni-run check", &out) {
            check_failed = Some(e);
        }
    }
    ran(
        "cni-run del",
        &cni_run(ctx, &host, &["del", &name, &netns], &env(&netd))?,
    )?;
    let d = State::read(&host)?.diff(&host_before, "host after DEL", "host before ADD")
        + &State::read(&ctr)?.diff(&ctr_before, "container after DEL", "container before ADD");
    ensure(d.is_empty(), || format!("DEL left state behind:\n{d}"))?;
    ensure(cache::entries(&cache_dir).is_empty(), || {
        "cache entry left after DEL".into()
    })?;
    let leases: Vec<String> = std::fs::read_dir(ipam.join(&name))
        .map(|rd| {
            rd.filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    ensure(!leases.iter().any(|l| l == &addr), || {
        format!("host-local lease {addr} left")
    })?;
    if del_again {
        ran(
            "cni-run del again",
            &cni_run(ctx, &host, &["del", &name, &netns], &env(&netd))?,
        )?;
    }
    match check_failed {
        Some(e) => Err(Failure::Fail(e)),
        None => Ok(()),
    }
}

/// Two attachments made with bandwidth and cached as a runtime would; one
/// cache entry goes (the runtime forgot the container); `cni-run gc` keeps
/// the cached one's ifb and removes the other's; `cni-run status` passes.
fn gc_status(ctx: &Ctx) -> CaseResult {
    let base = ctx.scratch("cni-run-gc")?;
    let (netd, cache_dir) = (base.join("net.d"), base.join("cache"));
    std::fs::create_dir_all(&netd).map_err(|e| format!("mkdir: {e}"))?;
    let list = json!({"cniVersion": "1.1.0", "name": "bwnet", "plugins": [
        {"type": "bandwidth", "egressRate": 8_000_000, "egressBurst": 80_000}]});
    std::fs::write(netd.join("bwnet.conflist"), list.to_string()).map_err(|e| format!("conflist: {e}"))?;
    let host = std::sync::Arc::new(Ns::try_new("cnf")?);
    let mut pods = Vec::new();
    for (i, cid) in (0u8..).zip(["gc-kept", "gc-forgotten"]) {
        let p = Pod::attach(
            host.clone(),
            std::sync::Arc::new(Ns::try_new("cnf")?),
            cid,
            "eth0",
            &format!("vh{i}"),
            i,
        )?;
        let mut conf = list["plugins"][0].clone();
        conf["name"] = json!("bwnet");
        conf["cniVersion"] = json!("1.1.0");
        conf["prevResult"] = p.prev_result("1.1.0");
        let r = ok(
            &format!("ADD {cid}"),
            &super::call(ctx, "bandwidth", &p, "ADD", &conf)?,
        )?;
        let entry = cache::Entry {
            container_id: cid.to_string(),
            config: list.to_string().into_bytes(),
            ifname: "eth0".into(),
            network: "bwnet".into(),
            netns: p.netns(),
            cni_args: Vec::new(),
            capability_args: serde_json::Map::new(),
            result: r,
        };
        let path = cache::write(&cache_dir, &entry).map_err(|e| format!("cache: {e}"))?;
        pods.push((p, path));
    }
    cache::remove(&pods[1].1).map_err(|e| format!("cache: {e}"))?;
    let env = vec![
        ("NETCONFPATH", netd.display().to_string()),
        ("CNI_PATH", ctx.cni_path()),
        ("CNI_CACHE_DIR", cache_dir.display().to_string()),
    ];
    ran(
        "cni-run status",
        &cni_run(ctx, &host, &["status", "bwnet"], &env)?,
    )?;
    ran("cni-run gc", &cni_run(ctx, &host, &["gc", "bwnet"], &env)?)?;
    let st = State::read(&host)?;
    ensure(st.has_link(&ifb_name("bwnet", "gc-kept")), || {
        "gc removed the cached attachment's ifb".into()
    })?;
    ensure(!st.has_link(&ifb_name("bwnet", "gc-forgotten")), || {
        "gc kept the forgotten attachment's ifb".into()
    })
}
