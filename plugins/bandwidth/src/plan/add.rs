use cni_core::plan::Step;
use cni_core::{CniError, CniResult};
use nl_ops::qdisc::{ChildQueue, FqCodel, Handle, Peak};

use super::*;
use crate::config::{Limits, Queue};
use crate::ifb::Owner;
use crate::tbf::{Limit, Psched};

/// ADD: converge the host side onto `limits`. What the config does not ask
/// for is left as it is (a direction ADD does not shape keeps whatever is
/// there). Everything that can refuse is decided here, before anything
/// changes: someone else's root qdisc where ours must go, an ifb name
/// another owner holds, a filter that keeps ours out.
pub fn plan_add(
    limits: &Limits,
    owner: &Owner,
    ifb_name: &str,
    snap: &Snapshot,
    psched: Psched,
) -> CniResult<Plan> {
    let host = snap.host()?;
    let mut steps = Vec::new();

    if let Some(l) = limits.ingress {
        let want = direction_bucket("ingress", l, host, limits, aqm(limits, snap).is_some(), psched)?;
        explain(&want, "ingress", &host.veth.name, l);
        set_tbf(
            Device::HostVeth,
            want.tbf,
            host.root(),
            &host.veth.name,
            false,
            &mut steps,
        )?;
        set_queue(
            Device::HostVeth,
            choice(limits, snap),
            &want.tbf,
            host.root(),
            &host.qdiscs,
            &host.veth.name,
            &mut steps,
        );
    }

    let Some(l) = limits.egress else {
        return Ok(plan(host, ifb_name, snap, steps));
    };
    refuse_taken_ingress(host)?;
    let ifb = ifb_of(snap, owner, ifb_name)?;
    let want = direction_bucket("egress", l, host, limits, aqm(limits, snap).is_some(), psched)?;
    explain(&want, "egress", ifb_name, l);
    egress(
        want.tbf,
        choice(limits, snap),
        owner,
        host,
        ifb,
        ifb_name,
        &mut steps,
    )?;
    Ok(plan(host, ifb_name, snap, steps))
}

/// Egress needs a hook of the veth's own for its redirect: an ingress or
/// clsact qdisc, or the free slot for ours.
fn refuse_taken_ingress(host: &HostSide) -> CniResult<()> {
    if let Some(q) = host.ingress_slot_taken() {
        let veth = &host.veth.name;
        return Err(CniError::invalid_config(match q.ingress_block {
            Some(block) if q.kind == "ingress" => format!(
                "{veth} has an ingress qdisc on shared block {block} where egress shaping needs its own \
                 (the kernel takes no redirect of {veth}'s own there)"
            ),
            _ => format!(
                "{veth} has a {} qdisc where egress shaping needs an ingress or clsact qdisc",
                q.kind
            ),
        }));
    }
    Ok(())
}

/// The ifb under this attachment's name, if there is one and it is ours.
fn ifb_of<'a>(snap: &'a Snapshot, owner: &Owner, ifb_name: &str) -> CniResult<Option<&'a IfbSide>> {
    let Some(side) = &snap.ifb else {
        return Ok(None);
    };
    match ifb_is_ours(&side.link, owner) {
        Ok(true) => Ok(Some(side)),
        Ok(false) => Err(CniError::invalid_config(format!(
            "ifb {ifb_name} already shapes another interface of container {} on network {}: {}",
            owner.container_id,
            owner.network,
            side.link.alias.as_deref().unwrap_or_default()
        ))),
        // Something else holds the name: no retry will help.
        Err(msg) => Err(CniError::invalid_config(format!(
            "cannot use ifb name {ifb_name}: {msg}"
        ))),
    }
}

fn plan(host: &HostSide, ifb_name: &str, snap: &Snapshot, steps: Vec<Step<Change>>) -> Plan {
    Plan {
        devices: Devices {
            host: Some((host.veth.index, host.veth.name.clone())),
            ifb_name: ifb_name.to_string(),
            ifb_index: snap.ifb.as_ref().map(|i| i.link.index),
        },
        steps: steps.into_iter().collect(),
    }
}

fn explain(b: &crate::tbf::Bucket, name: &str, dev: &str, l: Limit) {
    if let Some((level, msg)) = b.explain(name, dev, l) {
        log::log!(level, "{msg}");
    }
}

