use cni_core::plan::Step;

use super::*;
use crate::ifb::Owner;

/// DEL: what is this attachment's goes, all of it optional, so a second DEL
/// plans nothing. The ifb first (unregistering it detaches the redirect's
/// reference, which keeps the kernel's device teardown short), then our
/// redirect: with the ingress qdisc when its mark says ADD made that too
/// (or, unmarked, the reference's) and nothing else is on it, else alone;
/// a clsact, and an ingress qdisc with nothing on it (ADD makes ours
/// together with its redirect), are never ours. Then the veth's root TBF,
/// unless the config shapes egress only (`shapes_ingress` false): an egress-only attachment
/// never made one.
pub fn plan_del(owner: &Owner, ifb_name: &str, snap: &Snapshot, shapes_ingress: bool) -> Plan {
    let mut steps = Vec::new();
    let ifb = snap
        .ifb
        .as_ref()
        .map(|i| &i.link)
        .filter(|l| matches!(ifb_is_ours(l, owner), Ok(true)));
    if ifb.is_some() {
        steps.push(Step::once(Change::DeleteIfb));
    }
    if let Some(host) = &snap.host {
        if let Some(hook) = host.hook() {
            let ours = host.our_redirects(ifb.map(|l| l.index));
            let others: Vec<&Filter> = host
                .ingress_filters
                .iter()
                .filter(|f| !ours.iter().any(|o| std::ptr::eq(*o, *f)))
                .collect();
            let made_qdisc = ours
                .iter()
                .any(|f| !matches!(Mark::of(f), Ok(Some(Mark::Filter))));
            if hook == Hook::Ingress && others.is_empty() && made_qdisc {
                steps.push(Step::once(Change::DeleteIngressQdisc));
            } else {
                for f in ours {
                    // The last u32 node at its priority takes the priority
                    // with it, leaving no empty hash table behind.
                    let alone = !others
                        .iter()
                        .any(|o| o.priority == f.priority && o.protocol == f.protocol && o.kind == f.kind);
                    steps.push(Step::once(Change::DeleteRedirect {
                        parent: hook.parent(),
                        priority: f.priority,
                        handle: f.handle,
                        whole: alone,
                    }));
                }
            }
        }
        if shapes_ingress && matches!(host.root(), Root::Ours(_)) {
            steps.push(Step::once(Change::DeleteTbf {
                dev: Device::HostVeth,
            }));
        }
    }
    Plan {
        devices: Devices {
            host: snap.host.as_ref().map(|h| (h.veth.index, h.veth.name.clone())),
            ifb_name: ifb_name.to_string(),
            ifb_index: ifb.map(|l| l.index),
        },
        steps: steps.into_iter().collect(),
    }
}
