//! Robustness: DEL twice, without prevResult, with the namespace gone; bad
//! inputs with their codes and no kernel change; kills during ADD; 32
//! parallel ADDs and DELs.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::spec::{row, run_rows};
use super::{call, conf_for, pod, PLUGINS};
use crate::suite::pod::{bw_conf, bytes, ifb_name, sbr_conf, Pod, BOTH};
use crate::suite::{block_on, ensure, ok, Case, CaseResult, Ctx, Rng};
use cni_runtime::exec::{Invocation, Outcome};
use cni_testkit::state::State;
use cni_testkit::Ns;

pub fn cases() -> Vec<Case> {
    let mut v = Vec::new();
    for p in PLUGINS {
        v.push(Case::new("robust", format!("{p}: DEL twice"), move |c| {
            del_twice(c, p)
        }));
        v.push(Case::new(
            "robust",
            format!("{p}: DEL without prevResult"),
            move |c| del_no_prev(c, p),
        ));
        v.push(Case::new(
            "robust",
            format!("{p}: DEL with the netns gone"),
            move |c| del_netns_gone(c, p),
        ));
        v.push(Case::new(
            "robust",
            format!("{p}: bad inputs give their codes, no change"),
            move |c| bad_inputs(c, p),
        ));
        v.push(Case::new(
            "robust",
            format!("{p}: killed during ADD, then DEL and ADD"),
            move |c| killed(c, p),
        ));
        v.push(Case::new(
            "robust",
            format!("{p}: 32 parallel ADDs and DELs"),
            move |c| parallel(c, p),
        ));
    }
    v.push(Case::new("robust", "chain 1.0.0 via cni-run: DEL twice", |c| {
        super::chains::chain(c, "1.0.0", 9, true)
    }));
    v
}

fn del_twice(ctx: &Ctx, plugin: &str) -> CaseResult {
    let p = pod("rb-twice")?;
    let conf = conf_for(plugin, "1.0.0", Some(p.prev_result("1.0.0")));
    ok("ADD", &call(ctx, plugin, &p, "ADD", &conf)?)?;
    ok("DEL", &call(ctx, plugin, &p, "DEL", &conf)?)?;
    ok("second DEL", &call(ctx, plugin, &p, "DEL", &conf)?)?;
    Ok(())
}

fn del_no_prev(ctx: &Ctx, plugin: &str) -> CaseResult {
    let p = pod("rb-noprev")?;
    let before = p.states()?;
    let conf = conf_for(plugin, "1.0.0", Some(p.prev_result("1.0.0")));
    ok("ADD", &call(ctx, plugin, &p, "ADD", &conf)?)?;
    ok(
        "DEL without prevResult",
        &call(ctx, plugin, &p, "DEL", &conf_for(plugin, "1.0.0", None))?,
    )?;
    let after = p.states()?;
    let d = after[0].diff(&before[0], "after", "before") + &after[1].diff(&before[1], "after", "before");
    ensure(d.is_empty(), || {
        format!("DEL without prevResult left state behind:\n{d}")
    })
}

