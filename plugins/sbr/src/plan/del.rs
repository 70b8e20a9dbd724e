use std::collections::BTreeSet;

use ipnet::IpNet;
use nl_ops::route::{Route, RT_TABLE_MAIN};
use nl_ops::rule::Rule;

use super::*;
use crate::config::Config;

/// DEL: only what this attachment owns goes. `prev` is the prevResult's
/// addresses of the interface, `None` when the runtime sent none: the
/// link's addresses stand in.
///
/// - Rules: sbr's (marked) for the addresses into a table of this link, and
///   the reference's exact rule and table (a node upgraded in place). With
///   `table` set only sbr's marked rule into it: a plain rule there may be
///   the operator's.
/// - Tables: those of the deleted rules, and a table of an address that
///   lost its rule. In a table with markers, the routes through the link
///   that have one are what ADD copied from main: they go back unchanged
///   (beside main's route with the same key on another link, when that is
///   direct), sbr's own routes (its mark, no marker) are deleted, anything
///   else (someone added it later) stays, and so does any other rule into
///   the table. A table without markers (the reference's, or made by sbr
///   before markers) is emptied as before: unmarked routes go back, only
///   when no other rule uses the table.
/// - Main: source hints sbr put there are deleted before the routes they
///   replaced come back.
pub fn plan_del(config: &Config, prev: Option<&[Address]>, snap: &Snapshot) -> Plan {
    let sources: Vec<IpNet> = match prev {
        Some(addresses) => addresses.iter().map(|a| a.addr).collect(),
        None => snap.link_addresses.clone(),
    };
    // The VRF's part first; in vrf mode that is all there is.
    let vrf_ops = super::vrf::plan_del(config, &sources, snap);
    if config.mode == crate::config::Mode::Vrf {
        return once(vrf_ops);
    }
    let ours = |r: &Rule| owned_rule(config, &sources, snap, r);
    let rules: Vec<&Rule> = snap.rules.iter().filter(|r| ours(r)).collect();
    let mut ops = vrf_ops;
    ops.extend(rules.iter().map(|r| Change::DelRule((*r).clone())));
    if config.table.is_some() {
        return once(ops);
    }
    let still_used: BTreeSet<u32> = snap.rules.iter().filter(|r| !ours(r)).map(|r| r.table).collect();
    let tables = tables_to_empty(&rules, &sources, snap);
    let markers: Vec<&Route> = snap
        .routes
        .iter()
        .filter(|r| tables.contains(&r.table) && is_marker(r))
        .collect();
    let marked_tables: BTreeSet<u32> = markers.iter().map(|r| r.table).collect();
    if let Some(link) = snap.link {
        // sbr never puts a route it cannot move into its tables: such a
        // route is someone else's, and could not be given back as it is.
        let mut back = Vec::new();
        let mut gone = Vec::new();
        for r in snap
            .routes
            .iter()
            .filter(|r| tables.contains(&r.table) && r.oif == Some(link) && movable(r))
        {
            if marked_tables.contains(&r.table) {
                if marked(snap, r) {
                    back.push((r, true));
                    gone.push(r);
                } else if r.protocol == RTPROT_SBR {
                    gone.push(r);
                }
            } else if !still_used.contains(&r.table) {
                // Made before markers (or by the reference): every unmarked
                // route through the link is main's.
                if r.protocol != RTPROT_SBR {
                    back.push((r, false));
                }
                gone.push(r);
            }
        }
        restore_main(&mut ops, link, &sources, &back, snap);
        ops.extend(gone.into_iter().cloned().map(Change::DelRoute));
    }
    // Last: while a marker stays, a DEL that died midway can be run again.
    ops.extend(markers.into_iter().cloned().map(Change::DelRoute));
    once(ops)
}

/// sbr's marked rule for one of `sources` into a table of this link, or the
/// reference's exact rule; with `table` set only sbr's rule into it.
fn owned_rule(config: &Config, sources: &[IpNet], snap: &Snapshot, r: &Rule) -> bool {
    sources.iter().any(|a| match config.table {
        Some(want) => r.table == want && marked_rule(r, &host(a)),
        None => (marked_rule(r, &host(a)) && table_of_link(snap, r.table)) || reference_rule(snap, r, a),
    })
}

/// The tables of the deleted rules, and the table of an address that lost
/// its rule.
fn tables_to_empty(rules: &[&Rule], sources: &[IpNet], snap: &Snapshot) -> BTreeSet<u32> {
    let mut tables: BTreeSet<u32> = rules
        .iter()
        .map(|r| r.table)
        .filter(|t| !RESERVED_TABLES.contains(t))
        .collect();
    for a in sources {
        let src = host(a);
        if !rules.iter().any(|r| r.src == Some(src)) {
            if let Some(t) = orphan_table(snap, a, &tables) {
                tables.insert(t);
            }
        }
    }
    tables
}

/// sbr's source hints leave main first, then the routes of the tables come
/// back as they were.
fn restore_main(
    ops: &mut Vec<Change>,
    link: u32,
    sources: &[IpNet],
    back: &[(&Route, bool)],
    snap: &Snapshot,
) {
    let hints: Vec<&Route> = snap.routes.iter().filter(|r| is_hint(r, link, sources)).collect();
    ops.extend(hints.iter().map(|r| Change::DelRoute((*r).clone())));
    let after_hints = Snapshot {
        routes: snap
            .routes
            .iter()
            .filter(|r| !hints.iter().any(|h| std::ptr::eq(*h, *r)))
            .cloned()
            .collect(),
        ..snap.clone()
    };
    let back: Vec<(Route, bool)> = back
        .iter()
        .map(|(r, marked)| {
            let r = Route {
                table: RT_TABLE_MAIN,
                ..(*r).clone()
            };
            (r, *marked)
        })
        .collect();
    for (r, marked) in dedup_direct_first(back, |(r, _)| r) {
        give_back(ops, &after_hints, r, marked);
    }
}

/// Puts a route back into main. An IPv4 route whose key another link's
/// route holds goes in beside it, as the kernel had it before ADD: a direct
/// one (a subnet two links share), or, when its marker proves ADD took it
/// from main, one via a gateway (a default through each link; a table
/// without markers may hold the reference's own default, which main never
/// had). IPv6 would join such routes into one multipath route.
pub(super) fn give_back(ops: &mut Vec<Change>, snap: &Snapshot, want: Route, marked: bool) {
    if snap.routes.iter().any(|r| same_route(r, &want)) {
        return;
    }
    let beside = snap
        .routes
        .iter()
        .find(|r| same_key(r, &want))
        .is_some_and(|have| have.oif != want.oif);
    if beside && (want.gateway.is_none() || marked) && is_v4(&want.dst) {
        ops.push(Change::AppendRoute(want));
    } else {
        ensure_route(ops, snap, want);
    }
}
