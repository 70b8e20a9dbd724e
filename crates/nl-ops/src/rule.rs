//! Policy routing rules. The kernel does not filter rule dumps: we do.

use ipnet::IpNet;

use crate::error::Result;
use crate::socket::Socket;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Rule {
    pub v4: bool,
    /// None: "from all".
    pub src: Option<IpNet>,
    pub table: u32,
    /// None on add: the kernel picks one.
    pub priority: Option<u32>,
    /// FR_ACT_*: to-table (1) for ours; dumps report others too.
    pub action: u8,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RuleFilter {
    pub v4: Option<bool>,
    pub src: Option<IpNet>,
    pub table: Option<u32>,
    pub priority: Option<u32>,
}

impl Socket {
    pub fn rules(&mut self, filter: &RuleFilter) -> Result<Vec<Rule>> {
        let _ = filter;
        todo!()
    }
    /// Always with action to-table: without it the rule black-holes traffic.
    pub fn add_rule(&mut self, rule: &Rule) -> Result<()> {
        let _ = rule;
        todo!()
    }
    /// Ok(false) when there was no such rule.
    pub fn delete_rule(&mut self, rule: &Rule) -> Result<bool> {
        let _ = rule;
        todo!()
    }
}
