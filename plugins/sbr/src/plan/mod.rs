//! What ADD, DEL and CHECK decide, from the config, the prevResult and one
//! snapshot of the namespace, without touching the kernel. A plan is plain
//! data: tests compare plans, `apply` runs them on cni-core's step engine,
//! and every ADD step carries its inverse for the rollback.
//!
//! The model lives here; each verb has its module.

mod add;
mod check;
mod del;
#[cfg(test)]
mod sim;
#[cfg(test)]
mod tests;

pub use add::plan_add;
pub use check::check;
pub use del::plan_del;

use std::fmt;
use std::net::IpAddr;

use cni_core::plan::Step;
use cni_core::{CniError, NetResult};
use ipnet::IpNet;
use nl_ops::route::{Route, RT_SCOPE_LINK, RT_TABLE_MAIN};
use nl_ops::rule::Rule;

use crate::config::RESERVED_TABLES;

/// The reference starts here too.
pub const FIRST_TABLE: u32 = 100;
pub const RTPROT_BOOT: u8 = 3;
pub const RTN_UNICAST: u8 = 1;
pub const FR_ACT_TO_TBL: u8 = 1;

/// One prevResult address of the interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Address {
    /// With its prefix length, as the prevResult gives it.
    pub addr: IpNet,
    /// The IP's own gateway, else the gateway of the prevResult's default
    /// route of this family.
    pub gateway: Option<IpAddr>,
    /// The prevResult has a default route of this family, so the main
    /// plugin put one into main: DEL gives it back.
    pub default_in_main: bool,
}

/// The namespace as read once, before planning.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    pub ifname: String,
    /// The interface's index; `None` when it does not exist.
    pub link: Option<u32>,
    pub link_addresses: Vec<IpNet>,
    /// Every table, both families.
    pub routes: Vec<Route>,
    pub rules: Vec<Rule>,
}

/// One change to the namespace's routing state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    AddRule(Rule),
    DelRule(Rule),
    AddRoute(Route),
    DelRoute(Route),
}

pub type Plan = cni_core::plan::Plan<Change>;

impl Change {
    pub fn inverse(&self) -> Change {
        match self {
            Change::AddRule(r) => Change::DelRule(r.clone()),
            Change::DelRule(r) => Change::AddRule(r.clone()),
            Change::AddRoute(r) => Change::DelRoute(r.clone()),
            Change::DelRoute(r) => Change::AddRoute(r.clone()),
        }
    }

    /// "add rule from 10.1.0.2/32 to table 100", naming the link.
    pub fn text(&self, ifname: &str) -> String {
        match self {
            Change::AddRule(r) => format!("add rule {}", RuleText(r)),
            Change::DelRule(r) => format!("delete rule {}", RuleText(r)),
            Change::AddRoute(r) => format!(
                "add route {} to table {}",
                RouteText(r, ifname),
                TableText(r.table)
            ),
            Change::DelRoute(r) => format!(
                "delete route {} from table {}",
                RouteText(r, ifname),
                TableText(r.table)
            ),
        }
    }
}

/// ADD's steps: each undone by its inverse.
fn undoable(changes: Vec<Change>) -> Plan {
    changes
        .into_iter()
        .map(|c| {
            let undo = c.inverse();
            Step::new(c, Some(undo))
        })
        .collect()
}

/// DEL's steps: nothing to take back.
fn once(changes: Vec<Change>) -> Plan {
    changes.into_iter().map(Step::once).collect()
}

pub struct TableText(pub u32);

impl fmt::Display for TableText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            RT_TABLE_MAIN => f.write_str("main"),
            253 => f.write_str("default"),
            255 => f.write_str("local"),
            t => write!(f, "{t}"),
        }
    }
}

pub struct RuleText<'a>(pub &'a Rule);

impl fmt::Display for RuleText<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let r = self.0;
        match r.src {
            Some(s) => write!(f, "from {s}")?,
            None => f.write_str("from all")?,
        }
        write!(f, " to table {}", TableText(r.table))?;
        if let Some(p) = r.priority {
            write!(f, " priority {p}")?;
        }
        Ok(())
    }
}

/// A route as `ip route` would print it, with the link named.
pub struct RouteText<'a>(pub &'a Route, pub &'a str);

impl fmt::Display for RouteText<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let RouteText(r, ifname) = self;
        if r.dst.prefix_len() == 0 {
            f.write_str("default")?;
        } else {
            write!(f, "{}", r.dst)?;
        }
        if let Some(g) = r.gateway {
            write!(f, " via {g}")?;
        }
        if r.oif.is_some() {
            write!(f, " dev {ifname}")?;
        }
        if let Some(s) = r.prefsrc {
            write!(f, " src {s}")?;
        }
        if r.scope == RT_SCOPE_LINK {
            f.write_str(" scope link")?;
        }
        if let Some(m) = r.metric {
            write!(f, " metric {m}")?;
        }
        Ok(())
    }
}

