//! The ifb that carries a container's egress: its name, derived as the
//! reference derives it, and the alias that marks it as ours.

use sha2::{Digest, Sha512};

const PREFIX: &str = "bwp";
/// IFNAMSIZ - 1.
const MAX_NAME: usize = 15;
/// Starts every alias we set; a device without it is never ours.
const ALIAS_TAG: &str = "cni-bandwidth";
/// Names longer than this stand in the alias as `#` and a hash, so the
/// alias stays within the kernel's 255 bytes (IFALIASZ - 1) and parseable
/// however long the network name (the spec sets no limit) and the container
/// ID are: 13 + 1 + 64 + 1 + 128 + 1 + 15 bytes at most.
const MAX_NETWORK_IN_ALIAS: usize = 64;
const MAX_CONTAINER_IN_ALIAS: usize = 128;
/// Hex digits of a name's hash in the alias: 64 bits, unique among the
/// ifbs of one node.
const HASH_DIGITS: usize = 16;

fn hex(digest: &[u8]) -> String {
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// `bwp` + the first 12 hex digits of SHA-512(network name + container ID).
pub fn name(network: &str, container_id: &str) -> String {
    let digest = Sha512::new()
        .chain_update(network)
        .chain_update(container_id)
        .finalize();
    format!("{PREFIX}{}", &hex(&digest)[..MAX_NAME - PREFIX.len()])
}

/// Which attachment an ifb shapes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    pub network: String,
    pub container_id: String,
    pub ifname: String,
}

/// A name as the alias holds it: itself, or `#` and its hash when long. No
/// valid network name or container ID starts with `#`, so the two never
/// meet.
fn tag(value: &str, max: usize) -> String {
    if value.len() <= max {
        value.to_string()
    } else {
        let digest = Sha512::digest(value.as_bytes());
        format!("#{}", &hex(&digest)[..HASH_DIGITS])
    }
}

/// An alias read back: the three fields as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tags {
    pub network: String,
    pub container_id: String,
    pub ifname: String,
}

impl Tags {
    pub fn network_is(&self, network: &str) -> bool {
        self.network == tag(network, MAX_NETWORK_IN_ALIAS)
    }

    pub fn container_is(&self, container_id: &str) -> bool {
        self.container_id == tag(container_id, MAX_CONTAINER_IN_ALIAS)
    }

    pub fn is(&self, owner: &Owner) -> bool {
        self.network_is(&owner.network)
            && self.container_is(&owner.container_id)
            && self.ifname == owner.ifname
    }
}

impl Owner {
    /// `cni-bandwidth NETWORK CONTAINER IFNAME`, long names hashed.
    pub fn alias(&self) -> String {
        format!(
            "{ALIAS_TAG} {} {} {}",
            tag(&self.network, MAX_NETWORK_IN_ALIAS),
            tag(&self.container_id, MAX_CONTAINER_IN_ALIAS),
            self.ifname
        )
    }

    /// What an earlier release wrote, names in full: still this owner's.
    pub fn legacy_alias(&self) -> String {
        format!(
            "{ALIAS_TAG} {} {} {}",
            self.network, self.container_id, self.ifname
        )
    }

    /// `None` for any alias we did not write.
    pub fn parse_alias(alias: &str) -> Option<Tags> {
        let mut parts = alias.split(' ');
        if parts.next()? != ALIAS_TAG {
            return None;
        }
        let (network, container_id, ifname) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() || network.is_empty() || container_id.is_empty() || ifname.is_empty() {
            return None;
        }
        Some(Tags {
            network: network.into(),
            container_id: container_id.into(),
            ifname: ifname.into(),
        })
    }

    /// The alias says this ifb is this owner's.
    pub fn owns(&self, alias: &str) -> bool {
        alias == self.legacy_alias() || Owner::parse_alias(alias).is_some_and(|t| t.is(self))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owner(network: &str, container_id: &str) -> Owner {
        Owner {
            network: network.into(),
            container_id: container_id.into(),
            ifname: "eth0".into(),
        }
    }

    #[test]
    fn name_matches_reference() {
        // Observed from /usr/lib/cni/bandwidth for network "mynet", container "ctr1".
        assert_eq!(name("mynet", "ctr1"), "bwp5145007e2a84");
        assert_eq!(name("mynet", "cid8000"), "bwp99c70ba5e048");
        assert_eq!(name("mynet", "ctr1").len(), 15);
    }

    #[test]
    fn alias_round_trip() {
        let o = owner("net-1", "abc_1.2");
        assert_eq!(o.alias(), "cni-bandwidth net-1 abc_1.2 eth0");
        assert!(o.owns(&o.alias()));
        let t = Owner::parse_alias(&o.alias()).unwrap();
        assert!(t.network_is("net-1") && t.container_is("abc_1.2"));
        assert!(!o.owns(&owner("net-1", "abc_1.3").alias()));
        assert!(!o.owns(
            &Owner {
                ifname: "eth1".into(),
                ..o.clone()
            }
            .alias()
        ));
    }

    #[test]
    fn long_names_stay_within_the_kernels_alias_and_unique() {
        let net = "n".repeat(300);
        let cid = "c".repeat(10_000);
        let o = owner(&net, &cid);
        let a = o.alias();
        assert!(a.len() <= 255, "{}", a.len());
        assert!(o.owns(&a));
        let t = Owner::parse_alias(&a).unwrap();
        assert!(t.network_is(&net) && t.container_is(&cid));
        // One character more or less is another owner.
        assert!(!owner(&net, &"c".repeat(9_999)).owns(&a));
        assert!(!owner(&"n".repeat(301), &cid).owns(&a));
        // The longest plain ones still fit.
        let o = Owner {
            network: "n".repeat(64),
            container_id: "c".repeat(128),
            ifname: "e".repeat(15),
        };
        assert_eq!(o.alias().len(), 13 + 1 + 64 + 1 + 128 + 1 + 15);
        assert!(!o.alias().contains('#'));
    }

    #[test]
    fn foreign_aliases_are_not_ours() {
        let o = owner("a", "b");
        for a in [
            "",
            "cni-bandwidth",
            "cni-bandwidth a b",
            "cni-bandwidth a b c d",
            "other a b eth0",
            "cni-bandwidth  b eth0",
        ] {
            assert!(Owner::parse_alias(a).is_none() || !o.owns(a), "{a:?}");
        }
        // An earlier release's alias for a name with a space still is.
        let spaced = owner("a b", "c");
        assert!(spaced.owns("cni-bandwidth a b c eth0"));
    }
}
