//! What ADD and DEL change, computed from the config, the prevResult and one
//! observed snapshot of the namespace, without touching the kernel. A plan is
//! plain data: tests compare plans, apply runs them, rollback runs the
//! inverse of the applied prefix.

use std::collections::BTreeSet;
use std::fmt;
use std::net::IpAddr;

use cni_core::{CniError, NetResult};
use ipnet::IpNet;
use nl_ops::route::{Route, RT_SCOPE_LINK, RT_SCOPE_UNIVERSE, RT_TABLE_MAIN};
use nl_ops::rule::Rule;

use crate::config::{Config, RESERVED_TABLES};

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
pub struct Observed {
    pub ifname: String,
    /// The interface's index; `None` when it does not exist.
    pub link: Option<u32>,
    pub link_addresses: Vec<IpNet>,
    /// Every table, both families.
    pub routes: Vec<Route>,
    pub rules: Vec<Rule>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    AddRule(Rule),
    DelRule(Rule),
    AddRoute(Route),
    DelRoute(Route),
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    pub ops: Vec<Op>,
}

impl Op {
    pub fn inverse(&self) -> Op {
        match self {
            Op::AddRule(r) => Op::DelRule(r.clone()),
            Op::DelRule(r) => Op::AddRule(r.clone()),
            Op::AddRoute(r) => Op::DelRoute(r.clone()),
            Op::DelRoute(r) => Op::AddRoute(r.clone()),
        }
    }

    /// "add rule from 10.1.0.2/32 to table 100", naming the link.
    pub fn describe(&self, ifname: &str) -> String {
        match self {
            Op::AddRule(r) => format!("add rule {}", RuleText(r)),
            Op::DelRule(r) => format!("delete rule {}", RuleText(r)),
            Op::AddRoute(r) => format!(
                "add route {} to table {}",
                RouteText(r, ifname),
                TableText(r.table)
            ),
            Op::DelRoute(r) => format!(
                "delete route {} from table {}",
                RouteText(r, ifname),
                TableText(r.table)
            ),
        }
    }
}

