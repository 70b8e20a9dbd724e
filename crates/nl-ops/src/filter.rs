//! u32 match-all filters with one mirred egress redirect.

use crate::error::Result;
use crate::socket::Socket;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filter {
    pub parent: u32,
    pub priority: u16,
    /// Host byte order (ETH_P_ALL = 3).
    pub protocol: u16,
    pub kind: String,
    /// ifindexes of the mirred actions, in order.
    pub mirred_targets: Vec<u32>,
}

impl Socket {
    /// On `parent ffff:` of `index`: u32 match all, protocol all, priority 1,
    /// one mirred egress redirect (stolen) to `target`. Replaces any filter
    /// already at that priority.
    pub fn replace_redirect_filter(&mut self, index: u32, target: u32) -> Result<()> {
        let _ = (index, target);
        todo!()
    }
    pub fn filters(&mut self, index: u32, parent: u32) -> Result<Vec<Filter>> {
        let _ = (index, parent);
        todo!()
    }
}
