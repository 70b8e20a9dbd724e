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

use super::foreign::sbr_link;
use super::{call, has_line, ip, not_reference, pod, unchanged};
use crate::suite::pod::{sbr_conf, Pod};
use crate::suite::{ensure, ok, Case, CaseResult, Ctx, Failure};
use cni_runtime::exec::{Outcome, PluginError};
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
        Case::new(
            "sbr",
            "dual stack and a second address: fe80::/64 in the IPv6 table only, CHECK, DEL restores",
            dual_stack_restored,
        ),
        Case::new("sbr", "ADD ADD DEL DEL ADD DEL converges", reentrant),
        Case::new(
            "sbr",
            "ptp layout: CHECK names a missing route or rule, ADD repairs, DEL restores",
            check,
        ),
        Case::new("sbr", "ip route get from the address uses its table", route_get),
        Case::new("sbr", "two addresses: a rule and table each", two_addresses),
        Case::new(
            "sbr",
            "option table: that table, routes stay, ADD twice, DEL restores",
            option_table,
        ),
        Case::new("sbr", "option priority: the rule's priority", option_priority),
        Case::new("sbr", "option gateways: static gateway", option_gateways),
        Case::new(
            "sbr",
            "option addSourceHints: subnet stays in main, IPv6 too, DEL restores",
            option_hints,
        ),
        Case::new(
            "sbr",
            "addSourceHints: an IPv6 address in DAD, a noprefixroute address",
            hints_dad_noprefixroute,
        ),
        Case::new(
            "sbr",
            "refusals: their codes and words, nothing left; DEL takes what ADD refuses",
            refusals,
        ),
        Case::new(
            "sbr",
            "DEL gives main back exactly what ADD moved, and no more",
            del_exactly,
        ),
        Case::new(
            "sbr",
            "IPs only for another interface: ADD passes them on, changes nothing",
            other_interface,
        ),
        Case::new("sbr", "the markers beside moved routes change no lookup", markers),
        Case::new(
            "sbr",
            "/32 layout: ADD CHECK DEL, the pod keeps a way out",
            slash32,
        ),
        Case::new(
            "sbr",
            "DEL: a stale netns file is nothing to do, one that cannot be opened is code 4",
            netns_unopenable,
        ),
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
    ip(&p.ctr, &["route change default via 10.250.0.1 dev eth0 mtu 1400"])?;
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
    run(ctx, &p, "DEL", &sbr_conf("1.0.0", Some(p.prev_result("1.0.0")))).map(drop)
}

/// fd00:250::2/64 on the pod's eth0, ::1 on the host side, main's IPv6
/// default through it.
fn add_v6(p: &Pod) -> Result<(), String> {
    ip(
        &p.ctr,
        &[
            "-6 addr add fd00:250::2/64 dev eth0 nodad",
            "-6 route add default via fd00:250::1 dev eth0",
        ],
    )?;
    ip(&p.host, &["-6 addr add fd00:250::1/64 dev vh0 nodad"]).map(drop)
}

/// An entry of prevResult's `ips` on the pod's interface.
fn ip_of(addr: &str, gateway: Option<&str>) -> Value {
    let mut v = json!({"address": addr, "interface": 1});
    if let Some(g) = gateway {
        v["gateway"] = json!(g);
    }
    v
}

/// A 1.0.0 config for `p` with `ips` in its prevResult (`None`: the pod's)
/// and the `extra` fields.
fn conf_with(p: &Pod, ips: Option<Value>, extra: Value) -> Value {
    let mut prev = p.prev_result("1.0.0");
    if let Some(ips) = ips {
        prev["ips"] = ips;
    }
    let mut c = sbr_conf("1.0.0", Some(prev));
    if let (Some(o), Value::Object(x)) = (c.as_object_mut(), extra) {
        o.extend(x);
    }
    c
}

/// sbr's `cmd` for `p`; fails unless it succeeded.
fn run(ctx: &Ctx, p: &Pod, cmd: &str, conf: &Value) -> Result<Outcome, Failure> {
    let out = call(ctx, "sbr", p, cmd, conf)?;
    ok(cmd, &out)?;
    Ok(out)
}

/// Fails unless `cmd` is refused with `code` and a message with `words`.
fn refused(
    ctx: &Ctx,
    p: &Pod,
    cmd: &str,
    conf: &Value,
    code: u64,
    words: &str,
) -> Result<PluginError, Failure> {
    super::refused(cmd, &call(ctx, "sbr", p, cmd, conf)?, code, words)
}

