use cni_core::plan::Step;
use cni_core::{CniError, CniResult};

use super::*;
use crate::config::Limits;
use crate::ifb::Owner;
use crate::tbf::{Limit, Psched};

/// ADD: converge the host side onto `limits`. Validation that needs the
/// kernel's view (MTU, ifb ownership) fails here, before anything changes.
pub fn plan_add(
    limits: &Limits,
    owner: &Owner,
    ifb_name: &str,
    snap: &Snapshot,
    psched: Psched,
) -> CniResult<Plan> {
    let host = snap.host()?;
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
        Some(l) => set_tbf(Device::HostVeth, l.tbf(), host.root_tbf(), false, &mut actions),
        None => {
            if let Some(old) = host.root_tbf() {
                actions.push(Step::new(
                    Change::DeleteRootQdisc {
                        dev: Device::HostVeth,
                    },
                    Some(Change::SetTbf {
                        dev: Device::HostVeth,
                        tbf: old,
                    }),
                ));
            }
        }
    }

    let ifb = match &snap.ifb {
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
                actions.push(Step::new(Change::DeleteIngressQdisc, None));
            }
            actions.push(Step::new(Change::DeleteIfb, None));
        }
        (None, None) => {}
    }

    Ok(Plan {
        devices: Devices {
            host: Some((host.veth.index, host.veth.name.clone())),
            ifb_name: ifb_name.to_string(),
            ifb_index: snap.ifb.as_ref().map(|i| i.link.index),
        },
        steps: actions.into_iter().collect(),
    })
}

/// The egress half of ADD: the ifb first and shaped, then the redirect, so
/// traffic never reaches an unshaped or missing ifb.
fn egress(l: Limit, owner: &Owner, host: &HostSide, ifb: Option<&IfbSide>, actions: &mut Vec<Step<Change>>) {
    let mtu = host.veth.mtu;
    let alias = owner.alias();
    let created = ifb.is_none();
    match ifb {
        None => actions.push(Step::new(
            Change::CreateIfb {
                mtu,
                txqlen: host.veth.txqlen,
                alias,
            },
            Some(Change::DeleteIfb),
        )),
        Some(side) => {
            let link = &side.link;
            if link.mtu != mtu {
                actions.push(Step::new(
                    Change::SetIfbMtu { mtu },
                    Some(Change::SetIfbMtu { mtu: link.mtu }),
                ));
            }
            if link.alias.as_deref() != Some(alias.as_str()) {
                actions.push(Step::new(Change::SetIfbAlias { alias }, None));
            }
            if !link.up {
                actions.push(Step::new(
                    Change::SetIfbUp { up: true },
                    Some(Change::SetIfbUp { up: false }),
                ));
            }
        }
    }
    set_tbf(
        Device::Ifb,
        l.tbf(),
        ifb.and_then(IfbSide::root_tbf),
        created,
        actions,
    );

    let had_ingress = host.has_ingress();
    if !had_ingress {
        actions.push(Step::new(
            Change::AddIngressQdisc,
            Some(Change::DeleteIngressQdisc),
        ));
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
            [only] if had_ingress && !only.is_empty() => Some(Change::Redirect {
                to: Device::Index(only[0]),
            }),
            _ => None,
        };
        actions.push(Step::new(Change::Redirect { to: Device::Ifb }, undo));
    }
}
