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
    let mut ops = Vec::new();

    if let Some(table) = config.table {
        for a in addresses {
            let src = host(&a.addr);
            let present = snap.rules.iter().any(|r| {
                r.table == table
                    && (marked_rule(r, &src) || (plain_rule(r, &src) && r.protocol == RTPROT_UNSPEC))
            });
            let rule = new_rule(src, table, config.priority);
            if !present && !ops.contains(&Change::AddRule(rule.clone())) {
                ops.push(Change::AddRule(rule));
            }
        }
        return Ok(undoable(ops));
    }

    let link = snap.link.ok_or_else(|| link_missing(snap))?;
    let main = main_link_routes(snap, link);
    let mut taken: BTreeSet<u32> = snap
        .rules
        .iter()
        .map(|r| r.table)
        .chain(snap.routes.iter().map(|r| r.table))
        .collect();
    let mut claimed = BTreeSet::new();
    let mut next = FIRST_TABLE;
    let mut families = BTreeSet::new();

    for a in addresses {
        let v4 = is_v4(&a.addr);
        families.insert(v4);
        let src = host(&a.addr);
        let rule = attachment_rule(snap, &src, config.priority).filter(|r| !claimed.contains(&r.table));
        let table = match rule
            .map(|r| r.table)
            .or_else(|| orphan_table(snap, &a.addr, &claimed))
        {
            Some(t) => t,
            None => {
                while taken.contains(&next) {
                    next += 1;
                }
                next
            }
        };
        taken.insert(table);
        claimed.insert(table);

        let wanted = new_rule(src, table, config.priority);
        match rule {
            None => ops.push(Change::AddRule(wanted)),
            // Ours with another priority than configured: moved.
            Some(r)
                if r.protocol == RTPROT_SBR && config.priority.is_some() && r.priority != config.priority =>
            {
                ops.push(Change::DelRule(r.clone()));
                ops.push(Change::AddRule(wanted));
            }
            Some(_) => {}
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
                protocol: RTPROT_SBR,
                kind: RTN_UNICAST,
            });
        }
        for r in &main {
            if is_v4(&r.dst) != v4 {
                continue;
            }
            let generic = r.prefsrc.is_none() && r.gateway.is_none();
            if generic || in_subnet(&a.addr, r.prefsrc) || in_subnet(&a.addr, r.gateway) {
                if let (Some(gw), true) = (static_gw, r.dst.prefix_len() == 0) {
                    // The copy replaces the route to the configured gateway,
                    // as in the reference; DEL then gives main its default
                    // back exactly.
                    log::warn!(
                        "main's default route via {} on {} takes the place of the configured gateway {gw} in table {table}, as with the reference",
                        r.gateway.map_or_else(|| "the link".to_string(), |g| g.to_string()),
                        snap.ifname
                    );
                }
                // Copied unchanged (protocol included): DEL moves it back.
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
            if hinted && snap.routes.iter().any(|o| same_route(o, &unhinted)) {
                continue;
            }
            ensure_route(&mut ops, snap, r);
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
                protocol: RTPROT_SBR,
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
            ops.push(Change::DelRoute(r.clone()));
        }
    }
    ops.extend(hints.into_iter().map(Change::AddRoute));
    Ok(undoable(ops))
}
