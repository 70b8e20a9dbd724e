//! u32 match-all filters with one mirred egress redirect: made, replaced and
//! deleted one node at a time, so filters of others at the same priority
//! stay. Which hook, which priority, which cookie marks the action, and
//! which filters are whose, is the plugin's call.

use netlink_packet_core::{NLM_F_CREATE, NLM_F_EXCL, NLM_F_REPLACE};
use netlink_packet_route::tc::{
    TcAction, TcActionAttribute, TcActionGeneric, TcActionMirrorOption, TcActionOption, TcActionType,
    TcAttribute, TcFilterU32Option, TcHandle, TcMessage, TcMirror, TcMirrorActionType, TcOption, TcU32Key,
    TcU32Selector, TcU32SelectorFlags,
};
use netlink_packet_route::RouteNetlinkMessage;

use crate::error::{Error, Result};
use crate::qdisc::{Handle, INGRESS_HANDLE};
use crate::socket::{decode, Socket};

pub const ETH_P_ALL: u16 = 0x0003;
/// The ingress hook of a `clsact` qdisc (`tc ... ingress`); an `ingress`
/// qdisc's filters answer there too, as under `ffff:`.
pub const CLSACT_INGRESS: u32 = 0xFFFF_FFF2;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filter {
    pub parent: u32,
    pub priority: u16,
    /// Host byte order (ETH_P_ALL = 3).
    pub protocol: u16,
    pub kind: String,
    /// The filter's handle: for u32, the node (`800::800`).
    pub handle: u32,
    /// ifindexes of the mirred actions, in order.
    pub mirred_targets: Vec<u32>,
    /// How many actions the filter runs, mirred or not.
    pub actions: usize,
    /// The first action's cookie (TCA_ACT_COOKIE), opaque to the kernel.
    pub cookie: Option<Vec<u8>>,
    /// A u32 whose selector is one all-zero key: every packet matches.
    pub match_all: bool,
}

