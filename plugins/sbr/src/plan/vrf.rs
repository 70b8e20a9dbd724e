//! vrf mode: the interface joins a VRF device whose table holds its routes,
//! instead of rules selecting a table by source address. The kernel's
//! l3mdev rule (priority 1000) sends what comes in or goes out through the
//! VRF to its table, whatever the source address or the socket's binding.
//!
//! As a link joins or leaves a VRF the kernel takes it down and up: every
//! route through it leaves main (the kernel puts the routes of its
//! addresses into the VRF's table, or back into main), and its IPv6
//! addresses are dropped. So ADD deletes main's other routes through the
//! link itself first (undone, they come back), adds the IPv6 addresses
//! back, and copies the deleted routes into the table with sbr's default
//! route. DEL gives them back to main.

use std::collections::BTreeSet;

use cni_core::CniError;
use ipnet::IpNet;
use nl_ops::route::{Route, RTPROT_KERNEL, RT_SCOPE_UNIVERSE, RT_TABLE_MAIN};

use super::del::give_back;
use super::*;
use crate::config::{Config, Mode};

/// ADD in vrf mode: the VRF (unless it is there), the link's routes out of
/// main, the link into the VRF, the table's routes, the sysctls. What is in
/// place already is not planned again.
pub(super) fn plan_add(config: &Config, addresses: &[Address], snap: &Snapshot) -> Result<Plan, CniError> {
    let link = snap.link.ok_or_else(|| link_missing(snap))?;
    let name = config.vrf_for(&snap.ifname);
    let existing = snap.vrfs.iter().find(|v| v.name == name);
    let mut ops = Vec::new();
    let table = match existing {
        Some(v) => {
            if let Some(t) = config.table.filter(|t| *t != v.table) {
                return Err(CniError::invalid_config(format!(
                    "VRF {name} already exist with different routing table {}",
                    v.table
                ))
                .with_details(format!("the config asks for table {t}")));
            }
            v.table
        }
        None => {
            let table = config.table.unwrap_or_else(|| first_free_table(snap));
            if let Some(v) = snap.vrfs.iter().find(|v| v.table == table) {
                return Err(CniError::invalid_config(format!(
                    "table {table} is the table of vrf {} already",
                    v.name
                )));
            }
            ops.push(Change::AddVrf(Vrf {
                name: name.clone(),
                table,
            }));
            table
        }
    };
    let joined = existing.is_some_and(|v| snap.master == Some(v.index));
    let mut copies = Vec::new();
    if !joined {
        if let Some(m) = snap.master {
            let master = snap
                .vrfs
                .iter()
                .find(|v| v.index == m)
                .map_or_else(|| format!("link {m}"), |v| v.name.clone());
            return Err(CniError::invalid_config(format!(
                "interface {} has already a master set: {master}",
                snap.ifname
            ))
            .with_details(format!("vrf mode enslaves it to vrf {name}")));
        }
        // The kernel re-makes the routes of the link's addresses itself.
        let main: Vec<&Route> = main_link_routes(snap, link)
            .into_iter()
            .filter(|r| r.protocol != RTPROT_KERNEL)
            .collect();
        let (via, direct): (Vec<&Route>, Vec<&Route>) = main.iter().partition(|r| r.gateway.is_some());
        ops.extend(via.into_iter().chain(direct).map(|r| Change::DelRoute(r.clone())));
        copies = main;
        ops.push(Change::Enslave(Port {
            link,
            vrf: name,
            keep: kept_addresses(addresses.iter().map(|a| a.addr), snap),
        }));
    }
    let mut want: Vec<Route> = Vec::new();
    let mut families = BTreeSet::new();
    for a in addresses {
        let v4 = is_v4(&a.addr);
        if let Some(gw) = config.static_gateway(v4).or(a.gateway) {
            if families.insert(v4) {
                want.push(default_via(gw, link, table));
            }
        }
    }
    // A copy of main's default takes the place of sbr's, as in sbr mode.
    want.extend(copies.into_iter().map(|r| Route { table, ..r.clone() }));
    // Nothing of the link is in the table before it joins (the kernel
    // flushes it as the link leaves): a route of another port keeps its place.
    for r in dedup_direct_first(want, |r| r) {
        ensure_route(&mut ops, snap, r);
    }
    if config.l3mdev_accept {
        let have = snap.l3mdev_accept.unwrap_or_default();
        for (key, on) in L3MDEV_SYSCTLS.into_iter().zip(have) {
            if !on {
                ops.push(Change::Sysctl(Sysctl { key, on: true }));
            }
        }
    }
    Ok(undoable(ops))
}

