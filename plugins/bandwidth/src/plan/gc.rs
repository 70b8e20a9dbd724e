use cni_core::Attachment;
use nl_ops::link::Link;

use crate::ifb::Owner;

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
