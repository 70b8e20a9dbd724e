use cni_core::{CniError, CniResult};
use nl_ops::filter::ETH_P_ALL;

use super::*;
use crate::config::Limits;
use crate::ifb::Owner;
use crate::tbf::Psched;

fn mismatch(msg: String) -> CniError {
    CniError::check_failed(msg)
}

/// The TBF ADD installs, number for number (as the reference's CHECK
/// compares rate, limit and buffer), or one made before an upgrade:
/// `accepted[0]` is ADD's, named when none matches.
fn check_tbf(dev: &str, accepted: &[Tbf], root: Root<'_>) -> CniResult<()> {
    let have = match root {
        Root::Ours(t) => t,
        Root::Default => return Err(mismatch(format!("{dev} has no root tbf qdisc"))),
        Root::Foreign(q) => {
            return Err(mismatch(format!(
                "the root qdisc of {dev} is a {} ({}), not bandwidth's tbf",
                q.kind,
                Handle(q.handle)
            )))
        }
    };
    let same = |w: &Tbf| {
        (have.rate, have.limit, have.buffer, have.peak) == (w.rate, w.limit, w.buffer, w.dumped().peak)
    };
    if accepted.iter().any(same) {
        return Ok(());
    }
    let Some(want) = accepted.first() else {
        return Ok(());
    };
    let differs =
        |what: &str, h: u64, w: u64| Err(mismatch(format!("tbf on {dev} has {what} {h}, want {w}")));
    if have.rate != want.rate {
        return differs("rate (B/s)", have.rate, want.rate);
    }
    if have.limit != want.limit {
        return differs("limit (B)", u64::from(have.limit), u64::from(want.limit));
    }
    if have.buffer != want.buffer {
        return differs("buffer (ticks)", u64::from(have.buffer), u64::from(want.buffer));
    }
    let peak = |t: &Tbf| t.peak.map_or((0, 0), |p| (p.rate, p.mtu));
    let ((hr, hm), (wr, wm)) = (peak(&have), peak(want));
    if hr != wr {
        return differs("peakrate (B/s)", hr, wr);
    }
    differs("mtu (ticks)", u64::from(hm), u64::from(wm))
}

/// Where ADD puts fq_codel (queue auto, and the kernel has it), ours is
/// under the TBF.
fn check_queue(dev: &str, limits: &Limits, snap: &Snapshot, qdiscs: &[Qdisc]) -> CniResult<()> {
    if super::add::aqm(limits, snap).is_none() {
        return Ok(());
    }
    match our_fq_codel(qdiscs) {
        Some(h) if same_fq_codel(&h, &FQ_CODEL) => Ok(()),
        Some(h) => Err(mismatch(format!(
            "fq_codel under the tbf of {dev} has limit {} target {} us interval {} us ecn {}, want {} {} {} {}",
            h.limit, h.target_us, h.interval_us, h.ecn, FQ_CODEL.limit, FQ_CODEL.target_us, FQ_CODEL.interval_us, FQ_CODEL.ecn
        ))),
        None => Err(mismatch(format!(
            "the tbf of {dev} has no fq_codel {} under it",
            Handle(FQ_CODEL_HANDLE)
        ))),
    }
}

/// CHECK: everything ADD makes, with its values; the first mismatch named.
pub fn check(
    limits: &Limits,
    owner: &Owner,
    ifb_name: &str,
    snap: &Snapshot,
    psched: Psched,
) -> CniResult<()> {
    let host = snap.host()?;
    let veth = &host.veth.name;
    if let Some(l) = limits.ingress {
        let accepted = accepted_tbfs(
            "ingress",
            l,
            host,
            limits,
            super::add::aqm(limits, snap).is_some(),
            psched,
        )?;
        check_tbf(veth, &accepted, host.root())?;
        check_queue(veth, limits, snap, &host.qdiscs)?;
    }
    let Some(l) = limits.egress else {
        return Ok(());
    };
    let Some(ifb) = &snap.ifb else {
        return Err(mismatch(format!("ifb {ifb_name} does not exist")));
    };
    check_ifb_link(&ifb.link, owner, ifb_name, host)?;
    let accepted = accepted_tbfs(
        "egress",
        l,
        host,
        limits,
        super::add::aqm(limits, snap).is_some(),
        psched,
    )?;
    check_tbf(ifb_name, &accepted, ifb.root())?;
    check_queue(ifb_name, limits, snap, &ifb.qdiscs)?;
    check_redirect(host, &ifb.link, ifb_name)
}

/// The ifb as ADD leaves it: ours by its alias (or none, as the reference
/// makes it: this attachment's by its name), the veth's MTU, up.
fn check_ifb_link(link: &Link, owner: &Owner, ifb_name: &str, host: &HostSide) -> CniResult<()> {
    if link.kind.as_deref() != Some("ifb") {
        return Err(mismatch(format!("{ifb_name} is not an ifb")));
    }
    let alias = link.alias.as_deref().unwrap_or_default();
    if !alias.is_empty() && alias != owner.alias() {
        return Err(mismatch(format!(
            "ifb {ifb_name} has alias {:?}, want {:?}",
            link.alias.as_deref().unwrap_or_default(),
            owner.alias()
        )));
    }
    if link.mtu != host.veth.mtu {
        return Err(mismatch(format!(
            "ifb {ifb_name} has mtu {}, want {} as {}",
            link.mtu, host.veth.mtu, host.veth.name
        )));
    }
    if !link.up {
        return Err(mismatch(format!("ifb {ifb_name} is down")));
    }
    Ok(())
}

/// The veth's ingress (or clsact) qdisc with exactly one u32 redirect to
/// the ifb, at whatever priority ADD found free.
fn check_redirect(host: &HostSide, link: &Link, ifb_name: &str) -> CniResult<()> {
    let veth = &host.veth.name;
    if host.hook().is_none() {
        return Err(mismatch(format!("{veth} has no ingress qdisc")));
    }
    let to_ifb: Vec<&Filter> = host
        .ingress_filters
        .iter()
        .filter(|f| f.mirred_targets.contains(&link.index))
        .collect();
    match to_ifb.as_slice() {
        [] => Err(mismatch(format!(
            "{veth} has no filter redirecting its ingress to {ifb_name}"
        ))),
        [f] => {
            if f.kind != "u32" || f.protocol != ETH_P_ALL {
                return Err(mismatch(format!(
                    "redirect filter on {veth} is {} priority {} protocol {:#x}, want u32 protocol all",
                    f.kind, f.priority, f.protocol
                )));
            }
            // One redirect, or the reference's two (both to the ifb).
            let to_ifb_only = f.mirred_targets.iter().all(|t| *t == link.index);
            if !to_ifb_only || f.mirred_targets.len() > 2 || !f.only_redirects() {
                return Err(mismatch(format!(
                    "redirect filter on {veth} sends to links {:?} in {} action(s), want one redirect to {ifb_name} ({})",
                    f.mirred_targets, f.actions, link.index
                )));
            }
            Ok(())
        }
        _ => Err(mismatch(format!(
            "{veth} has {} filters redirecting to {ifb_name}, want one",
            to_ifb.len()
        ))),
    }
}
