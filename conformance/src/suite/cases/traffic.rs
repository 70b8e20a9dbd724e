//! Traffic through a multi-homed pod, decided by packets. eth0 leads to a
//! management router and owns the main table; net1 leads to a second router,
//! the only way to a peer; every namespace filters reverse paths strictly
//! (`rp_filter=1`). Without sbr the peer's pings and TCP connections to
//! net1's address get no answer: the pod drops IPv4 requests itself (their
//! reverse path is eth0), and IPv6 replies leave through eth0 and die at the
//! management router, which has no route to the peer. With sbr they are
//! answered while the management path keeps working; after DEL they are
//! lost again. The options `table`, `gateways` and `addSourceHints` each get
//! the traffic they exist for. A directory that ignores an option fails;
//! the reference, which has none of them (v1.1.1), is skipped with the
//! reason.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};

use super::call;
use super::sbr::rule_table;
use crate::suite::pod::Pod;
use crate::suite::probe::{counters, grew, have_ping, ping, route_dev, route_get, tcp, PINGS};
use crate::suite::{ensure, ok, Case, CaseResult, Ctx, Failure};
use cni_testkit::state::{text, State};
use cni_testkit::Ns;

pub fn cases() -> Vec<Case> {
    vec![
        Case::new(
            "traffic",
            "dual stack: peer behind net1 answered only with sbr",
            plain,
        ),
        Case::new(
            "traffic",
            "option table: rules select the operator's table",
            option_table,
        ),
        Case::new(
            "traffic",
            "option gateways: the table's default route",
            option_gateways,
        ),
        Case::new(
            "traffic",
            "option addSourceHints: unbound sockets reach net1's subnet",
            option_hints,
        ),
    ]
}

/// One address family of the site.
pub(super) struct Family {
    pub(super) name: &'static str,
    pub(super) flag: &'static str,
    pub(super) eth0: &'static str,
    pub(super) eth0_gw: &'static str,
    pub(super) net1: &'static str,
    pub(super) net1_gw: &'static str,
    pub(super) net1_subnet: &'static str,
    pub(super) prefix: u8,
    pub(super) peer: &'static str,
}

/// `Pod::attach` gives eth0 10.250.0.2/24 and net1 10.250.1.2/24.
pub(super) const FAMILIES: [Family; 2] = [
    Family {
        name: "IPv4",
        flag: "-4",
        eth0: "10.250.0.2",
        eth0_gw: "10.250.0.1",
        net1: "10.250.1.2",
        net1_gw: "10.250.1.1",
        net1_subnet: "10.250.1.0/24",
        prefix: 24,
        peer: "203.0.113.10",
    },
    Family {
        name: "IPv6",
        flag: "-6",
        eth0: "fd00:250::2",
        eth0_gw: "fd00:250::1",
        net1: "fd00:250:1::2",
        net1_gw: "fd00:250:1::1",
        net1_subnet: "fd00:250:1::/64",
        prefix: 64,
        peer: "2001:db8:113::10",
    },
];

/// The port the peer connects to on net1's address (SIP's).
pub(super) const PORT: u16 = 5060;
pub(super) const TCP_WAIT: Duration = Duration::from_secs(1);

/// The pod, its two routers and the peer. Dropping it deletes the namespaces.
pub(super) struct Site {
    pub(super) mgmt: Arc<Ns>,
    pub(super) pod: Arc<Ns>,
    pub(super) peer: Arc<Ns>,
    pub(super) net1: Pod,
}

/// rp_filter=1 and no DAD for every interface the namespace will have.
fn strict(ns: &Ns) -> Result<(), String> {
    for key in ["all", "default"] {
        ns.try_exec(&[
            "sysctl",
            "-qw",
            &format!("net.ipv4.conf.{key}.rp_filter=1"),
            &format!("net.ipv6.conf.{key}.accept_dad=0"),
        ])?;
    }
    Ok(())
}

