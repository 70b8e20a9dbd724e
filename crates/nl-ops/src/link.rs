//! Links: lookup, ifb and vrf create/delete, master, up, MTU, alias, veth peer.

use netlink_packet_core::{NLM_F_CREATE, NLM_F_EXCL};
use netlink_packet_route::link::{
    InfoData, InfoKind, InfoVrf, LinkAttribute, LinkExtentMask, LinkFlags, LinkInfo, LinkMessage,
};
use netlink_packet_route::RouteNetlinkMessage;

use crate::error::{Error, Result};
use crate::socket::{decode, Socket};

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
    /// IFLA_MASTER: the VRF (or bridge, bond) the link is enslaved to.
    pub master: Option<u32>,
    /// A VRF's table (IFLA_VRF_TABLE).
    pub vrf_table: Option<u32>,
}

impl Link {
    fn from_message(m: &LinkMessage) -> Link {
        let mut l = Link {
            index: m.header.index,
            name: String::new(),
            mtu: 0,
            kind: None,
            alias: None,
            up: m.header.flags.contains(LinkFlags::Up),
            txqlen: 0,
            link: None,
            link_netnsid: None,
            mac: None,
            master: None,
            vrf_table: None,
        };
        for a in &m.attributes {
            match a {
                LinkAttribute::IfName(n) => l.name = n.clone(),
                LinkAttribute::Mtu(v) => l.mtu = *v,
                LinkAttribute::TxQueueLen(v) => l.txqlen = *v,
                LinkAttribute::IfAlias(s) => l.alias = Some(s.clone()),
                LinkAttribute::Link(v) => l.link = Some(*v),
                LinkAttribute::LinkNetNsId(v) => l.link_netnsid = Some(*v),
                LinkAttribute::Controller(v) if *v != 0 => l.master = Some(*v),
                LinkAttribute::Address(b) if !b.is_empty() => {
                    l.mac = Some(b.iter().map(|x| format!("{x:02x}")).collect::<Vec<_>>().join(":"));
                }
                LinkAttribute::LinkInfo(infos) => {
                    for i in infos {
                        match i {
                            LinkInfo::Kind(k) => l.kind = Some(k.to_string()),
                            LinkInfo::Data(InfoData::Vrf(d)) => {
                                for v in d {
                                    if let InfoVrf::TableId(t) = v {
                                        l.vrf_table = Some(*t);
                                    }
                                }
                            }
                            _ => {}
                        }
                    }
                }
                _ => {}
            }
        }
        l
    }
}

fn links_of(msgs: Vec<RouteNetlinkMessage>) -> Vec<Link> {
    msgs.iter()
        .filter_map(|m| match m {
            RouteNetlinkMessage::NewLink(l) => Some(Link::from_message(l)),
            _ => None,
        })
        .collect()
}

fn skip_stats(m: &mut LinkMessage) {
    m.attributes
        .push(LinkAttribute::ExtMask(vec![LinkExtentMask::SkipStats]));
}

impl Socket {
    pub fn link_by_name(&mut self, name: &str) -> Result<Option<Link>> {
        let mut m = LinkMessage::default();
        m.attributes.push(LinkAttribute::IfName(name.to_string()));
        skip_stats(&mut m);
        self.get_link(m, &|| format!("get link {name}"))
    }

    pub fn link_by_index(&mut self, index: u32) -> Result<Option<Link>> {
        let mut m = LinkMessage::default();
        m.header.index = index;
        skip_stats(&mut m);
        self.get_link(m, &|| format!("get link {index}"))
    }

