//! The namespace, read once per invocation: the link, its addresses, every
//! route of every table and every rule. Plans are computed from this alone.

use nl_ops::route::{RouteFilter, RTN_LOCAL, RT_TABLE_LOCAL};
use nl_ops::rule::RuleFilter;
use nl_ops::Socket;

use crate::plan::Snapshot;

/// Reads the link `ifname` (absent is not an error: DEL wants to know) and
/// the routing state around it. The link's addresses come with their prefix
/// lengths only when `prefixes` (a DEL without prevResult works from them);
/// otherwise the local table's routes name them (as host prefixes), which
/// spares an address dump, a tenth of a millisecond here, and leaves out
/// IPv6 addresses still in DAD (tentative: the kernel refuses them as a
/// source hint; their local route comes when DAD is done).
pub fn read(sock: &mut Socket, ifname: &str, prefixes: bool) -> nl_ops::Result<Snapshot> {
    let link = sock.link_by_name(ifname)?;
    let routes = sock.routes(&RouteFilter::default())?;
    let link_addresses = match &link {
        Some(l) if prefixes => sock
            .addresses(Some(l.index))?
            .into_iter()
            .map(|a| a.addr)
            .collect(),
        Some(l) => routes
            .iter()
            .filter(|r| r.table == RT_TABLE_LOCAL && r.kind == RTN_LOCAL && r.oif == Some(l.index))
            .map(|r| r.dst)
            .collect(),
        None => Vec::new(),
    };
    let rules = sock.rules(&RuleFilter::default())?;
    Ok(Snapshot {
        ifname: ifname.to_string(),
        link: link.map(|l| l.index),
        link_addresses,
        routes,
        rules,
    })
}