/// `have` as ADD can send it back: a peak bucket dumps as time alone,
/// which the kernel rounds to whole ticks (one tick at 100 Gbit/s passes
/// 800 bytes, less than a frame); the one ADD sets there is in bytes, the
/// same on the same link as `want`'s.
fn restorable(have: Tbf, want: Tbf) -> Tbf {
    let peak = match (have.peak, want.peak) {
        (Some(h), Some(w)) if h == (Peak { burst: None, ..w }) => Some(w),
        (h, _) => h,
    };
    Tbf { peak, ..have }
}

/// Our TBF onto the root of `dev`: added where the kernel's default is,
/// changed in place where ours is, refused over anyone else's. `created`:
/// the device is new in this plan, so deleting it undoes the TBF too.
fn set_tbf(
    dev: Device,
    want: Tbf,
    root: Root<'_>,
    name: &str,
    created: bool,
    steps: &mut Vec<Step<Change>>,
) -> CniResult<()> {
    match root {
        // Only ADD sets a peak bucket on this handle, and always in bytes.
        Root::Ours(have) if have == want || (want.burst.is_none() && have == want.dumped()) => {}
        // A bucket given in bytes dumps as the same numbers as the
        // reference's given as time, which passes no full frame there: sent
        // again. The dump cannot say which was there, so nothing to undo.
        Root::Ours(have) if have == want.dumped() => {
            steps.push(Step::once(Change::ChangeTbf { dev, tbf: want }));
        }
        Root::Ours(have) => steps.push(Step::new(
            Change::ChangeTbf { dev, tbf: want },
            Some(Change::ChangeTbf {
                dev,
                tbf: restorable(have, want),
            }),
        )),
        Root::Default => steps.push(Step::new(
            Change::AddTbf { dev, tbf: want },
            (!created).then_some(Change::DeleteTbf { dev }),
        )),
        Root::Foreign(q) => {
            return Err(CniError::invalid_config(format!(
                "cannot shape {name}: its root qdisc is a {} ({}) that bandwidth did not make; \
                 remove it, or shape this pod by other means (the reference fails here with \"file exists\")",
                q.kind,
                Handle(q.handle)
            )))
        }
    }
    Ok(())
}

/// The fq_codel to put under each TBF, if any: with `queue: auto` (the
/// default) where the kernel has it.
pub(crate) fn aqm(limits: &Limits, snap: &Snapshot) -> Option<FqCodel> {
    choice(limits, snap).ok()
}

/// fq_codel, or why the TBF keeps its own FIFO.
fn choice(limits: &Limits, snap: &Snapshot) -> Result<FqCodel, &'static str> {
    if limits.queue != Queue::Auto {
        Err("as the queue field asks")
    } else if !snap.fq_codel {
        Err("no fq_codel in this kernel")
    } else {
        Ok(FQ_CODEL)
    }
}

/// The queue under our TBF (`root` as it was before the plan): fq_codel
/// where `aqm` asks for it, else the TBF's own FIFO of `want.limit` bytes.
/// A TBF added by this plan takes its queue with it when undone; over a TBF
/// that was there, the queue that was there comes back.
fn set_queue(
    dev: Device,
    aqm: Result<FqCodel, &'static str>,
    want: &Tbf,
    root: Root<'_>,
    qdiscs: &[Qdisc],
    name: &str,
    steps: &mut Vec<Step<Change>>,
) {
    let have = match root {
        Root::Ours(_) => our_fq_codel(qdiscs),
        _ => None,
    };
    let fifo = ChildQueue::Bfifo(want.limit);
    match (aqm, have) {
        (Ok(f), Some(h)) if same_fq_codel(&h, &f) => {}
        (Ok(f), _) => {
            log::info!(
                "{name}: fq_codel under the tbf (target {} us): queueing delay stays near the target",
                f.target_us
            );
            let undo = match (root, have) {
                (Root::Ours(_), Some(h)) => Some(ChildQueue::FqCodel(h)),
                (Root::Ours(_), None) => Some(fifo),
                _ => None,
            };
            steps.push(Step::new(
                Change::SetQueue {
                    dev,
                    queue: ChildQueue::FqCodel(f),
                },
                undo.map(|queue| Change::SetQueue { dev, queue }),
            ));
        }
        (Err(why), have) => {
            log::info!("{name}: the tbf's own fifo of {} B ({})", want.limit, why);
            if let Some(h) = have {
                steps.push(Step::new(
                    Change::SetQueue { dev, queue: fifo },
                    Some(Change::SetQueue {
                        dev,
                        queue: ChildQueue::FqCodel(h),
                    }),
                ));
            }
        }
    }
}

