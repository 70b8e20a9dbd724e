use cni_core::{CniError, CniResult};
use nl_ops::filter::Filter;
use nl_ops::qdisc::Tbf;

use super::*;
use crate::config::Limits;
use crate::ifb::Owner;

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
pub fn check(limits: &Limits, owner: &Owner, ifb_name: &str, snap: &Snapshot) -> CniResult<()> {
    let host = snap.host()?;
    let veth = &host.veth.name;
    if let Some(l) = limits.ingress {
        check_tbf(veth, &l.tbf(), host.root_tbf())?;
    }
    let Some(l) = limits.egress else {
        return Ok(());
    };
    let Some(ifb) = &snap.ifb else {
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
