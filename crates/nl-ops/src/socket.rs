//! A synchronous NETLINK_ROUTE socket bound to one network namespace.

use cni_core::netns::NetNs;

use crate::error::Result;

pub struct Socket {
    // netlink_sys::Socket, sequence counter, receive buffer.
}

impl Socket {
    /// A socket in the calling thread's namespace, with strict checking on.
    pub fn new() -> Result<Socket> {
        todo!("nl-ops helper")
    }

    /// A socket that lives in `ns`: created inside a scoped switch, usable
    /// from here after the thread has switched back.
    pub fn in_netns(ns: &NetNs) -> Result<Socket> {
        let _ = ns;
        todo!("nl-ops helper")
    }
}
