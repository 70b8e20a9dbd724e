//! The namespace, read once per invocation: the link, its addresses, every
//! route of every table and every rule (and in vrf mode the VRF devices).
//! Plans are computed from this alone.

use nl_ops::route::{RouteFilter, RTN_LOCAL};
use nl_ops::rule::RuleFilter;
use nl_ops::Socket;

use crate::plan::{Snapshot, VrfLink, VRF_ALIAS};

/// Reads the link `ifname` (absent is not an error: DEL wants to know) and
/// the routing state around it. The link's addresses come with their prefix
/// lengths only when `prefixes` (a DEL without prevResult works from them);
/// otherwise the local routes name them (as host prefixes; in the local
/// table, or a VRF's for a link in one), which spares an address dump, a
/// tenth of a millisecond here, and leaves out IPv6 addresses still in DAD
/// (tentative: the kernel refuses them as a source hint; their local route
/// comes when DAD is done). The VRF devices are read (one more dump) when
/// `vrfs` or when the link has a master.
pub fn read(sock: &mut Socket, ifname: &str, prefixes: bool, vrfs: bool) -> nl_ops::Result<Snapshot> {
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
            .filter(|r| r.kind == RTN_LOCAL && r.oif == Some(l.index))
            .map(|r| r.dst)
            .collect(),
        None => Vec::new(),
    };
    let rules = sock.rules(&RuleFilter::default())?;
    let master = link.as_ref().and_then(|l| l.master);
    let vrfs = if vrfs || master.is_some() {
        let links = sock.links()?;
        links
            .iter()
            .filter(|l| l.kind.as_deref() == Some("vrf"))
            .map(|v| VrfLink {
                index: v.index,
                name: v.name.clone(),
                table: v.vrf_table.unwrap_or_default(),
                ours: v.alias.as_deref() == Some(VRF_ALIAS),
                ports: links
                    .iter()
                    .filter(|p| p.master == Some(v.index))
                    .map(|p| p.index)
                    .collect(),
            })
            .collect()
    } else {
        Vec::new()
    };
    Ok(Snapshot {
        ifname: ifname.to_string(),
        link: link.map(|l| l.index),
        link_addresses,
        routes,
        rules,
        master,
        vrfs,
        l3mdev_accept: None,
    })
}
