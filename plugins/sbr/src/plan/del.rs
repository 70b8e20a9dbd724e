use std::collections::BTreeSet;

use ipnet::IpNet;
use nl_ops::route::{Route, RT_TABLE_MAIN};
use nl_ops::rule::Rule;

use super::*;
use crate::config::Config;

/// DEL: only what this attachment owns goes. `prev` is the prevResult's
/// addresses of the interface, `None` when the runtime sent none.
///
/// - Rules: sbr's (marked) for the addresses, and with a prevResult also
///   the reference's exact rule for its addresses (a node upgraded in
///   place). Without a prevResult the link's addresses stand in, for sbr's
///   own rules only.
/// - Tables: those of the deleted rules that no other rule uses, and a table
///   of an address that lost its rule. In them, routes through the link that
///   carry sbr's mark are deleted; the others are what ADD moved out of main
///   and go back unchanged, unless main holds a route with the same key on
///   another link (the kernel would refuse the twin; replacing it would
///   clobber someone else's route). Routes through other links stay.
/// - Main: source hints sbr put there are deleted before the routes they
///   replaced come back.
pub fn plan_del(config: &Config, prev: Option<&[Address]>, snap: &Snapshot) -> Plan {
    let sources: Vec<IpNet> = match prev {
        Some(addresses) => addresses.iter().map(|a| a.addr).collect(),
        None => snap.link_addresses.clone(),
    };
    let ours = |r: &Rule| owned_rule(config, prev.is_some(), &sources, snap, r);
    let rules: Vec<&Rule> = snap.rules.iter().filter(|r| ours(r)).collect();
    let mut ops: Vec<Change> = rules.iter().map(|r| Change::DelRule((*r).clone())).collect();

    let Some(link) = snap.link else {
        return once(ops);
    };
    if config.table.is_some() {
        return once(ops);
    }
    // Tables another rule still points at are someone else's too.
    let still_used: BTreeSet<u32> = snap.rules.iter().filter(|r| !ours(r)).map(|r| r.table).collect();
    let tables = tables_to_empty(&rules, &still_used, &sources, snap);
    // sbr never puts a route it cannot move into its tables: such a route
    // is someone else's, and could not be given back as it is.
    let in_tables: Vec<&Route> = snap
        .routes
        .iter()
        .filter(|r| tables.contains(&r.table) && r.oif == Some(link) && movable(r))
        .collect();
    restore_main(&mut ops, link, &in_tables, snap);
    ops.extend(in_tables.into_iter().cloned().map(Change::DelRoute));
    once(ops)
}

/// sbr's marked rule for one of `sources`, or (with a prevResult) the
/// reference's exact rule; only into the configured table when there is one.
fn owned_rule(config: &Config, with_prev: bool, sources: &[IpNet], snap: &Snapshot, r: &Rule) -> bool {
    if config.table.is_some_and(|want| want != r.table) {
        return false;
    }
    sources.iter().any(|a| {
        let src = host(a);
        marked_rule(r, &src)
            || (with_prev
                && match config.table {
                    // The configured table is the operator's: the
                    // reference's plain rule into it is enough.
                    Some(_) => plain_rule(r, &src) && r.protocol == RTPROT_UNSPEC,
                    None => reference_rule(snap, r, &src),
                })
    })
}

/// The tables of the deleted rules that nothing else uses, and the table
/// of an address that lost its rule.
fn tables_to_empty(
    rules: &[&Rule],
    still_used: &BTreeSet<u32>,
    sources: &[IpNet],
    snap: &Snapshot,
) -> BTreeSet<u32> {
    let mut tables: BTreeSet<u32> = rules
        .iter()
        .map(|r| r.table)
        .filter(|t| !still_used.contains(t) && !RESERVED_TABLES.contains(t))
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

/// sbr's source hints leave main first, then the unmarked routes of the
/// tables come back as they were.
fn restore_main(ops: &mut Vec<Change>, link: u32, in_tables: &[&Route], snap: &Snapshot) {
    let hints: Vec<&Route> = snap
        .routes
        .iter()
        .filter(|r| r.table == RT_TABLE_MAIN && r.oif == Some(link) && r.protocol == RTPROT_SBR)
        .collect();
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
    let back: Vec<Route> = in_tables
        .iter()
        .filter(|r| r.protocol != RTPROT_SBR)
        .map(|r| Route {
            table: RT_TABLE_MAIN,
            ..(*r).clone()
        })
        .collect();
    for r in dedup_direct_first(back) {
        ensure_route(ops, &after_hints, r);
    }
}
