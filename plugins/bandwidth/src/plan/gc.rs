use cni_core::plan::Step;
use cni_core::Attachment;
use nl_ops::link::Link;

use super::{Change, Devices, Plan};
use crate::ifb::{Owner, Tags};

/// GC: this network's ifbs (known by our alias) whose attachment is not
/// among the runtime's valid ones. Devices without our alias and other
/// networks' ifbs are never chosen.
pub fn plan_gc<'a>(links: &'a [Link], network: &str, valid: &[Attachment]) -> Vec<(&'a Link, Tags)> {
    links
        .iter()
        .filter(|l| l.kind.as_deref() == Some("ifb"))
        .filter_map(|l| Some((l, l.alias.as_deref().and_then(Owner::parse_alias)?)))
        .filter(|(_, t)| {
            t.network_is(network)
                && !valid
                    .iter()
                    .any(|a| t.container_is(&a.container_id) && a.ifname == t.ifname)
        })
        .collect()
}

/// GC of one ifb [`plan_gc`] chose, planned again under its attachment's
/// lock from `link`, what has the name `ifb_name` now: deleted when it is
/// still a stale ifb of this network; nothing when an ADD or DEL got there
/// first.
pub fn plan_gc_ifb(ifb_name: &str, link: Option<&Link>, network: &str, valid: &[Attachment]) -> Plan {
    let stale =
        link.filter(|l| l.name == ifb_name && !plan_gc(std::slice::from_ref(*l), network, valid).is_empty());
    Plan {
        devices: Devices {
            host: None,
            ifb_name: ifb_name.to_string(),
            ifb_index: stale.map(|l| l.index),
        },
        steps: stale.map(|_| Step::once(Change::DeleteIfb)).into_iter().collect(),
    }
}
