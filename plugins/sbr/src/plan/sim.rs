//! Fixtures and a small model of the kernel for the planners' tests: plans
//! are applied to a snapshot as the kernel would apply them.
#![allow(clippy::unwrap_used)]

use std::net::IpAddr;

use ipnet::IpNet;
use nl_ops::route::{
    Route, RT_SCOPE_LINK, RT_SCOPE_UNIVERSE, RT_TABLE_DEFAULT, RT_TABLE_LOCAL, RT_TABLE_MAIN,
};
use nl_ops::rule::Rule;

use super::*;
use crate::config::Config;

pub(super) const NET1: u32 = 3;
pub(super) const ETH0: u32 = 2;
pub(super) use nl_ops::route::RTN_LOCAL;
pub(super) use nl_ops::route::RTPROT_KERNEL;

pub(super) fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}

pub(super) fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

pub(super) fn route(dst: &str, gw: Option<&str>, src: Option<&str>, oif: u32, table: u32) -> Route {
    let dst = if dst == "default" {
        "0.0.0.0/0"
    } else if dst == "default6" {
        "::/0"
    } else {
        dst
    };
    let d = net(dst);
    Route {
        dst: d,
        gateway: gw.map(ip),
        prefsrc: src.map(ip),
        oif: Some(oif),
        table,
        scope: if gw.is_none() && d.prefix_len() != 0 && is_v4(&d) {
            RT_SCOPE_LINK
        } else {
            RT_SCOPE_UNIVERSE
        },
        metric: if is_v4(&d) {
            None
        } else {
            Some(if gw.is_none() { 256 } else { 1024 })
        },
        protocol: if gw.is_none() { RTPROT_KERNEL } else { RTPROT_BOOT },
        kind: RTN_UNICAST,
        tos: 0,
        metrics: Vec::new(),
        other_nexthop: false,
    }
}

/// A rule as `ip rule add` (or the reference) makes it: protocol unspec;
/// the kernel's own rules carry protocol kernel.
pub(super) fn rule(v4: bool, src: Option<&str>, table: u32, prio: u32) -> Rule {
    Rule {
        v4,
        src: src.map(net),
        table,
        priority: Some(prio),
        action: FR_ACT_TO_TBL,
        protocol: if src.is_none() {
            RTPROT_KERNEL
        } else {
            RTPROT_UNSPEC
        },
        other_selectors: false,
    }
}

/// The rule sbr makes, as a dump shows it.
pub(super) fn sbr_rule(v4: bool, src: &str, table: u32, prio: u32) -> Rule {
    Rule {
        protocol: RTPROT_SBR,
        ..rule(v4, Some(src), table, prio)
    }
}

pub(super) fn default_rules() -> Vec<Rule> {
    let mut v = Vec::new();
    for v4 in [true, false] {
        v.push(rule(v4, None, 255, 0));
        v.push(rule(v4, None, 254, 32766));
        if v4 {
            v.push(rule(v4, None, RT_TABLE_DEFAULT, 32767));
        }
    }
    v
}

/// net1 10.1.0.2/24 with default via 10.1.0.1 beside eth0 10.0.0.2/24.
pub(super) fn snap() -> Snapshot {
    let mut local = route("10.1.0.2/32", None, Some("10.1.0.2"), NET1, 255);
    local.kind = RTN_LOCAL;
    local.scope = 254;
    Snapshot {
        ifname: "net1".into(),
        link: Some(NET1),
        link_addresses: vec![net("10.1.0.2/24"), net("fe80::1/64")],
        routes: vec![
            route("default", Some("10.0.0.1"), None, ETH0, 254),
            route("10.0.0.0/24", None, Some("10.0.0.2"), ETH0, 254),
            route("10.1.0.0/24", None, Some("10.1.0.2"), NET1, 254),
            route("10.9.0.0/16", Some("10.1.0.1"), None, NET1, 254),
            route("fe80::/64", None, None, NET1, 254),
            local,
        ],
        rules: default_rules(),
        ..Snapshot::default()
    }
}

pub(super) fn addr(a: &str, gw: Option<&str>) -> Address {
    Address {
        addr: net(a),
        gateway: gw.map(ip),
    }
}

pub(super) fn cfg(v: serde_json::Value) -> Config {
    Config::from_json(&v).unwrap()
}

pub(super) fn lines(plan: &Plan) -> Vec<String> {
    plan.lines("net1")
}

/// Applies a plan to the observation as the kernel would (enough for
/// convergence tests).
pub(super) fn simulate(obs: &Snapshot, plan: &Plan) -> Snapshot {
    simulate_changes(obs, plan.changes())
}

/// What ADD's rollback runs when the step after the first `k` fails.
pub(super) fn rollback_of(plan: &Plan, k: usize) -> Vec<Change> {
    plan.steps[..k]
        .iter()
        .rev()
        .filter_map(|s| s.undo.clone())
        .collect()
}

