//! The kernel side: find the host veth, take the snapshot plans are made
//! from, and carry a plan out, undoing it when a step fails.

use std::path::Path;

use cni_core::netns::NetNs;
use cni_core::{CniError, CniResult, NetResult};
use nl_ops::link::Link;
use nl_ops::qdisc::{INGRESS_HANDLE, TC_H_INGRESS};
use nl_ops::Socket;

use crate::plan::{Dev, HostSide, IfbSide, Observed, Plan, Step, Target};

/// A host-side interface of a result.
pub fn no_sandbox(i: &cni_core::Interface) -> bool {
    i.sandbox.as_deref().is_none_or(str::is_empty)
}

/// The host end of `ifname`'s veth, by the peer index the container side
/// reports; it must be a sandbox-less interface of prevResult.
pub fn host_veth(host: &mut Socket, netns: &Path, ifname: &str, prev: &NetResult) -> CniResult<Link> {
    if prev.interfaces.is_empty() {
        return Err(CniError::invalid_config(
            "prevResult has no interfaces: nothing to shape",
        ));
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
    let link = host
        .link_by_index(peer)?
        .filter(|l| l.kind.as_deref() == Some("veth") && l.link == Some(container.index))
        .ok_or_else(|| {
            CniError::invalid_config(format!(
                "the veth peer (index {peer}) of container interface {ifname} is not in the host namespace"
            ))
        })?;
    if !prev
        .interfaces
        .iter()
        .any(|i| no_sandbox(i) && i.name == link.name)
    {
        return Err(CniError::invalid_config(format!(
            "host veth {} of container interface {ifname} is not among prevResult's host interfaces",
            link.name
        )));
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
        return Err(CniError::invalid_config(format!(
            "container interface {ifname} is a {}, not a veth: bandwidth shapes veth pairs only",
            link.kind.as_deref().unwrap_or("device without kind")
        )));
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
        return Ok(host
            .link_by_index(peer)?
            .filter(|l| l.kind.as_deref() == Some("veth") && l.link == Some(container.index)));
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

pub fn host_side(sock: &mut Socket, veth: Link) -> CniResult<HostSide> {
    let qdiscs = sock.qdiscs(veth.index)?;
    let ingress_filters = if qdiscs.iter().any(|q| q.parent == TC_H_INGRESS) {
        sock.filters(veth.index, INGRESS_HANDLE)?
    } else {
        Vec::new()
    };
    Ok(HostSide {
        veth,
        qdiscs,
        ingress_filters,
    })
}

pub fn ifb_side(sock: &mut Socket, name: &str) -> CniResult<Option<IfbSide>> {
    let Some(link) = sock.link_by_name(name)? else {
        return Ok(None);
    };
    let qdiscs = sock.qdiscs(link.index)?;
    Ok(Some(IfbSide { link, qdiscs }))
}

pub fn observe(sock: &mut Socket, veth: Link, ifb_name: &str) -> CniResult<Observed> {
    Ok(Observed {
        host: host_side(sock, veth)?,
        ifb: ifb_side(sock, ifb_name)?,
    })
}

/// Carries out a plan on the host namespace's socket.
struct Applier<'a> {
    sock: &'a mut Socket,
    plan: &'a Plan,
    ifb: Option<u32>,
    /// The ifb this run created.
    created: Option<Link>,
    /// DEL: objects that vanished meanwhile count as removed.
    tolerate_gone: bool,
}

impl Applier<'_> {
    fn host(&self) -> nl_ops::Result<u32> {
        self.plan
            .host
            .as_ref()
            .map(|(i, _)| *i)
            .ok_or_else(|| nl_ops::Error::Protocol {
                op: "resolve host veth".into(),
                msg: "the plan names no host veth".into(),
            })
    }

    fn ifb(&mut self) -> nl_ops::Result<Option<u32>> {
        if self.ifb.is_none() {
            self.ifb = self.sock.link_by_name(&self.plan.ifb_name)?.map(|l| l.index);
        }
        Ok(self.ifb)
    }

    fn need_ifb(&mut self) -> nl_ops::Result<u32> {
        self.ifb()?.ok_or_else(|| nl_ops::Error::Kernel {
            op: format!("get link {}", self.plan.ifb_name),
            errno: libc::ENODEV,
        })
    }

    fn dev(&mut self, dev: Dev) -> nl_ops::Result<u32> {
        match dev {
            Dev::HostVeth => self.host(),
            Dev::Ifb => self.need_ifb(),
        }
    }

    fn run(&mut self, step: &Step) -> nl_ops::Result<()> {
        let r = self.run_inner(step);
        match r {
            Err(e) if self.tolerate_gone && e.is_not_found() => Ok(()),
            r => r,
        }
    }

    fn run_inner(&mut self, step: &Step) -> nl_ops::Result<()> {
        match step {
            Step::SetTbf { dev, tbf } => {
                let i = self.dev(*dev)?;
                self.sock.replace_root_tbf(i, tbf)
            }
            Step::DeleteRootQdisc { dev } => {
                let i = match dev {
                    Dev::HostVeth => self.host()?,
                    Dev::Ifb => match self.ifb()? {
                        Some(i) => i,
                        None => return Ok(()),
                    },
                };
                self.sock.delete_root_qdisc(i).map(drop)
            }
            Step::CreateIfb { mtu, txqlen, alias } => {
                let link = self
                    .sock
                    .add_ifb(&self.plan.ifb_name, *mtu, *txqlen, Some(alias))?;
                self.ifb = Some(link.index);
                self.created = Some(link);
                Ok(())
            }
            Step::SetIfbMtu { mtu } => {
                let i = self.need_ifb()?;
                self.sock.set_link_mtu(i, *mtu)
            }
            Step::SetIfbAlias { alias } => {
                let i = self.need_ifb()?;
                self.sock.set_link_alias(i, alias)
            }
            Step::SetIfbUp { up } => {
                let i = self.need_ifb()?;
                self.sock.set_link_up(i, *up)
            }
            Step::DeleteIfb => {
                if let Some(i) = self.ifb()? {
                    self.sock.delete_link(i)?;
                }
                self.ifb = None;
                Ok(())
            }
            Step::AddIngressQdisc => {
                let h = self.host()?;
                self.sock.add_ingress_qdisc(h).map(drop)
            }
            Step::DeleteIngressQdisc => {
                let h = self.host()?;
                self.sock.delete_ingress_qdisc(h).map(drop)
            }
            Step::Redirect { to } => {
                let h = self.host()?;
                let t = match to {
                    Target::Ifb => self.need_ifb()?,
                    Target::Index(i) => *i,
                };
                self.sock.replace_redirect_filter(h, t)
            }
        }
    }
}

/// Runs every action in order and returns the ifb it created, if any. On
/// failure the failed step and all before it are undone, newest first, and
/// the error names the step.
pub fn apply(sock: &mut Socket, plan: &Plan) -> CniResult<Option<Link>> {
    let mut a = Applier {
        sock,
        plan,
        ifb: plan.ifb_index,
        created: None,
        tolerate_gone: false,
    };
    for (n, action) in plan.actions.iter().enumerate() {
        log::debug!("{}", plan.describe(&action.step));
        if let Err(e) = a.run(&action.step) {
            let err = CniError::from(e).context(format!("failed to {}", plan.describe(&action.step)));
            let mut failed_undo = Vec::new();
            for done in plan.actions[..=n].iter().rev() {
                if let Some(undo) = &done.undo {
                    if let Err(ue) = a.run(undo) {
                        log::warn!("rollback: failed to {}: {ue}", plan.describe(undo));
                        failed_undo.push(plan.describe(undo));
                    }
                }
            }
            return Err(if failed_undo.is_empty() {
                err.with_details("everything this ADD changed was rolled back")
            } else {
                err.with_details(format!(
                    "rollback incomplete, could not {}",
                    failed_undo.join(", ")
                ))
            });
        }
    }
    Ok(a.created)
}

/// DEL: every step runs; things already gone are fine, and the first real
/// failure is reported after the others were tried.
pub fn apply_teardown(sock: &mut Socket, plan: &Plan) -> CniResult<()> {
    let mut a = Applier {
        sock,
        plan,
        ifb: plan.ifb_index,
        created: None,
        tolerate_gone: true,
    };
    let mut first: Option<CniError> = None;
    for action in &plan.actions {
        log::debug!("{}", plan.describe(&action.step));
        if let Err(e) = a.run(&action.step) {
            let err = CniError::from(e).context(format!("failed to {}", plan.describe(&action.step)));
            log::warn!("{}", err.msg);
            first.get_or_insert(err);
        }
    }
    first.map_or(Ok(()), Err)
}
