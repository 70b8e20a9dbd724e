//! What ADD, DEL, CHECK and GC decide, in pure code, from the config and a
//! snapshot of the host side. Every ADD step carries the change that takes
//! it back; `apply` runs plans on cni-core's step engine.
//!
//! The model lives here; each verb has its module.

mod add;
mod check;
mod del;
mod gc;
#[cfg(test)]
mod tests;

pub use add::plan_add;
pub use check::check;
pub use del::plan_del;
pub use gc::plan_gc;

use cni_core::plan::Step;
use cni_core::{CniError, CniResult};
use nl_ops::filter::Filter;
use nl_ops::link::Link;
use nl_ops::qdisc::{Qdisc, Tbf, TC_H_INGRESS, TC_H_ROOT};

use crate::config::Limits;
use crate::ifb::Owner;
use crate::tbf::{burst_tolerance, Psched};

/// The host side of one attachment as the kernel shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostSide {
    /// The host end of the container's veth.
    pub veth: Link,
    pub qdiscs: Vec<Qdisc>,
    /// Filters on the veth's ingress qdisc (`ffff:`).
    pub ingress_filters: Vec<Filter>,
}

impl HostSide {
    pub(crate) fn root(&self) -> Option<&Qdisc> {
        self.qdiscs.iter().find(|q| q.parent == TC_H_ROOT)
    }

    pub(crate) fn root_tbf(&self) -> Option<Tbf> {
        self.root().filter(|q| q.kind == "tbf").and_then(|q| q.tbf)
    }

    pub(crate) fn has_ingress(&self) -> bool {
        self.qdiscs
            .iter()
            .any(|q| q.parent == TC_H_INGRESS && q.kind == "ingress")
    }

    /// Another qdisc (clsact) in the ingress slot, which excludes ours.
    pub(crate) fn ingress_slot_taken(&self) -> Option<&str> {
        self.qdiscs
            .iter()
            .find(|q| q.parent == TC_H_INGRESS && q.kind != "ingress")
            .map(|q| q.kind.as_str())
    }

    /// The mirred target lists of the filters that redirect at all (u32
    /// dumps also list bare hash-table nodes, which carry no action).
    pub(crate) fn redirects(&self) -> Vec<&[u32]> {
        self.ingress_filters
            .iter()
            .filter(|f| !f.mirred_targets.is_empty())
            .map(|f| f.mirred_targets.as_slice())
            .collect()
    }
}

/// The ifb as snap, with its root qdisc.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IfbSide {
    pub link: Link,
    pub qdiscs: Vec<Qdisc>,
}

impl IfbSide {
    pub(crate) fn root_tbf(&self) -> Option<Tbf> {
        self.qdiscs
            .iter()
            .find(|q| q.parent == TC_H_ROOT && q.kind == "tbf")
            .and_then(|q| q.tbf)
    }
}

/// Everything a plan is made from: the host side (unknown to a DEL whose
/// namespace and prevResult are gone) and the link with our ifb's name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    pub host: Option<HostSide>,
    pub ifb: Option<IfbSide>,
}

impl Snapshot {
    /// ADD and CHECK find the veth before they look.
    pub(crate) fn host(&self) -> CniResult<&HostSide> {
        self.host
            .as_ref()
            .ok_or_else(|| CniError::internal("the host veth of the attachment is unknown"))
    }
}

/// A device a change acts on; the ifb's index is known only once it exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Device {
    HostVeth,
    Ifb,
    /// A link known only by index (the target of a redirect found in place).
    Index(u32),
}

/// One change to the host side of an attachment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Root TBF, added or replaced in place.
    SetTbf {
        dev: Device,
        tbf: Tbf,
    },
    DeleteRootQdisc {
        dev: Device,
    },
    CreateIfb {
        mtu: u32,
        txqlen: u32,
        alias: String,
    },
    SetIfbMtu {
        mtu: u32,
    },
    SetIfbAlias {
        alias: String,
    },
    SetIfbUp {
        up: bool,
    },
    DeleteIfb,
    AddIngressQdisc,
    DeleteIngressQdisc,
    /// The priority-1 match-all filter on the veth's ingress, redirecting to `to`.
    Redirect {
        to: Device,
    },
}

/// The devices a plan acts on, known before it runs; changes name them in
/// messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Devices {
    /// Host veth (index, name), when known.
    pub host: Option<(u32, String)>,
    pub ifb_name: String,
    /// Index of an ifb that exists before the plan runs.
    pub ifb_index: Option<u32>,
}

