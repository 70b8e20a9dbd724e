use std::collections::BTreeSet;

use cni_core::CniError;
use nl_ops::route::{Route, RT_SCOPE_LINK, RT_SCOPE_UNIVERSE, RT_TABLE_MAIN};
use nl_ops::rule::Rule;

use super::*;
use crate::config::Config;

/// The rule sbr makes for `src`.
fn new_rule(src: IpNet, table: u32, priority: Option<u32>) -> Rule {
    Rule {
        v4: src.addr().is_ipv4(),
        src: Some(src),
        table,
        priority,
        action: FR_ACT_TO_TBL,
        protocol: RTPROT_SBR,
        other_selectors: false,
    }
}

/// ADD: per address a rule to its table and the table's routes, then the
/// moved routes leave main, then source hints. Converges: what is already in
/// place is not planned again; an address keeps the table of its rule (sbr's
/// or the reference's), or takes up the table that lost its rule.
pub fn plan_add(config: &Config, addresses: &[Address], snap: &Snapshot) -> Result<Plan, CniError> {
    if config.mode == crate::config::Mode::Vrf {
        return super::vrf::plan_add(config, addresses, snap);
    }
    if let Some(table) = config.table {
        return Ok(undoable(rules_into(table, config, addresses, snap)));
    }
    let link = snap.link.ok_or_else(|| link_missing(snap))?;
    let main = main_link_routes(snap, link);
    let (keep, hints, hinted) = source_hints(config, addresses, link, &main, snap);
    // sbr's own hints stay in main: they are not copied nor moved.
    let nets: Vec<IpNet> = addresses.iter().map(|a| a.addr).collect();
    let main: Vec<&Route> = main
        .into_iter()
        .filter(|r| !(config.add_source_hints && is_hint(r, link, &nets)))
        .collect();
    let kept = |r: &Route| {
        let in_main = Route {
            table: RT_TABLE_MAIN,
            ..r.clone()
        };
        keep.iter().any(|k| same_route(k, &in_main))
    };
    let mut tables = Tables::new(snap);
    let mut ops = Vec::new();
    for a in addresses {
        let src = host(&a.addr);
        let rule =
            attachment_rule(snap, &a.addr, config.priority).filter(|r| !tables.claimed.contains(&r.table));
        let table = tables.pick(rule.map(|r| r.table), snap, a);
        ensure_rule(&mut ops, rule, new_rule(src, table, config.priority), config);
        let hint = hinted.iter().find(|h| h.dst == a.addr.trunc());
        let want = table_routes(config, a, table, link, &main, hint, snap);
        for (r, copied) in dedup_direct_first(want, |(r, _)| r) {
            let present = snap.routes.iter().any(|x| same_route(x, &r));
            let mark = marker(&r);
            ensure_route(&mut ops, snap, r.clone());
            // Every copy that leaves main gets its marker before main's
            // route goes: DEL gives back exactly the marked ones.
            if copied && !marked(snap, &r) && (!present || !kept(&r)) {
                ops.push(Change::AddRoute(mark));
            }
        }
    }
    ops.extend(leave_main(config, &main, addresses, &keep, &snap.ifname));
    ops.extend(hints.into_iter().map(Change::AddRoute));
    Ok(undoable(ops))
}

/// The `table` option: every address's rule into one table, nothing moved.
fn rules_into(table: u32, config: &Config, addresses: &[Address], snap: &Snapshot) -> Vec<Change> {
    let mut ops = Vec::new();
    for a in addresses {
        let src = host(&a.addr);
        let present = snap.rules.iter().any(|r| {
            r.table == table && (marked_rule(r, &src) || (plain_rule(r, &src) && r.protocol == RTPROT_UNSPEC))
        });
        let rule = new_rule(src, table, config.priority);
        if !present && !ops.contains(&Change::AddRule(rule.clone())) {
            ops.push(Change::AddRule(rule));
        }
    }
    ops
}

/// Which table each address gets: its rule's, the one that lost its rule,
/// else the first from 100 that no rule and no route uses.
struct Tables {
    taken: BTreeSet<u32>,
    claimed: BTreeSet<u32>,
    next: u32,
}

impl Tables {
    fn new(snap: &Snapshot) -> Tables {
        Tables {
            taken: snap
                .rules
                .iter()
                .map(|r| r.table)
                .chain(snap.routes.iter().map(|r| r.table))
                .collect(),
            claimed: BTreeSet::new(),
            next: FIRST_TABLE,
        }
    }

    fn pick(&mut self, of_rule: Option<u32>, snap: &Snapshot, a: &Address) -> u32 {
        let table = match of_rule.or_else(|| orphan_table(snap, &a.addr, &self.claimed)) {
            Some(t) => t,
            None => {
                while self.taken.contains(&self.next) {
                    self.next += 1;
                }
                self.next
            }
        };
        self.taken.insert(table);
        self.claimed.insert(table);
        table
    }
}

/// The address's rule: added when missing; sbr's own with another priority
/// than configured is moved.
fn ensure_rule(ops: &mut Vec<Change>, have: Option<&Rule>, want: Rule, config: &Config) {
    match have {
        None => ops.push(Change::AddRule(want)),
        Some(r) if r.protocol == RTPROT_SBR && config.priority.is_some() && r.priority != config.priority => {
            ops.push(Change::DelRule(r.clone()));
            ops.push(Change::AddRule(want));
        }
        Some(_) => {}
    }
}

