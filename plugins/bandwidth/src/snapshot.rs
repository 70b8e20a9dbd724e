//! What plans are made from: the host veth of the attachment (found through
//! the container's side of the pair) and the kernel state around it.

use std::os::fd::AsFd;
use std::path::Path;

use cni_core::netns::NetNs;
use cni_core::{CniError, CniResult, NetResult};
use nl_ops::link::Link;
use nl_ops::qdisc::{Qdisc, TC_H_ROOT};
use nl_ops::Socket;

use crate::plan::{HostSide, IfbSide, Snapshot, QUEUE_CLASS};
use crate::tbf::TBF_HANDLE;

/// The link `peer` of this namespace when it is the container veth's other
/// end: a veth whose own peer is the container's, in the container's
/// namespace. Indexes alone can meet by chance (a veth in a third namespace
/// with the same numbers), namespace ids cannot.
fn peer_in_host(host: &mut Socket, ns: &NetNs, container: &Link, peer: u32) -> CniResult<Option<Link>> {
    let Some(l) = host.link_by_index(peer)? else {
        return Ok(None);
    };
    if l.kind.as_deref() != Some("veth") || l.link != Some(container.index) || l.link_netnsid.is_none() {
        return Ok(None);
    }
    let container_ns = host.nsid_of(ns.fd().as_fd())?;
    Ok((l.link_netnsid == container_ns).then_some(l))
}

/// A host-side interface of a result.
pub fn no_sandbox(i: &cni_core::Interface) -> bool {
    i.sandbox.as_deref().is_none_or(str::is_empty)
}

/// The host end of `ifname`'s veth, by the peer index the container side
/// reports; it must be a sandbox-less interface of prevResult.
pub fn host_veth(host: &mut Socket, netns: &Path, ifname: &str, prev: &NetResult) -> CniResult<Link> {
    if prev.interfaces.is_empty() {
        return Err(CniError::invalid_config("no interfaces provided")
            .with_details("prevResult has no interfaces: nothing to shape"));
    }
    let ns = NetNs::open(netns)?;
    let container = container_veth(&ns, ifname)?;
    let peer = container.link.filter(|i| *i > 0).ok_or_else(|| {
        CniError::invalid_config(format!(
            "container interface {ifname} is a veth without a peer index"
        ))
    })?;
    if container.link_netnsid.is_none() {
        return Err(CniError::invalid_config(format!(
            "the veth peer of container interface {ifname} is inside the container namespace, not the host's"
        )));
    }
    let link = peer_in_host(host, &ns, &container, peer)?.ok_or_else(|| {
        CniError::invalid_config(format!(
            "the veth peer (index {peer}) of container interface {ifname} is not in the host namespace"
        ))
    })?;
    if !prev
        .interfaces
        .iter()
        .any(|i| no_sandbox(i) && i.name == link.name)
    {
        return Err(
            CniError::invalid_config("no veth peer of container interface found in host ns").with_details(
                format!(
                    "host veth {} of container interface {ifname} is not among prevResult's host interfaces",
                    link.name
                ),
            ),
        );
    }
    Ok(link)
}

fn container_veth(ns: &NetNs, ifname: &str) -> CniResult<Link> {
    let mut sock = Socket::in_netns(ns)?;
    let link = sock.link_by_name(ifname)?.ok_or_else(|| {
        CniError::env(format!(
            "container interface {ifname} not found in {}",
            ns.path().display()
        ))
    })?;
    if link.kind.as_deref() != Some("veth") {
        return Err(
            CniError::invalid_config(format!("container interface {ifname} has no veth peer")).with_details(
                format!(
                    "container interface {ifname} is a {}, not a veth: bandwidth shapes veth pairs only",
                    link.kind.as_deref().unwrap_or("device without kind")
                ),
            ),
        );
    }
    Ok(link)
}

/// DEL's best effort: through the namespace when it was given (a veth whose
/// namespace is gone is gone too), else the one veth among prevResult's
/// host interfaces. `None` when neither names it.
pub fn host_veth_for_del(
    host: &mut Socket,
    netns: Option<&Path>,
    ifname: &str,
    prev: Option<&NetResult>,
) -> CniResult<Option<Link>> {
    if let Some(path) = netns {
        let Some(ns) = NetNs::open_opt(path).ok().flatten() else {
            return Ok(None);
        };
        let Ok(container) = container_veth(&ns, ifname) else {
            return Ok(None);
        };
        let Some(peer) = container.link.filter(|_| container.link_netnsid.is_some()) else {
            return Ok(None);
        };
        return peer_in_host(host, &ns, &container, peer);
    }
    let Some(prev) = prev else {
        return Ok(None);
    };
    let mut found = Vec::new();
    for i in prev.interfaces.iter().filter(|i| no_sandbox(i)) {
        if let Some(l) = host.link_by_name(&i.name)? {
            if l.kind.as_deref() == Some("veth") {
                found.push(l);
            }
        }
    }
    Ok(if found.len() == 1 { found.pop() } else { None })
}

/// The root and ingress qdiscs, and with `leaves` the queue under a TBF of
/// ours. That queue is only ever ours (fq_codel) where the kernel has
/// fq_codel: elsewhere the request it takes is not made.
fn qdiscs(sock: &mut Socket, index: u32, leaves: bool) -> CniResult<Vec<Qdisc>> {
    let mut qdiscs = sock.qdiscs(index)?;
    if leaves
        && qdiscs
            .iter()
            .any(|q| q.parent == TC_H_ROOT && q.handle == TBF_HANDLE && q.kind == "tbf")
    {
        qdiscs.extend(sock.leaf_qdisc(index, QUEUE_CLASS)?);
    }
    Ok(qdiscs)
}

/// `alive`: a link known to exist (our ifb), not looked up again.
pub fn host_side(sock: &mut Socket, veth: Link, alive: Option<u32>, leaves: bool) -> CniResult<HostSide> {
    let qdiscs = qdiscs(sock, veth.index, leaves)?;
    let mut side = HostSide {
        veth,
        qdiscs,
        ingress_filters: Vec::new(),
        dead_targets: Vec::new(),
    };
    let Some(hook) = side.hook() else {
        return Ok(side);
    };
    let ingress_filters = sock.filters(side.veth.index, hook.parent())?;
    let mut dead_targets = Vec::new();
    for t in ingress_filters.iter().flat_map(|f| f.mirred_targets.iter()) {
        // A mirred whose device was unregistered dumps index 0.
        if Some(*t) != alive && !dead_targets.contains(t) && (*t == 0 || sock.link_by_index(*t)?.is_none()) {
            dead_targets.push(*t);
        }
    }
    side.ingress_filters = ingress_filters;
    side.dead_targets = dead_targets;
    Ok(side)
}

pub fn ifb_side(sock: &mut Socket, name: &str, leaves: bool) -> CniResult<Option<IfbSide>> {
    let Some(link) = sock.link_by_name(name)? else {
        return Ok(None);
    };
    let qdiscs = qdiscs(sock, link.index, leaves)?;
    Ok(Some(IfbSide { link, qdiscs }))
}

/// The snapshot of an attachment whose host veth is known (or not, for a
/// DEL that could not find it). `leaves`: also the queues under our TBFs.
pub fn observe(sock: &mut Socket, veth: Option<Link>, ifb_name: &str, leaves: bool) -> CniResult<Snapshot> {
    let ifb = ifb_side(sock, ifb_name, leaves)?;
    let alive = ifb.as_ref().map(|i| i.link.index);
    Ok(Snapshot {
        host: veth.map(|v| host_side(sock, v, alive, leaves)).transpose()?,
        ifb,
        fq_codel: false,
    })
}
