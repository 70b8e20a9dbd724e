//! sbr scenarios of its issue, each compared with the reference's kernel
//! state where the reference is installed.
//!
//! The differential scenarios run with IPv6 disabled in the container: the
//! reference also moves the link's `fe80::/64` into the sbr table (an IPv4
//! one too) and out of main, which sbr does not by design (routes move only
//! for families with an address). "IPv4-only: fe80::/64 stays in main"
//! asserts that difference on its own.

use std::sync::Arc;

use serde_json::{json, Value};

use super::{call, pod};
use crate::suite::pod::{sbr_conf, Pod};
use crate::suite::{ensure, ok, Case, CaseResult, Ctx, Failure};
use cni_testkit::state::{text, State};
use cni_testkit::Ns;

pub fn cases() -> Vec<Case> {
    vec![
        Case::new("sbr", "single IPv4 address (differential)", single),
        Case::new(
            "sbr",
            "net1 beside management eth0 (differential)",
            second_interface,
        ),
        Case::new("sbr", "tables 100 and 101 taken (differential)", tables_taken),
        Case::new("sbr", "address without gateway (differential)", no_gateway),
        Case::new("sbr", "0.3.1 config (differential)", v031),
        Case::new("sbr", "0.2.0 config (differential)", v020),
        Case::new(
            "sbr",
            "main's default with mtu 1400: moved and restored with it (differential)",
            mtu,
        ),
        Case::new(
            "sbr",
            "IPv4-only: fe80::/64 stays in main (reference moves it)",
            link_local_stays,
        ),
        Case::new("sbr", "dual stack: a rule and table per address", dual_stack),
        Case::new("sbr", "ADD ADD DEL DEL ADD DEL converges", reentrant),
        Case::new("sbr", "CHECK passes, then finds a missing rule", check),
        Case::new("sbr", "ip route get from the address uses its table", route_get),
        Case::new("sbr", "two addresses: a rule and table each", two_addresses),
        Case::new("sbr", "option table: that table, routes stay", option_table),
        Case::new("sbr", "option priority: the rule's priority", option_priority),
        Case::new("sbr", "option gateways: static gateway", option_gateways),
        Case::new("sbr", "option addSourceHints: subnet stays in main", option_hints),
    ]
}

/// A pod like [`pod`] whose container has IPv6 disabled before its
/// interfaces exist, so that no `fe80::/64` route is there to move.
fn pod_v4(container_id: &str) -> Result<Pod, String> {
    let host = Arc::new(Ns::try_new("cnf")?);
    let ctr = Arc::new(Ns::try_new("cnf")?);
    disable_ipv6(&ctr)?;
    let p = Pod::attach(host, ctr, container_id, "eth0", "vh0", 0)?;
    p.default_route()?;
    Ok(p)
}

fn disable_ipv6(ns: &Ns) -> Result<(), String> {
    for key in ["all", "default"] {
        ns.try_exec(&["sysctl", "-qw", &format!("net.ipv6.conf.{key}.disable_ipv6=1")])?;
    }
    Ok(())
}

/// ADD with `conf` on a prepared pod; the states after.
fn add(ctx: &Ctx, p: &Pod, conf: &Value) -> Result<Vec<State>, Failure> {
    let out = call(ctx, "sbr", p, "ADD", conf)?;
    let r = ok("ADD", &out)?.ok_or("ADD printed no result")?;
    // Chained: prevResult comes back unchanged (same addresses, same interfaces).
    let prev = &conf["prevResult"];
    ensure(
        r.get("ips") == prev.get("ips") && r.get("interfaces") == prev.get("interfaces"),
        || format!("result {r} does not pass prevResult {prev} through"),
    )?;
    Ok(p.states()?)
}

/// Rule `from addr lookup T` in the container; returns T.
pub fn rule_table(ctr: &State, addr: &str) -> Result<String, Failure> {
    let rules: Vec<Value> = ctr
        .extra_rules()
        .into_iter()
        .filter(|r| text(r, "src") == addr)
        .collect();
    ensure(rules.len() == 1, || {
        format!("want one rule from {addr}, got {rules:?}")
    })?;
    Ok(text(&rules[0], "table"))
}

