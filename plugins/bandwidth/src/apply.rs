//! The kernel side of a plan: how each change is made through nl-ops. The
//! engine that runs plans (rollback, best effort) is cni-core's.

use cni_core::{CniError, CniResult};
use nl_ops::link::Link;
use nl_ops::Socket;

use crate::plan::{Change, Device, Devices, Plan};

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
        self.ifb(d)?.ok_or_else(|| nl_ops::Error::Kernel {
            op: format!("get link {}", d.ifb_name),
            errno: libc::ENODEV,
        })
    }

    fn dev(&mut self, dev: Device, d: &Devices) -> nl_ops::Result<u32> {
        match dev {
            Device::HostVeth => host(d),
            Device::Ifb => self.need_ifb(d),
            Device::Index(i) => Ok(i),
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
        apply(self, k, d).map_err(CniError::from)
    }

    fn describe(&self, d: &Devices) -> String {
        self.text(d)
    }
}

fn apply(change: &Change, k: &mut Kernel, d: &Devices) -> nl_ops::Result<()> {
    match change {
        Change::SetTbf { dev, tbf } => {
            let i = k.dev(*dev, d)?;
            k.sock.replace_root_tbf(i, tbf)
        }
        Change::DeleteRootQdisc { dev } => {
            let i = match dev {
                Device::Ifb => match k.ifb(d)? {
                    Some(i) => i,
                    None => return Ok(()),
                },
                other => k.dev(*other, d)?,
            };
            k.sock.delete_root_qdisc(i).map(drop)
        }
        Change::CreateIfb { mtu, txqlen, alias } => {
            let link = k.sock.add_ifb(&d.ifb_name, *mtu, *txqlen, Some(alias))?;
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
        Change::AddIngressQdisc => k.sock.add_ingress_qdisc(host(d)?).map(drop),
        Change::DeleteIngressQdisc => k.sock.delete_ingress_qdisc(host(d)?).map(drop),
        Change::Redirect { to } => {
            let h = host(d)?;
            let t = k.dev(*to, d)?;
            k.sock.replace_redirect_filter(h, t)
        }
    }
}