impl Site {
    pub(super) fn new(container_id: &str) -> Result<Site, String> {
        let [mgmt, pod, sip, peer] = [
            Ns::try_new("cnf")?,
            Ns::try_new("cnf")?,
            Ns::try_new("cnf")?,
            Ns::try_new("cnf")?,
        ]
        .map(Arc::new);
        for ns in [&mgmt, &pod, &sip, &peer] {
            strict(ns)?;
        }
        for router in [&mgmt, &sip] {
            router.try_exec(&[
                "sysctl",
                "-qw",
                "net.ipv4.ip_forward=1",
                "net.ipv6.conf.all.forwarding=1",
            ])?;
        }
        let eth0 = Pod::attach(mgmt.clone(), pod.clone(), container_id, "eth0", "vh0", 0)?;
        let net1 = Pod::attach(sip.clone(), pod.clone(), container_id, "net1", "vh1", 1)?;
        let v6 = &FAMILIES[1];
        mgmt.try_ip(&[
            "-6",
            "addr",
            "add",
            &format!("{}/64", v6.eth0_gw),
            "dev",
            "vh0",
            "nodad",
        ])?;
        pod.try_ip(&[
            "-6",
            "addr",
            "add",
            &format!("{}/64", v6.eth0),
            "dev",
            "eth0",
            "nodad",
        ])?;
        sip.try_ip(&[
            "-6",
            "addr",
            "add",
            &format!("{}/64", v6.net1_gw),
            "dev",
            "vh1",
            "nodad",
        ])?;
        pod.try_ip(&[
            "-6",
            "addr",
            "add",
            &format!("{}/64", v6.net1),
            "dev",
            "net1",
            "nodad",
        ])?;
        // The main table's default routes belong to eth0, as the first
        // network's plugin leaves them.
        eth0.default_route()?;
        pod.try_ip(&["-6", "route", "add", "default", "via", v6.eth0_gw, "dev", "eth0"])?;
        // The peer, behind net1's router only.
        sip.try_ip(&[
            "link", "add", "up0", "type", "veth", "peer", "name", "eth0", "netns", &peer.name,
        ])?;
        sip.try_ip(&["addr", "add", "203.0.113.1/24", "dev", "up0"])?;
        sip.try_ip(&["-6", "addr", "add", "2001:db8:113::1/64", "dev", "up0", "nodad"])?;
        sip.try_ip(&["link", "set", "up0", "up"])?;
        peer.try_ip(&["addr", "add", "203.0.113.10/24", "dev", "eth0"])?;
        peer.try_ip(&["-6", "addr", "add", "2001:db8:113::10/64", "dev", "eth0", "nodad"])?;
        peer.try_ip(&["link", "set", "eth0", "up"])?;
        peer.try_ip(&["route", "add", "default", "via", "203.0.113.1"])?;
        peer.try_ip(&["-6", "route", "add", "default", "via", "2001:db8:113::1"])?;
        Ok(Site {
            mgmt,
            pod,
            peer,
            net1,
        })
    }

    /// net1's prevResult as the interface plugin returns it: both
    /// addresses, with their gateways when `gateways`, and no routes (the
    /// main table's default is eth0's).
    pub(super) fn prev_result(&self, gateways: bool) -> Value {
        let ips: Vec<Value> = FAMILIES
            .iter()
            .map(|f| {
                let mut ip = json!({"address": format!("{}/{}", f.net1, f.prefix), "interface": 1});
                if gateways {
                    ip["gateway"] = json!(f.net1_gw);
                }
                ip
            })
            .collect();
        json!({
            "cniVersion": "1.0.0",
            "interfaces": [{"name": "vh1"}, {"name": "net1", "sandbox": self.net1.netns()}],
            "ips": ips,
            "dns": {}
        })
    }

    /// An sbr config for net1 with the `extra` fields.
    pub(super) fn conf(&self, extra: Value, prev: Value) -> Value {
        let mut c = json!({"cniVersion": "1.0.0", "name": "sip", "type": "sbr"});
        if let (Some(c), Some(x)) = (c.as_object_mut(), extra.as_object()) {
            c.extend(x.clone());
        }
        c["prevResult"] = prev;
        c
    }
}

