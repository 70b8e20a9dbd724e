//! Policy routing rules. The kernel does not filter rule dumps: we do.

use ipnet::IpNet;

use std::net::IpAddr;

use netlink_packet_core::{NLM_F_CREATE, NLM_F_EXCL};
use netlink_packet_route::rule::{RuleAction, RuleAttribute, RuleFlags, RuleMessage};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};

use crate::error::Result;
use crate::socket::Socket;

/// FR_ACT_TO_TBL.
pub const FR_ACT_TO_TBL: u8 = 1;

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
    /// FRA_PROTOCOL: who made the rule, as routes carry it (0 is unspec,
    /// what `ip rule add` and the reference plugin write).
    pub protocol: u8,
    /// Dumps only: the rule selects on more than its source (destination,
    /// interfaces, marks, tos, ports, ... or "not"), so it matches less
    /// traffic than `from SRC` alone.
    pub other_selectors: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RuleFilter {
    pub v4: Option<bool>,
    pub src: Option<IpNet>,
    pub table: Option<u32>,
    pub priority: Option<u32>,
}

impl Rule {
    /// "from 10.1.0.2/32 table 100 priority 99" for messages.
    pub fn describe(&self) -> String {
        let mut s = match self.src {
            Some(n) => format!("from {n}"),
            None => "from all".to_string(),
        };
        s += &format!(" table {}", self.table);
        if let Some(p) = self.priority {
            s += &format!(" priority {p}");
        }
        if self.protocol != 0 {
            s += &format!(" protocol {}", self.protocol);
        }
        s
    }

    fn from_message(m: &RuleMessage) -> Option<Rule> {
        let v4 = match m.header.family {
            AddressFamily::Inet => true,
            AddressFamily::Inet6 => false,
            _ => return None,
        };
        let mut r = Rule {
            v4,
            src: None,
            table: u32::from(m.header.table),
            // The kernel leaves FRA_PRIORITY out for priority 0.
            priority: Some(0),
            action: m.header.action.into(),
            protocol: 0,
            other_selectors: m.header.dst_len > 0
                || m.header.tos != 0
                // "not from ...".
                || m.header.flags.contains(RuleFlags::Invert),
        };
        for a in &m.attributes {
            match a {
                RuleAttribute::Source(ip) => r.src = IpNet::new(*ip, m.header.src_len).ok(),
                RuleAttribute::Table(t) => r.table = *t,
                RuleAttribute::Priority(p) => r.priority = Some(*p),
                RuleAttribute::Protocol(p) => r.protocol = u8::from(*p),
                // A zero mark with a zero mask selects nothing; the kernel
                // sends the suppressors as -1 when they are unset.
                RuleAttribute::FwMark(0)
                | RuleAttribute::FwMask(0)
                | RuleAttribute::SuppressPrefixLen(u32::MAX)
                | RuleAttribute::SuppressIfGroup(u32::MAX) => {}
                // Anything else narrows the rule (or is a selector this
                // crate does not know, which counts the same).
                _ => r.other_selectors = true,
            }
        }
        Some(r)
    }

    fn to_message(&self) -> RuleMessage {
        let mut m = RuleMessage::default();
        m.header.family = if self.v4 {
            AddressFamily::Inet
        } else {
            AddressFamily::Inet6
        };
        m.header.table = u8::try_from(self.table).unwrap_or(0);
        m.header.action = RuleAction::ToTable;
        if let Some(src) = self.src {
            m.header.src_len = src.prefix_len();
            m.attributes.push(RuleAttribute::Source(src.addr()));
        }
        m.attributes.push(RuleAttribute::Table(self.table));
        if let Some(p) = self.priority {
            m.attributes.push(RuleAttribute::Priority(p));
        }
        // On delete, protocol 0 matches any: the kernel compares only what
        // the request sets.
        if self.protocol != 0 {
            m.attributes.push(RuleAttribute::Protocol(self.protocol.into()));
        }
        m
    }
}

impl RuleFilter {
    fn matches(&self, r: &Rule) -> bool {
        self.v4.is_none_or(|v4| v4 == r.v4)
            && self.src.is_none_or(|s| Some(s) == r.src)
            && self.table.is_none_or(|t| t == r.table)
            && self.priority.is_none_or(|p| Some(p) == r.priority)
    }
}

impl Socket {
    pub fn rules(&mut self, filter: &RuleFilter) -> Result<Vec<Rule>> {
        let family = match (filter.v4, filter.src.map(|s| s.addr())) {
            (Some(true), _) | (None, Some(IpAddr::V4(_))) => AddressFamily::Inet,
            (Some(false), _) | (None, Some(IpAddr::V6(_))) => AddressFamily::Inet6,
            (None, None) => AddressFamily::Unspec,
        };
        let mut m = RuleMessage::default();
        m.header.family = family;
        let msgs = self.dump_typed(RouteNetlinkMessage::GetRule(m), &|| "list rules".to_string())?;
        Ok(msgs
            .iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewRule(r) => Rule::from_message(r),
                _ => None,
            })
            .filter(|r| filter.matches(r))
            .collect())
    }

    /// Always with action to-table: without it the rule black-holes traffic.
    pub fn add_rule(&mut self, rule: &Rule) -> Result<()> {
        let m = rule.to_message();
        self.change(
            RouteNetlinkMessage::NewRule(m),
            NLM_F_CREATE | NLM_F_EXCL,
            &|| format!("add rule {}", rule.describe()),
        )
    }

    /// Ok(false) when there was no such rule.
    pub fn delete_rule(&mut self, rule: &Rule) -> Result<bool> {
        let m = rule.to_message();
        match self.change(RouteNetlinkMessage::DelRule(m), 0, &|| {
            format!("delete rule {}", rule.describe())
        }) {
            Ok(()) => Ok(true),
            Err(e) if e.is_not_found() => Ok(false),
            Err(e) => Err(e),
        }
    }
}
