//! What ADD, DEL, CHECK and GC decide, in pure code, from the config and a
//! snapshot of the host side. Every ADD step carries the change that takes
//! it back; `apply` runs plans on cni-core's step engine.
//!
//! Ownership: the plugin changes only what it can prove is this
//! attachment's. The ifb carries our alias (or, made by the reference, no
//! alias and this attachment's name). Qdiscs have no field for a mark, so
//! what they are tells: a root `tbf` with handle `1:` (the reference's
//! shape). Our redirect's action carries a tc cookie ([`Mark`]) saying
//! whether ADD also made the ingress qdisc; the reference's is known by its
//! shape. Everything else on the veth (a clsact and its filters included)
//! is someone else's: never deleted, replaced or moved.
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
pub use gc::{plan_gc, plan_gc_ifb};

use cni_core::{CniError, CniResult};
use nl_ops::filter::{Filter, CLSACT_INGRESS, ETH_P_ALL};
use nl_ops::link::Link;
use nl_ops::qdisc::{ChildQueue, FqCodel, Handle, Qdisc, Tbf, INGRESS_HANDLE, TC_H_INGRESS, TC_H_ROOT};

use crate::config::Limits;
use crate::ifb::Owner;
use crate::tbf::{bucket, Bucket, Psched, ETH_HLEN, TBF_HANDLE};

/// The priority of our redirect filter where no one else's is on the hook,
/// as the reference puts it.
pub const REDIRECT_PRIORITY: u16 = 1;

/// Where the veth's ingress filters hang.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hook {
    /// An `ingress` qdisc: ours, the reference's, or someone's.
    Ingress,
    /// Someone's `clsact` (eBPF agents: AWS network policy agent, Calico,
    /// netobserv): ours goes on its ingress hook; the qdisc is never ours.
    Clsact,
}

impl Hook {
    /// The parent its filters are added, dumped and deleted under.
    pub fn parent(self) -> u32 {
        match self {
            Hook::Ingress => INGRESS_HANDLE,
            Hook::Clsact => CLSACT_INGRESS,
        }
    }
}

/// The mark (a tc action cookie) on the action of the redirect ADD makes:
/// whether that ADD also made the ingress qdisc, so DEL knows whether the
/// qdisc is this attachment's to delete.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mark {
    /// The redirect alone: the hook was there before (someone's).
    Filter,
    /// The redirect and the `ingress` qdisc it sits on.
    FilterAndQdisc,
}

impl Mark {
    pub fn bytes(self) -> &'static [u8] {
        match self {
            Mark::Filter => b"cni-bw",
            Mark::FilterAndQdisc => b"cni-bw ingress",
        }
    }

    pub fn parse(cookie: &[u8]) -> Option<Mark> {
        [Mark::Filter, Mark::FilterAndQdisc]
            .into_iter()
            .find(|m| m.bytes() == cookie)
    }

    /// The mark of a filter: `None` without a cookie; `Err` for a cookie
    /// that is not ours.
    fn of(f: &Filter) -> Result<Option<Mark>, ()> {
        match &f.cookie {
            None => Ok(None),
            Some(c) => Mark::parse(c).map(Some).ok_or(()),
        }
    }
}

/// The TBF's one class (`1:1`): its queue hangs there.
pub const QUEUE_CLASS: u32 = TBF_HANDLE | 1;
/// Our fq_codel under the TBF (`10:`): the handle marks it ours.
pub const FQ_CODEL_HANDLE: u32 = 0x10_0000;

/// The fq_codel ADD puts under a TBF where the kernel has it: the kernel's
/// defaults (5 ms target, 100 ms interval, ECN), set explicitly so CHECK
/// can compare them.
pub const FQ_CODEL: FqCodel = FqCodel {
    limit: 10_240,
    target_us: 5_000,
    interval_us: 100_000,
    ecn: true,
};

/// The queue under our TBF, when it is the fq_codel ADD puts there. The
/// kernel keeps CoDel's times in 1024 ns units, so a time dumps up to a
/// microsecond below what was sent.
pub(crate) fn our_fq_codel(qdiscs: &[Qdisc]) -> Option<FqCodel> {
    qdiscs
        .iter()
        .find(|q| q.parent == QUEUE_CLASS && q.handle == FQ_CODEL_HANDLE && q.kind == "fq_codel")
        .and_then(|q| q.fq_codel)
}

