use std::collections::BTreeSet;
use std::net::IpAddr;

use ipnet::IpNet;
use nl_ops::route::{Route, RT_SCOPE_UNIVERSE, RT_TABLE_MAIN};
use nl_ops::rule::Rule;

use super::*;
use crate::config::{Config, RESERVED_TABLES};

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
pub fn plan_del(config: &Config, prev: Option<&[Address]>, snap: &Snapshot) -> Plan {
    let addresses = prev.unwrap_or_default();
    let mut hosts: Vec<IpNet> = addresses.iter().map(|a| host(&a.addr)).collect();
    hosts.extend(snap.link_addresses.iter().map(host));

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
    let mut ops: Vec<Change> = snap
        .rules
        .iter()
        .filter(|r| ours(r))
        .cloned()
        .map(Change::DelRule)
        .collect();

    let Some(link) = snap.link else {
        return once(ops);
    };
    if config.table.is_some() {
        return once(ops);
    }
    // Tables another rule still points at are someone else's too: left alone.
    let still_used: BTreeSet<u32> = snap.rules.iter().filter(|r| !ours(r)).map(|r| r.table).collect();
    let tables: BTreeSet<u32> = snap
        .rules
        .iter()
        .filter(|r| ours(r))
        .map(|r| r.table)
        .filter(|t| !still_used.contains(t))
        .collect();
    let in_tables: Vec<&Route> = snap
        .routes
        .iter()
        .filter(|r| tables.contains(&r.table) && r.oif == Some(link))
        .collect();

    let to_main = |r: &Route| Route {
        table: RT_TABLE_MAIN,
        ..r.clone()
    };
    let main_other: Vec<&Route> = snap
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
        ensure_route(&mut ops, snap, r);
    }
    ops.extend(in_tables.into_iter().cloned().map(Change::DelRoute));
    once(ops)
}