pub(super) fn simulate_changes<'a>(
    obs: &Snapshot,
    changes: impl IntoIterator<Item = &'a Change>,
) -> Snapshot {
    let mut o = obs.clone();
    for op in changes {
        match op {
            Change::AddRule(r) => {
                let mut r = r.clone();
                r.priority = r.priority.or(Some(32765));
                o.rules.push(r);
            }
            Change::DelRule(r) => {
                // The kernel's match: what the request names.
                let i = o
                    .rules
                    .iter()
                    .position(|x| {
                        x.src == r.src
                            && x.table == r.table
                            && (r.protocol == 0 || x.protocol == r.protocol)
                            && (r.priority.is_none() || x.priority == r.priority)
                    })
                    .expect("rule to delete exists");
                o.rules.remove(i);
            }
            Change::AddRoute(r) => {
                assert!(!o.routes.iter().any(|x| same_key(x, r)), "duplicate add of {r:?}");
                // Dumps report the metric the kernel gave an IPv6 route.
                let metric = if is_v4(&r.dst) {
                    r.metric
                } else {
                    Some(metric_of(r))
                };
                // The kernel reports an IPv6 throw route on lo.
                let oif = if r.kind == RTN_THROW && !is_v4(&r.dst) {
                    Some(1)
                } else {
                    r.oif
                };
                o.routes.push(Route {
                    metric,
                    oif,
                    ..r.clone()
                });
            }
            Change::AppendRoute(r) => {
                assert!(
                    !o.routes.iter().any(|x| same_route(x, r)),
                    "duplicate append of {r:?}"
                );
                o.routes.push(r.clone());
            }
            Change::AddVrf(v) => {
                assert!(!o.vrfs.iter().any(|x| x.name == v.name), "duplicate vrf {v:?}");
                let index = 100 + o.vrfs.iter().map(|x| x.index).max().unwrap_or(0);
                o.vrfs.push(VrfLink {
                    index,
                    name: v.name.clone(),
                    table: v.table,
                    ours: true,
                    ports: Vec::new(),
                });
            }
            Change::DelVrf(v) => {
                let i = o.vrfs.iter().position(|x| x.name == v.name).expect("vrf exists");
                assert!(o.vrfs[i].ports.is_empty(), "vrf {v:?} deleted with ports");
                o.vrfs.remove(i);
            }
            Change::Enslave(p) => {
                let v = o.vrfs.iter_mut().find(|x| x.name == p.vrf).expect("vrf exists");
                assert_eq!(o.master, None, "enslaved twice");
                v.ports.push(p.link);
                let table = v.table;
                o.master = Some(v.index);
                cycle(&mut o, p, table);
            }
            Change::Release(p) => {
                let v = o.vrfs.iter_mut().find(|x| x.name == p.vrf).expect("vrf exists");
                assert_eq!(o.master, Some(v.index), "released from another master");
                v.ports.retain(|l| *l != p.link);
                o.master = None;
                cycle(&mut o, p, RT_TABLE_MAIN);
            }
            Change::Sysctl(s) => {
                let i = L3MDEV_SYSCTLS.iter().position(|k| *k == s.key).unwrap();
                o.l3mdev_accept.get_or_insert_default()[i] = s.on;
            }
            Change::DelRoute(r) => {
                let i = o
                    .routes
                    .iter()
                    .position(|x| {
                        let named = Route {
                            oif: if x.kind == RTN_THROW { x.oif } else { r.oif },
                            ..r.clone()
                        };
                        same_route(x, &named) && x.protocol == r.protocol
                    })
                    .expect("route to delete exists");
                o.routes.remove(i);
            }
        }
    }
    o
}

pub(super) fn sorted(mut o: Snapshot) -> Snapshot {
    o.routes.sort_by_key(|r| format!("{r:?}"));
    o.rules.sort_by_key(|r| format!("{r:?}"));
    o
}

/// The kernel as the link goes down and up into `table` (a VRF's, or main
/// as it leaves): every route through it goes; its addresses' routes come
/// back in `table` (local routes in the local table outside a VRF); its
/// IPv6 addresses are dropped (a link-local comes back on its own) and the
/// port change adds back those it keeps.
fn cycle(o: &mut Snapshot, p: &Port, table: u32) {
    let link = Some(p.link);
    let mut back = Vec::new();
    o.routes.retain(|r| {
        if r.oif != link {
            return true;
        }
        let v4 = is_v4(&r.dst);
        let of_address = r.protocol == RTPROT_KERNEL && (v4 || link_local(&r.dst));
        if of_address {
            let to = match (r.kind, table) {
                (RTN_LOCAL, RT_TABLE_MAIN) => RT_TABLE_LOCAL,
                _ => table,
            };
            back.push(Route {
                table: to,
                ..r.clone()
            });
        }
        false
    });
    o.routes.extend(back);
    o.link_addresses.retain(|a| is_v4(a) || link_local(a));
    for a in &p.keep {
        o.link_addresses.push(host(a));
        let mut local = route(&host(a).to_string(), None, None, p.link, table);
        local.kind = RTN_LOCAL;
        local.metric = Some(0);
        local.table = if table == RT_TABLE_MAIN {
            RT_TABLE_LOCAL
        } else {
            table
        };
        o.routes.push(local);
        o.routes
            .push(route(&a.trunc().to_string(), None, None, p.link, table));
    }
}

fn link_local(n: &IpNet) -> bool {
    matches!(n, IpNet::V6(v) if v.addr().is_unicast_link_local())
}
