//! Addresses: list, and add (an address a link lost by joining a VRF).

use ipnet::IpNet;

use netlink_packet_core::{NLM_F_CREATE, NLM_F_EXCL};
use netlink_packet_route::address::{AddressAttribute, AddressFlags, AddressHeaderFlags, AddressMessage};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};

use crate::error::Result;
use crate::socket::Socket;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Address {
    pub index: u32,
    /// Address with its prefix length (10.1.0.2/24).
    pub addr: IpNet,
    pub scope: u8,
}

impl Socket {
    /// Both families; `index` None lists every link's.
    pub fn addresses(&mut self, index: Option<u32>) -> Result<Vec<Address>> {
        let mut m = AddressMessage::default();
        // Strict checking lets the kernel filter by ifindex.
        m.header.index = index.unwrap_or(0);
        m.header.family = AddressFamily::Unspec;
        let op = || match index {
            Some(i) => format!("list addresses of link {i}"),
            None => "list addresses".to_string(),
        };
        let msgs = self.dump_typed(RouteNetlinkMessage::GetAddress(m), &op)?;
        let mut out = Vec::new();
        for m in &msgs {
            let RouteNetlinkMessage::NewAddress(a) = m else {
                continue;
            };
            if index.is_some_and(|i| i != a.header.index) {
                continue;
            }
            // IFA_LOCAL is the local side on point-to-point v4 links;
            // IFA_ADDRESS otherwise.
            let mut local = None;
            let mut address = None;
            for attr in &a.attributes {
                match attr {
                    AddressAttribute::Local(ip) => local = Some(*ip),
                    AddressAttribute::Address(ip) => address = Some(*ip),
                    _ => {}
                }
            }
            let Some(ip) = local.or(address) else { continue };
            let Ok(addr) = IpNet::new(ip, a.header.prefix_len) else {
                continue;
            };
            out.push(Address {
                index: a.header.index,
                addr,
                scope: a.header.scope.into(),
            });
        }
        Ok(out)
    }
}

impl Socket {
    /// Adds `addr` (with its prefix length) to the link, permanent; `nodad`
    /// skips IPv6 duplicate address detection, for an address the link
    /// had already.
    pub fn add_address(&mut self, index: u32, addr: IpNet, nodad: bool) -> Result<()> {
        let mut m = AddressMessage::default();
        m.header.index = index;
        m.header.prefix_len = addr.prefix_len();
        m.header.family = if addr.addr().is_ipv4() {
            AddressFamily::Inet
        } else {
            AddressFamily::Inet6
        };
        m.attributes.push(AddressAttribute::Local(addr.addr()));
        m.attributes.push(AddressAttribute::Address(addr.addr()));
        if nodad {
            m.header.flags = AddressHeaderFlags::Nodad;
            m.attributes.push(AddressAttribute::Flags(AddressFlags::Nodad));
        }
        self.change(
            RouteNetlinkMessage::NewAddress(m),
            NLM_F_CREATE | NLM_F_EXCL,
            &|| format!("add address {addr} to link {index}"),
        )
    }
}