/// DEL's part for a VRF: the link leaves the VRF it is in when that is
/// sbr's (its alias) or, in vrf mode, the configured one; main gets back
/// the routes ADD moved (those in the table through the link that neither
/// the kernel nor sbr made); the VRF goes when it is sbr's and no other
/// link is in it. Without a link (gone already) only the empty VRF goes.
pub(super) fn plan_del(config: &Config, sources: &[IpNet], snap: &Snapshot) -> Vec<Change> {
    let name = config.vrf_for(&snap.ifname);
    let configured = |v: &&VrfLink| config.mode == Mode::Vrf && v.name == name;
    let of_link = snap
        .master
        .and_then(|m| snap.vrfs.iter().find(|v| v.index == m))
        .filter(|v| v.ours || configured(v));
    let Some(vrf) = of_link.or_else(|| snap.vrfs.iter().find(configured)) else {
        return Vec::new();
    };
    let mut ops = Vec::new();
    let link = snap.link.filter(|_| snap.master == Some(vrf.index));
    if let Some(link) = link {
        ops.push(Change::Release(Port {
            link,
            vrf: vrf.name.clone(),
            keep: kept_addresses(sources.iter().copied(), snap),
        }));
        let back: Vec<(Route, bool)> = snap
            .routes
            .iter()
            .filter(|r| {
                r.table == vrf.table
                    && r.oif == Some(link)
                    && r.kind == RTN_UNICAST
                    && movable(r)
                    && r.protocol != RTPROT_KERNEL
                    && r.protocol != RTPROT_SBR
            })
            .map(|r| {
                let r = Route {
                    table: RT_TABLE_MAIN,
                    ..r.clone()
                };
                (r, true)
            })
            .collect();
        // What the table held is gone with the release; main is as read.
        let main = Snapshot {
            routes: snap
                .routes
                .iter()
                .filter(|r| r.table == RT_TABLE_MAIN)
                .cloned()
                .collect(),
            ..snap.clone()
        };
        for (r, marked) in dedup_direct_first(back, |(r, _)| r) {
            give_back(&mut ops, &main, r, marked);
        }
    }
    let others = vrf.ports.iter().any(|p| Some(*p) != link);
    if vrf.ours && !others {
        ops.push(Change::DelVrf(Vrf {
            name: vrf.name.clone(),
            table: vrf.table,
        }));
    }
    ops
}

/// The IPv6 addresses of `sources` the link has: the kernel drops them as
/// the link joins or leaves a VRF, and they come back. (IPv4 addresses stay.)
fn kept_addresses(sources: impl Iterator<Item = IpNet>, snap: &Snapshot) -> Vec<IpNet> {
    let mut keep: Vec<IpNet> = Vec::new();
    for a in sources.filter(|a| !is_v4(a)) {
        let on_link = snap.link_addresses.iter().any(|l| l.addr() == a.addr());
        let link_local = matches!(a, IpNet::V6(n) if n.addr().is_unicast_link_local());
        if on_link && !keep.contains(&a) && !link_local {
            keep.push(a);
        }
    }
    keep
}

/// The first table from 100 no rule, no route and no VRF uses.
fn first_free_table(snap: &Snapshot) -> u32 {
    let taken: BTreeSet<u32> = snap
        .rules
        .iter()
        .map(|r| r.table)
        .chain(snap.routes.iter().map(|r| r.table))
        .chain(snap.vrfs.iter().map(|v| v.table))
        .collect();
    (FIRST_TABLE..)
        .find(|t| !taken.contains(t))
        .unwrap_or(FIRST_TABLE)
}

/// sbr's default route in the VRF's table.
fn default_via(gw: std::net::IpAddr, link: u32, table: u32) -> Route {
    Route {
        dst: zero(gw.is_ipv4()),
        gateway: Some(gw),
        prefsrc: None,
        oif: Some(link),
        table,
        scope: RT_SCOPE_UNIVERSE,
        metric: None,
        protocol: RTPROT_SBR,
        kind: RTN_UNICAST,
        tos: 0,
        metrics: Vec::new(),
        other_nexthop: false,
    }
}