/// `have` is `want` as the kernel dumps it back.
pub(crate) fn same_fq_codel(have: &FqCodel, want: &FqCodel) -> bool {
    let near = |h: u32, w: u32| h.abs_diff(w) <= 1;
    have.limit == want.limit
        && have.ecn == want.ecn
        && near(have.target_us, want.target_us)
        && near(have.interval_us, want.interval_us)
}

/// The host side of one attachment as the kernel shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostSide {
    /// The host end of the container's veth.
    pub veth: Link,
    pub qdiscs: Vec<Qdisc>,
    /// Filters on the veth's ingress hook (`ffff:`, or clsact's `ffff:fff2`).
    pub ingress_filters: Vec<Filter>,
    /// Redirect targets of those filters that are no link (any more).
    pub dead_targets: Vec<u32>,
}

/// The root qdisc of a link, as far as ownership goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Root<'a> {
    /// None of its own: the kernel's default (handle 0).
    Default,
    /// A `tbf` with our handle: ours, or the reference's.
    Ours(Tbf),
    /// Anything else: someone else's.
    Foreign(&'a Qdisc),
}

fn root_of(qdiscs: &[Qdisc]) -> Root<'_> {
    match qdiscs.iter().find(|q| q.parent == TC_H_ROOT && q.handle != 0) {
        None => Root::Default,
        Some(q) => match (q.kind.as_str(), q.handle, q.tbf) {
            ("tbf", TBF_HANDLE, Some(t)) => Root::Ours(t),
            _ => Root::Foreign(q),
        },
    }
}

impl HostSide {
    pub(crate) fn root(&self) -> Root<'_> {
        root_of(&self.qdiscs)
    }

    /// The qdisc in the ingress slot whose filters are the veth's own, and
    /// of a kind ours can go on.
    pub fn hook(&self) -> Option<Hook> {
        self.qdiscs
            .iter()
            .filter(|q| q.parent == TC_H_INGRESS && q.ingress_block.is_none())
            .find_map(|q| match q.kind.as_str() {
                "ingress" => Some(Hook::Ingress),
                "clsact" => Some(Hook::Clsact),
                _ => None,
            })
    }

    /// What holds the ingress slot and excludes ours: a qdisc of another
    /// kind, or one on a shared filter block (the kernel takes no filter of
    /// the veth's own there). Someone else's either way.
    pub(crate) fn ingress_slot_taken(&self) -> Option<&Qdisc> {
        if self.hook().is_some() {
            return None;
        }
        self.qdiscs.iter().find(|q| q.parent == TC_H_INGRESS)
    }

    /// Our redirect filters: u32 nodes for all protocols matching every
    /// packet that only redirect, all to `ifb`, or (the ifb gone) all to
    /// links that no longer exist; marked as ours (one action), or without
    /// a mark at the reference's priority (its two mirred actions, or ours
    /// from before marks).
    pub(crate) fn our_redirects(&self, ifb: Option<u32>) -> Vec<&Filter> {
        self.ingress_filters
            .iter()
            .filter(|f| f.kind == "u32" && f.protocol == ETH_P_ALL && f.match_all && f.only_redirects())
            .filter(|f| match Mark::of(f) {
                Ok(Some(_)) => f.actions == 1,
                Ok(None) => f.priority == REDIRECT_PRIORITY,
                Err(()) => false,
            })
            .filter(|f| {
                f.mirred_targets
                    .iter()
                    .all(|t| Some(*t) == ifb || self.dead_targets.contains(t))
            })
            .collect()
    }

    /// Where a new redirect goes: after everyone else's filters on the hook
    /// (a policy agent's verdict or an observer's look comes first, ours
    /// steals the packet), else the reference's priority; the lowest free
    /// one when theirs take the last.
    pub(crate) fn redirect_priority(&self, ours: &[&Filter]) -> Option<u16> {
        let theirs = self
            .ingress_filters
            .iter()
            .filter(|f| !ours.iter().any(|o| std::ptr::eq(*o, *f)));
        match theirs.map(|f| f.priority).max() {
            None => Some(REDIRECT_PRIORITY),
            Some(p) if p < u16::MAX => Some(p + 1),
            Some(_) => (1..u16::MAX).find(|p| !self.ingress_filters.iter().any(|f| f.priority == *p)),
        }
    }
}