fn has_default_via(ctr: &State, table: &str, gw: &str, dev: &str) -> CaseResult {
    let routes = ctr.routes_in(table);
    ensure(
        routes
            .iter()
            .any(|r| text(r, "dst") == "default" && text(r, "gateway") == gw && text(r, "dev") == dev),
        || format!("table {table} has no default via {gw} dev {dev}: {routes:?}"),
    )
}

fn main_routes_on(ctr: &State, dev: &str, family: &str) -> Vec<Value> {
    ctr.routes_in("main")
        .into_iter()
        .filter(|r| text(r, "dev") == dev && text(r, "family") == family)
        .collect()
}

fn single_scenario(ctx: &Ctx) -> Result<Vec<State>, Failure> {
    let p = pod_v4("sbr-single")?;
    add(ctx, &p, &sbr_conf("1.0.0", Some(p.prev_result("1.0.0"))))
}

fn single(ctx: &Ctx) -> CaseResult {
    let st = single_scenario(ctx)?;
    let t = rule_table(&st[1], "10.250.0.2")?;
    ensure(t == "100", || format!("rule uses table {t}, want 100"))?;
    has_default_via(&st[1], "100", "10.250.0.1", "eth0")?;
    let left = main_routes_on(&st[1], "eth0", "4");
    ensure(left.is_empty(), || format!("eth0 routes left in main: {left:?}"))?;
    ctx.differential("sbr-single", &st, single_scenario)
}

fn second_scenario(ctx: &Ctx) -> Result<Vec<State>, Failure> {
    let mgmt = pod_v4("sbr-net1")?;
    let p = Pod::attach(mgmt.host.clone(), mgmt.ctr.clone(), "sbr-net1", "net1", "vh1", 1)?;
    let mut prev = p.prev_result("1.0.0");
    prev["interfaces"] = json!([{"name": "vh1"}, {"name": "net1", "sandbox": p.netns()}]);
    let st = add(ctx, &p, &sbr_conf("1.0.0", Some(prev)))?;
    drop(mgmt);
    Ok(st)
}

fn second_interface(ctx: &Ctx) -> CaseResult {
    let st = second_scenario(ctx)?;
    let t = rule_table(&st[1], "10.250.1.2")?;
    has_default_via(&st[1], &t, "10.250.1.1", "net1")?;
    ensure(rule_table(&st[1], "10.250.0.2").is_err(), || {
        "eth0 got a rule".into()
    })?;
    let main_eth0 = main_routes_on(&st[1], "eth0", "4");
    ensure(main_eth0.iter().any(|r| text(r, "dst") == "default"), || {
        format!("management default route left main: {main_eth0:?}")
    })?;
    let main_net1 = main_routes_on(&st[1], "net1", "4");
    ensure(main_net1.is_empty(), || {
        format!("net1 routes left in main: {main_net1:?}")
    })?;
    ctx.differential("sbr-net1", &st, second_scenario)
}

fn taken_scenario(ctx: &Ctx) -> Result<Vec<State>, Failure> {
    let p = pod_v4("sbr-taken")?;
    p.ctr
        .try_ip(&["rule", "add", "from", "192.0.2.1", "lookup", "100"])?;
    p.ctr
        .try_ip(&["rule", "add", "from", "192.0.2.2", "lookup", "101"])?;
    add(ctx, &p, &sbr_conf("1.0.0", Some(p.prev_result("1.0.0"))))
}

fn tables_taken(ctx: &Ctx) -> CaseResult {
    let st = taken_scenario(ctx)?;
    let t = rule_table(&st[1], "10.250.0.2")?;
    ensure(t == "102", || format!("rule uses table {t}, want 102"))?;
    has_default_via(&st[1], "102", "10.250.0.1", "eth0")?;
    ctx.differential("sbr-taken", &st, taken_scenario)
}

fn nogw_scenario(ctx: &Ctx) -> Result<Vec<State>, Failure> {
    let p = pod_v4("sbr-nogw")?;
    let mut prev = p.prev_result("1.0.0");
    if let Some(ip) = prev["ips"].get_mut(0).and_then(Value::as_object_mut) {
        ip.remove("gateway");
    }
    add(ctx, &p, &sbr_conf("1.0.0", Some(prev)))
}