impl Plan {
    /// Undoes the plan, last step first.
    pub fn inverse(&self) -> Plan {
        Plan {
            ops: self.ops.iter().rev().map(Op::inverse).collect(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// One line per op, for logs and golden tests.
    pub fn lines(&self, ifname: &str) -> Vec<String> {
        self.ops.iter().map(|o| o.describe(ifname)).collect()
    }
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

fn is_v4(n: &IpNet) -> bool {
    matches!(n, IpNet::V4(_))
}

fn host(addr: &IpNet) -> IpNet {
    let ip = addr.addr();
    IpNet::new(ip, if ip.is_ipv4() { 32 } else { 128 }).unwrap_or(*addr)
}

fn zero(v4: bool) -> IpNet {
    if v4 {
        IpNet::V4(ipnet::Ipv4Net::default())
    } else {
        IpNet::V6(ipnet::Ipv6Net::default())
    }
}

/// The metric the kernel gives a route that was added without one.
fn metric_of(r: &Route) -> u32 {
    match r.metric {
        Some(m) => m,
        None if is_v4(&r.dst) => 0,
        None => 1024,
    }
}

/// What makes two routes the same kernel entry: a second one with this key
/// would be refused with "file exists".
fn same_key(a: &Route, b: &Route) -> bool {
    a.dst == b.dst && a.table == b.table && metric_of(a) == metric_of(b)
}

/// The same route as far as forwarding goes (protocol is a label; IPv6
/// reports no scope).
fn same_route(a: &Route, b: &Route) -> bool {
    same_key(a, b)
        && a.gateway == b.gateway
        && a.prefsrc == b.prefsrc
        && a.oif == b.oif
        && a.kind == b.kind
        && (a.scope == b.scope || !is_v4(&a.dst))
}

fn in_subnet(net: &IpNet, ip: Option<IpAddr>) -> bool {
    ip.is_some_and(|ip| net.contains(&ip))
}

/// Main-table unicast routes through the link: what the previous plugin
/// set up and what sbr moves.
fn main_link_routes(observed: &Observed, link: u32) -> Vec<&Route> {
    observed
        .routes
        .iter()
        .filter(|r| r.table == RT_TABLE_MAIN && r.oif == Some(link) && r.kind == RTN_UNICAST)
        .collect()
}

fn our_rule(r: &Rule, src: &IpNet) -> bool {
    r.src.as_ref() == Some(src) && r.action == FR_ACT_TO_TBL && !RESERVED_TABLES.contains(&r.table)
}

fn rule_present(observed: &Observed, want: &Rule) -> bool {
    observed.rules.iter().any(|r| {
        r.v4 == want.v4
            && r.src == want.src
            && r.table == want.table
            && r.action == FR_ACT_TO_TBL
            && (want.priority.is_none() || r.priority == want.priority)
    })
}

/// Adds `want` unless an identical route is there; a different route with
/// the same key is replaced (delete, then add: both undoable).
fn ensure_route(ops: &mut Vec<Op>, observed: &Observed, want: Route) {
    match observed.routes.iter().find(|r| same_key(r, &want)) {
        Some(have) if same_route(have, &want) => {}
        Some(have) => {
            ops.push(Op::DelRoute(have.clone()));
            ops.push(Op::AddRoute(want));
        }
        None => ops.push(Op::AddRoute(want)),
    }
}

/// Keeps the last of routes with one key (the reference replaces), in the
/// order of first appearance, routes without gateway first so that gateways
/// are reachable when theirs go in.
fn dedup_direct_first(routes: Vec<Route>) -> Vec<Route> {
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

fn link_missing(observed: &Observed) -> CniError {
    CniError::env(format!(
        "link {} not found in the container namespace",
        observed.ifname
    ))
}

/// ADD: per address a rule to its table and the table's routes, then the
/// moved routes leave main, then source hints. Converges: what is already
/// in place is not planned again, an address with a rule keeps its table.
pub fn plan_add(config: &Config, addresses: &[Address], observed: &Observed) -> Result<Plan, CniError> {
    let mut ops = Vec::new();

    if let Some(table) = config.table {
        for a in addresses {
            let rule = Rule {
                v4: is_v4(&a.addr),
                src: Some(host(&a.addr)),
                table,
                priority: config.priority,
                action: FR_ACT_TO_TBL,
            };
            if !rule_present(observed, &rule) && !ops.contains(&Op::AddRule(rule.clone())) {
                ops.push(Op::AddRule(rule));
            }
        }
        return Ok(Plan { ops });
    }

    let link = observed.link.ok_or_else(|| link_missing(observed))?;
    let main = main_link_routes(observed, link);
    let mut taken: BTreeSet<u32> = observed
        .rules
        .iter()
        .map(|r| r.table)
        .chain(observed.routes.iter().map(|r| r.table))
        .collect();
    let mut next = FIRST_TABLE;
    let mut families = BTreeSet::new();

    for a in addresses {
        let v4 = is_v4(&a.addr);
        families.insert(v4);
        let src = host(&a.addr);
        let existing = observed
            .rules
            .iter()
            .filter(|r| our_rule(r, &src))
            .find(|r| config.priority.is_none() || r.priority == config.priority)
            .or_else(|| observed.rules.iter().find(|r| our_rule(r, &src)))
            .map(|r| r.table);
        let table = match existing {
            Some(t) => t,
            None => {
                while taken.contains(&next) {
                    next += 1;
                }
                next
            }
        };
        taken.insert(table);

        let rule = Rule {
            v4,
            src: Some(src),
            table,
            priority: config.priority,
            action: FR_ACT_TO_TBL,
        };
        if !rule_present(observed, &rule) {
            ops.push(Op::AddRule(rule));
        }

        let mut want = Vec::new();
        let static_gw = config.static_gateway(v4);
        if let Some(gw) = static_gw.or(a.gateway) {
            want.push(Route {
                dst: zero(v4),
                gateway: Some(gw),
                prefsrc: None,
                oif: Some(link),
                table,
                scope: RT_SCOPE_UNIVERSE,
                metric: None,
                protocol: RTPROT_BOOT,
                kind: RTN_UNICAST,
            });
        }
        for r in &main {
            if is_v4(&r.dst) != v4 {
                continue;
            }
            // A configured gateway is the table's default, whatever main had.
            if static_gw.is_some() && r.dst.prefix_len() == 0 {
                continue;
            }
            let generic = r.prefsrc.is_none() && r.gateway.is_none();
            if generic || in_subnet(&a.addr, r.prefsrc) || in_subnet(&a.addr, r.gateway) {
                want.push(Route {
                    table,
                    ..(*r).clone()
                });
            }
        }
        for r in dedup_direct_first(want) {
            // With hints, main's subnet route gained a source after it was
            // copied: the copy without it still counts.
            let hinted = config.add_source_hints
                && r.gateway.is_none()
                && addresses
                    .iter()
                    .any(|a| a.addr.trunc() == r.dst && r.prefsrc == Some(a.addr.addr()));
            let unhinted = Route {
                prefsrc: None,
                ..r.clone()
            };
            if hinted && observed.routes.iter().any(|o| same_route(o, &unhinted)) {
                continue;
            }
            ensure_route(&mut ops, observed, r);
        }
    }

    // Source hints: per subnet, the first address's route stays in main.
    let mut keep: Vec<&Route> = Vec::new();
    let mut hints = Vec::new();
    if config.add_source_hints {
        let mut seen = BTreeSet::new();
        for a in addresses {
            let subnet = a.addr.trunc();
            if subnet.prefix_len() == subnet.max_prefix_len() || !seen.insert(subnet) {
                continue;
            }
            let v4 = is_v4(&a.addr);
            let current = main
                .iter()
                .copied()
                .find(|r| r.dst == subnet && r.gateway.is_none());
            let want = Route {
                dst: subnet,
                gateway: None,
                prefsrc: Some(a.addr.addr()),
                oif: Some(link),
                table: RT_TABLE_MAIN,
                scope: if v4 { RT_SCOPE_LINK } else { RT_SCOPE_UNIVERSE },
                metric: current.and_then(|c| c.metric),
                protocol: current.map_or(RTPROT_BOOT, |c| c.protocol),
                kind: RTN_UNICAST,
            };
            match current {
                Some(c) if same_route(c, &want) => keep.push(c),
                _ => hints.push(want),
            }
        }
    }

    // Routes via gateways leave first, so that undoing this puts the
    // routes to their gateways back before them.
    let (via, direct): (Vec<&Route>, Vec<&Route>) = main.iter().copied().partition(|r| r.gateway.is_some());
    for r in via.into_iter().chain(direct) {
        if families.contains(&is_v4(&r.dst)) && !keep.iter().any(|k| std::ptr::eq(*k, r)) {
            ops.push(Op::DelRoute(r.clone()));
        }
    }
    ops.extend(hints.into_iter().map(Op::AddRoute));
    Ok(Plan { ops })
}

/// DEL: the rules of the interface's addresses go; when the link is still
/// there the routes ADD took out of main go back and the tables it used are
/// emptied. `prev` is the prevResult's addresses of the interface, `None`
/// when the runtime sent no prevResult.
///
/// Without saved state, what goes back is decided from the tables and main
/// as they are now. ADD only takes routes on this link out of main, and
/// every table route but the default is such a copy: those go back unless
/// main holds a route with the same key on another link (the kernel would
/// refuse the twin; replacing it would clobber someone else's route). The
/// table's default may be sbr's own (from a gateway) or main's moved one:
/// it goes back when the prevResult lists a default route of its family
/// (the main plugin put one into main), or, without prevResult, when main
/// has no default of that family left (a second interface's sbr DEL must
/// not give main a second default beside eth0's).
pub fn plan_del(config: &Config, prev: Option<&[Address]>, observed: &Observed) -> Plan {
    let addresses = prev.unwrap_or_default();
    let mut hosts: Vec<IpNet> = addresses.iter().map(|a| host(&a.addr)).collect();
    hosts.extend(observed.link_addresses.iter().map(host));

    let ours = |r: &Rule| -> bool {
        let Some(src) = r.src else { return false };
        if !hosts.contains(&src) || r.action != FR_ACT_TO_TBL {
            return false;
        }
        match config.table {
            Some(t) => r.table == t,
            None => !RESERVED_TABLES.contains(&r.table),
        }
    };
    let mut ops: Vec<Op> = observed
        .rules
        .iter()
        .filter(|r| ours(r))
        .cloned()
        .map(Op::DelRule)
        .collect();

    let Some(link) = observed.link else {
        return Plan { ops };
    };
    if config.table.is_some() {
        return Plan { ops };
    }
    // Tables another rule still points at are someone else's too: left alone.
    let still_used: BTreeSet<u32> = observed
        .rules
        .iter()
        .filter(|r| !ours(r))
        .map(|r| r.table)
        .collect();
    let tables: BTreeSet<u32> = observed
        .rules
        .iter()
        .filter(|r| ours(r))
        .map(|r| r.table)
        .filter(|t| !still_used.contains(t))
        .collect();
    let in_tables: Vec<&Route> = observed
        .routes
        .iter()
        .filter(|r| tables.contains(&r.table) && r.oif == Some(link))
        .collect();

    let to_main = |r: &Route| Route {
        table: RT_TABLE_MAIN,
        ..r.clone()
    };
    let main_other: Vec<&Route> = observed
        .routes
        .iter()
        .filter(|r| r.table == RT_TABLE_MAIN && r.oif != Some(link))
        .collect();
    let taken_elsewhere = |r: &Route| main_other.iter().any(|m| same_key(m, r));
    let mut back: Vec<Route> = in_tables
        .iter()
        .filter(|r| r.dst.prefix_len() != 0)
        .map(|r| to_main(r))
        .filter(|r| !taken_elsewhere(r))
        .collect();
    for v4 in [true, false] {
        if !in_tables.iter().any(|r| is_v4(&r.dst) == v4) {
            continue;
        }
        let table_default = |gw: Option<IpAddr>| {
            in_tables
                .iter()
                .find(|r| r.dst.prefix_len() == 0 && is_v4(&r.dst) == v4 && (gw.is_none() || r.gateway == gw))
        };
        let default = match prev {
            // The main plugin's default: the copy when the table holds it,
            // else (a static gateway took its place) made anew.
            Some(addresses) => {
                let Some(a) = addresses
                    .iter()
                    .find(|a| is_v4(&a.addr) == v4 && a.default_in_main)
                else {
                    continue;
                };
                match (table_default(a.gateway), a.gateway) {
                    (Some(r), _) => Some(to_main(r)),
                    (None, Some(gw)) => Some(Route {
                        dst: zero(v4),
                        gateway: Some(gw),
                        prefsrc: None,
                        oif: Some(link),
                        table: RT_TABLE_MAIN,
                        scope: RT_SCOPE_UNIVERSE,
                        metric: None,
                        protocol: RTPROT_BOOT,
                        kind: RTN_UNICAST,
                    }),
                    (None, None) => None,
                }
            }
            None => {
                let elsewhere = main_other
                    .iter()
                    .any(|m| m.dst.prefix_len() == 0 && is_v4(&m.dst) == v4);
                if elsewhere {
                    None
                } else {
                    table_default(None).map(|r| to_main(r))
                }
            }
        };
        back.extend(default.filter(|r| !taken_elsewhere(r)));
    }
    for r in dedup_direct_first(back) {
        ensure_route(&mut ops, observed, r);
    }
    ops.extend(in_tables.into_iter().cloned().map(Op::DelRoute));
    Plan { ops }
}

/// CHECK: what ADD would still change, and a table without the subnet
/// route, as messages naming the missing piece.
pub fn check(config: &Config, addresses: &[Address], observed: &Observed) -> Result<(), CniError> {
    let fail = |msg: String| Err(CniError::check_failed(msg));
    if config.table.is_none() && observed.link.is_none() {
        return Err(link_missing(observed));
    }
    let plan = plan_add(config, addresses, observed)?;
    if let Some(op) = plan.ops.first() {
        let ifname = observed.ifname.as_str();
        return fail(match op {
            Op::AddRule(r) if config.table.is_some() => format!("missing rule {}", RuleText(r)),
            Op::AddRule(r) => match r.src {
                Some(src) => format!("missing rule from {src} to a routing table"),
                None => format!("missing rule {}", RuleText(r)),
            },
            Op::AddRoute(r) if r.table == RT_TABLE_MAIN => {
                format!("missing route {} in table main", RouteText(r, ifname))
            }
            Op::AddRoute(r) => format!(
                "missing route {} in table {}",
                RouteText(r, ifname),
                TableText(r.table)
            ),
            Op::DelRoute(r) if r.table == RT_TABLE_MAIN => {
                format!("route {} is still in table main", RouteText(r, ifname))
            }
            Op::DelRoute(r) => {
                format!(
                    "route {} in table {} is not the expected one",
                    RouteText(r, ifname),
                    TableText(r.table)
                )
            }
            Op::DelRule(r) => format!("unexpected rule {}", RuleText(r)),
        });
    }
    if config.table.is_some() {
        return Ok(());
    }
    for a in addresses {
        let subnet = a.addr.trunc();
        if subnet.prefix_len() == subnet.max_prefix_len() || !observed.link_addresses.contains(&a.addr) {
            continue;
        }
        let src = host(&a.addr);
        let Some(table) = observed.rules.iter().find(|r| our_rule(r, &src)).map(|r| r.table) else {
            return fail(format!("missing rule from {src} to a routing table"));
        };
        // ADD copies whatever route to the subnet the main plugin made on
        // the link: direct (bridge, macvlan) or via the gateway (ptp).
        let there = observed
            .routes
            .iter()
            .any(|r| r.table == table && r.dst == subnet && r.oif == observed.link);
        if !there {
            return fail(format!(
                "missing route {subnet} dev {} in table {table}",
                observed.ifname
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use cni_core::Code;
    use serde_json::json;

    const NET1: u32 = 3;
    const ETH0: u32 = 2;
    const RTPROT_KERNEL: u8 = 2;
    const RTN_LOCAL: u8 = 2;

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn route(dst: &str, gw: Option<&str>, src: Option<&str>, oif: u32, table: u32) -> Route {
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
        }
    }

    fn rule(v4: bool, src: Option<&str>, table: u32, prio: u32) -> Rule {
        Rule {
            v4,
            src: src.map(net),
            table,
            priority: Some(prio),
            action: FR_ACT_TO_TBL,
        }
    }

    fn default_rules() -> Vec<Rule> {
        let mut v = Vec::new();
        for v4 in [true, false] {
            v.push(rule(v4, None, 255, 0));
            v.push(rule(v4, None, 254, 32766));
            if v4 {
                v.push(rule(v4, None, 253, 32767));
            }
        }
        v
    }

    /// net1 10.1.0.2/24 with default via 10.1.0.1 beside eth0 10.0.0.2/24.
    fn observed() -> Observed {
        let mut local = route("10.1.0.2/32", None, Some("10.1.0.2"), NET1, 255);
        local.kind = RTN_LOCAL;
        local.scope = 254;
        Observed {
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
        }
    }

    fn addr(a: &str, gw: Option<&str>) -> Address {
        Address {
            addr: net(a),
            gateway: gw.map(ip),
            default_in_main: false,
        }
    }

    fn cfg(v: serde_json::Value) -> Config {
        Config::from_json(&v).unwrap()
    }

    fn lines(plan: &Plan) -> Vec<String> {
        plan.lines("net1")
    }

    /// Applies a plan to the observation as the kernel would (enough for
    /// convergence tests).
    fn simulate(obs: &Observed, plan: &Plan) -> Observed {
        let mut o = obs.clone();
        for op in &plan.ops {
            match op {
                Op::AddRule(r) => {
                    let mut r = r.clone();
                    r.priority = r.priority.or(Some(32765));
                    o.rules.push(r);
                }
                Op::DelRule(r) => {
                    let i = o
                        .rules
                        .iter()
                        .position(|x| x.src == r.src && x.table == r.table)
                        .expect("rule to delete exists");
                    o.rules.remove(i);
                }
                Op::AddRoute(r) => {
                    assert!(!o.routes.iter().any(|x| same_key(x, r)), "duplicate add of {r:?}");
                    // Dumps report the metric the kernel gave an IPv6 route.
                    let metric = if is_v4(&r.dst) {
                        r.metric
                    } else {
                        Some(metric_of(r))
                    };
                    o.routes.push(Route { metric, ..r.clone() });
                }
                Op::DelRoute(r) => {
                    let i = o
                        .routes
                        .iter()
                        .position(|x| same_route(x, r) && x.protocol == r.protocol)
                        .expect("route to delete exists");
                    o.routes.remove(i);
                }
            }
        }
        o
    }

    fn sorted(mut o: Observed) -> Observed {
        o.routes.sort_by_key(|r| format!("{r:?}"));
        o.rules.sort_by_key(|r| format!("{r:?}"));
        o
    }

    #[test]
    fn single_ipv4_golden() {
        let plan = plan_add(
            &Config::default(),
            &[addr("10.1.0.2/24", Some("10.1.0.1"))],
            &observed(),
        )
        .unwrap();
        assert_eq!(
            lines(&plan),
            [
                "add rule from 10.1.0.2/32 to table 100",
                "add route 10.1.0.0/24 dev net1 src 10.1.0.2 scope link to table 100",
                "add route default via 10.1.0.1 dev net1 to table 100",
                "add route 10.9.0.0/16 via 10.1.0.1 dev net1 to table 100",
                // Via-gateway routes leave first: undone, their gateway's route comes back first.
                "delete route 10.9.0.0/16 via 10.1.0.1 dev net1 from table main",
                "delete route 10.1.0.0/24 dev net1 src 10.1.0.2 scope link from table main",
            ]
        );
        // The default route is the reference's: proto boot, scope global, no metric.
        let Op::AddRoute(d) = &plan.ops[2] else { panic!() };
        assert_eq!(
            (d.protocol, d.scope, d.metric, d.oif),
            (RTPROT_BOOT, RT_SCOPE_UNIVERSE, None, Some(NET1))
        );
        // Copies keep the kernel route's protocol.
        let Op::AddRoute(s) = &plan.ops[1] else { panic!() };
        assert_eq!(s.protocol, RTPROT_KERNEL);
        // The IPv6 link-local route stays in main: no IPv6 address here.
        assert!(!lines(&plan).iter().any(|l| l.contains("fe80")));
    }

    #[test]
    fn tables_taken_by_rules_or_routes_are_skipped() {
        let mut o = observed();
        o.rules.push(rule(true, Some("192.168.0.0/16"), 100, 1000));
        o.routes
            .push(route("192.168.0.0/16", Some("10.0.0.1"), None, ETH0, 101));
        o.rules.push(rule(false, Some("fd00::/8"), 102, 1001));
        let plan = plan_add(&Config::default(), &[addr("10.1.0.2/24", Some("10.1.0.1"))], &o).unwrap();
        assert_eq!(lines(&plan)[0], "add rule from 10.1.0.2/32 to table 103");
    }

    #[test]
    fn several_addresses_get_one_table_each() {
        let mut o = observed();
        o.rules.push(rule(true, Some("192.168.0.0/16"), 101, 1000));
        let a = [
            addr("10.1.0.2/24", Some("10.1.0.1")),
            addr("10.1.0.3/24", Some("10.1.0.1")),
        ];
        let plan = plan_add(&Config::default(), &a, &o).unwrap();
        let l = lines(&plan);
        assert_eq!(l[0], "add rule from 10.1.0.2/32 to table 100");
        assert_eq!(l[4], "add rule from 10.1.0.3/32 to table 102");
        // Both tables get the subnet, default and via-gateway routes; main loses them once.
        assert_eq!(l.iter().filter(|x| x.contains("to table 102")).count(), 4);
        assert_eq!(l.iter().filter(|x| x.starts_with("delete")).count(), 2);
    }

    #[test]
    fn dual_stack_routes_by_family() {
        let mut o = observed();
        o.link_addresses.push(net("2001:db8::2/64"));
        o.routes.push(route("2001:db8::/64", None, None, NET1, 254));
        o.routes
            .push(route("default6", Some("2001:db8::1"), None, NET1, 254));
        let a = [
            addr("10.1.0.2/24", Some("10.1.0.1")),
            addr("2001:db8::2/64", Some("2001:db8::1")),
        ];
        let plan = plan_add(&Config::default(), &a, &o).unwrap();
        assert_eq!(
            lines(&plan),
            [
                "add rule from 10.1.0.2/32 to table 100",
                "add route 10.1.0.0/24 dev net1 src 10.1.0.2 scope link to table 100",
                "add route default via 10.1.0.1 dev net1 to table 100",
                "add route 10.9.0.0/16 via 10.1.0.1 dev net1 to table 100",
                "add rule from 2001:db8::2/128 to table 101",
                "add route fe80::/64 dev net1 metric 256 to table 101",
                "add route 2001:db8::/64 dev net1 metric 256 to table 101",
                // The main table's default (metric 1024) replaces ours: same key.
                "add route default via 2001:db8::1 dev net1 metric 1024 to table 101",
                "delete route 10.9.0.0/16 via 10.1.0.1 dev net1 from table main",
                "delete route default via 2001:db8::1 dev net1 metric 1024 from table main",
                "delete route 10.1.0.0/24 dev net1 src 10.1.0.2 scope link from table main",
                "delete route fe80::/64 dev net1 metric 256 from table main",
                "delete route 2001:db8::/64 dev net1 metric 256 from table main",
            ]
        );
    }

    #[test]
    fn static_gateway_wins_per_family() {
        let c = cfg(json!({"gateways": ["10.1.0.254", "2001:db8::fe"]}));
        let a = [
            addr("10.1.0.2/24", Some("10.1.0.1")),
            addr("2001:db8::2/64", None),
        ];
        let plan = plan_add(&c, &a, &observed()).unwrap();
        let l = lines(&plan);
        assert!(
            l.contains(&"add route default via 10.1.0.254 dev net1 to table 100".to_string()),
            "{l:#?}"
        );
        assert!(
            l.contains(&"add route default via 2001:db8::fe dev net1 to table 101".to_string()),
            "{l:#?}"
        );
        assert!(!l.iter().any(|x| x.contains("default via 10.1.0.1 ")));
    }

    #[test]
    fn address_without_gateway_gets_no_default_route() {
        let mut o = observed();
        o.routes.retain(|r| r.oif != Some(NET1) || r.gateway.is_none());
        let plan = plan_add(&Config::default(), &[addr("10.1.0.2/24", None)], &o).unwrap();
        assert_eq!(
            lines(&plan),
            [
                "add rule from 10.1.0.2/32 to table 100",
                "add route 10.1.0.0/24 dev net1 src 10.1.0.2 scope link to table 100",
                "delete route 10.1.0.0/24 dev net1 src 10.1.0.2 scope link from table main",
            ]
        );
    }

    #[test]
    fn prev_result_default_route_is_the_fallback_gateway() {
        let prev = NetResult::parse(
            "1.0.0",
            &json!({"cniVersion": "1.0.0",
                "interfaces": [{"name": "eth0"}, {"name": "net1"}],
                "ips": [
                    {"address": "10.0.0.2/24", "gateway": "10.0.0.1", "interface": 0},
                    {"address": "10.1.0.2/24", "interface": 1},
                    {"address": "2001:db8::2/64", "gateway": "2001:db8::1"}
                ],
                "routes": [{"dst": "0.0.0.0/0", "gw": "10.1.0.254"}]}),
        )
        .unwrap();
        let a = addresses_from_result(&prev, "net1");
        assert_eq!(
            a,
            [
                Address {
                    addr: net("10.1.0.2/24"),
                    gateway: Some(ip("10.1.0.254")),
                    default_in_main: true
                },
                Address {
                    addr: net("2001:db8::2/64"),
                    gateway: Some(ip("2001:db8::1")),
                    default_in_main: false
                },
            ]
        );
        let own = addresses_from_result(&prev, "eth0");
        assert_eq!(own[0].gateway, Some(ip("10.0.0.1")));
    }

    #[test]
    fn table_option_only_adds_rules() {
        let c = cfg(json!({"table": 500, "priority": 2000}));
        let a = [
            addr("10.1.0.2/24", Some("10.1.0.1")),
            addr("2001:db8::2/64", None),
        ];
        let plan = plan_add(&c, &a, &observed()).unwrap();
        assert_eq!(
            lines(&plan),
            [
                "add rule from 10.1.0.2/32 to table 500 priority 2000",
                "add rule from 2001:db8::2/128 to table 500 priority 2000"
            ]
        );
        // Works without the link too, as the reference's table mode does.
        let mut o = observed();
        o.link = None;
        assert_eq!(plan_add(&c, &a, &o).unwrap(), plan);
        // And converges.
        let after = simulate(&observed(), &plan);
        assert!(plan_add(&c, &a, &after).unwrap().is_empty());
    }

    #[test]
    fn priority_option_is_on_the_rule() {
        let plan = plan_add(
            &cfg(json!({"priority": 1234})),
            &[addr("10.1.0.2/24", Some("10.1.0.1"))],
            &observed(),
        )
        .unwrap();
        assert_eq!(
            plan.ops[0],
            Op::AddRule(rule(true, Some("10.1.0.2/32"), 100, 1234))
        );
    }

    #[test]
    fn source_hints_keep_the_subnet_route_in_main() {
        let c = cfg(json!({"addSourceHints": true}));
        let plan = plan_add(&c, &[addr("10.1.0.2/24", Some("10.1.0.1"))], &observed()).unwrap();
        let l = lines(&plan);
        assert!(!l.contains(
            &"delete route 10.1.0.0/24 dev net1 src 10.1.0.2 scope link from table main".to_string()
        ));
        assert!(l.contains(&"delete route 10.9.0.0/16 via 10.1.0.1 dev net1 from table main".to_string()));
        assert!(
            l.contains(&"add route 10.1.0.0/24 dev net1 src 10.1.0.2 scope link to table 100".to_string())
        );
    }

    #[test]
    fn source_hints_replace_a_route_without_hint() {
        let c = cfg(json!({"addSourceHints": true}));
        let mut o = observed();
        o.routes.push(route("2001:db8::/64", None, None, NET1, 254));
        let plan = plan_add(&c, &[addr("2001:db8::2/64", None)], &o).unwrap();
        assert_eq!(
            lines(&plan),
            [
                "add rule from 2001:db8::2/128 to table 100",
                "add route fe80::/64 dev net1 metric 256 to table 100",
                "add route 2001:db8::/64 dev net1 metric 256 to table 100",
                "delete route fe80::/64 dev net1 metric 256 from table main",
                "delete route 2001:db8::/64 dev net1 metric 256 from table main",
                "add route 2001:db8::/64 dev net1 src 2001:db8::2 metric 256 to table main",
            ]
        );
    }

    #[test]
    fn add_is_convergent_and_reuses_the_table_of_an_existing_rule() {
        let a = [addr("10.1.0.2/24", Some("10.1.0.1"))];
        let o = observed();
        let first = plan_add(&Config::default(), &a, &o).unwrap();
        let after = simulate(&o, &first);
        assert!(plan_add(&Config::default(), &a, &after).unwrap().is_empty());

        // A rule left by someone (or the reference) for this address: its table is reused.
        let mut o2 = observed();
        o2.rules.push(rule(true, Some("10.1.0.2/32"), 107, 32765));
        let plan = plan_add(&Config::default(), &a, &o2).unwrap();
        assert!(
            lines(&plan).iter().all(|l| !l.contains("add rule")),
            "{:#?}",
            lines(&plan)
        );
        assert!(lines(&plan)
            .iter()
            .any(|l| l == "add route default via 10.1.0.1 dev net1 to table 107"));
    }

    #[test]
    fn a_different_route_in_a_reused_table_is_replaced() {
        let mut o = observed();
        o.rules.push(rule(true, Some("10.1.0.2/32"), 100, 32765));
        let stale = route("default", Some("10.1.0.99"), None, NET1, 100);
        o.routes.push(stale.clone());
        let plan = plan_add(&Config::default(), &[addr("10.1.0.2/24", Some("10.1.0.1"))], &o).unwrap();
        let i = plan
            .ops
            .iter()
            .position(|x| *x == Op::DelRoute(stale.clone()))
            .unwrap();
        assert_eq!(
            lines(&plan)[i + 1],
            "add route default via 10.1.0.1 dev net1 to table 100"
        );
    }

    #[test]
    fn add_then_del_restores_the_namespace() {
        for (c, a) in [
            (Config::default(), vec![addr("10.1.0.2/24", Some("10.1.0.1"))]),
            (
                cfg(json!({"addSourceHints": true})),
                vec![addr("10.1.0.2/24", Some("10.1.0.1"))],
            ),
            (
                cfg(json!({"table": 300})),
                vec![addr("10.1.0.2/24", Some("10.1.0.1"))],
            ),
            (
                cfg(json!({"addSourceHints": true})),
                vec![
                    addr("10.1.0.2/24", Some("10.1.0.1")),
                    addr("2001:db8::2/64", Some("2001:db8::1")),
                ],
            ),
        ] {
            let mut o = observed();
            o.link_addresses.push(net("2001:db8::2/64"));
            o.routes.push(route("2001:db8::/64", None, None, NET1, 254));
            let added = simulate(&o, &plan_add(&c, &a, &o).unwrap());
            let del = plan_del(&c, Some(&a), &added);
            let back = simulate(&added, &del);
            assert_eq!(
                sorted(back.clone()),
                sorted(o.clone()),
                "{c:?}\n{:#?}",
                lines(&del)
            );
            // DEL again: nothing left to do.
            assert!(plan_del(&c, Some(&a), &back).is_empty());
        }
    }

    #[test]
    fn del_restores_the_default_route_only_when_prev_result_had_one() {
        let o = observed();
        let mut a = vec![addr("10.1.0.2/24", Some("10.1.0.1"))];
        let mut o2 = o.clone();
        o2.routes
            .retain(|r| !(r.oif == Some(NET1) && r.dst.prefix_len() == 0));
        // No default in main before: none after.
        let added = simulate(&o2, &plan_add(&Config::default(), &a, &o2).unwrap());
        let back = simulate(&added, &plan_del(&Config::default(), Some(&a), &added));
        assert_eq!(sorted(back), sorted(o2.clone()));
        // A default in main (the prevResult lists it): back in main after.
        let mut o3 = o.clone();
        o3.routes
            .push(route("default", Some("10.1.0.1"), None, NET1, 254));
        o3.routes
            .retain(|r| r.oif != Some(ETH0) || r.dst.prefix_len() != 0);
        a[0].default_in_main = true;
        let added = simulate(&o3, &plan_add(&Config::default(), &a, &o3).unwrap());
        let back = simulate(&added, &plan_del(&Config::default(), Some(&a), &added));
        assert_eq!(sorted(back), sorted(o3));
    }

    #[test]
    fn del_without_link_or_prev_result_removes_rules_only() {
        let a = [addr("10.1.0.2/24", Some("10.1.0.1"))];
        let o = observed();
        let mut added = simulate(&o, &plan_add(&Config::default(), &a, &o).unwrap());
        // prevResult gone: the link's addresses still name the rule.
        let p = plan_del(&Config::default(), None, &added);
        assert!(matches!(p.ops[0], Op::DelRule(_)));
        // Link gone (its routes with it): only the rule.
        added.link = None;
        added.link_addresses.clear();
        added.routes.retain(|r| r.oif != Some(NET1));
        assert_eq!(
            lines(&plan_del(&Config::default(), Some(&a), &added)),
            ["delete rule from 10.1.0.2/32 to table 100 priority 32765"]
        );
        // Neither: nothing.
        assert!(plan_del(&Config::default(), None, &added).is_empty());
    }

    #[test]
    fn del_without_prev_result_gives_main_back_its_default() {
        let a = [addr("10.1.0.2/24", Some("10.1.0.1"))];
        // net1 alone, with main's default through it: it comes back.
        let mut alone = observed();
        alone.routes.retain(|r| r.oif != Some(ETH0));
        alone
            .routes
            .push(route("default", Some("10.1.0.1"), None, NET1, 254));
        let added = simulate(&alone, &plan_add(&Config::default(), &a, &alone).unwrap());
        let back = simulate(&added, &plan_del(&Config::default(), None, &added));
        assert_eq!(sorted(back.clone()), sorted(alone));
        assert!(plan_del(&Config::default(), None, &back).is_empty());
        // net1 beside eth0, which keeps main's default: the table's own
        // default (from the gateway) is not a second one for main.
        let o = observed();
        let added = simulate(&o, &plan_add(&Config::default(), &a, &o).unwrap());
        let del = plan_del(&Config::default(), None, &added);
        assert!(!lines(&del)
            .iter()
            .any(|l| l.contains("default") && l.contains("main")));
        assert_eq!(sorted(simulate(&added, &del)), sorted(o));
    }

    #[test]
    fn del_never_replaces_a_route_of_another_link() {
        // The prevResult lists a default route, but main's default (same
        // key) is eth0's now: it stays, nothing of net1 joins it.
        let mut a = [addr("10.1.0.2/24", Some("10.1.0.1"))];
        a[0].default_in_main = true;
        let o = observed();
        let added = simulate(&o, &plan_add(&Config::default(), &a, &o).unwrap());
        let del = plan_del(&Config::default(), Some(&a), &added);
        assert!(
            !lines(&del)
                .iter()
                .any(|l| l.contains("default") && l.contains("main")),
            "{:#?}",
            lines(&del)
        );
        // A subnet route someone put on eth0 meanwhile keeps its place.
        let mut moved = added.clone();
        moved
            .routes
            .push(route("10.9.0.0/16", Some("10.0.0.1"), None, ETH0, 254));
        let del = plan_del(&Config::default(), Some(&a), &moved);
        assert!(!lines(&del)
            .iter()
            .any(|l| l.contains("10.9.0.0/16") && l.contains("main")));
    }

    /// What ptp leaves in main for 10.1.0.2/24 via 10.1.0.1: no direct
    /// subnet route, a host route to the gateway, the subnet and the
    /// default via the gateway.
    fn ptp_observed() -> Observed {
        let mut o = observed();
        o.routes.retain(|r| r.oif != Some(NET1) || r.dst.addr().is_ipv6());
        o.routes.retain(|r| r.oif != Some(ETH0));
        o.routes
            .push(route("10.1.0.1/32", None, Some("10.1.0.2"), NET1, 254));
        o.routes.push(route(
            "10.1.0.0/24",
            Some("10.1.0.1"),
            Some("10.1.0.2"),
            NET1,
            254,
        ));
        o.routes.push(route("default", Some("10.1.0.1"), None, NET1, 254));
        o
    }

    #[test]
    fn ptp_layout_add_check_del() {
        let mut a = [addr("10.1.0.2/24", Some("10.1.0.1"))];
        a[0].default_in_main = true;
        let c = Config::default();
        let o = ptp_observed();
        let plan = plan_add(&c, &a, &o).unwrap();
        assert_eq!(
            lines(&plan),
            [
                "add rule from 10.1.0.2/32 to table 100",
                "add route 10.1.0.1/32 dev net1 src 10.1.0.2 scope link to table 100",
                "add route default via 10.1.0.1 dev net1 to table 100",
                "add route 10.1.0.0/24 via 10.1.0.1 dev net1 src 10.1.0.2 to table 100",
                "delete route 10.1.0.0/24 via 10.1.0.1 dev net1 src 10.1.0.2 from table main",
                "delete route default via 10.1.0.1 dev net1 from table main",
                "delete route 10.1.0.1/32 dev net1 src 10.1.0.2 scope link from table main",
            ]
        );
        let added = simulate(&o, &plan);
        check(&c, &a, &added).unwrap();
        // The subnet route via the gateway is what CHECK looks for.
        let mut no_subnet = added.clone();
        no_subnet
            .routes
            .retain(|r| !(r.table == 100 && r.dst == net("10.1.0.0/24")));
        let e = check(&c, &a, &no_subnet).unwrap_err();
        assert_eq!(e.msg, "missing route 10.1.0.0/24 dev net1 in table 100");
        // DEL gives main back what ptp made, with or without prevResult.
        for prev in [Some(&a[..]), None] {
            let back = simulate(&added, &plan_del(&c, prev, &added));
            assert_eq!(sorted(back), sorted(o.clone()), "prev {}", prev.is_some());
        }
    }

    #[test]
    fn del_leaves_tables_other_rules_use() {
        let a = [addr("10.1.0.2/24", Some("10.1.0.1"))];
        let mut o = observed();
        o.rules.push(rule(true, Some("10.1.0.2/32"), 100, 32765));
        o.rules.push(rule(true, Some("172.16.0.0/12"), 100, 500));
        o.routes
            .push(route("10.1.0.0/24", None, Some("10.1.0.2"), NET1, 100));
        let p = plan_del(&Config::default(), Some(&a), &o);
        assert_eq!(
            lines(&p),
            ["delete rule from 10.1.0.2/32 to table 100 priority 32765"]
        );
    }

    #[test]
    fn inverse_undoes_in_reverse_order() {
        let plan = plan_add(
            &Config::default(),
            &[addr("10.1.0.2/24", Some("10.1.0.1"))],
            &observed(),
        )
        .unwrap();
        let inv = plan.inverse();
        assert_eq!(inv.ops.len(), plan.ops.len());
        assert_eq!(inv.ops[0], plan.ops.last().unwrap().inverse());
        assert_eq!(inv.inverse(), plan);
        // Every prefix undone gives back the observation.
        for k in 0..=plan.ops.len() {
            let prefix = Plan {
                ops: plan.ops[..k].to_vec(),
            };
            let o = observed();
            let mut undone = simulate(&simulate(&o, &prefix), &prefix.inverse());
            for r in &mut undone.rules {
                if r.src.is_some() {
                    r.priority = None;
                }
            }
            assert_eq!(sorted(undone), sorted(o), "prefix {k}");
        }
    }

    #[test]
    fn missing_link_is_an_error() {
        let mut o = observed();
        o.link = None;
        let e = plan_add(&Config::default(), &[addr("10.1.0.2/24", None)], &o).unwrap_err();
        assert_eq!(e.code, Code::InvalidEnvironment);
        assert!(e.msg.contains("net1"), "{}", e.msg);
    }

    #[test]
    fn check_names_the_missing_piece() {
        let a = [addr("10.1.0.2/24", Some("10.1.0.1"))];
        let o = observed();
        let c = Config::default();
        let e = check(&c, &a, &o).unwrap_err();
        assert!(e.msg.contains("missing rule from 10.1.0.2/32"), "{}", e.msg);
        let added = simulate(&o, &plan_add(&c, &a, &o).unwrap());
        check(&c, &a, &added).unwrap();

        let mut no_default = added.clone();
        no_default
            .routes
            .retain(|r| !(r.table == 100 && r.dst.prefix_len() == 0));
        let e = check(&c, &a, &no_default).unwrap_err();
        assert_eq!(e.msg, "missing route default via 10.1.0.1 dev net1 in table 100");

        let mut no_subnet = added.clone();
        no_subnet
            .routes
            .retain(|r| !(r.table == 100 && r.dst == net("10.1.0.0/24")));
        let e = check(&c, &a, &no_subnet).unwrap_err();
        assert_eq!(e.msg, "missing route 10.1.0.0/24 dev net1 in table 100");

        let mut back_in_main = added.clone();
        back_in_main
            .routes
            .push(route("10.9.0.0/16", Some("10.1.0.1"), None, NET1, 254));
        let e = check(&c, &a, &back_in_main).unwrap_err();
        assert_eq!(
            e.msg,
            "route 10.9.0.0/16 via 10.1.0.1 dev net1 is still in table main"
        );
    }

    mod props {
        use super::*;
        use proptest::prelude::*;

        /// (address, its gateway) to pick from.
        const POOL: [(&str, &str); 5] = [
            ("10.1.0.2/24", "10.1.0.1"),
            ("10.1.0.3/24", "10.1.0.1"),
            ("10.2.0.2/16", "10.2.0.1"),
            ("2001:db8::2/64", "2001:db8::1"),
            ("2001:db8:1::2/64", "2001:db8:1::1"),
        ];

        #[derive(Debug, Clone)]
        struct Case {
            picked: Vec<usize>,
            own_gw: [bool; 5],
            default_main: [bool; 2],
            extra_via: bool,
            extra_direct: bool,
            ll6: bool,
            hints: bool,
            static_gw: [bool; 2],
            taken: Vec<u32>,
            reuse_rule: bool,
        }

        fn case() -> impl Strategy<Value = Case> {
            (
                proptest::sample::subsequence((0..5).collect::<Vec<usize>>(), 1..=3),
                any::<[bool; 5]>(),
                any::<[bool; 2]>(),
                any::<(bool, bool, bool, bool)>(),
                any::<[bool; 2]>(),
                proptest::sample::subsequence(vec![100u32, 101, 102, 104], 0..=3),
                prop::bool::weighted(0.2),
            )
                .prop_map(
                    |(
                        picked,
                        own_gw,
                        default_main,
                        (extra_via, extra_direct, ll6, hints),
                        static_gw,
                        taken,
                        reuse_rule,
                    )| Case {
                        picked,
                        own_gw,
                        default_main,
                        extra_via,
                        extra_direct,
                        ll6,
                        hints,
                        static_gw,
                        taken,
                        reuse_rule,
                    },
                )
        }

        fn fam(v4: bool) -> usize {
            usize::from(!v4)
        }

        /// The namespace the main plugin leaves, the addresses and config.
        fn build(c: &Case) -> (Config, Vec<Address>, Observed) {
            let mut o = observed();
            o.routes.retain(|r| r.oif != Some(NET1));
            o.link_addresses = c.picked.iter().map(|&i| net(POOL[i].0)).collect();
            if c.ll6 {
                o.link_addresses.push(net("fe80::1/64"));
                o.routes.push(route("fe80::/64", None, None, NET1, 254));
            }
            // prevResult's default route per family: the first address's gateway.
            let mut prev_default: [Option<&str>; 2] = [None, None];
            for &i in &c.picked {
                let v4 = net(POOL[i].0).addr().is_ipv4();
                if c.default_main[fam(v4)] && prev_default[fam(v4)].is_none() {
                    prev_default[fam(v4)] = Some(POOL[i].1);
                }
            }
            let mut subnets = Vec::new();
            for &i in &c.picked {
                let a = net(POOL[i].0);
                if subnets.contains(&a.trunc()) {
                    continue;
                }
                subnets.push(a.trunc());
                let src = a.addr().to_string();
                let v4 = a.addr().is_ipv4();
                o.routes.push(route(
                    &a.trunc().to_string(),
                    None,
                    v4.then_some(src.as_str()),
                    NET1,
                    254,
                ));
            }
            if let Some(gw) = prev_default[0] {
                o.routes
                    .retain(|r| !(r.table == 254 && r.dst.prefix_len() == 0 && is_v4(&r.dst)));
                o.routes.push(route("default", Some(gw), None, NET1, 254));
            }
            if let Some(gw) = prev_default[1] {
                o.routes.push(route("default6", Some(gw), None, NET1, 254));
            }
            if c.extra_via && c.picked.iter().any(|&i| i < 2) {
                o.routes
                    .push(route("10.9.0.0/16", Some("10.1.0.1"), None, NET1, 254));
            }
            if c.extra_direct {
                let mut r = route("10.50.0.0/16", None, None, NET1, 254);
                r.protocol = RTPROT_BOOT;
                o.routes.push(r);
            }
            for (n, t) in c.taken.iter().enumerate() {
                o.rules.push(rule(
                    true,
                    Some(&format!("192.168.{n}.0/24")),
                    *t,
                    1000 + u32::try_from(n).unwrap(),
                ));
            }
            o.routes
                .push(route("172.16.0.0/12", Some("10.0.0.1"), None, ETH0, 103));
            if c.reuse_rule {
                let first = net(POOL[c.picked[0]].0);
                o.rules.push(Rule {
                    v4: first.addr().is_ipv4(),
                    src: Some(host(&first)),
                    table: 120,
                    priority: Some(32765),
                    action: FR_ACT_TO_TBL,
                });
            }
            let addresses = c
                .picked
                .iter()
                .map(|&i| {
                    let a = net(POOL[i].0);
                    let v4 = a.addr().is_ipv4();
                    let own = c.own_gw[i].then(|| ip(POOL[i].1));
                    Address {
                        addr: a,
                        gateway: own.or(prev_default[fam(v4)].map(ip)),
                        default_in_main: prev_default[fam(v4)].is_some(),
                    }
                })
                .collect();
            let mut config = Config {
                add_source_hints: c.hints,
                ..Config::default()
            };
            if c.static_gw[0] {
                config.gateway_v4 = Some("10.1.0.254".parse().unwrap());
            }
            if c.static_gw[1] {
                config.gateway_v6 = Some("2001:db8::fe".parse().unwrap());
            }
            (config, addresses, o)
        }

        fn strip_priorities(mut o: Observed) -> Observed {
            for r in &mut o.rules {
                if r.priority == Some(32765) {
                    r.priority = None;
                }
            }
            sorted(o)
        }

        proptest! {
            #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

            #[test]
            fn add_converges_del_restores_rollback_undoes(c in case()) {
                let (config, addresses, o) = build(&c);
                let plan = plan_add(&config, &addresses, &o).unwrap();
                let after = simulate(&o, &plan);

                // Converges: nothing left to do, and CHECK agrees.
                let again = plan_add(&config, &addresses, &after).unwrap();
                prop_assert!(again.is_empty(), "second ADD: {:#?}", lines(&again));
                prop_assert!(check(&config, &addresses, &after).is_ok(), "{:?}", check(&config, &addresses, &after));

                // One table per address, fresh ones above 100 not taken before.
                let mut tables = Vec::new();
                for a in &addresses {
                    let t = after.rules.iter().find(|r| r.src == Some(host(&a.addr))).unwrap().table;
                    prop_assert!(!tables.contains(&t));
                    tables.push(t);
                    prop_assert!(t == 120 || (t >= FIRST_TABLE && !c.taken.contains(&t) && t != 103), "table {t}");
                }

                // Rollback of the whole plan gives back the namespace.
                prop_assert_eq!(strip_priorities(simulate(&after, &plan.inverse())), strip_priorities(o.clone()));

                // DEL restores it too (a rule that was there before is ours to remove).
                let del = plan_del(&config, Some(&addresses), &after);
                let back = simulate(&after, &del);
                prop_assert!(plan_del(&config, Some(&addresses), &back).is_empty());
                if !c.reuse_rule {
                    prop_assert_eq!(sorted(back), sorted(o.clone()), "del: {:#?}", lines(&del));
                }

                // Without prevResult DEL knows a moved default from sbr's own
                // only by main having none left: exact whenever that is
                // enough (no static gateway, one default per family in our
                // tables, and an IPv6 table default only if main had one).
                let defaults = |obs: &Observed, v4: bool, main: bool| -> BTreeSet<(Option<IpAddr>, u32)> {
                    obs.routes
                        .iter()
                        .filter(|r| r.oif == Some(NET1) && r.dst.prefix_len() == 0 && is_v4(&r.dst) == v4)
                        .filter(|r| (r.table == RT_TABLE_MAIN) == main)
                        .map(|r| (r.gateway, metric_of(r)))
                        .collect()
                };
                let knowable = !c.reuse_rule
                    && config.gateway_v4.is_none()
                    && config.gateway_v6.is_none()
                    && [true, false].iter().all(|&v4| defaults(&after, v4, false).len() <= 1)
                    && defaults(&o, false, true).len() == defaults(&after, false, false).len();
                if knowable {
                    let del = plan_del(&config, None, &after);
                    let back = simulate(&after, &del);
                    prop_assert_eq!(sorted(back.clone()), sorted(o), "del without prevResult: {:#?}", lines(&del));
                    prop_assert!(plan_del(&config, None, &back).is_empty());
                }
            }
        }
    }
}
