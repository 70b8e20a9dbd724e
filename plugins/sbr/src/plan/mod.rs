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
mod vrf;
#[cfg(test)]
mod vrf_tests;

pub use add::plan_add;
pub use check::check;
pub use del::plan_del;

use std::collections::BTreeSet;
use std::fmt;
use std::net::IpAddr;

use cni_core::plan::Step;
use cni_core::{CniError, NetResult};
use ipnet::IpNet;
use nl_ops::route::{
    Route, RT_SCOPE_LINK, RT_SCOPE_UNIVERSE, RT_TABLE_DEFAULT, RT_TABLE_LOCAL, RT_TABLE_MAIN,
};
pub use nl_ops::route::{RTN_THROW, RTN_UNICAST, RTPROT_BOOT};
use nl_ops::rule::Rule;
pub use nl_ops::rule::FR_ACT_TO_TBL;

use crate::config::{Config, RESERVED_TABLES};

/// The reference starts here too.
pub const FIRST_TABLE: u32 = 100;
/// The mark on every rule and route sbr makes (FRA_PROTOCOL, rtm_protocol),
/// as routing daemons mark theirs: `ip rule` and `ip route` show it as
/// `proto 83`. It survives a crash and needs no state file. Routes sbr
/// moves keep the protocol they had, and a marker (see [`marker`]) beside
/// each says ADD moved it, so DEL puts back exactly what ADD took.
pub const RTPROT_SBR: u8 = 83;
/// What the reference writes on its rules.
pub const RTPROT_UNSPEC: u8 = 0;
/// A marker's metric is that of the route it stands beside plus this: a
/// higher metric than any real route's, so it never wins a lookup.
pub const MARKER_OFFSET: u32 = 1 << 31;

/// One prevResult address of the interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Address {
    /// With its prefix length, as the prevResult gives it.
    pub addr: IpNet,
    /// The IP's own gateway, else the gateway of the prevResult's default
    /// route of this family.
    pub gateway: Option<IpAddr>,
}

/// The namespace as read once, before planning.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    pub ifname: String,
    /// The interface's index; `None` when it does not exist.
    pub link: Option<u32>,
    /// The link's addresses: with their prefix lengths in vrf mode and for a DEL without
    /// prevResult, else as host prefixes (only the addresses are compared)
    /// read from the local table, which holds an IPv6 address only once
    /// DAD is done: ADD and CHECK see the addresses usable as a source.
    pub link_addresses: Vec<IpNet>,
    /// Every table, both families.
    pub routes: Vec<Route>,
    pub rules: Vec<Rule>,
    /// The link's master (IFLA_MASTER): a VRF's index in vrf mode.
    pub master: Option<u32>,
    /// The namespace's VRF devices; read only for vrf mode or a link that
    /// has a master.
    pub vrfs: Vec<VrfLink>,
    /// `net.ipv4.tcp_l3mdev_accept` and `udp_l3mdev_accept` as set; read
    /// only when `l3mdevAccept` asks for them.
    pub l3mdev_accept: Option<[bool; 2]>,
}

/// A VRF device as read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VrfLink {
    pub index: u32,
    pub name: String,
    pub table: u32,
    /// It carries sbr's alias ([`VRF_ALIAS`]): sbr made it.
    pub ours: bool,
    /// The links enslaved to it.
    pub ports: Vec<u32>,
}

/// The alias sbr gives each VRF device it makes (IFLA_IFALIAS): the mark
/// DEL knows it by, with no saved state. A VRF without it is someone
/// else's: sbr may join it, never deletes it.
pub const VRF_ALIAS: &str = "cni-sbr";

/// One change to the namespace's routing state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    AddRule(Rule),
    DelRule(Rule),
    AddRoute(Route),
    /// Added beside main's route with the same key on another link (a
    /// subnet two links share), as the kernel adds prefix routes.
    AppendRoute(Route),
    DelRoute(Route),
    /// `ip link add NAME type vrf table T` (with sbr's alias), up.
    AddVrf(Vrf),
    DelVrf(Vrf),
    /// `ip link set dev LINK master VRF`; then the IPv6 addresses the
    /// kernel drops as the link goes down and up are added back.
    Enslave(Port),
    /// `ip link set dev LINK nomaster`; the same addresses come back.
    Release(Port),
    /// `sysctl -w net.ipv4.KEY=0|1` in the namespace.
    Sysctl(Sysctl),
}

