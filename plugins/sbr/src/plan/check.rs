use cni_core::CniError;
use nl_ops::route::RT_TABLE_MAIN;

use super::*;
use crate::config::Config;

/// CHECK: what ADD would still change, and a table without the subnet
/// route, as messages naming the missing piece.
pub fn check(config: &Config, addresses: &[Address], snap: &Snapshot) -> Result<(), CniError> {
    let fail = |msg: String| Err(CniError::check_failed(msg));
    if config.table.is_none() && snap.link.is_none() {
        return Err(link_missing(snap));
    }
    let plan = plan_add(config, addresses, snap)?;
    // A missing VRF, or the link outside it, says more than the routes
    // that would move as a consequence.
    let first = plan
        .changes()
        .find(|c| matches!(c, Change::AddVrf(_) | Change::Enslave(_)))
        .or_else(|| plan.changes().next());
    if let Some(op) = first {
        return fail(drift(op, config, snap.ifname.as_str()));
    }
    // In vrf mode the kernel makes the subnet's routes in the VRF's table.
    if config.table.is_some() || config.mode == crate::config::Mode::Vrf {
        return Ok(());
    }
    subnet_routes(config, addresses, snap)
}

/// What ADD would still change, said as what is missing or too much.
fn drift(op: &Change, config: &Config, ifname: &str) -> String {
    match op {
        Change::AddRule(r) if config.table.is_some() => format!("missing rule {}", RuleText(r)),
        Change::AddRule(r) => match r.src {
            Some(src) => format!("missing rule from {src} to a routing table"),
            None => format!("missing rule {}", RuleText(r)),
        },
        Change::AddRoute(r) | Change::AppendRoute(r) if r.table == RT_TABLE_MAIN => {
            format!("missing route {} in table main", RouteText(r, ifname))
        }
        Change::AddRoute(r) | Change::AppendRoute(r) => format!(
            "missing route {} in table {}",
            RouteText(r, ifname),
            TableText(r.table)
        ),
        Change::DelRoute(r) if r.table == RT_TABLE_MAIN => {
            format!("route {} is still in table main", RouteText(r, ifname))
        }
        Change::DelRoute(r) => format!(
            "route {} in table {} is not the expected one",
            RouteText(r, ifname),
            TableText(r.table)
        ),
        Change::DelRule(r) => format!("unexpected rule {}", RuleText(r)),
        Change::AddVrf(v) => format!("missing vrf {} (table {})", v.name, v.table),
        Change::Enslave(p) => format!("{ifname} is not in vrf {}", p.vrf),
        Change::Sysctl(s) => format!("net.ipv4.{} is not {}", s.key, u8::from(s.on)),
        // ADD plans none of these.
        Change::DelVrf(v) => format!("unexpected vrf {}", v.name),
        Change::Release(p) => format!("{ifname} is in vrf {}", p.vrf),
    }
}

/// Each address's table holds a route to its subnet on the link.
fn subnet_routes(config: &Config, addresses: &[Address], snap: &Snapshot) -> Result<(), CniError> {
    let fail = |msg: String| Err(CniError::check_failed(msg));
    for a in addresses {
        let subnet = a.addr.trunc();
        if subnet.prefix_len() == subnet.max_prefix_len()
            || !snap.link_addresses.iter().any(|l| l.addr() == a.addr.addr())
        {
            continue;
        }
        let src = host(&a.addr);
        let Some(table) = attachment_rule(snap, &a.addr, config.priority).map(|r| r.table) else {
            return fail(format!("missing rule from {src} to a routing table"));
        };
        // ADD copies whatever route to the subnet the main plugin made on
        // the link: direct (bridge, macvlan) or via the gateway (ptp).
        let there = snap
            .routes
            .iter()
            .any(|r| r.table == table && r.dst == subnet && r.oif == snap.link);
        if !there {
            return fail(format!(
                "missing route {subnet} dev {} in table {table}",
                snap.ifname
            ));
        }
    }
    Ok(())
}