/// Per family: echo replies the peer got from net1's address, and whether a
/// TCP connection to it formed; all probes at once.
fn probe_peer(s: &Site) -> Result<Vec<(u32, bool)>, String> {
    std::thread::scope(|scope| {
        let handles: Vec<_> = FAMILIES
            .iter()
            .map(|f| {
                let pings = scope.spawn(|| ping(&s.peer, f.net1, None));
                let conn = scope.spawn(|| {
                    let addr: IpAddr = f.net1.parse().map_err(|e| format!("{}: {e}", f.net1))?;
                    tcp(&s.pod, &s.peer, addr, PORT, TCP_WAIT)
                });
                (pings, conn)
            })
            .collect();
        handles
            .into_iter()
            .map(|(p, c)| {
                let p = p.join().map_err(|_| "ping thread panicked".to_string())??;
                let c = c.join().map_err(|_| "tcp thread panicked".to_string())??;
                Ok((p, c))
            })
            .collect()
    })
}

type Counters = std::collections::HashMap<String, u64>;

/// What one probe of the peer saw: per family the answers and whether TCP
/// connected, and the counters of the pod and the management router around it.
struct Probe {
    results: Vec<(u32, bool)>,
    pod: (Counters, Counters),
    mgmt: (Counters, Counters),
}

impl Probe {
    fn grew(&self, ns: &str, name: &str) -> u64 {
        let (before, after) = if ns == "pod" { &self.pod } else { &self.mgmt };
        grew(before, after, name)
    }
}

/// The replies to the peer must leave through `dev`; then the peer probes.
fn probe(s: &Site, dev: &str, why: &str, when: &str) -> Result<Probe, Failure> {
    for f in &FAMILIES {
        let have = route_dev(&s.pod, f.peer, Some(f.net1))?;
        ensure(have == dev, || {
            format!(
                "{when}: replies from {} to the peer {} would leave through {have}, want {dev}{why}",
                f.net1, f.peer
            )
        })?;
    }
    let (pod0, mgmt0) = (counters(&s.pod)?, counters(&s.mgmt)?);
    let results = probe_peer(s)?;
    let (pod1, mgmt1) = (counters(&s.pod)?, counters(&s.mgmt)?);
    Ok(Probe {
        results,
        pod: (pod0, pod1),
        mgmt: (mgmt0, mgmt1),
    })
}

/// Without sbr (before ADD, after DEL): the replies' route is eth0 and the
/// peer gets no answer; the counters say where the packets died.
pub(super) fn lost(s: &Site, when: &str) -> CaseResult {
    let p = probe(s, "eth0", " (the main table's default)", when)?;
    for (f, (answers, connected)) in FAMILIES.iter().zip(&p.results) {
        ensure(*answers == 0, || {
            format!(
                "{when}: the peer got {answers} of {PINGS} answers from {} ({}), want none",
                f.net1, f.name
            )
        })?;
        ensure(!connected, || {
            format!(
                "{when}: the peer's TCP connection to {} formed, want none",
                f.net1
            )
        })?;
    }
    let dropped4 = p.grew("pod", "TcpExtIPReversePathFilter");
    ensure(dropped4 >= u64::from(PINGS), || {
        format!(
            "{when}: the pod's rp_filter dropped {dropped4} IPv4 packets, want at least {PINGS} (the peer's requests, whose reverse path is eth0)"
        )
    })?;
    let dropped6 = p.grew("management router", "Ip6InNoRoutes");
    ensure(dropped6 >= u64::from(PINGS), || {
        format!(
            "{when}: the management router dropped {dropped6} IPv6 packets without a route, want at least {PINGS} (the replies that left through eth0)"
        )
    })
}