fn no_gateway(ctx: &Ctx) -> CaseResult {
    let st = nogw_scenario(ctx)?;
    rule_table(&st[1], "10.250.0.2")?;
    ctx.differential("sbr-nogw", &st, nogw_scenario)
}

/// ADD in an older CNI version: config and prevResult both in it.
fn version_scenario(ctx: &Ctx, version: &str) -> Result<Vec<State>, Failure> {
    let p = pod_v4(&format!("sbr-v{}", version.replace('.', "")))?;
    add(ctx, &p, &sbr_conf(version, Some(p.prev_result(version))))
}

fn v031(ctx: &Ctx) -> CaseResult {
    versioned(ctx, "0.3.1", |c| version_scenario(c, "0.3.1"))
}

fn v020(ctx: &Ctx) -> CaseResult {
    versioned(ctx, "0.2.0", |c| version_scenario(c, "0.2.0"))
}

fn versioned(ctx: &Ctx, v: &str, scenario: impl Fn(&Ctx) -> Result<Vec<State>, Failure>) -> CaseResult {
    let st = scenario(ctx)?;
    let t = rule_table(&st[1], "10.250.0.2")?;
    has_default_via(&st[1], &t, "10.250.0.1", "eth0")?;
    ctx.differential(&format!("sbr-v{v}"), &st, scenario)
}

/// Route metrics move with the route: the table gets main's default with its
/// mtu, and DEL gives it back to main with the mtu.
fn mtu_add(ctx: &Ctx) -> Result<(Pod, Value, Vec<State>), Failure> {
    let p = pod_v4("sbr-mtu")?;
    p.ctr.try_ip(&[
        "route",
        "change",
        "default",
        "via",
        "10.250.0.1",
        "dev",
        "eth0",
        "mtu",
        "1400",
    ])?;
    let conf = sbr_conf("1.0.0", Some(p.prev_result("1.0.0")));
    let st = add(ctx, &p, &conf)?;
    Ok((p, conf, st))
}

fn mtu(ctx: &Ctx) -> CaseResult {
    let (p, conf, st) = mtu_add(ctx)?;
    let with_mtu = |table: &str, ctr: &State| {
        let routes = ctr.routes_in(table);
        let found = routes
            .iter()
            .any(|r| text(r, "dst") == "default" && r["metrics"][0]["mtu"] == 1400);
        ensure(found, || {
            format!("no default route with mtu 1400 in table {table}: {routes:?}")
        })
    };
    with_mtu(&rule_table(&st[1], "10.250.0.2")?, &st[1])?;
    ok("CHECK", &call(ctx, "sbr", &p, "CHECK", &conf)?)?;
    ok("DEL", &call(ctx, "sbr", &p, "DEL", &conf)?)?;
    with_mtu("main", &State::read(&p.ctr)?)?;
    ctx.differential("sbr-mtu", &st, |c| mtu_add(c).map(|(_, _, s)| s))
}

/// Not differential: the reference moves the IPv6 link-local route of an
/// IPv4-only interface into table 100 and out of main (documented).
fn link_local_stays(ctx: &Ctx) -> CaseResult {
    let p = pod("sbr-ll6")?;
    let st = add(ctx, &p, &sbr_conf("1.0.0", Some(p.prev_result("1.0.0"))))?;
    let main6 = main_routes_on(&st[1], "eth0", "6");
    ensure(main6.iter().any(|r| text(r, "dst") == "fe80::/64"), || {
        format!("fe80::/64 dev eth0 left main: {main6:?}")
    })?;
    let t = rule_table(&st[1], "10.250.0.2")?;
    let moved: Vec<Value> = st[1]
        .routes_in(&t)
        .into_iter()
        .filter(|r| text(r, "family") == "6")
        .collect();
    ensure(moved.is_empty(), || {
        format!("IPv6 routes in IPv4 table {t}: {moved:?}")
    })?;
    ok(
        "DEL",
        &call(
            ctx,
            "sbr",
            &p,
            "DEL",
            &sbr_conf("1.0.0", Some(p.prev_result("1.0.0"))),
        )?,
    )?;
    Ok(())
}

