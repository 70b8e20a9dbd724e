//! Routes, v4 and v6, in any table.

use std::net::IpAddr;

use ipnet::IpNet;

use crate::error::Result;
use crate::socket::Socket;

pub const RT_TABLE_MAIN: u32 = 254;
pub const RT_TABLE_LOCAL: u32 = 255;
pub const RT_SCOPE_UNIVERSE: u8 = 0;
pub const RT_SCOPE_LINK: u8 = 253;
pub const RT_SCOPE_HOST: u8 = 254;

/// A unicast route as plans describe it and dumps report it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Route {
    /// Destination; 0.0.0.0/0 or ::/0 for default.
    pub dst: IpNet,
    pub gateway: Option<IpAddr>,
    /// Preferred source (RTA_PREFSRC), the "source hint".
    pub prefsrc: Option<IpAddr>,
    pub oif: Option<u32>,
    pub table: u32,
    pub scope: u8,
    /// RTA_PRIORITY.
    pub metric: Option<u32>,
    /// RTPROT_*: boot (3) unless set; kernel (2) for kernel-made routes.
    pub protocol: u8,
    /// RTN_*: unicast (1) for the routes we make; dumps report others too.
    pub kind: u8,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RouteFilter {
    /// `None`: both families. Some(true): v4.
    pub v4: Option<bool>,
    /// `None`: every table.
    pub table: Option<u32>,
    pub oif: Option<u32>,
}

impl Socket {
    pub fn routes(&mut self, filter: &RouteFilter) -> Result<Vec<Route>> {
        let _ = filter;
        todo!()
    }
    pub fn add_route(&mut self, route: &Route) -> Result<()> {
        let _ = route;
        todo!()
    }
    pub fn replace_route(&mut self, route: &Route) -> Result<()> {
        let _ = route;
        todo!()
    }
    /// Ok(false) when there was no such route.
    pub fn delete_route(&mut self, route: &Route) -> Result<bool> {
        let _ = route;
        todo!()
    }
}
