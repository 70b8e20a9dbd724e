//! The namespace, read once per invocation: the link, its addresses, every
//! route of every table and every rule. Plans are computed from this alone.

use nl_ops::route::RouteFilter;
use nl_ops::rule::RuleFilter;
use nl_ops::Socket;

use crate::plan::Snapshot;

/// Reads the link `ifname` (absent is not an error: DEL wants to know) and
/// the routing state around it.
pub fn read(sock: &mut Socket, ifname: &str) -> nl_ops::Result<Snapshot> {
    let link = sock.link_by_name(ifname)?;
    let link_addresses = match &link {
        Some(l) => sock
            .addresses(Some(l.index))?
            .into_iter()
            .map(|a| a.addr)
            .collect(),
        None => Vec::new(),
    };
    let routes = sock.routes(&RouteFilter::default())?;
    let rules = sock.rules(&RuleFilter::default())?;
    Ok(Snapshot {
        ifname: ifname.to_string(),
        link: link.map(|l| l.index),
        link_addresses,
        routes,
        rules,
    })
}