/// What the address's table holds: a default route via the gateway (sbr's,
/// marked), sbr's copy of its source hint when that is the subnet's only
/// route in main (an address added `noprefixroute`), and copies of main's
/// routes on the link that belong to the address, unchanged (DEL moves them
/// back); `true` marks the copies. A copy of main's default takes the place
/// of the gateway's, as in the reference, and a copy of main's subnet route
/// that of the hint's.
fn table_routes(
    config: &Config,
    a: &Address,
    table: u32,
    link: u32,
    main: &[&Route],
    hint: Option<&Route>,
    snap: &Snapshot,
) -> Vec<(Route, bool)> {
    let v4 = is_v4(&a.addr);
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
            protocol: RTPROT_SBR,
            kind: RTN_UNICAST,
            tos: 0,
            metrics: Vec::new(),
            other_nexthop: false,
        });
    }
    let mut want: Vec<(Route, bool)> = want.into_iter().map(|r| (r, false)).collect();
    want.extend(hint.map(|h| (Route { table, ..h.clone() }, false)));
    for r in main.iter().filter(|r| belongs(config, a, r)) {
        if let (Some(gw), true) = (static_gw, r.dst.prefix_len() == 0 && r.gateway != static_gw) {
            log::warn!(
                "main's default route via {} on {} takes the place of the configured gateway {gw} in table {table}, as with the reference",
                r.gateway.map_or_else(|| "the link".to_string(), |g| g.to_string()),
                snap.ifname
            );
        }
        want.push((
            Route {
                table,
                ..(*r).clone()
            },
            true,
        ));
    }
    want
}

/// `addSourceHints`: per subnet, the first address's route stays in main
/// with the address as its source. Returns main's routes that already are
/// such (kept), the hint routes to add (sbr's, marked), and sbr's hints
/// main will hold (added now or before). An IPv6 address
/// still in DAD cannot be a source yet (the kernel refuses it): its subnet
/// keeps main's route as it is, with a warning, as upstream only warns; a
/// later ADD adds the hint, and CHECK says it is missing.
fn source_hints<'a>(
    config: &Config,
    addresses: &[Address],
    link: u32,
    main: &[&'a Route],
    snap: &Snapshot,
) -> (Vec<&'a Route>, Vec<Route>, Vec<Route>) {
    let mut keep = Vec::new();
    let mut hints = Vec::new();
    let mut ours = Vec::new();
    if !config.add_source_hints {
        return (keep, hints, ours);
    }
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
        // IPv4 has no DAD: an address the link lacks is the prevResult's
        // error, which the kernel's refusal names (code 7).
        if !v4 && !snap.link_addresses.iter().any(|l| l.addr() == a.addr.addr()) {
            log::warn!(
                "no source hint for {subnet} on {}: {} is not usable yet (tentative, DAD not done) or not on the link; main keeps its route",
                snap.ifname,
                a.addr.addr()
            );
            keep.extend(current);
            continue;
        }
        let want = Route {
            dst: subnet,
            gateway: None,
            prefsrc: Some(a.addr.addr()),
            oif: Some(link),
            table: RT_TABLE_MAIN,
            scope: if v4 { RT_SCOPE_LINK } else { RT_SCOPE_UNIVERSE },
            // The route it replaces keeps its metric and metrics (mtu, ...).
            metric: current.and_then(|c| c.metric),
            protocol: RTPROT_SBR,
            kind: RTN_UNICAST,
            tos: 0,
            metrics: current.map(|c| c.metrics.clone()).unwrap_or_default(),
            other_nexthop: false,
        };
        match current {
            Some(c) if same_route(c, &want) => {
                if c.protocol == RTPROT_SBR {
                    ours.push(c.clone());
                }
                keep.push(c);
            }
            _ => {
                ours.push(want.clone());
                hints.push(want);
            }
        }
    }
    (keep, hints, ours)
}

/// main's routes on the link that belong to an address leave it (but the
/// kept hints); they are in the addresses' tables now. The others stay,
/// with a warning for those of a family that has an address here. Routes
/// via gateways leave first, so that undoing this puts the routes to their
/// gateways back before them.
fn leave_main(
    config: &Config,
    main: &[&Route],
    addresses: &[Address],
    keep: &[&Route],
    ifname: &str,
) -> Vec<Change> {
    let families: BTreeSet<bool> = addresses.iter().map(|a| is_v4(&a.addr)).collect();
    let (via, direct): (Vec<&Route>, Vec<&Route>) = main.iter().copied().partition(|r| r.gateway.is_some());
    via.into_iter()
        .chain(direct)
        .filter(|r| {
            if keep.iter().any(|k| std::ptr::eq(*k, *r)) {
                return false;
            }
            if addresses.iter().any(|a| belongs(config, a, r)) {
                return true;
            }
            if families.contains(&is_v4(&r.dst)) {
                log::warn!(
                    "route {} stays in table main: it belongs to no address of {ifname} in the prevResult",
                    RouteText(r, ifname)
                );
            }
            false
        })
        .map(|r| Change::DelRoute(r.clone()))
        .collect()
}