/// The prevResult addresses of `ifname`: those whose interface index names
/// it, or that have none. Gateways fall back to the default route of the
/// family.
pub fn addresses_from_result(result: &NetResult, ifname: &str) -> Vec<Address> {
    let default_gw = |v4: bool| -> (bool, Option<IpAddr>) {
        let mut found = false;
        let mut gw = None;
        for r in &result.routes {
            if r.dst.prefix_len() == 0 && is_v4(&r.dst) == v4 {
                found = true;
                if gw.is_none() {
                    gw = r.gw;
                }
            }
        }
        (found, gw)
    };
    result
        .ips
        .iter()
        .filter(|ip| match ip.interface {
            None => true,
            Some(i) => result.interfaces.get(i).is_none_or(|iface| iface.name == ifname),
        })
        .map(|ip| {
            let v4 = is_v4(&ip.address);
            let (default_in_main, fallback) = default_gw(v4);
            let own = ip.gateway.filter(|g| g.is_ipv4() == v4);
            Address {
                addr: ip.address,
                gateway: own.or(fallback),
                default_in_main,
            }
        })
        .collect()
}

pub(crate) fn is_v4(n: &IpNet) -> bool {
    matches!(n, IpNet::V4(_))
}

pub(crate) fn host(addr: &IpNet) -> IpNet {
    let ip = addr.addr();
    IpNet::new(ip, if ip.is_ipv4() { 32 } else { 128 }).unwrap_or(*addr)
}

pub(crate) fn zero(v4: bool) -> IpNet {
    if v4 {
        IpNet::V4(ipnet::Ipv4Net::default())
    } else {
        IpNet::V6(ipnet::Ipv6Net::default())
    }
}

/// The metric the kernel gives a route that was added without one.
pub(crate) fn metric_of(r: &Route) -> u32 {
    match r.metric {
        Some(m) => m,
        None if is_v4(&r.dst) => 0,
        None => 1024,
    }
}

/// What makes two routes the same kernel entry: a second one with this key
/// would be refused with "file exists".
pub(crate) fn same_key(a: &Route, b: &Route) -> bool {
    a.dst == b.dst && a.table == b.table && metric_of(a) == metric_of(b)
}

/// The same route as far as forwarding goes (protocol is a label; IPv6
/// reports no scope).
pub(crate) fn same_route(a: &Route, b: &Route) -> bool {
    same_key(a, b)
        && a.gateway == b.gateway
        && a.prefsrc == b.prefsrc
        && a.oif == b.oif
        && a.kind == b.kind
        && (a.scope == b.scope || !is_v4(&a.dst))
}

pub(crate) fn in_subnet(net: &IpNet, ip: Option<IpAddr>) -> bool {
    ip.is_some_and(|ip| net.contains(&ip))
}

/// Main-table unicast routes through the link: what the previous plugin
/// set up and what sbr moves.
pub(crate) fn main_link_routes(snap: &Snapshot, link: u32) -> Vec<&Route> {
    snap.routes
        .iter()
        .filter(|r| r.table == RT_TABLE_MAIN && r.oif == Some(link) && r.kind == RTN_UNICAST)
        .collect()
}

pub(crate) fn our_rule(r: &Rule, src: &IpNet) -> bool {
    r.src.as_ref() == Some(src) && r.action == FR_ACT_TO_TBL && !RESERVED_TABLES.contains(&r.table)
}

pub(crate) fn rule_present(snap: &Snapshot, want: &Rule) -> bool {
    snap.rules.iter().any(|r| {
        r.v4 == want.v4
            && r.src == want.src
            && r.table == want.table
            && r.action == FR_ACT_TO_TBL
            && (want.priority.is_none() || r.priority == want.priority)
    })
}

/// Adds `want` unless an identical route is there; a different route with
/// the same key is replaced (delete, then add: both undoable).
pub(crate) fn ensure_route(ops: &mut Vec<Change>, snap: &Snapshot, want: Route) {
    match snap.routes.iter().find(|r| same_key(r, &want)) {
        Some(have) if same_route(have, &want) => {}
        Some(have) => {
            ops.push(Change::DelRoute(have.clone()));
            ops.push(Change::AddRoute(want));
        }
        None => ops.push(Change::AddRoute(want)),
    }
}

/// Keeps the last of routes with one key (the reference replaces), in the
/// order of first appearance, routes without gateway first so that gateways
/// are reachable when theirs go in.
pub(crate) fn dedup_direct_first(routes: Vec<Route>) -> Vec<Route> {
    let mut out: Vec<Route> = Vec::new();
    for r in routes {
        match out.iter_mut().find(|o| same_key(o, &r)) {
            Some(o) => *o = r,
            None => out.push(r),
        }
    }
    let (direct, via): (Vec<Route>, Vec<Route>) = out.into_iter().partition(|r| r.gateway.is_none());
    direct.into_iter().chain(via).collect()
}

pub(crate) fn link_missing(snap: &Snapshot) -> CniError {
    CniError::env(format!(
        "link {} not found in the container namespace",
        snap.ifname
    ))
}
