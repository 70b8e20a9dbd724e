//! Addresses, read only.

use ipnet::IpNet;

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
        let _ = index;
        todo!()
    }
}