/// Plain data: the devices involved and the ordered steps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub devices: Devices,
    pub steps: cni_core::plan::Plan<Change>,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }

    pub fn changes(&self) -> Vec<Change> {
        self.steps.changes().cloned().collect()
    }
}

impl Change {
    /// Names the change for messages: `set tbf rate 1000 B/s burst 10 B on veth1`.
    pub fn text(&self, d: &Devices) -> String {
        let host = d.host.as_ref().map_or("host veth", |(_, n)| n.as_str());
        let dev = |dev: &Device| match dev {
            Device::HostVeth => host.to_string(),
            Device::Ifb => d.ifb_name.clone(),
            Device::Index(i) => format!("link {i}"),
        };
        let ifb = &d.ifb_name;
        match self {
            Change::SetTbf { dev: t, tbf } => format!(
                "set tbf rate {} B/s burst {} B limit {} B on {}",
                tbf.rate,
                tbf.burst,
                tbf.limit,
                dev(t)
            ),
            Change::DeleteRootQdisc { dev: t } => format!("delete root qdisc of {}", dev(t)),
            Change::CreateIfb { mtu, .. } => format!("create ifb {ifb} with mtu {mtu}"),
            Change::SetIfbMtu { mtu } => format!("set mtu {mtu} on {ifb}"),
            Change::SetIfbAlias { .. } => format!("set alias on {ifb}"),
            Change::SetIfbUp { up } => format!("set {ifb} {}", if *up { "up" } else { "down" }),
            Change::DeleteIfb => format!("delete ifb {ifb}"),
            Change::AddIngressQdisc => format!("add ingress qdisc to {host}"),
            Change::DeleteIngressQdisc => format!("delete ingress qdisc of {host}"),
            Change::Redirect { to } => format!("redirect ingress of {host} to {}", dev(to)),
        }
    }
}

/// True when the kernel already holds `want` (the bucket only to within
/// the tick rounding of its encoding).
pub fn tbf_matches(have: &Tbf, want: &Tbf) -> bool {
    have.rate == want.rate
        && have.limit == want.limit
        && u64::from(have.burst).abs_diff(u64::from(want.burst)) <= burst_tolerance(want.rate)
}

/// Limits the kernel cannot hold: the bucket must drain in fewer than 2^32
/// scheduler ticks (about 274 s); the reference wraps such buckets around.
pub fn check_buffer(limits: &Limits, psched: Psched) -> CniResult<()> {
    for (name, l) in [("ingress", limits.ingress), ("egress", limits.egress)] {
        if let Some(l) = l {
            if l.buffer_ticks(psched) > u64::from(u32::MAX) {
                let secs = u64::from(u32::MAX) as f64 / psched.ticks_per_us / 1e6;
                return Err(CniError::invalid_config(format!(
                    "{name}Burst of {} bits takes more than {secs:.0} s to drain at {name}Rate {} bit/s, \
                     longer than the kernel's tbf buffer can hold",
                    l.burst_bits, l.rate_bits
                )));
            }
        }
    }
    Ok(())
}

/// The alias check shared by ADD and DEL: `Ok(true)` when the ifb is ours or
/// carries no alias (made by the reference, or by an ADD killed before it
/// set one); `Ok(false)` when it belongs to another attachment of ours.
pub(crate) fn ifb_is_ours(link: &Link, owner: &Owner) -> Result<bool, String> {
    if link.kind.as_deref() != Some("ifb") {
        return Err(format!(
            "link {} exists and is a {}, not an ifb",
            link.name,
            link.kind.as_deref().unwrap_or("device without kind")
        ));
    }
    match link.alias.as_deref().filter(|a| !a.is_empty()) {
        None => Ok(true),
        Some(a) => match Owner::from_alias(a) {
            Some(o) if o == *owner => Ok(true),
            Some(_) => Ok(false),
            None => Err(format!("ifb {} carries the foreign alias {a:?}", link.name)),
        },
    }
}

pub(crate) fn set_tbf(
    dev: Device,
    want: Tbf,
    have: Option<Tbf>,
    created: bool,
    actions: &mut Vec<Step<Change>>,
) {
    match have {
        Some(h) if tbf_matches(&h, &want) => {}
        Some(h) => actions.push(Step::new(
            Change::SetTbf { dev, tbf: want },
            Some(Change::SetTbf { dev, tbf: h }),
        )),
        None => {
            let undo = (!created).then_some(Change::DeleteRootQdisc { dev });
            actions.push(Step::new(Change::SetTbf { dev, tbf: want }, undo));
        }
    }
}