/// With sbr: the replies leave through net1 and arrive, nothing reaches the
/// management router on their account, and the management path works.
fn symmetric(s: &Site, when: &str) -> CaseResult {
    let p = probe(s, "net1", "", when)?;
    for (f, (answers, connected)) in FAMILIES.iter().zip(&p.results) {
        ensure(*answers == PINGS, || {
            format!(
                "{when}: the peer got {answers} of {PINGS} answers from {} ({})",
                f.net1, f.name
            )
        })?;
        ensure(*connected, || {
            format!(
                "{when}: the peer's TCP connection to {}:{PORT} did not form",
                f.net1
            )
        })?;
    }
    for (ns, name) in [
        ("pod", "TcpExtIPReversePathFilter"),
        ("management router", "IpExtInNoRoutes"),
        ("management router", "Ip6InNoRoutes"),
    ] {
        let n = p.grew(ns, name);
        ensure(n == 0, || {
            format!("{when}: {name} of the {ns} grew by {n}, want 0")
        })?;
    }
    management_path(s, when)
}

/// Fails unless `who` in `from` got every answer from `dst` (`whom`).
pub(super) fn all_answered(from: &Ns, who: &str, dst: &str, whom: &str, when: &str) -> CaseResult {
    let n = ping(from, dst, None)?;
    ensure(n == PINGS, || {
        format!("{when}: {who} got {n} of {PINGS} answers from {whom}")
    })
}

/// The pod and the management router answer each other over eth0.
pub(super) fn management_path(s: &Site, when: &str) -> CaseResult {
    for f in &FAMILIES {
        let router = format!("the management router {}", f.eth0_gw);
        all_answered(&s.pod, "the pod", f.eth0_gw, &router, when)?;
        let eth0 = format!("eth0's {}", f.eth0);
        all_answered(&s.mgmt, "the management router", f.eth0, &eth0, when)?;
    }
    Ok(())
}

/// A failure, not a skip: a missing tool must not pass for a plugin in CI.
pub(super) fn need_ping() -> CaseResult {
    ensure(have_ping(), || {
        "ping (iputils-ping) is not installed; scripts/test installs it".into()
    })
}

/// An option the plugin did not apply: a skip for the reference, which
/// has none of them, a failure for anyone else.
fn ignored(ctx: &Ctx, option: &str, what: String) -> CaseResult {
    if ctx.is_reference() {
        Err(Failure::Skip(format!(
            "the reference has no `{option}` option (v1.1.1 ignores the field): {what}"
        )))
    } else {
        Err(Failure::Fail(format!("`{option}` was not applied: {what}")))
    }
}

pub(super) fn add(ctx: &Ctx, s: &Site, conf: &Value) -> CaseResult {
    ok("ADD", &call(ctx, "sbr", &s.net1, "ADD", conf)?).map(|_| ())
}

pub(super) fn del(ctx: &Ctx, s: &Site, conf: &Value) -> CaseResult {
    ok("DEL", &call(ctx, "sbr", &s.net1, "DEL", conf)?).map(|_| ())
}

fn plain(ctx: &Ctx) -> CaseResult {
    need_ping()?;
    let s = Site::new("traffic-plain")?;
    lost(&s, "before ADD")?;
    let conf = s.conf(json!({}), s.prev_result(true));
    add(ctx, &s, &conf)?;
    symmetric(&s, "after ADD")?;
    del(ctx, &s, &conf)?;
    lost(&s, "after DEL")
}