fn dual_stack(ctx: &Ctx) -> CaseResult {
    let p = pod("sbr-dual")?;
    p.ctr
        .try_ip(&["-6", "addr", "add", "fd00:250::2/64", "dev", "eth0", "nodad"])?;
    p.host
        .try_ip(&["-6", "addr", "add", "fd00:250::1/64", "dev", "vh0", "nodad"])?;
    p.ctr.try_ip(&[
        "-6",
        "route",
        "add",
        "default",
        "via",
        "fd00:250::1",
        "dev",
        "eth0",
    ])?;
    let mut prev = p.prev_result("1.0.0");
    prev["ips"] = json!([
        {"address": p.cidr(), "gateway": p.gateway(), "interface": 1},
        {"address": "fd00:250::2/64", "gateway": "fd00:250::1", "interface": 1}
    ]);
    let st = add(ctx, &p, &sbr_conf("1.0.0", Some(prev)))?;
    let t4 = rule_table(&st[1], "10.250.0.2")?;
    let t6 = rule_table(&st[1], "fd00:250::2")?;
    ensure(t4 != t6, || format!("both addresses use table {t4}"))?;
    has_default_via(&st[1], &t4, "10.250.0.1", "eth0")?;
    has_default_via(&st[1], &t6, "fd00:250::1", "eth0")
}

fn reentrant(ctx: &Ctx) -> CaseResult {
    let p = pod("sbr-reent")?;
    let before = p.states()?;
    let conf = sbr_conf("1.0.0", Some(p.prev_result("1.0.0")));
    for (i, cmd) in ["ADD", "ADD", "DEL", "DEL", "ADD", "DEL"].iter().enumerate() {
        ok(
            &format!("step {} ({cmd})", i + 1),
            &call(ctx, "sbr", &p, cmd, &conf)?,
        )?;
        let st = p.states()?;
        if i == 1 {
            let rules = st[1].extra_rules();
            ensure(rules.len() == 1, || {
                format!("after ADD twice: want one rule, got {rules:?}")
            })?;
        }
        let d = st[1].diff(&before[1], "after", "before");
        ensure(*cmd == "ADD" || d.is_empty(), || {
            format!("step {} (DEL) did not restore the container:\n{d}", i + 1)
        })?;
    }
    Ok(())
}

fn check(ctx: &Ctx) -> CaseResult {
    let p = pod("sbr-check")?;
    let conf = sbr_conf("1.0.0", Some(p.prev_result("1.0.0")));
    ok("ADD", &call(ctx, "sbr", &p, "ADD", &conf)?)?;
    ok("CHECK after ADD", &call(ctx, "sbr", &p, "CHECK", &conf)?)?;
    p.ctr.try_ip(&["rule", "del", "from", "10.250.0.2"])?;
    let out = call(ctx, "sbr", &p, "CHECK", &conf)?;
    ensure(!out.success(), || "CHECK passed with the rule gone".into())?;
    ok("DEL", &call(ctx, "sbr", &p, "DEL", &conf)?)?;
    Ok(())
}

fn route_get(ctx: &Ctx) -> CaseResult {
    let p = pod("sbr-get")?;
    let conf = sbr_conf("1.0.0", Some(p.prev_result("1.0.0")));
    ok("ADD", &call(ctx, "sbr", &p, "ADD", &conf)?)?;
    let out = p
        .ctr
        .try_exec(&["ip", "-j", "route", "get", "198.51.100.7", "from", "10.250.0.2"])?;
    let v: Value = serde_json::from_str(&out).map_err(|e| format!("bad ip route get output {out}: {e}"))?;
    let r = v.get(0).cloned().unwrap_or(Value::Null);
    ensure(
        text(&r, "gateway") == "10.250.0.1" && text(&r, "dev") == "eth0",
        || format!("route get from 10.250.0.2 gave {r}"),
    )?;
    let _keep = Arc::clone(&p.host);
    Ok(())
}