/// The ifb as observed, with its root qdisc.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IfbSide {
    pub link: Link,
    pub qdiscs: Vec<Qdisc>,
}

impl IfbSide {
    pub(crate) fn root(&self) -> Root<'_> {
        root_of(&self.qdiscs)
    }
}

/// Everything a plan is made from: the host side (unknown to a DEL whose
/// namespace and prevResult are gone) and the link with our ifb's name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    pub host: Option<HostSide>,
    pub ifb: Option<IfbSide>,
    /// The kernel has fq_codel (probed for ADD and CHECK only).
    pub fq_codel: bool,
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
}

/// One change to the host side of an attachment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// A root TBF with our handle where the kernel's default qdisc is.
    AddTbf {
        dev: Device,
        tbf: Tbf,
    },
    /// New numbers for our root TBF.
    ChangeTbf {
        dev: Device,
        tbf: Tbf,
    },
    /// Our root TBF, by handle.
    DeleteTbf {
        dev: Device,
    },
    /// `queue` under our TBF, in place of the queue there.
    SetQueue {
        dev: Device,
        queue: ChildQueue,
    },
    CreateIfb {
        mtu: u32,
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
    /// An `ingress` qdisc where the slot is free, and on it our redirect
    /// at `priority` (marked `FilterAndQdisc`): one datagram, so no kill
    /// leaves the qdisc without it, and an empty ingress qdisc is never a
    /// sign of this attachment.
    AddIngressWithRedirect {
        priority: u16,
    },
    DeleteIngressQdisc,
    /// A new match-all redirect to the ifb under `parent` at `priority`.
    AddRedirect {
        parent: u32,
        priority: u16,
        mark: Mark,
    },
    /// Our filter `handle` made a single redirect to the ifb.
    ReplaceRedirect {
        parent: u32,
        priority: u16,
        handle: u32,
        mark: Mark,
    },
    /// Our filter `handle`; with `whole`, every u32 filter at its priority
    /// (ours was the only one), so no empty hash table stays behind.
    DeleteRedirect {
        parent: u32,
        priority: u16,
        handle: u32,
        whole: bool,
    },
    /// Undoes `AddRedirect`: the u32 filter at `priority` under `parent`
    /// whose action carries `mark`, the one the step made (the kernel
    /// numbers it, so the plan names it by priority and mark).
    DeleteMarkedRedirect {
        parent: u32,
        priority: u16,
        mark: Mark,
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

fn tbf_text(t: &Tbf) -> String {
    let burst = t.burst.map(|b| format!(" burst {b} B")).unwrap_or_default();
    let peak = t
        .peak
        .map(|p| {
            let pburst = p.burst.map(|b| format!(" pburst {b} B")).unwrap_or_default();
            format!(" peakrate {} B/s mtu {} ticks{pburst}", p.rate, p.mtu)
        })
        .unwrap_or_default();
    format!(
        "rate {} B/s buffer {} ticks limit {} B{burst}{peak}",
        t.rate, t.buffer, t.limit
    )
}

impl Change {
    /// Names the change for messages: `add tbf rate 1000 B/s ... on veth1`.
    pub fn text(&self, d: &Devices) -> String {
        let host = d.host.as_ref().map_or("host veth", |(_, n)| n.as_str());
        let ifb = &d.ifb_name;
        let dev = |dev: &Device| match dev {
            Device::HostVeth => host,
            Device::Ifb => ifb.as_str(),
        };
        match self {
            Change::AddTbf { dev: t, tbf } => {
                format!("add tbf {} {} on {}", Handle(TBF_HANDLE), tbf_text(tbf), dev(t))
            }
            Change::ChangeTbf { dev: t, tbf } => {
                format!(
                    "change tbf {} to {} on {}",
                    Handle(TBF_HANDLE),
                    tbf_text(tbf),
                    dev(t)
                )
            }
            Change::DeleteTbf { dev: t } => format!("delete tbf {} of {}", Handle(TBF_HANDLE), dev(t)),
            Change::SetQueue { dev: t, queue } => format!(
                "put {} under tbf {} of {}",
                match queue {
                    ChildQueue::FqCodel(_) => format!("fq_codel {}", Handle(FQ_CODEL_HANDLE)),
                    ChildQueue::Bfifo(limit) => format!("a {limit} B fifo"),
                },
                Handle(TBF_HANDLE),
                dev(t)
            ),
            Change::CreateIfb { mtu, .. } => format!("create ifb {ifb} with mtu {mtu}"),
            Change::SetIfbMtu { mtu } => format!("set mtu {mtu} on {ifb}"),
            Change::SetIfbAlias { .. } => format!("set alias on {ifb}"),
            Change::SetIfbUp { up } => format!("set {ifb} {}", if *up { "up" } else { "down" }),
            Change::DeleteIfb => format!("delete ifb {ifb}"),
            Change::AddIngressWithRedirect { priority } => {
                format!("add ingress qdisc to {host} redirecting to {ifb} at priority {priority}")
            }
            Change::DeleteIngressQdisc => format!("delete ingress qdisc of {host}"),
            Change::AddRedirect { priority, .. } => {
                format!("redirect ingress of {host} to {ifb} at priority {priority}")
            }
            Change::ReplaceRedirect { handle, .. } => {
                format!(
                    "replace filter {} on {host} by a redirect to {ifb}",
                    Handle(*handle)
                )
            }
            Change::DeleteRedirect {
                handle, whole: false, ..
            } => {
                format!("delete redirect filter {} of {host}", Handle(*handle))
            }
            Change::DeleteRedirect {
                priority,
                whole: true,
                ..
            } => {
                format!("delete the u32 filters at priority {priority} of {host}")
            }
            Change::DeleteMarkedRedirect { priority, .. } => {
                format!("delete the redirect of {host} to {ifb} at priority {priority}")
            }
        }
    }
}

/// One direction's TBF, with what the log says about it.
pub(crate) fn direction_bucket(
    name: &str,
    l: crate::tbf::Limit,
    host: &HostSide,
    limits: &Limits,
    fq_codel: bool,
    psched: Psched,
) -> CniResult<Bucket> {
    let frame = host.veth.mtu + ETH_HLEN;
    let b = bucket(name, l, frame, psched, limits.max_burst_ms)?;
    let discipline = limits.queue.discipline(fq_codel);
    let b = b.queued(discipline, frame);
    let split = match b.tbf.peak.and_then(|p| p.burst) {
        Some(frame) => format!(", the tbf splitting GSO packets into frames of {frame} bytes (peak bucket)"),
        None => String::new(),
    };
    log::info!(
        "{name} queue: {discipline:?} (config {:?}), a limit of {} bytes behind a bucket of {} bytes{split}",
        limits.queue,
        b.tbf.limit,
        b.burst
    );
    Ok(b)
}

/// The TBFs CHECK accepts for one direction: the one ADD installs first,
/// then those of pods made before an in-place upgrade, which ADD converges
/// to the first: our earlier releases' (see [`crate::tbf::earlier_bounded`],
/// and the reference's queue behind our bucket) and the reference's own
/// numbers.
pub(crate) fn accepted_tbfs(
    name: &str,
    l: crate::tbf::Limit,
    host: &HostSide,
    limits: &Limits,
    fq_codel: bool,
    psched: Psched,
) -> CniResult<Vec<Tbf>> {
    let frame = host.veth.mtu + ETH_HLEN;
    let b = bucket(name, l, frame, psched, limits.max_burst_ms)?;
    let earlier = crate::tbf::earlier_bounded(b.tbf.rate, b.burst, frame).map(|(limit, peak)| Tbf {
        limit: u32::try_from(limit).unwrap_or(u32::MAX),
        peak,
        ..b.tbf
    });
    // The reference ignores maxBurstMs: its bucket is the one asked.
    Ok(vec![
        b.queued(limits.queue.discipline(fq_codel), frame).tbf,
        earlier[0],
        earlier[1],
        b.tbf,
        crate::tbf::reference_tbf(l, psched),
    ])
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
        Some(a) if owner.owns(a) => Ok(true),
        Some(a) => match Owner::parse_alias(a) {
            Some(_) => Ok(false),
            None => Err(format!("ifb {} carries the foreign alias {a:?}", link.name)),
        },
    }
}