/// `table: N`: sbr adds only the rules; the operator provides the table.
fn option_table(ctx: &Ctx) -> CaseResult {
    const TABLE: &str = "500";
    need_ping()?;
    let s = Site::new("traffic-table")?;
    let operator_routes = |f: &Family| -> [Vec<&str>; 2] {
        [
            vec![
                f.flag,
                "route",
                "add",
                f.net1_subnet,
                "dev",
                "net1",
                "src",
                f.net1,
                "table",
                TABLE,
            ],
            vec![
                f.flag, "route", "add", "default", "via", f.net1_gw, "dev", "net1", "table", TABLE,
            ],
        ]
    };
    for f in &FAMILIES {
        for r in operator_routes(f) {
            s.pod.try_ip(&r)?;
        }
    }
    let table_before = State::read(&s.pod)?.routes_in(TABLE);
    // No rule selects the table yet: it changes nothing.
    lost(&s, "before ADD")?;
    let conf = s.conf(json!({"table": 500}), s.prev_result(true));
    add(ctx, &s, &conf)?;
    let st = State::read(&s.pod)?;
    for f in &FAMILIES {
        let t = rule_table(&st, f.net1)?;
        if t != TABLE {
            return ignored(
                ctx,
                "table",
                format!("the rule from {} selects table {t}, not {TABLE}", f.net1),
            );
        }
        let main: Vec<Value> = st
            .routes_in("main")
            .into_iter()
            .filter(|r| text(r, "dst") == f.net1_subnet && text(r, "dev") == "net1")
            .collect();
        ensure(!main.is_empty(), || {
            format!(
                "{} left the main table: with `table` sbr moves no routes",
                f.net1_subnet
            )
        })?;
    }
    symmetric(&s, "after ADD")?;
    del(ctx, &s, &conf)?;
    let table_after = State::read(&s.pod)?.routes_in(TABLE);
    ensure(table_after == table_before, || {
        format!("DEL changed the operator's table {TABLE}: {table_before:?} became {table_after:?}")
    })?;
    lost(&s, "after DEL")
}

/// `gateways`: an IPAM without gateways (static addresses, say); only the
/// configured gateways give net1's table its default route.
fn option_gateways(ctx: &Ctx) -> CaseResult {
    need_ping()?;
    let s = Site::new("traffic-gws")?;
    lost(&s, "before ADD")?;
    let gateways: Vec<&str> = FAMILIES.iter().map(|f| f.net1_gw).collect();
    let conf = s.conf(json!({ "gateways": gateways }), s.prev_result(false));
    add(ctx, &s, &conf)?;
    let st = State::read(&s.pod)?;
    for f in &FAMILIES {
        let t = rule_table(&st, f.net1)?;
        let has_default = st.routes_in(&t).iter().any(|r| {
            text(r, "dst") == "default" && text(r, "gateway") == f.net1_gw && text(r, "dev") == "net1"
        });
        if !has_default {
            return ignored(
                ctx,
                "gateways",
                format!(
                    "table {t} has no default route via {} (the prevResult names no gateway)",
                    f.net1_gw
                ),
            );
        }
    }
    symmetric(&s, "after ADD")?;
    del(ctx, &s, &conf)?;
    lost(&s, "after DEL")
}

/// `addSourceHints`: net1's subnet stays in main with net1's address as
/// source, so a socket bound to nothing reaches a neighbour on net1's
/// subnet with the right source, and the answer comes back.
fn option_hints(ctx: &Ctx) -> CaseResult {
    need_ping()?;
    let s = Site::new("traffic-hints")?;
    lost(&s, "before ADD")?;
    let conf = s.conf(json!({"addSourceHints": true}), s.prev_result(true));
    add(ctx, &s, &conf)?;
    let st = State::read(&s.pod)?;
    for f in &FAMILIES {
        let hinted = st.routes_in("main").iter().any(|r| {
            text(r, "dst") == f.net1_subnet && text(r, "dev") == "net1" && text(r, "prefsrc") == f.net1
        });
        if !hinted {
            return ignored(
                ctx,
                "addSourceHints",
                format!("main has no route to {} with source {}", f.net1_subnet, f.net1),
            );
        }
    }
    symmetric(&s, "after ADD")?;
    for f in &FAMILIES {
        let r = route_get(&s.pod, f.net1_gw, None)?;
        ensure(text(&r, "dev") == "net1" && text(&r, "prefsrc") == f.net1, || {
            format!(
                "an unbound socket's route to net1's neighbour {} is {r}, want dev net1 with source {}",
                f.net1_gw, f.net1
            )
        })?;
        let neighbour = format!("net1's neighbour {}", f.net1_gw);
        all_answered(
            &s.pod,
            "an unbound ping from the pod",
            f.net1_gw,
            &neighbour,
            "after ADD",
        )?;
    }
    del(ctx, &s, &conf)?;
    lost(&s, "after DEL")
}
