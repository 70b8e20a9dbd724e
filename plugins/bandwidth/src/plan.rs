//! What ADD, DEL and CHECK must do, decided in pure code from the config and
//! an observed snapshot of the host side. Every step carries its inverse so
//! a failed ADD can take back exactly what it did.

use std::fmt;

use cni_core::{Attachment, CniError, CniResult};
use nl_ops::filter::Filter;
use nl_ops::link::Link;
use nl_ops::qdisc::{Qdisc, Tbf, TC_H_INGRESS, TC_H_ROOT};

use crate::config::Limits;
use crate::ifb::Owner;
use crate::tbf::{burst_tolerance, Limit, Psched};

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
    fn root(&self) -> Option<&Qdisc> {
        self.qdiscs.iter().find(|q| q.parent == TC_H_ROOT)
    }

    fn root_tbf(&self) -> Option<Tbf> {
        self.root().filter(|q| q.kind == "tbf").and_then(|q| q.tbf)
    }

    fn has_ingress(&self) -> bool {
        self.qdiscs
            .iter()
            .any(|q| q.parent == TC_H_INGRESS && q.kind == "ingress")
    }

    /// Another qdisc (clsact) in the ingress slot, which excludes ours.
    fn ingress_slot_taken(&self) -> Option<&str> {
        self.qdiscs
            .iter()
            .find(|q| q.parent == TC_H_INGRESS && q.kind != "ingress")
            .map(|q| q.kind.as_str())
    }

    /// The mirred target lists of the filters that redirect at all (u32
    /// dumps also list bare hash-table nodes, which carry no action).
    fn redirects(&self) -> Vec<&[u32]> {
        self.ingress_filters
            .iter()
            .filter(|f| !f.mirred_targets.is_empty())
            .map(|f| f.mirred_targets.as_slice())
            .collect()
    }
}

/// The ifb as observed, with its root qdisc.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IfbSide {
    pub link: Link,
    pub qdiscs: Vec<Qdisc>,
}

impl IfbSide {
    fn root_tbf(&self) -> Option<Tbf> {
        self.qdiscs
            .iter()
            .find(|q| q.parent == TC_H_ROOT && q.kind == "tbf")
            .and_then(|q| q.tbf)
    }
}

/// Everything ADD and CHECK look at before deciding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observed {
    pub host: HostSide,
    /// The link with our ifb's name, when there is one.
    pub ifb: Option<IfbSide>,
}

/// A device a step acts on; the ifb's index is known only once it exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dev {
    HostVeth,
    Ifb,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Ifb,
    Index(u32),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Root TBF, added or replaced in place.
    SetTbf {
        dev: Dev,
        tbf: Tbf,
    },
    DeleteRootQdisc {
        dev: Dev,
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
        to: Target,
    },
}

/// One step and how to take it back (`None`: nothing to take back, or a
/// later-undone step already covers it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Action {
    pub step: Step,
    pub undo: Option<Step>,
}

fn act(step: Step, undo: Option<Step>) -> Action {
    Action { step, undo }
}

/// Plain data: the devices involved and the ordered actions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// Host veth (index, name), when known.
    pub host: Option<(u32, String)>,
    pub ifb_name: String,
    /// Index of an ifb that exists before the plan runs.
    pub ifb_index: Option<u32>,
    pub actions: Vec<Action>,
}

impl fmt::Display for Dev {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Dev::HostVeth => "host veth",
            Dev::Ifb => "ifb",
        })
    }
}

