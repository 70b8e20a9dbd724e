//! The kernel side of a plan: how each change is made through nl-ops. The
//! engine that runs plans (rollback, best effort) is cni-core's.

use cni_core::error::FromConfig;
use cni_core::CniResult;
use nl_ops::link::Link;
use nl_ops::Socket;

use nl_ops::filter::ETH_P_ALL;
use nl_ops::qdisc::{ChildQueue, INGRESS_HANDLE};

use crate::plan::{Change, Device, Devices, Mark, Plan, FQ_CODEL_HANDLE, QUEUE_CLASS};
use crate::tbf::TBF_HANDLE;

/// The host namespace's socket and what a plan learns while it runs.
pub struct Kernel {
    pub sock: Socket,
    /// The ifb's index, once known.
    ifb: Option<u32>,
    /// The ifb this run created.
    pub created: Option<Link>,
}

impl Kernel {
    pub fn new(sock: Socket) -> Kernel {
        Kernel {
            sock,
            ifb: None,
            created: None,
        }
    }

    /// All or nothing (ADD).
    pub fn apply(&mut self, plan: &Plan) -> CniResult<()> {
        self.ifb = plan.devices.ifb_index;
        plan.steps.apply(self, &plan.devices)
    }

    /// Best effort (DEL).
    pub fn apply_best_effort(&mut self, plan: &Plan) -> CniResult<()> {
        self.ifb = plan.devices.ifb_index;
        plan.steps.apply_best_effort(self, &plan.devices)
    }

    fn ifb(&mut self, d: &Devices) -> nl_ops::Result<Option<u32>> {
        if self.ifb.is_none() {
            self.ifb = self.sock.link_by_name(&d.ifb_name)?.map(|l| l.index);
        }
        Ok(self.ifb)
    }

    fn need_ifb(&mut self, d: &Devices) -> nl_ops::Result<u32> {
        self.ifb(d)?
            .ok_or_else(|| nl_ops::Error::no_device(format!("get link {}", d.ifb_name)))
    }

    fn dev(&mut self, dev: Device, d: &Devices) -> nl_ops::Result<u32> {
        match dev {
            Device::HostVeth => host(d),
            Device::Ifb => self.need_ifb(d),
        }
    }
}

fn host(d: &Devices) -> nl_ops::Result<u32> {
    d.host
        .as_ref()
        .map(|(i, _)| *i)
        .ok_or_else(|| nl_ops::Error::Protocol {
            op: "resolve host veth".into(),
            msg: "the plan names no host veth".into(),
        })
}

impl cni_core::plan::Change for Change {
    type Target = Kernel;
    type Names = Devices;

    fn apply(&self, k: &mut Kernel, d: &Devices) -> CniResult<()> {
        // A TBF carries the config's numbers (the planner refuses those it
        // knows of first): the kernel refusing them is the config's fault.
        let from_config = FromConfig {
            values: matches!(self, Change::AddTbf { .. } | Change::ChangeTbf { .. }),
            gateway: false,
        };
        apply(self, k, d).map_err(|e| e.into_cni(from_config))
    }

    fn describe(&self, d: &Devices) -> String {
        self.text(d)
    }
}

