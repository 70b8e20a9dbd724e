//! Links: lookup, ifb create/delete, up, MTU, alias, veth peer.

use crate::error::Result;
use crate::socket::Socket;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub index: u32,
    pub name: String,
    pub mtu: u32,
    /// IFLA_INFO_KIND: "veth", "ifb", ...; `None` for physical links.
    pub kind: Option<String>,
    pub alias: Option<String>,
    pub up: bool,
    pub txqlen: u32,
    /// IFLA_LINK: for a veth, the peer's index (in `link_netnsid` when set).
    pub link: Option<u32>,
    pub link_netnsid: Option<i32>,
    pub mac: Option<String>,
}

impl Socket {
    pub fn link_by_name(&mut self, name: &str) -> Result<Option<Link>> {
        let _ = name;
        todo!()
    }
    pub fn link_by_index(&mut self, index: u32) -> Result<Option<Link>> {
        let _ = index;
        todo!()
    }
    pub fn links(&mut self) -> Result<Vec<Link>> {
        todo!()
    }
    /// Creates an ifb, sets MTU, txqlen and alias, and brings it up.
    pub fn add_ifb(&mut self, name: &str, mtu: u32, txqlen: u32, alias: Option<&str>) -> Result<Link> {
        let _ = (name, mtu, txqlen, alias);
        todo!()
    }
    /// Ok(false) when there was no such link.
    pub fn delete_link(&mut self, index: u32) -> Result<bool> {
        let _ = index;
        todo!()
    }
    pub fn set_link_up(&mut self, index: u32, up: bool) -> Result<()> {
        let _ = (index, up);
        todo!()
    }
    pub fn set_link_mtu(&mut self, index: u32, mtu: u32) -> Result<()> {
        let _ = (index, mtu);
        todo!()
    }
    pub fn set_link_alias(&mut self, index: u32, alias: &str) -> Result<()> {
        let _ = (index, alias);
        todo!()
    }
}
