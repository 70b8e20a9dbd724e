//! The ifb that carries a container's egress: its name, derived as the
//! reference derives it, and the alias that marks it as ours.

use sha2::{Digest, Sha512};

const PREFIX: &str = "bwp";
/// IFNAMSIZ - 1.
const MAX_NAME: usize = 15;
/// Starts every alias we set; a device without it is never ours.
const ALIAS_TAG: &str = "cni-bandwidth";

/// `bwp` + the first 12 hex digits of SHA-512(network name + container ID).
pub fn name(network: &str, container_id: &str) -> String {
    let digest = Sha512::new()
        .chain_update(network)
        .chain_update(container_id)
        .finalize();
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("{PREFIX}{}", &hex[..MAX_NAME - PREFIX.len()])
}

/// Which attachment an ifb shapes. Network names, container IDs and
/// interface names never hold whitespace, so spaces separate them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    pub network: String,
    pub container_id: String,
    pub ifname: String,
}

impl Owner {
    pub fn alias(&self) -> String {
        format!(
            "{ALIAS_TAG} {} {} {}",
            self.network, self.container_id, self.ifname
        )
    }

    /// `None` for any alias we did not write.
    pub fn from_alias(alias: &str) -> Option<Owner> {
        let mut parts = alias.split(' ');
        if parts.next()? != ALIAS_TAG {
            return None;
        }
        let (network, container_id, ifname) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() || network.is_empty() || container_id.is_empty() || ifname.is_empty() {
            return None;
        }
        Some(Owner {
            network: network.into(),
            container_id: container_id.into(),
            ifname: ifname.into(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_matches_reference() {
        // Observed from /usr/lib/cni/bandwidth for network "mynet", container "ctr1".
        assert_eq!(name("mynet", "ctr1"), "bwp5145007e2a84");
        assert_eq!(name("mynet", "cid8000"), "bwp99c70ba5e048");
        assert_eq!(name("mynet", "ctr1").len(), 15);
    }

    #[test]
    fn alias_round_trip() {
        let o = Owner {
            network: "net-1".into(),
            container_id: "abc_1.2".into(),
            ifname: "eth0".into(),
        };
        assert_eq!(o.alias(), "cni-bandwidth net-1 abc_1.2 eth0");
        assert_eq!(Owner::from_alias(&o.alias()), Some(o));
    }

    #[test]
    fn foreign_aliases_are_not_ours() {
        for a in [
            "",
            "cni-bandwidth",
            "cni-bandwidth a b",
            "cni-bandwidth a b c d",
            "other a b c",
            "cni-bandwidth  b c",
        ] {
            assert_eq!(Owner::from_alias(a), None, "{a:?}");
        }
    }
}