fn del_netns_gone(ctx: &Ctx, plugin: &str) -> CaseResult {
    let host = Arc::new(Ns::try_new("cnf")?);
    let mut ctr = Ns::try_new("cnf")?;
    let ctr_name = ctr.name.clone();
    host.try_ip(&[
        "link", "add", "vh0", "type", "veth", "peer", "name", "eth0", "netns", &ctr_name,
    ])?;
    host.try_ip(&["link", "set", "vh0", "up"])?;
    ctr.try_ip(&["addr", "add", "10.250.0.2/24", "dev", "eth0"])?;
    ctr.try_ip(&["link", "set", "eth0", "up"])?;
    ctr.try_ip(&["route", "add", "default", "via", "10.250.0.1", "dev", "eth0"])?;
    let netns = ctr.path_str();
    let prev = json!({"cniVersion": "1.0.0",
        "interfaces": [{"name": "vh0"}, {"name": "eth0", "sandbox": netns}],
        "ips": [{"address": "10.250.0.2/24", "gateway": "10.250.0.1", "interface": 1}],
        "routes": [{"dst": "0.0.0.0/0"}]});
    let conf = conf_for(plugin, "1.0.0", Some(prev));
    let dir = ctx.dir.display().to_string();
    let env = |cmd: &str| {
        vec![
            ("CNI_COMMAND".to_string(), cmd.to_string()),
            ("CNI_CONTAINERID".to_string(), "rb-gone".to_string()),
            ("CNI_NETNS".to_string(), netns.clone()),
            ("CNI_IFNAME".to_string(), "eth0".to_string()),
            ("CNI_PATH".to_string(), dir.clone()),
        ]
    };
    ok("ADD", &ctx.invoke(plugin, &host, &env("ADD"), &bytes(&conf))?)?;
    ctr.delete()?;
    // The kernel destroys the veth pair shortly after the namespace goes.
    for _ in 0..400 {
        if !host.try_ip(&["link", "show"])?.contains("vh0") {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let out = ctx.invoke(plugin, &host, &env("DEL"), &bytes(&conf));
    let created = std::path::Path::new(&netns).exists();
    if created {
        let _ = std::fs::remove_file(&netns);
    }
    ok("DEL with the netns gone", &out?)?;
    ensure(!created, || format!("DEL created a file at {netns}"))?;
    let st = State::read(&host)?;
    ensure(st.links_of_kind("ifb").is_empty(), || "ifb left after DEL".into())
}

fn bad_inputs(ctx: &Ctx, plugin: &str) -> CaseResult {
    let p = pod("rb-bad")?;
    // A path in our scratch space: the reference creates a file where the netns should be.
    let missing_ns = ctx.scratch("no-netns")?.join("gone").display().to_string();
    let prev = p.prev_result("1.0.0");
    let with = |changes: Value| {
        let mut c = conf_for(plugin, "1.0.0", Some(prev.clone()));
        if let (Some(o), Some(ch)) = (c.as_object_mut(), changes.as_object()) {
            for (k, v) in ch {
                if v.is_null() {
                    o.remove(k);
                } else {
                    o.insert(k.clone(), v.clone());
                }
            }
        }
        bytes(&c)
    };
    let good = with(json!({}));
    let mut rows = vec![
        row(
            "broken JSON",
            vec![],
            b"{\"cniVersion\":\"1.0.0\",".to_vec(),
            &[6],
        ),
        row("missing type", vec![], with(json!({"type": null})), &[7]),
        row(
            "unknown version",
            vec![],
            with(json!({"cniVersion": "3.0.0"})),
            &[1],
        ),
        row(
            "prevResult of the wrong type",
            vec![],
            with(json!({"prevResult": "yes"})),
            &[6, 7],
        ),
        row(
            "bad container ID",
            vec![("CNI_CONTAINERID", Some("bad id!"))],
            good.clone(),
            &[4],
        ),
        row(
            "interface name with a slash",
            vec![("CNI_IFNAME", Some("eth0/x"))],
            good.clone(),
            &[4],
        ),
        row(
            "interface name too long",
            vec![("CNI_IFNAME", Some("averyveryverylongname"))],
            good.clone(),
            &[4],
        ),
        row(
            "netns that does not exist",
            vec![("CNI_NETNS", Some(missing_ns.as_str()))],
            good.clone(),
            &[4],
        ),
    ];
    if plugin == "sbr" {
        rows.extend([
            row(
                "priority of the wrong type",
                vec![],
                with(json!({"priority": "high"})),
                &[6, 7],
            ),
            row("huge priority", vec![], with(json!({"priority": 1e30})), &[6, 7]),
            row("huge table", vec![], with(json!({"table": 1e20})), &[6, 7]),
            row(
                "three gateways",
                vec![],
                with(json!({"gateways": ["10.250.0.1", "10.250.0.3", "10.250.0.4"]})),
                &[7],
            ),
            // IPs only for another interface is no error (the reference
            // goes on there too); none at all is.
            row(
                "no IP in prevResult",
                vec![],
                with(json!({"prevResult": {"cniVersion": "1.0.0",
                "interfaces": [{"name": "eth0"}], "ips": []}})),
                &[7],
            ),
        ]);
    } else {
        rows.extend([
            row(
                "rate of the wrong type",
                vec![],
                with(json!({"ingressRate": "fast"})),
                &[6, 7],
            ),
            row("negative rate", vec![], with(json!({"ingressRate": -1})), &[6, 7]),
            row("huge rate", vec![], with(json!({"ingressRate": 1e30})), &[6, 7]),
            row(
                "rate without burst",
                vec![],
                with(json!({"ingressBurst": null})),
                &[7],
            ),
            row(
                "burst without rate",
                vec![],
                with(json!({"egressRate": null})),
                &[7],
            ),
            row(
                "burst of 4 GB",
                vec![],
                with(json!({"egressBurst": 34_359_738_368u64})),
                &[7],
            ),
            row(
                "rate below 8 bit/s",
                vec![],
                with(json!({"ingressRate": 4})),
                &[7],
            ),
            row(
                "prevResult without interfaces",
                vec![],
                with(json!({"prevResult": {"cniVersion": "1.0.0",
                "ips": [{"address": "10.250.0.2/24"}]}})),
                &[7],
            ),
            row(
                "version 0.2.0",
                vec![],
                with(json!({"cniVersion": "0.2.0", "prevResult": p.prev_result("0.2.0")})),
                &[1],
            ),
            // Read as 0.1.0, as skel reads it (sbr speaks it: see spec).
            row(
                "missing cniVersion",
                vec![],
                with(json!({"cniVersion": null})),
                &[1],
            ),
        ]);
    }
    run_rows(ctx, plugin, &p, &rows)
}

/// Starts ADD, kills it after `delay`, and reaps it.
fn add_killed(inv: &Invocation, delay: Duration) -> Result<(), String> {
    block_on(async {
        let mut child = inv.spawn().map_err(|e| e.to_string())?;
        if let Some(mut stdin) = child.stdin.take() {
            use tokio::io::AsyncWriteExt;
            let _ = stdin.write_all(&inv.stdin).await;
        }
        tokio::time::sleep(delay).await;
        let _ = child.start_kill();
        child.wait().await.map_err(|e| e.to_string())?;
        Ok(())
    })
}

fn killed(ctx: &Ctx, plugin: &str) -> CaseResult {
    let p = pod("rb-kill")?;
    let before = p.states()?;
    let conf = conf_for(plugin, "1.0.0", Some(p.prev_result("1.0.0")));
    let dir = ctx.dir.display().to_string();
    let inv = ctx.invocation(&ctx.plugin(plugin), &p.host, &p.env("ADD", &dir), &bytes(&conf));
    // How long a whole ADD takes here sets the range of kill moments.
    let t = Instant::now();
    ok("timing ADD", &call(ctx, plugin, &p, "ADD", &conf)?)?;
    let span = u64::try_from(t.elapsed().as_micros().max(1000)).unwrap_or(u64::MAX);
    ok("timing DEL", &call(ctx, plugin, &p, "DEL", &conf)?)?;
    let mut rng = Rng::new();
    for round in 0..10 {
        let delay = Duration::from_micros(rng.below(span));
        add_killed(&inv, delay)?;
        let tag = format!("round {round} (killed after {delay:?})");
        ok(&format!("{tag}: DEL"), &call(ctx, plugin, &p, "DEL", &conf)?)?;
        let after = p.states()?;
        let d = after[0].diff(&before[0], "after", "before") + &after[1].diff(&before[1], "after", "before");
        ensure(d.is_empty(), || format!("{tag}: DEL did not restore:\n{d}"))?;
        ok(&format!("{tag}: ADD"), &call(ctx, plugin, &p, "ADD", &conf)?)?;
        ok(
            &format!("{tag}: DEL after ADD"),
            &call(ctx, plugin, &p, "DEL", &conf)?,
        )?;
    }
    Ok(())
}

fn run_all(invs: Vec<Invocation>) -> Vec<Result<Outcome, String>> {
    block_on(async {
        let handles: Vec<_> = invs
            .into_iter()
            .map(|i| tokio::spawn(async move { i.run().await }))
            .collect();
        let mut out = Vec::new();
        for h in handles {
            out.push(match h.await {
                Ok(r) => r.map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            });
        }
        out
    })
}

fn failures(what: &str, outs: &[Result<Outcome, String>]) -> Vec<String> {
    outs.iter()
        .enumerate()
        .filter_map(|(i, o)| match o {
            Ok(o) => o.error().map(|e| format!("{what} {i}: {e}")),
            Err(e) => Some(format!("{what} {i}: {e}")),
        })
        .collect()
}

const N: u8 = 32;

fn parallel(ctx: &Ctx, plugin: &str) -> CaseResult {
    let host = Arc::new(Ns::try_new("cnf")?);
    let shared_ctr = Arc::new(Ns::try_new("cnf")?);
    let mut pods = Vec::new();
    for i in 0..N {
        // bandwidth: 32 containers on one host; sbr: 32 interfaces of one container.
        let (ctr, cid, ifname) = match plugin {
            "sbr" => (shared_ctr.clone(), "rb-par".to_string(), format!("net{i}")),
            _ => (
                Arc::new(Ns::try_new("cnf")?),
                format!("rb-par-{i}"),
                "eth0".to_string(),
            ),
        };
        pods.push(Pod::attach(
            host.clone(),
            ctr,
            &cid,
            &ifname,
            &format!("vh{i}"),
            i,
        )?);
    }
    // sbr: net0 owns the container's default route; the other interfaces
    // have none in main, and their prevResults say so (sbr DEL keeps no
    // state: a default route the prevResult lists goes back into main).
    if plugin == "sbr" {
        if let Some(p) = pods.first() {
            p.default_route()?;
        }
    }
    let before: Vec<State> = vec![State::read(&host)?, State::read(&shared_ctr)?];
    let dir = ctx.dir.display().to_string();
    let conf_of = |p: &Pod| {
        let mut prev = p.prev_result("1.0.0");
        prev["interfaces"] = json!([{"name": p.host_veth}, {"name": p.ifname, "sandbox": p.netns()}]);
        if plugin == "sbr" && p.subnet != 0 {
            if let Some(o) = prev.as_object_mut() {
                o.remove("routes");
            }
        }
        match plugin {
            "sbr" => sbr_conf("1.0.0", Some(prev)),
            _ => bw_conf("1.0.0", BOTH, Some(prev)),
        }
    };
    let invs = |cmd: &str| {
        pods.iter()
            .map(|p| ctx.invocation(&ctx.plugin(plugin), &host, &p.env(cmd, &dir), &bytes(&conf_of(p))))
            .collect::<Vec<_>>()
    };
    let adds = run_all(invs("ADD"));
    let mut bad = failures("ADD", &adds);
    let hs = State::read(&host)?;
    let cs = State::read(&shared_ctr)?;
    match plugin {
        "sbr" => {
            let rules = cs.extra_rules();
            let tables: std::collections::BTreeSet<String> = rules
                .iter()
                .map(|r| cni_testkit::state::text(r, "table"))
                .collect();
            if rules.len() != N as usize || tables.len() != N as usize {
                bad.push(format!(
                    "{} rules over {} distinct tables, want {N} and {N}",
                    rules.len(),
                    tables.len()
                ));
            }
        }
        _ => {
            let missing = pods
                .iter()
                .filter(|p| !hs.has_link(&ifb_name("bwnet", &p.container_id)))
                .count();
            if missing > 0 {
                bad.push(format!("{missing} of {N} ifbs missing after ADD"));
            }
        }
    }
    let dels = run_all(invs("DEL"));
    bad.extend(failures("DEL", &dels));
    let after: Vec<State> = vec![State::read(&host)?, State::read(&shared_ctr)?];
    if plugin == "sbr" {
        let d = after[1].diff(&before[1], "after", "before");
        if !d.is_empty() {
            bad.push(format!("container not restored:\n{d}"));
        }
    } else {
        let left = after[0].links_of_kind("ifb").len();
        if left > 0 {
            bad.push(format!("{left} ifbs left after DEL"));
        }
    }
    ensure(bad.is_empty(), || {
        let n = bad.len();
        let mut shown: Vec<String> = bad.into_iter().take(6).collect();
        if n > 6 {
            shown.push(format!("... {} more", n - 6));
        }
        shown.join("\n")
    })
}
