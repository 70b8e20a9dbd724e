use cni_core::Attachment;
use nl_ops::link::Link;

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