fn two_addresses(ctx: &Ctx) -> CaseResult {
    let p = pod("sbr-two")?;
    p.ctr.try_ip(&["addr", "add", "10.250.0.3/24", "dev", "eth0"])?;
    let mut prev = p.prev_result("1.0.0");
    prev["ips"] = json!([
        {"address": "10.250.0.2/24", "gateway": "10.250.0.1", "interface": 1},
        {"address": "10.250.0.3/24", "gateway": "10.250.0.1", "interface": 1}
    ]);
    let st = add(ctx, &p, &sbr_conf("1.0.0", Some(prev)))?;
    let a = rule_table(&st[1], "10.250.0.2")?;
    let b = rule_table(&st[1], "10.250.0.3")?;
    ensure(a != b, || format!("both addresses use table {a}"))?;
    has_default_via(&st[1], &a, "10.250.0.1", "eth0")?;
    has_default_via(&st[1], &b, "10.250.0.1", "eth0")
}

/// ADD with extra config fields; the container state after.
fn add_with(
    ctx: &Ctx,
    cid: &str,
    extra: Value,
    edit_prev: impl Fn(&mut Value),
) -> Result<(Pod, State), Failure> {
    let p = pod(cid)?;
    if extra.get("gateways").is_some() {
        // Only the configured gateway may give the table its default route.
        p.ctr.try_ip(&["route", "del", "default"])?;
    }
    let mut prev = p.prev_result("1.0.0");
    edit_prev(&mut prev);
    let mut conf = sbr_conf("1.0.0", Some(prev));
    if let (Some(c), Some(x)) = (conf.as_object_mut(), extra.as_object()) {
        c.extend(x.clone());
    }
    let st = add(ctx, &p, &conf)?;
    let ctr = st.into_iter().nth(1).ok_or("no container state")?;
    Ok((p, ctr))
}

fn option_table(ctx: &Ctx) -> CaseResult {
    let (_p, st) = add_with(ctx, "sbr-table", json!({"table": 200}), |_| {})?;
    let t = rule_table(&st, "10.250.0.2")?;
    ensure(t == "200", || format!("rule uses table {t}, want 200"))?;
    let main = main_routes_on(&st, "eth0", "4");
    ensure(main.iter().any(|r| text(r, "dst") == "default"), || {
        format!("routes left main with a fixed table: {main:?}")
    })
}

fn option_priority(ctx: &Ctx) -> CaseResult {
    let (_p, st) = add_with(ctx, "sbr-prio", json!({"priority": 1234}), |_| {})?;
    let rules: Vec<Value> = st
        .extra_rules()
        .into_iter()
        .filter(|r| text(r, "src") == "10.250.0.2")
        .collect();
    ensure(rules.len() == 1 && text(&rules[0], "priority") == "1234", || {
        format!("want one rule at priority 1234: {rules:?}")
    })
}

fn option_gateways(ctx: &Ctx) -> CaseResult {
    let (_p, st) = add_with(ctx, "sbr-gws", json!({"gateways": ["10.250.0.1"]}), |prev| {
        if let Some(ip) = prev["ips"].get_mut(0).and_then(Value::as_object_mut) {
            ip.remove("gateway");
        }
        if let Some(o) = prev.as_object_mut() {
            o.remove("routes");
        }
    })?;
    let t = rule_table(&st, "10.250.0.2")?;
    has_default_via(&st, &t, "10.250.0.1", "eth0")
}

fn option_hints(ctx: &Ctx) -> CaseResult {
    let (_p, st) = add_with(ctx, "sbr-hints", json!({"addSourceHints": true}), |_| {})?;
    let t = rule_table(&st, "10.250.0.2")?;
    has_default_via(&st, &t, "10.250.0.1", "eth0")?;
    let main = main_routes_on(&st, "eth0", "4");
    ensure(
        main.iter().any(|r| {
            text(r, "dst") == "10.250.0.0/24"
                && text(r, "prefsrc") == "10.250.0.2"
                && text(r, "scope") == "link"
        }),
        || format!("subnet route with source hint missing from main: {main:?}"),
    )?;
    ensure(!main.iter().any(|r| text(r, "dst") == "default"), || {
        format!("default route stayed in main: {main:?}")
    })
}
