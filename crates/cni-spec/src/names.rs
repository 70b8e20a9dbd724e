//! The spec's (and libcni's) rule for container IDs and network names:
//! `[a-zA-Z0-9][a-zA-Z0-9_.-]*`.

fn spec_name(s: &str) -> bool {
    let mut bytes = s.bytes();
    matches!(bytes.next(), Some(b) if b.is_ascii_alphanumeric())
        && bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

/// Container IDs as the spec allows them: `[a-zA-Z0-9][a-zA-Z0-9_.-]*`.
pub fn valid_container_id(id: &str) -> bool {
    spec_name(id)
}

/// Network names as the spec allows them (libcni's ValidateNetworkName):
/// the container ID rule. The dispatcher enforces it, as the reference's
/// skel does, for every command but VERSION and DEL (see
/// [`NetConf::checked_name`](crate::NetConf::checked_name)).
pub fn valid_network_name(name: &str) -> bool {
    spec_name(name)
}