fn dual_stack(ctx: &Ctx) -> CaseResult {
    let p = pod("sbr-dual")?;
    add_v6(&p)?;
    let ips = json!([
        ip_of(&p.cidr(), Some(&p.gateway())),
        ip_of("fd00:250::2/64", Some("fd00:250::1"))
    ]);
    let st = add(ctx, &p, &conf_with(&p, Some(ips), json!({})))?;
    let t4 = rule_table(&st[1], "10.250.0.2")?;
    let t6 = rule_table(&st[1], "fd00:250::2")?;
    ensure(t4 != t6, || format!("both addresses use table {t4}"))?;
    has_default_via(&st[1], &t4, "10.250.0.1", "eth0")?;
    has_default_via(&st[1], &t6, "fd00:250::1", "eth0")
}

fn dual_stack_restored(ctx: &Ctx) -> CaseResult {
    not_reference(
        ctx,
        "the reference moves fe80::/64 into IPv4 tables too, and its DEL leaves its tables",
    )?;
    let p = pod("sbr-dual3")?;
    add_v6(&p)?;
    ip(&p.ctr, &["addr add 10.250.0.3/24 dev eth0"])?;
    let before = p.states()?;
    let gw = Some("10.250.0.1");
    let ips = json!([
        ip_of("10.250.0.2/24", gw),
        ip_of("fd00:250::2/64", Some("fd00:250::1")),
        ip_of("10.250.0.3/24", gw)
    ]);
    let conf = conf_with(&p, Some(ips), json!({}));
    let st = add(ctx, &p, &conf)?;
    let mut tables = Vec::new();
    for a in ["10.250.0.2", "fd00:250::2", "10.250.0.3"] {
        tables.push(rule_table(&st[1], a)?);
    }
    ensure(tables == ["100", "101", "102"], || {
        format!("tables {tables:?}, want 100, 101, 102")
    })?;
    for (t, family, gw) in [
        ("100", "4", "10.250.0.1"),
        ("101", "6", "fd00:250::1"),
        ("102", "4", "10.250.0.1"),
    ] {
        has_default_via(&st[1], t, gw, "eth0")?;
        let other: Vec<Value> = st[1]
            .routes_in(t)
            .into_iter()
            .filter(|r| text(r, "family") != family)
            .collect();
        ensure(other.is_empty(), || {
            format!("table {t} holds routes of the other family: {other:?}")
        })?;
    }
    let t101 = st[1].routes_in("101");
    ensure(t101.iter().any(|r| text(r, "dst") == "fe80::/64"), || {
        format!("fe80::/64 did not move into table 101: {t101:?}")
    })?;
    for family in ["4", "6"] {
        let left = main_routes_on(&st[1], "eth0", family);
        ensure(left.is_empty(), || format!("eth0 routes left in main: {left:?}"))?;
    }
    run(ctx, &p, "CHECK", &conf)?;
    run(ctx, &p, "DEL", &conf)?;
    unchanged(&p.states()?, &before, "DEL did not restore the pod")
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

/// What ptp leaves in the container: a host route to the gateway and the
/// subnet via the gateway in place of the kernel's subnet route. CHECK
/// names what is missing, ADD puts a deleted rule back into its table, DEL
/// (with or without prevResult) restores.
fn check(ctx: &Ctx) -> CaseResult {
    let p = Pod::new("sbr-check")?;
    ip(
        &p.ctr,
        &[
            "route del 10.250.0.0/24 dev eth0",
            "route add 10.250.0.1/32 dev eth0 scope link src 10.250.0.2",
            "route add 10.250.0.0/24 via 10.250.0.1 dev eth0 src 10.250.0.2",
            "route add default via 10.250.0.1 dev eth0",
        ],
    )?;
    let before = p.states()?;
    let conf = sbr_conf("1.0.0", Some(p.prev_result("1.0.0")));
    let no_rule = "missing rule from 10.250.0.2/32";
    refused(ctx, &p, "CHECK", &conf, 100, no_rule)?;
    run(ctx, &p, "ADD", &conf)?;
    let t100 = ip(&p.ctr, &["route show table 100"])?;
    for want in [
        "default via 10.250.0.1 dev eth0",
        "10.250.0.0/24 via 10.250.0.1 dev eth0 src 10.250.0.2",
        "10.250.0.1 dev eth0 scope link src 10.250.0.2",
    ] {
        has_line("table 100", &t100, want)?;
    }
    let main = main_routes_on(&State::read(&p.ctr)?, "eth0", "4");
    ensure(main.is_empty(), || format!("eth0 routes left in main: {main:?}"))?;
    run(ctx, &p, "CHECK", &conf)?;
    for (route, add_back) in [
        ("default via 10.250.0.1 dev eth0", ""),
        ("10.250.0.0/24 dev eth0", " via 10.250.0.1 src 10.250.0.2"),
    ] {
        let dst = route.split(" via").next().unwrap_or_default();
        ip(&p.ctr, &[&format!("route del {dst} table 100")])?;
        let e = refused(ctx, &p, "CHECK", &conf, 100, "")?;
        ensure(e.msg == format!("missing route {route} in table 100"), || {
            format!("CHECK without {route}: {e}")
        })?;
        ip(&p.ctr, &[&format!("route add {route}{add_back} table 100")])?;
        run(ctx, &p, "CHECK", &conf)?;
    }
    ip(&p.ctr, &["rule del from 10.250.0.2 lookup 100"])?;
    refused(ctx, &p, "CHECK", &conf, 100, no_rule)?;
    run(ctx, &p, "ADD", &conf)?;
    let rules = ip(&p.ctr, &["rule"])?;
    has_line(
        "rules after the repairing ADD",
        &rules,
        "from 10.250.0.2 lookup 100 proto 83",
    )?;
    run(ctx, &p, "CHECK", &conf)?;
    ip(&p.ctr, &["rule del from 10.250.0.2 lookup 100"])?;
    run(ctx, &p, "DEL", &conf)?;
    unchanged(&p.states()?, &before, "DEL with the rule gone did not restore")?;
    run(ctx, &p, "ADD", &conf)?;
    run(ctx, &p, "DEL", &sbr_conf("1.0.0", None))?;
    unchanged(&p.states()?, &before, "DEL without prevResult did not restore")
}

fn route_get(ctx: &Ctx) -> CaseResult {
    let p = pod("sbr-get")?;
    let conf = sbr_conf("1.0.0", Some(p.prev_result("1.0.0")));
    run(ctx, &p, "ADD", &conf)?;
    let out = ip(&p.ctr, &["-j route get 198.51.100.7 from 10.250.0.2"])?;
    let v: Value = serde_json::from_str(&out).map_err(|e| format!("bad ip route get output {out}: {e}"))?;
    let r = v.get(0).cloned().unwrap_or(Value::Null);
    ensure(
        text(&r, "gateway") == "10.250.0.1" && text(&r, "dev") == "eth0",
        || format!("route get from 10.250.0.2 gave {r}"),
    )?;
    Ok(())
}

fn two_addresses(ctx: &Ctx) -> CaseResult {
    let p = pod("sbr-two")?;
    ip(&p.ctr, &["addr add 10.250.0.3/24 dev eth0"])?;
    let gw = Some("10.250.0.1");
    let ips = json!([ip_of("10.250.0.2/24", gw), ip_of("10.250.0.3/24", gw)]);
    let st = add(ctx, &p, &conf_with(&p, Some(ips), json!({})))?;
    let a = rule_table(&st[1], "10.250.0.2")?;
    let b = rule_table(&st[1], "10.250.0.3")?;
    ensure(a != b, || format!("both addresses use table {a}"))?;
    has_default_via(&st[1], &a, "10.250.0.1", "eth0")?;
    has_default_via(&st[1], &b, "10.250.0.1", "eth0")
}

fn option_table(ctx: &Ctx) -> CaseResult {
    let p = pod("sbr-table")?;
    let before = p.states()?;
    let conf = conf_with(&p, None, json!({"table": 200, "priority": 777}));
    run(ctx, &p, "ADD", &conf)?;
    let st = State::read(&p.ctr)?;
    let t = rule_table(&st, "10.250.0.2")?;
    ensure(t == "200", || format!("rule uses table {t}, want 200"))?;
    has_line(
        "rules",
        &ip(&p.ctr, &["rule"])?,
        "777:\tfrom 10.250.0.2 lookup 200",
    )?;
    let main = main_routes_on(&st, "eth0", "4");
    ensure(main.iter().any(|r| text(r, "dst") == "default"), || {
        format!("routes left main with a fixed table: {main:?}")
    })?;
    run(ctx, &p, "ADD", &conf)?;
    unchanged(&[State::read(&p.ctr)?], &[st], "a second ADD changed the pod")?;
    run(ctx, &p, "CHECK", &conf)?;
    run(ctx, &p, "DEL", &conf)?;
    unchanged(&p.states()?, &before, "DEL did not restore the pod")
}

fn option_priority(ctx: &Ctx) -> CaseResult {
    let p = pod("sbr-prio")?;
    let st = add(ctx, &p, &conf_with(&p, None, json!({"priority": 1234})))?;
    let rules: Vec<Value> = st[1]
        .extra_rules()
        .into_iter()
        .filter(|r| text(r, "src") == "10.250.0.2")
        .collect();
    ensure(rules.len() == 1 && text(&rules[0], "priority") == "1234", || {
        format!("want one rule at priority 1234: {rules:?}")
    })
}

/// Only the configured gateway may give the table its default route: none
/// in main, none in the prevResult.
fn option_gateways(ctx: &Ctx) -> CaseResult {
    let p = Pod::new("sbr-gws")?;
    let mut conf = conf_with(
        &p,
        Some(json!([ip_of(&p.cidr(), None)])),
        json!({"gateways": ["10.250.0.1"]}),
    );
    if let Some(prev) = conf["prevResult"].as_object_mut() {
        prev.remove("routes");
    }
    let st = add(ctx, &p, &conf)?;
    has_default_via(&st[1], &rule_table(&st[1], "10.250.0.2")?, "10.250.0.1", "eth0")
}

/// The IPv6 address has no gateway: no table of its own to take its subnet
/// route from main, which keeps it with the hint (protocol 83, sbr's).
fn option_hints(ctx: &Ctx) -> CaseResult {
    let p = pod("sbr-hints")?;
    ip(&p.ctr, &["-6 addr add fd00:250::2/64 dev eth0 nodad"])?;
    let before = p.states()?;
    let ips = json!([
        ip_of(&p.cidr(), Some(&p.gateway())),
        ip_of("fd00:250::2/64", None)
    ]);
    let conf = conf_with(&p, Some(ips), json!({"addSourceHints": true}));
    run(ctx, &p, "ADD", &conf)?;
    let st = State::read(&p.ctr)?;
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
    })?;
    has_line(
        "main's IPv6 routes",
        &ip(&p.ctr, &["-6 route"])?,
        "fd00:250::/64 dev eth0 proto 83 src fd00:250::2",
    )?;
    run(ctx, &p, "CHECK", &conf)?;
    run(ctx, &p, "ADD", &conf)?;
    run(ctx, &p, "DEL", &conf)?;
    unchanged(&p.states()?, &before, "DEL did not restore the pod")
}

