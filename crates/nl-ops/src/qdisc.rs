//! Qdiscs: ingress and TBF. TBF options are built and decoded by hand.

use crate::error::Result;
use crate::socket::Socket;

pub const TC_H_ROOT: u32 = 0xFFFF_FFFF;
pub const TC_H_INGRESS: u32 = 0xFFFF_FFF1;
pub const INGRESS_HANDLE: u32 = 0xFFFF_0000;

/// TBF in the units the kernel stores.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tbf {
    /// Bytes per second.
    pub rate: u64,
    /// Bucket size in bytes.
    pub burst: u32,
    /// Queue limit in bytes.
    pub limit: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Qdisc {
    pub index: u32,
    pub handle: u32,
    pub parent: u32,
    pub kind: String,
    /// Decoded options when `kind` is "tbf".
    pub tbf: Option<Tbf>,
}

impl Socket {
    /// Every qdisc of one link.
    pub fn qdiscs(&mut self, index: u32) -> Result<Vec<Qdisc>> {
        let _ = index;
        todo!()
    }
    /// Adds or replaces the root TBF of a link; the buffer is computed in
    /// psched ticks from /proc/net/psched.
    pub fn replace_root_tbf(&mut self, index: u32, tbf: &Tbf) -> Result<()> {
        let _ = (index, tbf);
        todo!()
    }
    /// Ok(false) when there was none.
    pub fn delete_root_qdisc(&mut self, index: u32) -> Result<bool> {
        let _ = index;
        todo!()
    }
    /// Ok(false) when it already existed.
    pub fn add_ingress_qdisc(&mut self, index: u32) -> Result<bool> {
        let _ = index;
        todo!()
    }
    /// Ok(false) when there was none.
    pub fn delete_ingress_qdisc(&mut self, index: u32) -> Result<bool> {
        let _ = index;
        todo!()
    }
}
