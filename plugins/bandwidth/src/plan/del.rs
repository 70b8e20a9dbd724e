use cni_core::plan::Step;

use super::*;
use crate::ifb::Owner;

/// DEL: the ifb first (unregistering it detaches the redirect's reference,
/// which keeps the kernel's device teardown short), then the redirect, then
/// the veth's root TBF; all of it optional, so a second DEL plans nothing.
pub fn plan_del(owner: &Owner, ifb_name: &str, snap: &Snapshot) -> Plan {
    let mut actions = Vec::new();
    let ifb = snap
        .ifb
        .as_ref()
        .map(|i| &i.link)
        .filter(|l| matches!(ifb_is_ours(l, owner), Ok(true)));
    if ifb.is_some() {
        actions.push(Step::new(Change::DeleteIfb, None));
    }
    if let Some(host) = &snap.host {
        // With our ifb gone, a redirect left on this container's veth is a
        // dangling one of ours; one to another attachment's ifb is not.
        let ours = |t: &[u32]| match (&snap.ifb, ifb) {
            (_, Some(l)) => t.iter().all(|i| *i == l.index),
            (Some(_), None) => false,
            (None, None) => true,
        };
        if host.has_ingress() && host.redirects().iter().all(|t| ours(t)) {
            actions.push(Step::new(Change::DeleteIngressQdisc, None));
        }
        if host.root_tbf().is_some() {
            actions.push(Step::new(
                Change::DeleteRootQdisc {
                    dev: Device::HostVeth,
                },
                None,
            ));
        }
    }
    Plan {
        devices: Devices {
            host: snap.host.as_ref().map(|h| (h.veth.index, h.veth.name.clone())),
            ifb_name: ifb_name.to_string(),
            ifb_index: ifb.map(|l| l.index),
        },
        steps: actions.into_iter().collect(),
    }
}