/// `addSourceHints` with an IPv6 address still in DAD (macvlan or ipvlan
/// with static IPAM: nothing waited for it): the kernel refuses a tentative
/// source, so ADD leaves main's subnet route as it was, with a warning.
/// Then an address added `noprefixroute` with only a host route to its
/// gateway: CHECK right after ADD passes, a second ADD changes nothing.
fn hints_dad_noprefixroute(ctx: &Ctx) -> CaseResult {
    not_reference(ctx, "the reference (v1.1.1) has no addSourceHints")?;
    let p = pod("sbr-dad")?;
    let tentative = |what: &str| -> Result<bool, String> {
        Ok(ip(&p.ctr, &["-6 addr show dev eth0 tentative"])?.contains(what))
    };
    // The link-local address ends its DAD first: nothing changes on its own
    // while states are compared.
    for _ in 0..100 {
        if !tentative("inet6")? {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    ensure(!tentative("inet6")?, || "fe80:: still tentative after 5 s".into())?;
    // A thousand probes a second apart: tentative for the whole case.
    p.ctr
        .try_exec(&["sysctl", "-qw", "net.ipv6.conf.eth0.dad_transmits=1000"])?;
    ip(&p.ctr, &["-6 addr add fd00:250::2/64 dev eth0"])?;
    ensure(tentative("fd00:250::2/64")?, || {
        "fd00:250::2 is not tentative".into()
    })?;
    let before = p.states()?;
    let ips = json!([
        ip_of(&p.cidr(), Some(&p.gateway())),
        ip_of("fd00:250::2/64", None)
    ]);
    let conf = conf_with(&p, Some(ips), json!({"addSourceHints": true}));
    let out = run(ctx, &p, "ADD", &conf)?;
    has_line(
        "stderr",
        &out.stderr_text(),
        "no source hint for fd00:250::/64 on eth0",
    )?;
    has_line(
        "main",
        &ip(&p.ctr, &["route"])?,
        "10.250.0.0/24 dev eth0 proto kernel scope link src 10.250.0.2",
    )?;
    let main6 = ip(&p.ctr, &["-6 route"])?;
    has_line(
        "main's IPv6 routes",
        &main6,
        "fd00:250::/64 dev eth0 proto kernel metric 256",
    )?;
    ensure(!main6.contains("proto 83"), || format!("a hint in main: {main6}"))?;
    has_line(
        "table 101",
        &ip(&p.ctr, &["-6 route show table 101"])?,
        "fd00:250::/64 dev eth0",
    )?;
    run(ctx, &p, "CHECK", &conf)?;
    run(ctx, &p, "DEL", &conf)?;
    ensure(tentative("fd00:250::2/64")?, || {
        "DAD finished during the case: it proved nothing".into()
    })?;
    unchanged(&p.states()?, &before, "DEL did not restore the pod")?;

    let p = pod("sbr-nopfx")?;
    let (net1, c1) = sbr_link(&p, "net1", "vh1", 1, "10.250.1.2")?;
    ip(
        &p.ctr,
        &[
            "addr del 10.250.1.2/24 dev net1",
            "addr add 10.250.1.2/24 dev net1 noprefixroute",
            "route add 10.250.1.1 dev net1 scope link",
        ],
    )?;
    let before = p.states()?;
    let mut conf = c1;
    conf["addSourceHints"] = json!(true);
    run(ctx, &net1, "ADD", &conf)?;
    run(ctx, &net1, "CHECK", &conf)?;
    let added = p.states()?;
    run(ctx, &net1, "ADD", &conf)?;
    unchanged(&p.states()?, &added, "a second ADD changed the pod")?;
    run(ctx, &net1, "DEL", &conf)?;
    unchanged(&p.states()?, &before, "DEL did not restore the pod")
}

/// Each refusal leaves the pod as it was: the reference's words where it
/// has them, a failed step (a static gateway the kernel refuses, a source
/// hint for an address the link lacks, after the routes left main) rolled
/// back. DEL never refuses over sbr's own fields: a runtime tears down a
/// failed ADD with the same config, and a refusal would stop the chain's
/// DEL and leak the main plugin's address.
fn refusals(ctx: &Ctx) -> CaseResult {
    not_reference(
        ctx,
        "the reference refuses with code 999 and has no static gateways",
    )?;
    // No default in main: it would win over a static gateway.
    let p = Pod::new("sbr-refuse")?;
    ip(&p.ctr, &["-6 addr add fd00:250::2/64 dev eth0 nodad"])?;
    let before = p.states()?;
    let no_gw = json!([ip_of(&p.cidr(), None), ip_of("fd00:250::2/64", None)]);
    let gateways = |g: &str| conf_with(&p, Some(no_gw.clone()), json!({"gateways": [g]}));
    let no_ips = conf_with(&p, Some(json!([])), json!({}));
    let no_ips_words = "No IP addresses supplied on interface: eth0";
    let cases = [
        (
            "ADD",
            sbr_conf("1.0.0", None),
            "This plugin must be called as chained plugin",
        ),
        ("ADD", no_ips.clone(), no_ips_words),
        ("CHECK", no_ips, no_ips_words),
        (
            "ADD",
            gateways("0.0.0.0"),
            "invalid static gateway IP address: 0.0.0.0",
        ),
        ("ADD", gateways("::"), "invalid static gateway IP address: ::"),
        (
            "ADD",
            gateways("fd00:ffff::1"),
            "failed to add route default via fd00:ffff::1 dev eth0 to table 101",
        ),
        (
            "ADD",
            gateways("10.77.0.1"),
            "failed to add route default via 10.77.0.1 dev eth0 to table 100",
        ),
        (
            "ADD",
            conf_with(
                &p,
                Some(json!([ip_of("10.250.0.9/24", Some("10.250.0.1"))])),
                json!({"addSourceHints": true}),
            ),
            "failed to add route 10.250.0.0/24 dev eth0 src 10.250.0.9 scope link to table main:",
        ),
        ("ADD", conf_with(&p, None, json!({"table": -1})), ""),
        ("ADD", conf_with(&p, None, json!({"priority": "x"})), ""),
    ];
    for (cmd, conf, words) in &cases {
        let e = refused(ctx, &p, cmd, conf, 7, words)?;
        let rolled = e.details.contains("rolled back") || !words.contains("table main");
        let chained = e.details.contains("no prevResult") || !words.contains("chained");
        ensure(rolled && chained, || format!("{cmd}: details {e}"))?;
        unchanged(
            &p.states()?,
            &before,
            &format!("{cmd} refused with {e} left changes"),
        )?;
    }
    let good = sbr_conf("1.0.0", Some(p.prev_result("1.0.0")));
    for (_, bad, _) in &cases[cases.len() - 2..] {
        run(ctx, &p, "ADD", &good)?;
        // The table reads as absent: DEL removes what the ADD made.
        run(ctx, &p, "DEL", bad)?;
        unchanged(&p.states()?, &before, &format!("DEL with {bad} did not clean up"))?;
    }
    Ok(())
}

/// net1 (and net2) beside eth0, which owns main's default: DEL gives main
/// back what ADD moved, whatever the prevResult lists, and nothing it did
/// not: not a default it never had, not another address's routes (they
/// stay, with a warning), not a route or rule someone put into sbr's table.
/// A protocol 83 route sbr did not make is moved and comes back.
fn del_exactly(ctx: &Ctx) -> CaseResult {
    not_reference(
        ctx,
        "the reference moves another address's routes too, and its DEL gives main nothing back",
    )?;
    // The prevResult lists no route while main's default is the link's;
    // another address's routes stay.
    let p = pod("sbr-exact")?;
    ip(
        &p.ctr,
        &[
            "addr add 10.3.0.2/24 dev eth0",
            "route add 192.0.2.0/24 via 10.3.0.1 dev eth0",
        ],
    )?;
    let before = p.states()?;
    let mut conf = sbr_conf("1.0.0", Some(p.prev_result("1.0.0")));
    if let Some(prev) = conf["prevResult"].as_object_mut() {
        prev.remove("routes");
    }
    let out = run(ctx, &p, "ADD", &conf)?;
    for route in [
        "route 192.0.2.0/24 via 10.3.0.1 dev eth0",
        "route 10.3.0.0/24 dev eth0 src 10.3.0.2 scope link",
    ] {
        let warning = format!("{route} stays in table main: it belongs to no address of eth0");
        has_line("stderr", &out.stderr_text(), &warning)?;
    }
    let main = ip(&p.ctr, &["route"])?;
    has_line("main", &main, "192.0.2.0/24 via 10.3.0.1 dev eth0")?;
    has_line(
        "main",
        &main,
        "10.3.0.0/24 dev eth0 proto kernel scope link src 10.3.0.2",
    )?;
    ensure(
        !main.contains("10.250.0.0/24") && !main.contains("default"),
        || format!("main kept eth0's routes: {main}"),
    )?;
    run(ctx, &p, "CHECK", &conf)?;
    run(ctx, &p, "DEL", &conf)?;
    unchanged(&p.states()?, &before, "DEL did not give main back exactly")?;

    // The prevResults list a default that main never had through net1 or
    // net2; net2's DEL has no prevResult.
    let p = pod("sbr-exact2")?;
    let (net1, mut c1) = sbr_link(&p, "net1", "vh1", 1, "10.250.1.2")?;
    let (net2, mut c2) = sbr_link(&p, "net2", "vh2", 2, "10.250.2.2")?;
    for c in [&mut c1, &mut c2] {
        c["prevResult"]["routes"] = json!([{"dst": "0.0.0.0/0"}]);
    }
    ip(
        &p.ctr,
        &["route add 198.51.100.0/24 via 10.250.1.1 dev net1 proto 83"],
    )?;
    let before = p.states()?;
    run(ctx, &net1, "ADD", &c1)?;
    run(ctx, &net2, "ADD", &c2)?;
    run(ctx, &net1, "DEL", &c1)?;
    run(ctx, &net2, "DEL", &sbr_conf("1.0.0", None))?;
    unchanged(&p.states()?, &before, "DEL of net1 and net2 did not restore")?;

    // Someone's route in sbr's table and rule into it after ADD stay.
    let main_before = ip(&p.ctr, &["route"])?;
    run(ctx, &net1, "ADD", &c1)?;
    ip(
        &p.ctr,
        &[
            "route add default via 10.250.1.254 dev net1 metric 5 table 100 proto static onlink",
            "rule add from 10.250.1.2 lookup 100 proto static pref 500",
        ],
    )?;
    run(ctx, &net1, "DEL", &c1)?;
    let main = ip(&p.ctr, &["route"])?;
    ensure(main == main_before, || {
        format!("main after DEL:\n{main}\nbefore ADD:\n{main_before}")
    })?;
    let t100 = ip(&p.ctr, &["route show table 100"])?;
    ensure(
        t100.trim() == "default via 10.250.1.254 dev net1 proto static metric 5 onlink",
        || format!("table 100 after DEL: {t100}"),
    )?;
    has_line(
        "rules",
        &ip(&p.ctr, &["rule"])?,
        "500:\tfrom 10.250.1.2 lookup 100 proto static",
    )?;
    has_line("route get", &ip(&p.ctr, &["route get 192.0.2.1"])?, "dev eth0")?;

    // net2's link gone: DEL succeeds and removes the rule of its address.
    run(ctx, &net2, "ADD", &c2)?;
    ip(&p.ctr, &["link del net2"])?;
    run(ctx, &net2, "DEL", &c2)?;
    let rules = ip(&p.ctr, &["rule"])?;
    ensure(!rules.contains("10.250.2.2"), || {
        format!("net2's rule left: {rules}")
    })
}

/// IPs only for another interface: the reference's ADD succeeds too (and
/// strips main of the link's routes with no rule instead); sbr changes
/// nothing, says so, and passes the prevResult on.
fn other_interface(ctx: &Ctx) -> CaseResult {
    let p = pod("sbr-otherif")?;
    let before = p.states()?;
    let mut prev = p.prev_result("1.0.0");
    prev["interfaces"] = json!([{"name": "eth1"}]);
    prev["ips"] = json!([{"address": "10.0.0.2/24", "interface": 0}]);
    let conf = sbr_conf("1.0.0", Some(prev.clone()));
    let out = run(ctx, &p, "ADD", &conf)?;
    let r = out.stdout_json().unwrap_or_default();
    ensure(r["ips"] == prev["ips"], || {
        format!("the prevResult is not passed on: {r}")
    })?;
    if ctx.is_reference() {
        return Ok(());
    }
    has_line("stderr", &out.stderr_text(), "no ip address for eth0")?;
    unchanged(&p.states()?, &before, "ADD changed the pod")?;
    run(ctx, &p, "CHECK", &conf)?;
    run(ctx, &p, "DEL", &conf)?;
    unchanged(&p.states()?, &before, "DEL changed the pod")
}

/// `ip route get` from `src` to each of `dsts`, without IPv6's `pref`.
fn lookups(ns: &Ns, src: &str, dsts: &[&str]) -> Result<Vec<String>, String> {
    dsts.iter()
        .map(|d| {
            let out = ip(ns, &[&format!("route get {d} from {src}")])?;
            Ok(out.split(" pref").next().unwrap_or_default().to_string())
        })
        .collect()
}

/// Deletes the markers (throw routes) of `table` in `family`.
fn drop_markers(ns: &Ns, family: &str, table: &str) -> Result<(), String> {
    for m in ip(ns, &[&format!("{family} route show table {table}")])?
        .lines()
        .filter(|l| l.starts_with("throw "))
    {
        let m: Vec<&str> = m
            .split_whitespace()
            .filter(|w| !["pref", "medium"].contains(w))
            .collect();
        ip(
            ns,
            &[&format!("{family} route del {} table {table}", m.join(" "))],
        )?;
    }
    Ok(())
}

/// Fails unless table 100 of `family` has the `throws` markers, each
/// lookup from `src` to a destination goes the way paired with it, and
/// every lookup stays the same once the markers are gone.
fn same_lookups(ns: &Ns, family: &str, throws: &[&str], src: &str, want: &[(&str, &str)]) -> CaseResult {
    let t100 = ip(ns, &[&format!("{family} route show table 100")])?;
    for t in throws {
        has_line("table 100", &t100, t)?;
    }
    let dsts: Vec<&str> = want.iter().map(|w| w.0).collect();
    let with = lookups(ns, src, &dsts)?;
    ensure(with.iter().zip(want).all(|(w, x)| w.contains(x.1)), || {
        format!("{with:?}")
    })?;
    drop_markers(ns, family, "100")?;
    ensure(lookups(ns, src, &dsts)? == with, || {
        "the markers changed a lookup".into()
    })
}

/// The markers (throw routes, protocol 83, metric above 2^31) ADD puts
/// beside the routes it moved change no lookup: with and without them the
/// kernel picks the same route, and DEL still restores without them.
fn markers(ctx: &Ctx) -> CaseResult {
    not_reference(ctx, "the reference puts no markers")?;
    let p = pod("sbr-mark")?;
    let (net1, c1) = sbr_link(&p, "net1", "vh1", 1, "10.250.1.2")?;
    ip(&p.ctr, &["route add 198.51.100.0/24 via 10.250.1.1 dev net1"])?;
    run(ctx, &net1, "ADD", &c1)?;
    same_lookups(
        &p.ctr,
        "-4",
        &[
            "throw 10.250.1.0/24 proto 83 metric 2147483648",
            "throw 198.51.100.0/24 proto 83 metric 2147483648",
        ],
        "10.250.1.2",
        &[
            ("10.250.1.9", "dev net1 table 100"),
            ("198.51.100.7", "via 10.250.1.1 dev net1 table 100"),
            ("192.0.2.1", "via 10.250.1.1 dev net1 table 100"),
        ],
    )?;

    // IPv6, where the kernel keeps a throw route on lo.
    let p = pod("sbr-mark6")?;
    add_v6(&p)?;
    ip(&p.ctr, &["-6 route add fd00:250:5::/64 via fd00:250::1 dev eth0"])?;
    let before = p.states()?;
    let conf = conf_with(
        &p,
        Some(json!([ip_of("fd00:250::2/64", Some("fd00:250::1"))])),
        json!({}),
    );
    run(ctx, &p, "ADD", &conf)?;
    // Metrics 256 (the kernel's subnet route) and 1024 (`ip route add`).
    same_lookups(
        &p.ctr,
        "-6",
        &[
            "throw fd00:250::/64 dev lo proto 83 metric 2147483904",
            "throw fd00:250:5::/64 dev lo proto 83 metric 2147484672",
        ],
        "fd00:250::2",
        &[
            ("fd00:250::9", "dev eth0 table 100"),
            ("fd00:250:5::7", "via fd00:250::1 dev eth0 table 100"),
            ("fd00:250:9::1", "via fd00:250::1 dev eth0 table 100"),
        ],
    )?;
    run(ctx, &p, "DEL", &conf)?;
    unchanged(&p.states()?, &before, "DEL without the markers did not restore")
}

/// The /32 layout: the address alone in its subnet reaches its gateway
/// 169.254.1.1 through a link route. Main's default via it is the
/// address's: it moves into the table in place of sbr's own; with no
/// gateway in the prevResult it is no one's and stays in main, where the
/// table's miss falls through. Either way the pod keeps a way out.
fn slash32(ctx: &Ctx) -> CaseResult {
    not_reference(
        ctx,
        "the reference's DEL does not give main the /32 layout's routes back",
    )?;
    let p = Pod::new("sbr-s32")?;
    ip(
        &p.ctr,
        &[
            "addr del 10.250.0.2/24 dev eth0",
            "addr add 10.5.0.7/32 dev eth0",
            "route add 169.254.1.1 dev eth0 scope link",
            "route add default via 169.254.1.1 dev eth0",
        ],
    )?;
    ip(
        &p.host,
        &[
            "addr add 169.254.1.1/32 dev vh0",
            "route add 10.5.0.7/32 dev vh0",
            "addr add 10.99.0.1/32 dev lo",
        ],
    )?;
    let before = p.states()?;
    for gateway in [Some("169.254.1.1"), None] {
        let conf = conf_with(&p, Some(json!([ip_of("10.5.0.7/32", gateway)])), json!({}));
        run(ctx, &p, "ADD", &conf)?;
        let (t100, main) = (ip(&p.ctr, &["route show table 100"])?, ip(&p.ctr, &["route"])?);
        has_line("table 100", &t100, "169.254.1.1 dev eth0 scope link")?;
        let mains_default = t100
            .lines()
            .any(|l| l.starts_with("default via 169.254.1.1 dev eth0") && !l.contains("proto"));
        let ok = match gateway {
            Some(_) => mains_default && !main.contains("eth0"),
            None => !t100.contains("default") && main.contains("default via 169.254.1.1 dev eth0"),
        };
        ensure(ok, || {
            format!("gateway {gateway:?}: table 100:\n{t100}main:\n{main}")
        })?;
        run(ctx, &p, "CHECK", &conf)?;
        p.ctr
            .try_exec(&["ping", "-c", "1", "-W", "2", "-I", "10.5.0.7", "10.99.0.1"])?;
        run(ctx, &p, "DEL", &conf)?;
        unchanged(
            &p.states()?,
            &before,
            &format!("gateway {gateway:?}: DEL did not restore"),
        )?;
    }
    Ok(())
}

/// Only a namespace that is gone is nothing to do for DEL: a stale file
/// where it was is too, a path that cannot be opened (a symlink loop here,
/// ELOOP, as EACCES or EMFILE) is code 4 naming the path, so the runtime
/// retries instead of leaking the rules.
fn netns_unopenable(ctx: &Ctx) -> CaseResult {
    not_reference(
        ctx,
        "the reference fails DEL on a stale netns file (code 999, unknown FS magic)",
    )?;
    let p = pod("sbr-nsopen")?;
    let dir = ctx.scratch("sbr-nsopen")?;
    let (stale, a, b) = (dir.join("stale"), dir.join("a"), dir.join("b"));
    let made = std::fs::write(&stale, b"")
        .and_then(|()| std::os::unix::fs::symlink(&b, &a))
        .and_then(|()| std::os::unix::fs::symlink(&a, &b));
    made.map_err(|e| format!("failed to make the netns paths: {e}"))?;
    let conf = crate::suite::pod::bytes(&sbr_conf("1.0.0", Some(p.prev_result("1.0.0"))));
    let dir = ctx.dir.display().to_string();
    let del = |netns: &std::path::Path| {
        let mut env = p.env("DEL", &dir);
        env.retain(|(k, _)| k != "CNI_NETNS");
        env.push(("CNI_NETNS".into(), netns.display().to_string()));
        ctx.invoke("sbr", &p.host, &env, &conf)
    };
    ok("DEL with a stale file", &del(&stale)?)?;
    let out = del(&a)?;
    let e = out.error().ok_or("DEL through a symlink loop succeeded")?;
    let path = a.display().to_string();
    ensure(
        e.code == Some(4) && e.msg.contains("failed to open network namespace") && e.msg.contains(&path),
        || format!("DEL through a symlink loop: want code 4 naming {path}, got {e}"),
    )
}