fn apply(change: &Change, k: &mut Kernel, d: &Devices) -> nl_ops::Result<()> {
    match change {
        Change::AddTbf { dev, tbf } => {
            let i = k.dev(*dev, d)?;
            k.sock.add_root_tbf(i, TBF_HANDLE, tbf)
        }
        Change::ChangeTbf { dev, tbf } => {
            let i = k.dev(*dev, d)?;
            k.sock.change_root_tbf(i, TBF_HANDLE, tbf)
        }
        Change::SetQueue { dev, queue } => {
            let i = k.dev(*dev, d)?;
            let handle = match queue {
                ChildQueue::FqCodel(_) => FQ_CODEL_HANDLE,
                ChildQueue::Bfifo(_) => 0,
            };
            k.sock.graft_queue(i, QUEUE_CLASS, handle, queue)
        }
        Change::DeleteTbf { dev } => {
            let i = match dev {
                Device::Ifb => match k.ifb(d)? {
                    Some(i) => i,
                    None => return Ok(()),
                },
                Device::HostVeth => host(d)?,
            };
            k.sock.delete_root_qdisc(i, TBF_HANDLE).map(drop)
        }
        Change::CreateIfb { mtu, alias } => {
            // Queue length 0, as the reference sends it.
            let link = k.sock.add_ifb(&d.ifb_name, *mtu, 0, Some(alias))?;
            k.ifb = Some(link.index);
            k.created = Some(link);
            Ok(())
        }
        Change::SetIfbMtu { mtu } => {
            let i = k.need_ifb(d)?;
            k.sock.set_link_mtu(i, *mtu)
        }
        Change::SetIfbAlias { alias } => {
            let i = k.need_ifb(d)?;
            k.sock.set_link_alias(i, alias)
        }
        Change::SetIfbUp { up } => {
            let i = k.need_ifb(d)?;
            k.sock.set_link_up(i, *up)
        }
        Change::DeleteIfb => {
            if let Some(i) = k.ifb(d)? {
                k.sock.delete_link(i)?;
            }
            k.ifb = None;
            Ok(())
        }
        Change::AddIngressWithRedirect { priority } => {
            let (h, t) = (host(d)?, k.need_ifb(d)?);
            let cookie = Mark::FilterAndQdisc.bytes();
            match k
                .sock
                .add_ingress_qdisc_with_redirect(h, *priority, t, Some(cookie))?
            {
                (Ok(()), Ok(())) => Ok(()),
                // Half of the step happened: taken back here, since the
                // engine undoes only steps that succeeded. Our new qdisc
                // takes the redirect with it; a qdisc someone made first
                // keeps theirs, and loses only ours.
                (Ok(()), Err(e)) => {
                    let _ = k.sock.delete_ingress_qdisc(h);
                    Err(e)
                }
                (Err(e), Ok(())) => {
                    let _ = delete_marked(k, h, INGRESS_HANDLE, *priority, Mark::FilterAndQdisc);
                    Err(e)
                }
                (Err(e), Err(_)) => Err(e),
            }
        }
        Change::DeleteIngressQdisc => k.sock.delete_ingress_qdisc(host(d)?).map(drop),
        Change::AddRedirect {
            parent,
            priority,
            mark,
        } => {
            let (h, t) = (host(d)?, k.need_ifb(d)?);
            k.sock
                .add_redirect_filter(h, *parent, *priority, t, Some(mark.bytes()))
        }
        Change::ReplaceRedirect {
            parent,
            priority,
            handle,
            mark,
        } => {
            let (h, t) = (host(d)?, k.need_ifb(d)?);
            k.sock
                .replace_redirect_filter(h, *parent, *priority, *handle, t, Some(mark.bytes()))
        }
        Change::DeleteRedirect {
            parent,
            priority,
            handle,
            whole,
        } => {
            let handle = if *whole { 0 } else { *handle };
            k.sock
                .delete_filter(host(d)?, *parent, *priority, ETH_P_ALL, "u32", handle)
                .map(drop)
        }
        Change::DeleteMarkedRedirect {
            parent,
            priority,
            mark,
        } => delete_marked(k, host(d)?, *parent, *priority, *mark),
    }
}

/// The redirect a step made at `priority` under `parent`, by the mark the
/// plan gave it: the kernel chose its handle, so it is looked up by what
/// the plan named. Nothing else is chosen here.
fn delete_marked(k: &mut Kernel, host: u32, parent: u32, priority: u16, mark: Mark) -> nl_ops::Result<()> {
    let made: Vec<_> = k
        .sock
        .filters(host, parent)?
        .into_iter()
        .filter(|f| f.kind == "u32" && f.priority == priority && f.cookie.as_deref() == Some(mark.bytes()))
        .collect();
    for f in made {
        k.sock
            .delete_filter(host, parent, f.priority, f.protocol, "u32", f.handle)?;
    }
    Ok(())
}
