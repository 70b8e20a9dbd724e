//! u32 match-all filters with one mirred egress redirect.

use netlink_packet_core::{NLM_F_CREATE, NLM_F_REPLACE};
use netlink_packet_route::tc::{
    TcAction, TcActionAttribute, TcActionGeneric, TcActionMirrorOption, TcActionOption, TcActionType,
    TcAttribute, TcFilterU32Option, TcHandle, TcMessage, TcMirror, TcMirrorActionType, TcOption, TcU32Key,
    TcU32Selector, TcU32SelectorFlags,
};
use netlink_packet_route::RouteNetlinkMessage;

use crate::error::{Error, Result};
use crate::qdisc::INGRESS_HANDLE;
use crate::socket::{decode, Socket};

pub const ETH_P_ALL: u16 = 0x0003;
/// The priority our redirect filter lives at.
pub const REDIRECT_PRIORITY: u16 = 1;
/// u32 handle 800::800: the first node of the root hash table. Fixed so a
/// replace finds and replaces it instead of adding a second filter.
const U32_HANDLE: u32 = 0x8000_0800;

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

fn filter_message(index: u32, handle: u32, parent: u32, priority: u16, protocol: u16) -> Result<TcMessage> {
    let i = i32::try_from(index).map_err(|_| Error::Protocol {
        op: "tc filter".to_string(),
        msg: format!("ifindex {index} out of range"),
    })?;
    let mut m = TcMessage::with_index(i);
    m.header.handle = TcHandle::from(handle);
    m.header.parent = TcHandle::from(parent);
    // tcm_info: priority in the upper half, protocol in network byte order below.
    m.header.info = (u32::from(priority) << 16) | u32::from(protocol.to_be());
    Ok(m)
}

/// u32 with one all-zero key (matches every packet), terminal, and exactly
/// one mirred egress redirect that steals the packet.
fn redirect_options(target: u32) -> Vec<TcOption> {
    let mut key = TcU32Key::default();
    key.mask = 0;
    key.val = 0;
    let mut sel = TcU32Selector::default();
    sel.flags = TcU32SelectorFlags::Terminal;
    sel.nkeys = 1;
    sel.keys = vec![key];

    let mut generic = TcActionGeneric::default();
    generic.action = TcActionType::Stolen;
    let mut mirror = TcMirror::default();
    mirror.generic = generic;
    mirror.eaction = TcMirrorActionType::EgressRedir;
    mirror.ifindex = target;
    let mut action = TcAction::default();
    action.tab = 1;
    action.attributes = vec![
        TcActionAttribute::Kind("mirred".to_string()),
        TcActionAttribute::Options(vec![TcActionOption::Mirror(TcActionMirrorOption::Parms(mirror))]),
    ];
    vec![
        TcOption::U32(TcFilterU32Option::Selector(sel)),
        TcOption::U32(TcFilterU32Option::Action(vec![action])),
    ]
}

/// A dumped filter; None for u32 hash-table entries (no selector).
fn from_message(m: &TcMessage) -> Option<Filter> {
    let mut kind = String::new();
    let mut targets = Vec::new();
    let mut has_selector = false;
    for a in &m.attributes {
        match a {
            TcAttribute::Kind(k) => kind = k.clone(),
            TcAttribute::Options(opts) => {
                for o in opts {
                    match o {
                        TcOption::U32(TcFilterU32Option::Selector(_)) => has_selector = true,
                        TcOption::U32(TcFilterU32Option::Action(acts)) => {
                            targets.extend(mirred_targets(acts))
                        }
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    if kind == "u32" && !has_selector {
        return None;
    }
    let info = m.header.info;
    Some(Filter {
        parent: u32::from(m.header.parent),
        priority: u16::try_from(info >> 16).unwrap_or(0),
        protocol: u16::from_be(u16::try_from(info & 0xffff).unwrap_or(0)),
        kind,
        mirred_targets: targets,
    })
}

fn mirred_targets(acts: &[TcAction]) -> Vec<u32> {
    let mut out = Vec::new();
    for act in acts {
        for a in &act.attributes {
            if let TcActionAttribute::Options(opts) = a {
                for o in opts {
                    if let TcActionOption::Mirror(TcActionMirrorOption::Parms(p)) = o {
                        out.push(p.ifindex);
                    }
                }
            }
        }
    }
    out
}

impl Socket {
    /// On `parent ffff:` of `index`: u32 match all, protocol all, priority 1,
    /// one mirred egress redirect (stolen) to `target`. Replaces any filter
    /// already at that priority.
    pub fn replace_redirect_filter(&mut self, index: u32, target: u32) -> Result<()> {
        let op = || format!("replace redirect filter on link {index} to link {target}");
        let build = || -> Result<TcMessage> {
            let mut m = filter_message(index, U32_HANDLE, INGRESS_HANDLE, REDIRECT_PRIORITY, ETH_P_ALL)?;
            m.attributes.push(TcAttribute::Kind("u32".to_string()));
            m.attributes.push(TcAttribute::Options(redirect_options(target)));
            Ok(m)
        };
        let flags = NLM_F_CREATE | NLM_F_REPLACE;
        match self.change(RouteNetlinkMessage::NewTrafficFilter(build()?), flags, &op) {
            Ok(()) => {}
            // Something else sits at priority 1 (another kind or protocol):
            // clear the priority, then create ours.
            Err(e) if e.errno() == Some(libc::EINVAL) => {
                self.delete_filters(index, INGRESS_HANDLE, REDIRECT_PRIORITY)?;
                self.change(RouteNetlinkMessage::NewTrafficFilter(build()?), flags, &op)?;
            }
            Err(e) => return Err(e),
        }
        // Only ours may remain at this priority (a u32 added elsewhere with
        // another handle would also match first).
        let extra = self
            .filters(index, INGRESS_HANDLE)?
            .into_iter()
            .filter(|f| f.priority == REDIRECT_PRIORITY)
            .count();
        if extra > 1 {
            self.delete_filters(index, INGRESS_HANDLE, REDIRECT_PRIORITY)?;
            self.change(RouteNetlinkMessage::NewTrafficFilter(build()?), flags, &op)?;
        }
        Ok(())
    }

    /// Removes every filter at `priority` under `parent`; Ok(false) when there was none.
    pub fn delete_filters(&mut self, index: u32, parent: u32, priority: u16) -> Result<bool> {
        let m = filter_message(index, 0, parent, priority, 0)?;
        match self.change(RouteNetlinkMessage::DelTrafficFilter(m), 0, &|| {
            format!("delete filters at priority {priority} of link {index}")
        }) {
            Ok(()) => Ok(true),
            Err(e) if e.is_not_found() => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// The filters under `parent` (e.g. ffff:0000); u32 hash-table entries are left out.
    pub fn filters(&mut self, index: u32, parent: u32) -> Result<Vec<Filter>> {
        let m = filter_message(index, 0, parent, 0, 0)?;
        let op = || format!("list filters of link {index}");
        let msgs = self.dump(RouteNetlinkMessage::GetTrafficFilter(m), &op)?;
        let mut out = Vec::new();
        for raw in &msgs {
            if let RouteNetlinkMessage::NewTrafficFilter(t) = decode(raw, &op)? {
                out.extend(from_message(&t));
            }
        }
        Ok(out)
    }
}