    fn get_link(&mut self, m: LinkMessage, op: &dyn Fn() -> String) -> Result<Option<Link>> {
        match self.get(RouteNetlinkMessage::GetLink(m), op) {
            Ok(msgs) => {
                let typed = msgs.iter().map(|m| decode(m, op)).collect::<Result<Vec<_>>>()?;
                Ok(links_of(typed).into_iter().next())
            }
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    pub fn links(&mut self) -> Result<Vec<Link>> {
        let mut m = LinkMessage::default();
        skip_stats(&mut m);
        let msgs = self.dump_typed(RouteNetlinkMessage::GetLink(m), &|| "list links".to_string())?;
        Ok(links_of(msgs))
    }

    /// Creates an ifb, sets MTU, txqlen and alias, and brings it up.
    pub fn add_ifb(&mut self, name: &str, mtu: u32, txqlen: u32, alias: Option<&str>) -> Result<Link> {
        let attrs = vec![
            LinkAttribute::Mtu(mtu),
            LinkAttribute::TxQueueLen(txqlen),
            LinkAttribute::LinkInfo(vec![LinkInfo::Kind(InfoKind::Ifb)]),
        ];
        self.add_link_up(name, "ifb", attrs, alias)
    }

    /// Creates a VRF device routing through `table`, with `alias`, up.
    pub fn add_vrf(&mut self, name: &str, table: u32, alias: Option<&str>) -> Result<Link> {
        let attrs = vec![LinkAttribute::LinkInfo(vec![
            LinkInfo::Kind(InfoKind::Vrf),
            LinkInfo::Data(InfoData::Vrf(vec![InfoVrf::TableId(table)])),
        ])];
        self.add_link_up(name, "vrf", attrs, alias)
    }

    /// Enslaves the link to `master` (IFLA_MASTER); 0 releases it. The
    /// kernel takes a link down and up again as it joins or leaves a VRF.
    pub fn set_link_master(&mut self, index: u32, master: u32) -> Result<()> {
        let mut m = LinkMessage::default();
        m.header.index = index;
        m.attributes.push(LinkAttribute::Controller(master));
        self.change(RouteNetlinkMessage::SetLink(m), 0, &|| {
            if master == 0 {
                format!("release link {index} from its master")
            } else {
                format!("set master {master} on link {index}")
            }
        })
    }

    /// Creates the link `name` of `kind` with `attrs`, up, and sets its alias.
    fn add_link_up(
        &mut self,
        name: &str,
        kind: &str,
        attrs: Vec<LinkAttribute>,
        alias: Option<&str>,
    ) -> Result<Link> {
        let mut m = LinkMessage::default();
        // Up at creation: the kernel applies the header's flags to a new link.
        m.header.flags = LinkFlags::Up;
        m.header.change_mask = LinkFlags::Up;
        m.attributes.push(LinkAttribute::IfName(name.to_string()));
        m.attributes.extend(attrs);
        self.change(
            RouteNetlinkMessage::NewLink(m),
            NLM_F_CREATE | NLM_F_EXCL,
            &|| format!("add {kind} {name}"),
        )?;
        // The kernel takes IFLA_IFALIAS only on a set (found by name), so
        // the alias comes after the create; undo the create if it fails.
        let finish = |s: &mut Socket| -> Result<Link> {
            if let Some(a) = alias {
                let mut m = LinkMessage::default();
                m.attributes.push(LinkAttribute::IfName(name.to_string()));
                m.attributes.push(LinkAttribute::IfAlias(a.to_string()));
                s.change(RouteNetlinkMessage::SetLink(m), 0, &|| {
                    format!("set alias {a:?} on link {name}")
                })?;
            }
            s.link_by_name(name)?
                .ok_or_else(|| Error::no_device(format!("get link {name}")))
        };
        match finish(self) {
            Ok(l) => Ok(l),
            Err(e) => {
                if let Ok(Some(l)) = self.link_by_name(name) {
                    let _ = self.delete_link(l.index);
                }
                Err(e)
            }
        }
    }

    /// Ok(false) when there was no such link.
    pub fn delete_link(&mut self, index: u32) -> Result<bool> {
        let mut m = LinkMessage::default();
        m.header.index = index;
        match self.change(RouteNetlinkMessage::DelLink(m), 0, &|| {
            format!("delete link {index}")
        }) {
            Ok(()) => Ok(true),
            Err(e) if e.is_not_found() => Ok(false),
            Err(e) => Err(e),
        }
    }

    pub fn set_link_up(&mut self, index: u32, up: bool) -> Result<()> {
        let mut m = LinkMessage::default();
        m.header.index = index;
        m.header.change_mask = LinkFlags::Up;
        if up {
            m.header.flags = LinkFlags::Up;
        }
        let word = if up { "up" } else { "down" };
        self.change(RouteNetlinkMessage::SetLink(m), 0, &|| {
            format!("set link {index} {word}")
        })
    }

    pub fn set_link_mtu(&mut self, index: u32, mtu: u32) -> Result<()> {
        let mut m = LinkMessage::default();
        m.header.index = index;
        m.attributes.push(LinkAttribute::Mtu(mtu));
        self.change(RouteNetlinkMessage::SetLink(m), 0, &|| {
            format!("set mtu {mtu} on link {index}")
        })
    }

    pub fn set_link_alias(&mut self, index: u32, alias: &str) -> Result<()> {
        let mut m = LinkMessage::default();
        m.header.index = index;
        m.attributes.push(LinkAttribute::IfAlias(alias.to_string()));
        self.change(RouteNetlinkMessage::SetLink(m), 0, &|| {
            format!("set alias {alias:?} on link {index}")
        })
    }
}