impl Filter {
    /// Redirects and does nothing else: every action a mirred.
    pub fn only_redirects(&self) -> bool {
        self.actions > 0 && self.actions == self.mirred_targets.len()
    }
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
/// one mirred egress redirect that steals the packet, carrying `cookie`.
fn redirect_options(target: u32, cookie: Option<&[u8]>) -> Vec<TcOption> {
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
    if let Some(c) = cookie {
        action.attributes.push(TcActionAttribute::Cookie(c.to_vec()));
    }
    vec![
        TcOption::U32(TcFilterU32Option::Selector(sel)),
        TcOption::U32(TcFilterU32Option::Action(vec![action])),
    ]
}

/// A dumped filter; None for u32 hash-table entries (no selector).
fn from_message(m: &TcMessage) -> Option<Filter> {
    let mut kind = String::new();
    let mut targets = Vec::new();
    let mut actions = 0;
    let mut has_selector = false;
    let mut match_all = false;
    let mut cookie = None;
    for a in &m.attributes {
        match a {
            TcAttribute::Kind(k) => kind = k.clone(),
            TcAttribute::Options(opts) => {
                for o in opts {
                    match o {
                        TcOption::U32(TcFilterU32Option::Selector(sel)) => {
                            has_selector = true;
                            match_all = sel.nkeys == 1
                                && sel.keys.len() == 1
                                && sel.keys[0].mask == 0
                                && sel.keys[0].val == 0;
                        }
                        TcOption::U32(TcFilterU32Option::Action(acts)) => {
                            if actions == 0 {
                                cookie = acts.first().and_then(action_cookie);
                            }
                            actions += acts.len();
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
        handle: u32::from(m.header.handle),
        mirred_targets: targets,
        actions,
        cookie,
        match_all,
    })
}

fn action_cookie(act: &TcAction) -> Option<Vec<u8>> {
    act.attributes.iter().find_map(|a| match a {
        TcActionAttribute::Cookie(c) => Some(c.clone()),
        _ => None,
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
    /// A new u32 node on `parent` (`ffff:` of an ingress qdisc, or
    /// [`CLSACT_INGRESS`]) of `index` at `priority`, protocol all: match
    /// all, one mirred egress redirect (stolen) to `target`, its action
    /// marked with `cookie` (at most 16 bytes). The kernel picks the node's
    /// handle; filters already at that priority stay (of another kind or
    /// protocol there, the kernel refuses).
    pub fn add_redirect_filter(
        &mut self,
        index: u32,
        parent: u32,
        priority: u16,
        target: u32,
        cookie: Option<&[u8]>,
    ) -> Result<()> {
        let m = redirect_message(index, parent, 0, priority, target, cookie)?;
        self.change(
            RouteNetlinkMessage::NewTrafficFilter(m),
            NLM_F_CREATE | NLM_F_EXCL,
            &|| format!("add redirect filter on link {index} to link {target} at priority {priority}"),
        )
    }

    /// A new `ingress` qdisc on `index` and, on it, the redirect
    /// [`Socket::add_redirect_filter`] makes, sent in one datagram: a kill
    /// never leaves the qdisc without the redirect. Each gets its own
    /// result (qdisc, filter); the qdisc must be new (EEXIST otherwise).
    pub fn add_ingress_qdisc_with_redirect(
        &mut self,
        index: u32,
        priority: u16,
        target: u32,
        cookie: Option<&[u8]>,
    ) -> Result<(Result<()>, Result<()>)> {
        let qdisc = crate::qdisc::ingress_message(index)?;
        let filter = redirect_message(index, INGRESS_HANDLE, 0, priority, target, cookie)?;
        let mut acks = self
            .change_all(
                vec![
                    (RouteNetlinkMessage::NewQueueDiscipline(qdisc), NLM_F_CREATE | NLM_F_EXCL),
                    (RouteNetlinkMessage::NewTrafficFilter(filter), NLM_F_CREATE | NLM_F_EXCL),
                ],
                &|| format!("add ingress qdisc to link {index} with a redirect to link {target} at priority {priority}"),
            )?
            .into_iter();
        let missing = || Error::Protocol {
            op: format!("add ingress qdisc to link {index}"),
            msg: "fewer acks than requests".into(),
        };
        let q = acks.next().unwrap_or_else(|| Err(missing()));
        let f = acks.next().unwrap_or_else(|| Err(missing()));
        Ok((q, f))
    }

    /// Makes the existing u32 node `handle` a redirect to `target` (one
    /// mirred, match all, marked with `cookie`), in place.
    pub fn replace_redirect_filter(
        &mut self,
        index: u32,
        parent: u32,
        priority: u16,
        handle: u32,
        target: u32,
        cookie: Option<&[u8]>,
    ) -> Result<()> {
        let m = redirect_message(index, parent, handle, priority, target, cookie)?;
        self.change(RouteNetlinkMessage::NewTrafficFilter(m), NLM_F_REPLACE, &|| {
            format!(
                "replace redirect filter {} on link {index} to link {target}",
                Handle(handle)
            )
        })
    }

    /// Deletes one filter: the u32 node `handle`, or with handle 0 every
    /// filter of `kind` at `priority` and `protocol`. Ok(false) when there
    /// was none.
    pub fn delete_filter(
        &mut self,
        index: u32,
        parent: u32,
        priority: u16,
        protocol: u16,
        kind: &str,
        handle: u32,
    ) -> Result<bool> {
        let mut m = filter_message(index, handle, parent, priority, protocol)?;
        m.attributes.push(TcAttribute::Kind(kind.to_string()));
        match self.change(RouteNetlinkMessage::DelTrafficFilter(m), 0, &|| {
            format!(
                "delete {kind} filter {} at priority {priority} of link {index}",
                Handle(handle)
            )
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

fn redirect_message(
    index: u32,
    parent: u32,
    handle: u32,
    priority: u16,
    target: u32,
    cookie: Option<&[u8]>,
) -> Result<TcMessage> {
    let mut m = filter_message(index, handle, parent, priority, ETH_P_ALL)?;
    m.attributes.push(TcAttribute::Kind("u32".to_string()));
    m.attributes
        .push(TcAttribute::Options(redirect_options(target, cookie)));
    Ok(m)
}