/// A VRF device sbr makes or deletes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vrf {
    pub name: String,
    pub table: u32,
}

/// The interface joining or leaving a VRF, known by name (a VRF the same
/// plan makes has no index yet), with the addresses to keep.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Port {
    pub link: u32,
    pub vrf: String,
    pub keep: Vec<IpNet>,
}

/// One of the two l3mdev sysctls of the namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sysctl {
    pub key: &'static str,
    pub on: bool,
}

/// The sysctls `l3mdevAccept` sets, in [`Snapshot::l3mdev_accept`]'s order.
pub const L3MDEV_SYSCTLS: [&str; 2] = ["tcp_l3mdev_accept", "udp_l3mdev_accept"];

pub type Plan = cni_core::plan::Plan<Change>;

impl Change {
    pub fn inverse(&self) -> Change {
        match self {
            Change::AddRule(r) => Change::DelRule(r.clone()),
            Change::DelRule(r) => Change::AddRule(r.clone()),
            Change::AddRoute(r) | Change::AppendRoute(r) => Change::DelRoute(r.clone()),
            Change::DelRoute(r) => Change::AddRoute(r.clone()),
            Change::AddVrf(v) => Change::DelVrf(v.clone()),
            Change::DelVrf(v) => Change::AddVrf(v.clone()),
            Change::Enslave(p) => Change::Release(p.clone()),
            Change::Release(p) => Change::Enslave(p.clone()),
            Change::Sysctl(s) => Change::Sysctl(Sysctl { on: !s.on, ..*s }),
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
            Change::AppendRoute(r) => format!(
                "append route {} to table {}",
                RouteText(r, ifname),
                TableText(r.table)
            ),
            Change::DelRoute(r) => format!(
                "delete route {} from table {}",
                RouteText(r, ifname),
                TableText(r.table)
            ),
            Change::AddVrf(v) => format!("add vrf {} table {}", v.name, v.table),
            Change::DelVrf(v) => format!("delete vrf {} (table {})", v.name, v.table),
            Change::Enslave(p) => format!("enslave {ifname} to vrf {}{}", p.vrf, KeepText(&p.keep)),
            Change::Release(p) => format!("release {ifname} from vrf {}{}", p.vrf, KeepText(&p.keep)),
            Change::Sysctl(s) => format!("set net.ipv4.{} to {}", s.key, u8::from(s.on)),
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

/// ", keeping fd00::2/64": the addresses a port change adds back.
struct KeepText<'a>(&'a [IpNet]);

impl fmt::Display for KeepText<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, a) in self.0.iter().enumerate() {
            f.write_str(if i == 0 { ", keeping " } else { " " })?;
            write!(f, "{a}")?;
        }
        Ok(())
    }
}

pub struct TableText(pub u32);

impl fmt::Display for TableText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            RT_TABLE_MAIN => f.write_str("main"),
            RT_TABLE_DEFAULT => f.write_str("default"),
            RT_TABLE_LOCAL => f.write_str("local"),
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
        if r.kind == RTN_THROW {
            f.write_str("throw ")?;
        }
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
        if let Some(m) = r.mtu() {
            write!(f, " mtu {m}")?;
        }
        Ok(())
    }
}