impl Plan {
    /// Names a step for messages: `set tbf rate 1000 B/s burst 10 B on veth1`.
    pub fn describe(&self, step: &Step) -> String {
        let host = self.host.as_ref().map_or("host veth", |(_, n)| n.as_str());
        let dev = |d: &Dev| match d {
            Dev::HostVeth => host.to_string(),
            Dev::Ifb => self.ifb_name.clone(),
        };
        match step {
            Step::SetTbf { dev: d, tbf } => format!(
                "set tbf rate {} B/s burst {} B limit {} B on {}",
                tbf.rate,
                tbf.burst,
                tbf.limit,
                dev(d)
            ),
            Step::DeleteRootQdisc { dev: d } => format!("delete root qdisc of {}", dev(d)),
            Step::CreateIfb { mtu, .. } => format!("create ifb {} with mtu {mtu}", self.ifb_name),
            Step::SetIfbMtu { mtu } => format!("set mtu {mtu} on {}", self.ifb_name),
            Step::SetIfbAlias { .. } => format!("set alias on {}", self.ifb_name),
            Step::SetIfbUp { up } => format!("set {} {}", self.ifb_name, if *up { "up" } else { "down" }),
            Step::DeleteIfb => format!("delete ifb {}", self.ifb_name),
            Step::AddIngressQdisc => format!("add ingress qdisc to {host}"),
            Step::DeleteIngressQdisc => format!("delete ingress qdisc of {host}"),
            Step::Redirect { to: Target::Ifb } => format!("redirect ingress of {host} to {}", self.ifb_name),
            Step::Redirect { to: Target::Index(i) } => format!("redirect ingress of {host} to link {i}"),
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
fn ifb_is_ours(link: &Link, owner: &Owner) -> Result<bool, String> {
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

fn set_tbf(dev: Dev, want: Tbf, have: Option<Tbf>, created: bool, actions: &mut Vec<Action>) {
    match have {
        Some(h) if tbf_matches(&h, &want) => {}
        Some(h) => actions.push(act(
            Step::SetTbf { dev, tbf: want },
            Some(Step::SetTbf { dev, tbf: h }),
        )),
        None => {
            let undo = (!created).then_some(Step::DeleteRootQdisc { dev });
            actions.push(act(Step::SetTbf { dev, tbf: want }, undo));
        }
    }
}

/// ADD: converge the host side onto `limits`. Validation that needs the
/// kernel's view (MTU, ifb ownership) fails here, before anything changes.
pub fn plan_add(
    limits: &Limits,
    owner: &Owner,
    ifb_name: &str,
    observed: &Observed,
    psched: Psched,
) -> CniResult<Plan> {
    let host = &observed.host;
    limits.check_mtu(&host.veth.name, host.veth.mtu)?;
    check_buffer(limits, psched)?;
    if let (Some(_), Some(kind)) = (limits.egress, host.ingress_slot_taken()) {
        return Err(CniError::invalid_config(format!(
            "{} has a {kind} qdisc where egress shaping needs an ingress qdisc",
            host.veth.name
        )));
    }
    let mut actions = Vec::new();

    match limits.ingress {
        Some(l) => set_tbf(Dev::HostVeth, l.tbf(), host.root_tbf(), false, &mut actions),
        None => {
            if let Some(old) = host.root_tbf() {
                actions.push(act(
                    Step::DeleteRootQdisc { dev: Dev::HostVeth },
                    Some(Step::SetTbf {
                        dev: Dev::HostVeth,
                        tbf: old,
                    }),
                ));
            }
        }
    }

    let ifb = match &observed.ifb {
        Some(side) => match ifb_is_ours(&side.link, owner) {
            Ok(true) => Some(side),
            Ok(false) => {
                return Err(CniError::invalid_config(format!(
                    "ifb {ifb_name} already shapes another interface of container {} on network {}: {}",
                    owner.container_id,
                    owner.network,
                    side.link.alias.as_deref().unwrap_or_default()
                )))
            }
            // Something else holds the name: no retry will help, like the
            // other owner's ifb above.
            Err(msg) => {
                return Err(CniError::invalid_config(format!(
                    "cannot use ifb name {ifb_name}: {msg}"
                )))
            }
        },
        None => None,
    };

    match (limits.egress, ifb) {
        (Some(l), ifb) => egress(l, owner, host, ifb, &mut actions),
        (None, Some(ifb)) => {
            // Egress no longer configured: take down what an earlier ADD made.
            if host.has_ingress()
                && host
                    .redirects()
                    .iter()
                    .all(|t| t.iter().all(|i| *i == ifb.link.index))
            {
                actions.push(act(Step::DeleteIngressQdisc, None));
            }
            actions.push(act(Step::DeleteIfb, None));
        }
        (None, None) => {}
    }

    Ok(Plan {
        host: Some((host.veth.index, host.veth.name.clone())),
        ifb_name: ifb_name.to_string(),
        ifb_index: observed.ifb.as_ref().map(|i| i.link.index),
        actions,
    })
}

/// The egress half of ADD: the ifb first and shaped, then the redirect, so
/// traffic never reaches an unshaped or missing ifb.
fn egress(l: Limit, owner: &Owner, host: &HostSide, ifb: Option<&IfbSide>, actions: &mut Vec<Action>) {
    let mtu = host.veth.mtu;
    let alias = owner.alias();
    let created = ifb.is_none();
    match ifb {
        None => actions.push(act(
            Step::CreateIfb {
                mtu,
                txqlen: host.veth.txqlen,
                alias,
            },
            Some(Step::DeleteIfb),
        )),
        Some(side) => {
            let link = &side.link;
            if link.mtu != mtu {
                actions.push(act(
                    Step::SetIfbMtu { mtu },
                    Some(Step::SetIfbMtu { mtu: link.mtu }),
                ));
            }
            if link.alias.as_deref() != Some(alias.as_str()) {
                actions.push(act(Step::SetIfbAlias { alias }, None));
            }
            if !link.up {
                actions.push(act(
                    Step::SetIfbUp { up: true },
                    Some(Step::SetIfbUp { up: false }),
                ));
            }
        }
    }
    set_tbf(
        Dev::Ifb,
        l.tbf(),
        ifb.and_then(IfbSide::root_tbf),
        created,
        actions,
    );

    let had_ingress = host.has_ingress();
    if !had_ingress {
        actions.push(act(Step::AddIngressQdisc, Some(Step::DeleteIngressQdisc)));
    }
    let redirects = host.redirects();
    let in_place = match ifb {
        Some(side) => had_ingress && redirects.len() == 1 && redirects[0] == [side.link.index],
        None => false,
    };
    if !in_place {
        // The redirect is the last step, so its undo runs only when it
        // failed itself: then only a redirect it replaced needs restoring.
        let undo = match redirects.as_slice() {
            [only] if had_ingress && !only.is_empty() => Some(Step::Redirect {
                to: Target::Index(only[0]),
            }),
            _ => None,
        };
        actions.push(act(Step::Redirect { to: Target::Ifb }, undo));
    }
}

/// What DEL finds: the host veth only when it could be identified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObservedDel {
    pub host: Option<HostSide>,
    pub ifb: Option<Link>,
}

/// DEL: the ifb first (unregistering it detaches the redirect's reference,
/// which keeps the kernel's device teardown short), then the redirect, then
/// the veth's root TBF; all of it optional, so a second DEL plans nothing.
pub fn plan_del(owner: &Owner, ifb_name: &str, observed: &ObservedDel) -> Plan {
    let mut actions = Vec::new();
    let ifb = observed
        .ifb
        .as_ref()
        .filter(|l| matches!(ifb_is_ours(l, owner), Ok(true)));
    if ifb.is_some() {
        actions.push(act(Step::DeleteIfb, None));
    }
    if let Some(host) = &observed.host {
        // With our ifb gone, a redirect left on this container's veth is a
        // dangling one of ours; one to another attachment's ifb is not.
        let ours = |t: &[u32]| match (&observed.ifb, ifb) {
            (_, Some(l)) => t.iter().all(|i| *i == l.index),
            (Some(_), None) => false,
            (None, None) => true,
        };
        if host.has_ingress() && host.redirects().iter().all(|t| ours(t)) {
            actions.push(act(Step::DeleteIngressQdisc, None));
        }
        if host.root_tbf().is_some() {
            actions.push(act(Step::DeleteRootQdisc { dev: Dev::HostVeth }, None));
        }
    }
    Plan {
        host: observed
            .host
            .as_ref()
            .map(|h| (h.veth.index, h.veth.name.clone())),
        ifb_name: ifb_name.to_string(),
        ifb_index: ifb.map(|l| l.index),
        actions,
    }
}

fn mismatch(msg: String) -> CniError {
    CniError::check_failed(msg)
}

fn check_tbf(dev: &str, want: &Tbf, have: Option<Tbf>) -> CniResult<()> {
    let Some(have) = have else {
        return Err(mismatch(format!("{dev} has no root tbf qdisc")));
    };
    if have.rate != want.rate {
        return Err(mismatch(format!(
            "tbf on {dev} has rate {} B/s, want {} B/s",
            have.rate, want.rate
        )));
    }
    if have.limit != want.limit {
        return Err(mismatch(format!(
            "tbf on {dev} has limit {} B, want {} B",
            have.limit, want.limit
        )));
    }
    if !tbf_matches(&have, want) {
        return Err(mismatch(format!(
            "tbf on {dev} has burst {} B, want {} B",
            have.burst, want.burst
        )));
    }
    Ok(())
}

/// CHECK: everything ADD makes, with its values; the first mismatch named.
pub fn check(limits: &Limits, owner: &Owner, ifb_name: &str, observed: &Observed) -> CniResult<()> {
    let host = &observed.host;
    let veth = &host.veth.name;
    if let Some(l) = limits.ingress {
        check_tbf(veth, &l.tbf(), host.root_tbf())?;
    }
    let Some(l) = limits.egress else {
        return Ok(());
    };
    let Some(ifb) = &observed.ifb else {
        return Err(mismatch(format!("ifb {ifb_name} does not exist")));
    };
    let link = &ifb.link;
    if link.kind.as_deref() != Some("ifb") {
        return Err(mismatch(format!("{ifb_name} is not an ifb")));
    }
    if link.alias.as_deref() != Some(owner.alias().as_str()) {
        return Err(mismatch(format!(
            "ifb {ifb_name} has alias {:?}, want {:?}",
            link.alias.as_deref().unwrap_or_default(),
            owner.alias()
        )));
    }
    if link.mtu != host.veth.mtu {
        return Err(mismatch(format!(
            "ifb {ifb_name} has mtu {}, want {} as {veth}",
            link.mtu, host.veth.mtu
        )));
    }
    if !link.up {
        return Err(mismatch(format!("ifb {ifb_name} is down")));
    }
    check_tbf(ifb_name, &l.tbf(), ifb.root_tbf())?;
    if !host.has_ingress() {
        return Err(mismatch(format!("{veth} has no ingress qdisc")));
    }
    let ours: Vec<&Filter> = host
        .ingress_filters
        .iter()
        .filter(|f| !f.mirred_targets.is_empty())
        .collect();
    match ours.as_slice() {
        [] => Err(mismatch(format!(
            "{veth} has no filter redirecting its ingress to {ifb_name}"
        ))),
        [f] => {
            if f.kind != "u32" || f.priority != 1 || f.protocol != 3 {
                return Err(mismatch(format!(
                    "redirect filter on {veth} is {} priority {} protocol {:#x}, want u32 priority 1 protocol all",
                    f.kind, f.priority, f.protocol
                )));
            }
            if f.mirred_targets != [link.index] {
                return Err(mismatch(format!(
                    "redirect filter on {veth} sends to links {:?}, want only {ifb_name} ({})",
                    f.mirred_targets, link.index
                )));
            }
            Ok(())
        }
        _ => Err(mismatch(format!(
            "{veth} has {} redirect filters, want one",
            ours.len()
        ))),
    }
}

/// GC: this network's ifbs (known by our alias) whose attachment is not
/// among the runtime's valid ones. Devices without our alias and other
/// networks' ifbs are never chosen.
pub fn plan_gc<'a>(links: &'a [Link], network: &str, valid: &[Attachment]) -> Vec<(&'a Link, Owner)> {
    links
        .iter()
        .filter(|l| l.kind.as_deref() == Some("ifb"))
        .filter_map(|l| Some((l, l.alias.as_deref().and_then(Owner::from_alias)?)))
        .filter(|(_, o)| {
            o.network == network
                && !valid
                    .iter()
                    .any(|a| a.container_id == o.container_id && a.ifname == o.ifname)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use cni_core::Code;

    const HOST: u32 = 7;
    const IFB: u32 = 9;

    fn owner() -> Owner {
        Owner {
            network: "net".into(),
            container_id: "c1".into(),
            ifname: "eth0".into(),
        }
    }

    fn link(index: u32, name: &str, kind: &str, alias: Option<String>) -> Link {
        Link {
            index,
            name: name.into(),
            mtu: 1500,
            kind: Some(kind.into()),
            alias,
            up: true,
            txqlen: 1000,
            link: None,
            link_netnsid: None,
            mac: None,
        }
    }

    fn qdisc(index: u32, kind: &str, tbf: Option<Tbf>) -> Qdisc {
        let (parent, handle) = if kind == "ingress" || kind == "clsact" {
            (TC_H_INGRESS, 0xffff_0000)
        } else {
            (TC_H_ROOT, 0x1_0000)
        };
        Qdisc {
            index,
            handle,
            parent,
            kind: kind.into(),
            tbf,
        }
    }

    fn filter(targets: Vec<u32>) -> Filter {
        Filter {
            parent: 0xffff_0000,
            priority: 1,
            protocol: 3,
            kind: "u32".into(),
            mirred_targets: targets,
        }
    }

    fn fresh() -> Observed {
        Observed {
            host: HostSide {
                veth: link(HOST, "veth1", "veth", None),
                qdiscs: vec![qdisc(HOST, "noqueue", None)],
                ingress_filters: vec![],
            },
            ifb: None,
        }
    }

    /// The state a complete ADD of `limits` leaves.
    fn done(limits: &Limits) -> Observed {
        let mut o = fresh();
        if let Some(l) = limits.ingress {
            o.host.qdiscs = vec![qdisc(HOST, "tbf", Some(l.tbf()))];
        }
        if let Some(l) = limits.egress {
            o.host.qdiscs.push(qdisc(HOST, "ingress", None));
            o.host.ingress_filters = vec![filter(vec![]), filter(vec![IFB])];
            o.ifb = Some(IfbSide {
                link: link(IFB, "bwpx", "ifb", Some(owner().alias())),
                qdiscs: vec![qdisc(IFB, "tbf", Some(l.tbf()))],
            });
        }
        o
    }

    fn both() -> Limits {
        Limits {
            ingress: Some(Limit {
                rate_bits: 10_000_000,
                burst_bits: 1_000_000,
            }),
            egress: Some(Limit {
                rate_bits: 20_000_000,
                burst_bits: 2_000_000,
            }),
        }
    }

    fn steps(p: &Plan) -> Vec<Step> {
        p.actions.iter().map(|a| a.step.clone()).collect()
    }

    fn add(limits: &Limits, o: &Observed) -> CniResult<Plan> {
        plan_add(limits, &owner(), "bwpx", o, Psched::default())
    }

    #[test]
    fn fresh_add_golden_plan() {
        let lim = both();
        let p = add(&lim, &fresh()).unwrap();
        let ing = lim.ingress.unwrap().tbf();
        let eg = lim.egress.unwrap().tbf();
        assert_eq!(
            p.actions,
            vec![
                act(
                    Step::SetTbf {
                        dev: Dev::HostVeth,
                        tbf: ing
                    },
                    Some(Step::DeleteRootQdisc { dev: Dev::HostVeth })
                ),
                act(
                    Step::CreateIfb {
                        mtu: 1500,
                        txqlen: 1000,
                        alias: owner().alias()
                    },
                    Some(Step::DeleteIfb)
                ),
                act(
                    Step::SetTbf {
                        dev: Dev::Ifb,
                        tbf: eg
                    },
                    None
                ),
                act(Step::AddIngressQdisc, Some(Step::DeleteIngressQdisc)),
                act(Step::Redirect { to: Target::Ifb }, None),
            ]
        );
        assert_eq!(p.host, Some((HOST, "veth1".into())));
        assert_eq!(p.ifb_index, None);
    }

    #[test]
    fn add_on_done_state_is_empty() {
        let lim = both();
        assert_eq!(add(&lim, &done(&lim)).unwrap().actions, vec![]);
        assert!(check(&lim, &owner(), "bwpx", &done(&lim)).is_ok());
    }

    #[test]
    fn add_converges_changed_values_with_undo_to_old() {
        let old = both();
        let mut new = both();
        new.ingress = Some(Limit {
            rate_bits: 8_000_000,
            burst_bits: 1_000_000,
        });
        let p = add(&new, &done(&old)).unwrap();
        assert_eq!(
            p.actions,
            vec![act(
                Step::SetTbf {
                    dev: Dev::HostVeth,
                    tbf: new.ingress.unwrap().tbf()
                },
                Some(Step::SetTbf {
                    dev: Dev::HostVeth,
                    tbf: old.ingress.unwrap().tbf()
                })
            )]
        );
    }

    #[test]
    fn add_dropping_egress_removes_ifb_and_redirect() {
        let lim = both();
        let only_in = Limits {
            ingress: lim.ingress,
            egress: None,
        };
        let p = add(&only_in, &done(&lim)).unwrap();
        assert_eq!(steps(&p), vec![Step::DeleteIngressQdisc, Step::DeleteIfb]);
        let none_in = Limits {
            ingress: None,
            egress: lim.egress,
        };
        let p = add(&none_in, &done(&lim)).unwrap();
        assert_eq!(steps(&p), vec![Step::DeleteRootQdisc { dev: Dev::HostVeth }]);
    }

    #[test]
    fn add_after_partial_add_completes_it() {
        // Killed after creating the ifb, before its alias, tbf and redirect.
        let lim = both();
        let mut o = fresh();
        let mut l = link(IFB, "bwpx", "ifb", None);
        l.up = false;
        o.ifb = Some(IfbSide {
            link: l,
            qdiscs: vec![],
        });
        let p = add(&lim, &o).unwrap();
        assert_eq!(
            steps(&p),
            vec![
                Step::SetTbf {
                    dev: Dev::HostVeth,
                    tbf: lim.ingress.unwrap().tbf()
                },
                Step::SetIfbAlias {
                    alias: owner().alias()
                },
                Step::SetIfbUp { up: true },
                Step::SetTbf {
                    dev: Dev::Ifb,
                    tbf: lim.egress.unwrap().tbf()
                },
                Step::AddIngressQdisc,
                Step::Redirect { to: Target::Ifb },
            ]
        );
        // The ifb existed, so its TBF's undo deletes only the qdisc.
        assert_eq!(p.actions[3].undo, Some(Step::DeleteRootQdisc { dev: Dev::Ifb }));
        assert_eq!(p.ifb_index, Some(IFB));
    }

    #[test]
    fn add_replaces_reference_double_mirred_filter() {
        let lim = both();
        let mut o = done(&lim);
        o.ifb.as_mut().unwrap().link.alias = None;
        o.host.ingress_filters = vec![filter(vec![IFB, IFB])];
        let p = add(&lim, &o).unwrap();
        assert_eq!(
            p.actions,
            vec![
                act(
                    Step::SetIfbAlias {
                        alias: owner().alias()
                    },
                    None
                ),
                act(
                    Step::Redirect { to: Target::Ifb },
                    Some(Step::Redirect {
                        to: Target::Index(IFB)
                    })
                ),
            ]
        );
    }

    #[test]
    fn add_fixes_ifb_mtu() {
        let lim = both();
        let mut o = done(&lim);
        o.ifb.as_mut().unwrap().link.mtu = 9000;
        assert_eq!(
            add(&lim, &o).unwrap().actions,
            vec![act(
                Step::SetIfbMtu { mtu: 1500 },
                Some(Step::SetIfbMtu { mtu: 9000 })
            )]
        );
    }

    #[test]
    fn add_refuses_other_owners_and_non_ifb() {
        let lim = both();
        let mut o = done(&lim);
        let other = Owner {
            ifname: "eth1".into(),
            ..owner()
        };
        o.ifb.as_mut().unwrap().link.alias = Some(other.alias());
        let e = add(&lim, &o).unwrap_err();
        assert!(e.msg.contains("another interface"), "{}", e.msg);
        o.ifb.as_mut().unwrap().link.kind = Some("dummy".into());
        let e = add(&lim, &o).unwrap_err();
        assert!(e.msg.contains("not an ifb"), "{}", e.msg);
        assert_eq!(e.code, Code::InvalidConfig);
        o.ifb.as_mut().unwrap().link.kind = Some("ifb".into());
        o.ifb.as_mut().unwrap().link.alias = Some("someone else's".into());
        let e = add(&lim, &o).unwrap_err();
        assert!(e.msg.contains("foreign alias"), "{}", e.msg);
        assert_eq!(e.code, Code::InvalidConfig);
    }

    #[test]
    fn add_validates_mtu_and_buffer_before_anything() {
        let lim = Limits {
            ingress: Some(Limit {
                rate_bits: 8000,
                burst_bits: 80,
            }),
            egress: None,
        };
        let e = add(&lim, &fresh()).unwrap_err();
        assert_eq!(e.code, Code::InvalidConfig);
        assert!(e.msg.contains("mtu 1500 of veth1"), "{}", e.msg);
        let lim = Limits {
            ingress: None,
            egress: Some(Limit {
                rate_bits: 1_000_000,
                burst_bits: 800_000_000,
            }),
        };
        let e = add(&lim, &fresh()).unwrap_err();
        assert_eq!(e.code, Code::InvalidConfig);
        assert!(e.msg.contains("to drain"), "{}", e.msg);
    }

    #[test]
    fn add_refuses_clsact_in_the_ingress_slot() {
        let mut o = fresh();
        o.host.qdiscs.push(qdisc(HOST, "clsact", None));
        let e = add(&both(), &o).unwrap_err();
        assert_eq!(e.code, Code::InvalidConfig);
        assert!(e.msg.contains("veth1 has a clsact qdisc"), "{}", e.msg);
        // Ingress shaping alone does not need the slot.
        assert!(add(
            &Limits {
                ingress: both().ingress,
                egress: None
            },
            &o
        )
        .is_ok());
    }

    #[test]
    fn add_keeps_existing_ingress_qdisc_and_undoes_to_delete_when_empty() {
        let lim = Limits {
            ingress: None,
            egress: both().egress,
        };
        let mut o = fresh();
        o.host.qdiscs.push(qdisc(HOST, "ingress", None));
        let p = add(&lim, &o).unwrap();
        assert_eq!(
            p.actions.last(),
            Some(&act(Step::Redirect { to: Target::Ifb }, None))
        );
        assert!(!steps(&p).contains(&Step::AddIngressQdisc));
    }

    #[test]
    fn del_golden_plans() {
        let lim = both();
        let o = done(&lim);
        let del = ObservedDel {
            host: Some(o.host.clone()),
            ifb: o.ifb.as_ref().map(|i| i.link.clone()),
        };
        let p = plan_del(&owner(), "bwpx", &del);
        assert_eq!(
            steps(&p),
            vec![
                Step::DeleteIfb,
                Step::DeleteIngressQdisc,
                Step::DeleteRootQdisc { dev: Dev::HostVeth }
            ]
        );
        // Veth unknown (no netns, no prevResult): the ifb alone.
        let p = plan_del(
            &owner(),
            "bwpx",
            &ObservedDel {
                host: None,
                ifb: del.ifb.clone(),
            },
        );
        assert_eq!(steps(&p), vec![Step::DeleteIfb]);
        // Everything gone: nothing to do.
        let p = plan_del(
            &owner(),
            "bwpx",
            &ObservedDel {
                host: Some(fresh().host),
                ifb: None,
            },
        );
        assert_eq!(steps(&p), vec![]);
    }

    #[test]
    fn del_spares_other_attachments_and_foreign_redirects() {
        let lim = both();
        let o = done(&lim);
        let mut ifb = o.ifb.as_ref().unwrap().link.clone();
        ifb.alias = Some(
            Owner {
                ifname: "eth1".into(),
                ..owner()
            }
            .alias(),
        );
        let mut host = o.host.clone();
        host.ingress_filters = vec![filter(vec![42])];
        let p = plan_del(
            &owner(),
            "bwpx",
            &ObservedDel {
                host: Some(host),
                ifb: Some(ifb),
            },
        );
        assert_eq!(steps(&p), vec![Step::DeleteRootQdisc { dev: Dev::HostVeth }]);
    }

    #[test]
    fn check_names_each_mismatch() {
        let lim = both();
        type Break = Box<dyn Fn(&mut Observed)>;
        let cases: Vec<(Break, &str)> = vec![
            (
                Box::new(|o| o.host.qdiscs.retain(|q| q.kind != "tbf")),
                "veth1 has no root tbf",
            ),
            (
                Box::new(|o| o.host.qdiscs[0].tbf.as_mut().unwrap().rate += 1),
                "tbf on veth1 has rate 1250001 B/s, want 1250000 B/s",
            ),
            (
                Box::new(|o| o.host.qdiscs[0].tbf.as_mut().unwrap().burst += 100),
                "tbf on veth1 has burst",
            ),
            (
                Box::new(|o| o.host.qdiscs[0].tbf.as_mut().unwrap().limit += 1),
                "tbf on veth1 has limit",
            ),
            (Box::new(|o| o.ifb = None), "ifb bwpx does not exist"),
            (Box::new(|o| o.ifb.as_mut().unwrap().link.mtu = 1400), "mtu 1400"),
            (Box::new(|o| o.ifb.as_mut().unwrap().link.up = false), "is down"),
            (Box::new(|o| o.ifb.as_mut().unwrap().link.alias = None), "alias"),
            (
                Box::new(|o| o.ifb.as_mut().unwrap().qdiscs.clear()),
                "bwpx has no root tbf",
            ),
            (
                Box::new(|o| o.host.qdiscs.retain(|q| q.kind != "ingress")),
                "no ingress qdisc",
            ),
            (
                Box::new(|o| o.host.ingress_filters.clear()),
                "no filter redirecting",
            ),
            (
                Box::new(|o| o.host.ingress_filters = vec![filter(vec![IFB, IFB])]),
                "want only bwpx",
            ),
            (
                Box::new(|o| o.host.ingress_filters = vec![filter(vec![3])]),
                "want only bwpx",
            ),
            (Box::new(|o| o.host.ingress_filters[1].priority = 2), "priority 2"),
        ];
        for (mutate, want) in cases {
            let mut o = done(&lim);
            mutate(&mut o);
            let e = check(&lim, &owner(), "bwpx", &o).unwrap_err();
            assert_eq!(e.code, Code::CheckFailed);
            assert!(e.msg.contains(want), "want {want:?} in {:?}", e.msg);
        }
    }

    #[test]
    fn check_without_limits_is_fine() {
        assert!(check(&Limits::default(), &owner(), "bwpx", &fresh()).is_ok());
    }

    #[test]
    fn tbf_match_tolerates_tick_rounding_only() {
        let want = Limit {
            rate_bits: 999_999_937,
            burst_bits: 777_777,
        }
        .tbf();
        // What the reference's qdisc decodes to on this kernel: 223 B short.
        let mut have = want;
        have.burst = 96_999;
        assert!(tbf_matches(&have, &want));
        have.burst -= 100;
        assert!(!tbf_matches(&have, &want));
    }

    #[test]
    fn describe_names_devices() {
        let p = add(&both(), &fresh()).unwrap();
        assert_eq!(p.describe(&p.actions[1].step), "create ifb bwpx with mtu 1500");
        assert_eq!(
            p.describe(&p.actions[4].step),
            "redirect ingress of veth1 to bwpx"
        );
        assert!(p.describe(&p.actions[0].step).ends_with("on veth1"));
    }

    #[test]
    fn gc_picks_only_this_networks_stale_ifbs() {
        let mine = |cid: &str, ifname: &str| Owner {
            network: "net".into(),
            container_id: cid.into(),
            ifname: ifname.into(),
        };
        let other_net = Owner {
            network: "other".into(),
            ..mine("c9", "eth0")
        };
        let links = vec![
            link(1, "bwpkeep", "ifb", Some(mine("c1", "eth0").alias())),
            link(2, "bwpstale", "ifb", Some(mine("c2", "eth0").alias())),
            link(3, "bwpnet1", "ifb", Some(mine("c1", "net1").alias())),
            link(4, "bwpother", "ifb", Some(other_net.alias())),
            link(5, "ifb0", "ifb", None),
            link(6, "bwpveth", "veth", Some(mine("c3", "eth0").alias())),
        ];
        let valid = vec![Attachment {
            container_id: "c1".into(),
            ifname: "eth0".into(),
        }];
        let names: Vec<_> = plan_gc(&links, "net", &valid)
            .iter()
            .map(|(l, _)| l.name.as_str())
            .collect();
        assert_eq!(names, ["bwpstale", "bwpnet1"]);
        assert!(plan_gc(&links, "none", &valid).is_empty());
    }
}