/// The egress half of ADD: the ifb first and shaped, then the redirect, so
/// traffic never reaches an unshaped or missing ifb.
fn egress(
    want: Tbf,
    aqm: Result<FqCodel, &'static str>,
    owner: &Owner,
    host: &HostSide,
    ifb: Option<&IfbSide>,
    ifb_name: &str,
    steps: &mut Vec<Step<Change>>,
) -> CniResult<()> {
    ifb_link(host.veth.mtu, owner.alias(), ifb, steps);
    let root = ifb.map_or(Root::Default, IfbSide::root);
    set_tbf(Device::Ifb, want, root, ifb_name, ifb.is_none(), steps)?;
    let qdiscs = ifb.map_or(&[][..], |i| i.qdiscs.as_slice());
    set_queue(Device::Ifb, aqm, &want, root, qdiscs, ifb_name, steps);
    redirect(host, ifb.map(|i| i.link.index), steps)
}

/// The ifb made, or brought to the veth's MTU, our alias and up.
fn ifb_link(mtu: u32, alias: String, ifb: Option<&IfbSide>, steps: &mut Vec<Step<Change>>) {
    let Some(side) = ifb else {
        // Its queue length stays the reference's (0): upstream stopped
        // copying the veth's after production trouble (#1097).
        steps.push(Step::new(
            Change::CreateIfb { mtu, alias },
            Some(Change::DeleteIfb),
        ));
        return;
    };
    let link = &side.link;
    if link.mtu != mtu {
        steps.push(Step::new(
            Change::SetIfbMtu { mtu },
            Some(Change::SetIfbMtu { mtu: link.mtu }),
        ));
    }
    if link.alias.as_deref() != Some(alias.as_str()) {
        steps.push(Step::once(Change::SetIfbAlias { alias }));
    }
    if !link.up {
        steps.push(Step::new(
            Change::SetIfbUp { up: true },
            Some(Change::SetIfbUp { up: false }),
        ));
    }
}

/// One redirect to the ifb (`index`, none while the ifb is still to be
/// made) on the veth's hook, an ingress qdisc made for it where the slot is
/// free. Someone's filters and qdisc stay as they are.
fn redirect(host: &HostSide, index: Option<u32>, steps: &mut Vec<Step<Change>>) -> CniResult<()> {
    let Some(hook) = host.hook() else {
        steps.push(Step::new(
            Change::AddIngressWithRedirect {
                priority: REDIRECT_PRIORITY,
            },
            Some(Change::DeleteIngressQdisc),
        ));
        return Ok(());
    };
    let parent = hook.parent();
    let ours = host.our_redirects(index);
    let in_place =
        |f: &Filter| index.is_some_and(|i| f.mirred_targets == [i]) && matches!(Mark::of(f), Ok(Some(_)));
    match ours.as_slice() {
        [f] if in_place(f) => {}
        // The reference's double mirred, ours from before marks, or ours to
        // an ifb that is gone: made a single marked redirect to this ifb,
        // in place. The last step, so nothing after it can fail and need it
        // undone. Unmarked, the reference made the ingress qdisc with it.
        [f, rest @ ..] => {
            let mark = match Mark::of(f) {
                Ok(Some(m)) => m,
                _ if hook == Hook::Ingress => Mark::FilterAndQdisc,
                _ => Mark::Filter,
            };
            steps.push(Step::once(Change::ReplaceRedirect {
                parent,
                priority: f.priority,
                handle: f.handle,
                mark,
            }));
            for extra in rest {
                steps.push(Step::once(Change::DeleteRedirect {
                    parent,
                    priority: extra.priority,
                    handle: extra.handle,
                    whole: false,
                }));
            }
        }
        [] => {
            let priority = host.redirect_priority(&ours).ok_or_else(|| {
                CniError::invalid_config(format!(
                    "every priority of the ingress of {} holds someone's filter: no room for the redirect",
                    host.veth.name
                ))
            })?;
            steps.push(Step::new(
                Change::AddRedirect {
                    parent,
                    priority,
                    mark: Mark::Filter,
                },
                Some(Change::DeleteMarkedRedirect {
                    parent,
                    priority,
                    mark: Mark::Filter,
                }),
            ));
        }
    }
    Ok(())
}
