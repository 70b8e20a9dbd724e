//! Namespace ids: how one network namespace names another. A veth's
//! IFLA_LINK_NETNSID says in which namespace its peer lives, in the id the
//! dumping namespace gave that namespace; this asks for that id.

use std::os::fd::{AsRawFd, BorrowedFd};

use netlink_packet_route::nsid::{NsidAttribute, NsidMessage};
use netlink_packet_route::RouteNetlinkMessage;

use crate::error::{Error, Result};
use crate::socket::{decode, Socket};

impl Socket {
    /// The id this socket's namespace gives the namespace of `ns` (an open
    /// network namespace file); `None` when it gave it none.
    pub fn nsid_of(&mut self, ns: BorrowedFd<'_>) -> Result<Option<i32>> {
        let fd = u32::try_from(ns.as_raw_fd()).map_err(|_| Error::Protocol {
            op: "get namespace id".into(),
            msg: "negative file descriptor".into(),
        })?;
        let mut m = NsidMessage::default();
        m.attributes.push(NsidAttribute::Fd(fd));
        let op = || "get namespace id".to_string();
        for raw in self.get(RouteNetlinkMessage::GetNsId(m), &op)? {
            if let RouteNetlinkMessage::NewNsId(reply) = decode(&raw, &op)? {
                for a in &reply.attributes {
                    if let NsidAttribute::Id(id) = a {
                        return Ok((*id >= 0).then_some(*id));
                    }
                }
            }
        }
        Ok(None)
    }
}