/// The prevResult addresses of `ifname`: those whose interface index names
/// it, or that have none (unset, negative or out of range, as the reference
/// reads them). Gateways fall back to the default route of the
/// family.
pub fn addresses_from_result(result: &NetResult, ifname: &str) -> Vec<Address> {
    let default_gw = |v4: bool| -> Option<IpAddr> {
        result
            .routes
            .iter()
            .filter(|r| r.dst.prefix_len() == 0 && is_v4(&r.dst) == v4)
            .find_map(|r| r.gw)
    };
    result
        .ips
        .iter()
        .filter(|ip| result.interface_of(ip).is_none_or(|iface| iface.name == ifname))
        .map(|ip| {
            let v4 = is_v4(&ip.address);
            let own = ip.gateway.filter(|g| g.is_ipv4() == v4);
            Address {
                addr: ip.address,
                gateway: own.or_else(|| default_gw(v4)),
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
/// would be refused with "file exists". IPv6 keeps a direct route per link
/// (each link's `fe80::/64`): there the link is part of the key.
pub(crate) fn same_key(a: &Route, b: &Route) -> bool {
    let per_link = !is_v4(&a.dst) && a.gateway.is_none() && b.gateway.is_none();
    a.dst == b.dst
        && a.table == b.table
        && a.tos == b.tos
        && metric_of(a) == metric_of(b)
        && (!per_link || a.oif == b.oif)
}

/// The same route as far as forwarding goes (protocol is a label; IPv6
/// reports no scope). Metrics count: a copy that lost its mtu is not the
/// route main had.
pub(crate) fn same_route(a: &Route, b: &Route) -> bool {
    same_key(a, b)
        && a.gateway == b.gateway
        && a.prefsrc == b.prefsrc
        && a.oif == b.oif
        && a.kind == b.kind
        && a.metrics == b.metrics
        && (a.scope == b.scope || !is_v4(&a.dst))
}

/// A route sbr can move and give back as it was: no tos (a key sbr's rules
/// and copies do not carry), a next hop that is just `oif` and `gateway`
/// (not RTA_VIA, multipath, a nexthop object or an encap), and a metric
/// below 2^31, so that its marker's is above it.
pub(crate) fn movable(r: &Route) -> bool {
    r.tos == 0 && !r.other_nexthop && metric_of(r) < MARKER_OFFSET
}

/// The marker ADD puts beside each route it copies from main into a table
/// (`throw DST table T proto 83 metric M+2^31`): kernel state that proves
/// the copy is ADD's, so DEL gives back exactly those routes and leaves
/// what others add to the table later. A throw sends lookups on to the
/// next rule, as no route at all would, and its metric is above the
/// copy's: lookups never see it.
pub(crate) fn marker(copy: &Route) -> Route {
    Route {
        dst: copy.dst,
        gateway: None,
        prefsrc: None,
        oif: None,
        table: copy.table,
        scope: RT_SCOPE_UNIVERSE,
        // Movable routes have metrics below the offset.
        metric: Some(metric_of(copy) | MARKER_OFFSET),
        protocol: RTPROT_SBR,
        kind: RTN_THROW,
        tos: 0,
        metrics: Vec::new(),
        other_nexthop: false,
    }
}

pub(crate) fn is_marker(r: &Route) -> bool {
    r.kind == RTN_THROW && r.protocol == RTPROT_SBR && metric_of(r) >= MARKER_OFFSET
}

/// Whether the table's route `r` has its marker: ADD copied it from main.
/// (The kernel reports an IPv6 throw route on `lo`: the link is no key.)
pub(crate) fn marked(snap: &Snapshot, r: &Route) -> bool {
    let m = marker(r);
    snap.routes
        .iter()
        .any(|x| is_marker(x) && x.dst == m.dst && x.table == m.table && x.metric == m.metric)
}

/// Whether `table` is this link's: it routes through the link, or through
/// no link at all (empty, or markers only: the link is gone). Two links with
/// one address each keep their own table.
pub(crate) fn table_of_link(snap: &Snapshot, table: u32) -> bool {
    let oifs: Vec<u32> = snap
        .routes
        .iter()
        .filter(|r| r.table == table && !is_marker(r))
        .filter_map(|r| r.oif)
        .collect();
    oifs.is_empty() || snap.link.is_some_and(|l| oifs.contains(&l))
}

/// `addSourceHints`' route in main: sbr's, to the address's subnet with
/// the address as source, through the link.
pub(crate) fn is_hint(r: &Route, link: u32, addresses: &[IpNet]) -> bool {
    r.table == RT_TABLE_MAIN
        && r.oif == Some(link)
        && r.protocol == RTPROT_SBR
        && r.gateway.is_none()
        && addresses
            .iter()
            .any(|a| a.trunc() == r.dst && r.prefsrc == Some(a.addr()))
}

pub(crate) fn in_subnet(net: &IpNet, ip: Option<IpAddr>) -> bool {
    ip.is_some_and(|ip| net.contains(&ip))
}

/// Whether main's route `r` on the link is the address's: what ADD copies
/// into its table and takes out of main. Of its family, and generic (no
/// source, no gateway), or with its source or gateway in the address's
/// subnet, or via the address's own gateway or the configured one (a /32
/// address reaches its gateway, 169.254.1.1 say, through a link route).
/// A route that belongs to no address stays in main: nothing could give it
/// back.
pub(crate) fn belongs(config: &Config, a: &Address, r: &Route) -> bool {
    let v4 = is_v4(&a.addr);
    let own_gateway =
        r.gateway.is_some() && (r.gateway == a.gateway || r.gateway == config.static_gateway(v4));
    is_v4(&r.dst) == v4
        && ((r.prefsrc.is_none() && r.gateway.is_none())
            || in_subnet(&a.addr, r.prefsrc)
            || in_subnet(&a.addr, r.gateway)
            || own_gateway)
}

/// Main-table unicast routes through the link: what the previous plugin
/// set up and what sbr moves. Those it could not give back as they were
/// stay in main, with a warning.
pub(crate) fn main_link_routes(snap: &Snapshot, link: u32) -> Vec<&Route> {
    snap.routes
        .iter()
        .filter(|r| r.table == RT_TABLE_MAIN && r.oif == Some(link) && r.kind == RTN_UNICAST)
        .filter(|r| {
            if movable(r) {
                return true;
            }
            let why = if r.tos != 0 {
                format!("tos {:#x}", r.tos)
            } else if metric_of(r) >= MARKER_OFFSET {
                format!("metric {} (2^31 and up are for sbr's markers)", metric_of(r))
            } else {
                "a next hop beyond a gateway (via, multipath, nexthop object, encap)".to_string()
            };
            log::warn!(
                "route {} stays in table main: sbr cannot move a route with {why}",
                RouteText(r, &snap.ifname)
            );
            false
        })
        .collect()
}

/// A rule `from SRC lookup TABLE` with nothing else to it, into a table a
/// rule of this plugin may use.
fn plain_rule(r: &Rule, src: &IpNet) -> bool {
    r.src.as_ref() == Some(src) && r.action == FR_ACT_TO_TBL && !r.other_selectors && r.table != 0
}

/// A rule sbr made for this source: plain and marked.
pub(crate) fn marked_rule(r: &Rule, src: &IpNet) -> bool {
    plain_rule(r, src) && r.protocol == RTPROT_SBR
}

/// The reference's rule for the address `a` (with its prefix): plain,
/// unmarked, into a table in the reference's exact shape: copies of main's
/// routes through the link, among them the route to the address's subnet
/// (none at all when the link is gone). A node upgraded in place still
/// tears down what the reference made; an operator's rule into a table of
/// their own routes is not that.
pub(crate) fn reference_rule(snap: &Snapshot, r: &Rule, a: &IpNet) -> bool {
    let mut routes = snap.routes.iter().filter(|t| t.table == r.table);
    let shape = match snap.link {
        None => routes.next().is_none(),
        Some(link) => {
            let subnet = a.trunc();
            routes
                .clone()
                .all(|t| t.oif == Some(link) && t.kind == RTN_UNICAST)
                && routes.any(|t| subnet.prefix_len() == subnet.max_prefix_len() || t.dst == subnet)
        }
    };
    plain_rule(r, &host(a)) && r.protocol == RTPROT_UNSPEC && !RESERVED_TABLES.contains(&r.table) && shape
}

/// The rule that ties the address `a` to its table: sbr's own (the one
/// with the configured priority first) into a table of this link, else the
/// reference's. Never one into a kernel table (left by an ADD with `table`
/// set): adopting main would copy main into itself and strip it.
pub(crate) fn attachment_rule<'a>(snap: &'a Snapshot, a: &IpNet, priority: Option<u32>) -> Option<&'a Rule> {
    let src = host(a);
    let ours = || {
        snap.rules.iter().filter(|r| {
            marked_rule(r, &src) && !RESERVED_TABLES.contains(&r.table) && table_of_link(snap, r.table)
        })
    };
    ours()
        .find(|r| priority.is_none() || r.priority == priority)
        .or_else(|| ours().next())
        .or_else(|| snap.rules.iter().find(|r| reference_rule(snap, r, a)))
}

/// A table of this address that lost its rule (someone deleted it): no rule
/// points at it, every route in it but sbr's markers is a unicast route
/// through the link (as all sbr puts there; a VRF's table also holds local
/// and broadcast routes), and one of them belongs to the address (sbr's
/// mark, its source, a gateway in its subnet or its subnet itself). ADD
/// takes it up again and DEL empties it, so neither strands the routes that
/// left main. Tables in `claimed` went to other addresses already.
pub(crate) fn orphan_table(snap: &Snapshot, a: &IpNet, claimed: &BTreeSet<u32>) -> Option<u32> {
    let link = snap.link?;
    let referenced: BTreeSet<u32> = snap.rules.iter().map(|r| r.table).collect();
    let tables: BTreeSet<u32> = snap
        .routes
        .iter()
        .map(|r| r.table)
        .filter(|t| !RESERVED_TABLES.contains(t) && !referenced.contains(t) && !claimed.contains(t))
        .collect();
    let v4 = is_v4(a);
    let subnet = a.trunc();
    let tied = |r: &Route| {
        is_v4(&r.dst) == v4
            && (r.protocol == RTPROT_SBR
                || r.prefsrc == Some(a.addr())
                || in_subnet(&subnet, r.gateway)
                || (r.gateway.is_none() && r.dst.prefix_len() > 0 && r.dst.contains(&a.addr())))
    };
    tables.into_iter().find(|t| {
        let mut routes = snap.routes.iter().filter(|r| r.table == *t && !is_marker(r));
        routes
            .clone()
            .all(|r| r.oif == Some(link) && r.kind == RTN_UNICAST)
            && routes.any(tied)
    })
}

/// Adds `want` unless the same route is there. A different route with the
/// same key is replaced (delete, then add: both undoable) only when it goes
/// through the link, so in a table of this attachment it is sbr's own or a
/// copy of main's; a copy gives way only to a newer copy (main's routes win
/// over sbr's, as in the reference, and DEL must find them to give them
/// back). Someone else's route is left alone, and `want` with it.
pub(crate) fn ensure_route(ops: &mut Vec<Change>, snap: &Snapshot, want: Route) {
    match snap.routes.iter().find(|r| same_key(r, &want)) {
        Some(have) if same_route(have, &want) => {}
        Some(have)
            if have.oif.is_some()
                && have.oif == snap.link
                && have.protocol != RTPROT_SBR
                && want.protocol == RTPROT_SBR => {}
        Some(have) if have.oif.is_some() && have.oif == snap.link => {
            ops.push(Change::DelRoute(have.clone()));
            ops.push(Change::AddRoute(want));
        }
        Some(have) => log::warn!(
            "not adding route {}: table {} has {} through another link",
            RouteText(&want, &snap.ifname),
            TableText(want.table),
            have.dst
        ),
        None => ops.push(Change::AddRoute(want)),
    }
}

/// Keeps the last of routes with one key (the reference replaces), in the
/// order of first appearance, routes without gateway first so that gateways
/// are reachable when theirs go in.
pub(crate) fn dedup_direct_first<T>(items: Vec<T>, route: impl Fn(&T) -> &Route) -> Vec<T> {
    let mut out: Vec<T> = Vec::new();
    for r in items {
        match out.iter_mut().find(|o| same_key(route(o), route(&r))) {
            Some(o) => *o = r,
            None => out.push(r),
        }
    }
    let (direct, via): (Vec<T>, Vec<T>) = out.into_iter().partition(|r| route(r).gateway.is_none());
    direct.into_iter().chain(via).collect()
}

pub(crate) fn link_missing(snap: &Snapshot) -> CniError {
    CniError::env(format!(
        "link {} not found in the container namespace",
        snap.ifname
    ))
}
