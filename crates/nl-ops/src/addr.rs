//! Addresses, read only.

use ipnet::IpNet;

use netlink_packet_route::address::{AddressAttribute, AddressMessage};
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
