//! Routes, v4 and v6, in any table.

use std::net::IpAddr;

use ipnet::IpNet;

use netlink_packet_core::{DefaultNla, Nla, NLM_F_APPEND, NLM_F_CREATE, NLM_F_EXCL, NLM_F_REPLACE};
use netlink_packet_route::route::{RouteAddress, RouteAttribute, RouteMessage, RouteMetric};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};

use crate::error::Result;
use crate::socket::Socket;

pub const RT_TABLE_DEFAULT: u32 = 253;
pub const RT_TABLE_MAIN: u32 = 254;
pub const RT_TABLE_LOCAL: u32 = 255;
pub const RT_SCOPE_UNIVERSE: u8 = 0;
pub const RT_SCOPE_LINK: u8 = 253;
pub const RT_SCOPE_HOST: u8 = 254;
pub const RTPROT_KERNEL: u8 = 2;
pub const RTPROT_BOOT: u8 = 3;
pub const RTN_UNICAST: u8 = 1;
/// The local table's route to an address of this host.
pub const RTN_LOCAL: u8 = 2;
/// Lookup goes on with the next rule, as if the table had no route.
pub const RTN_THROW: u8 = 9;
/// RTAX_MTU: the `mtu` of `ip route`.
pub const RTAX_MTU: u16 = 2;
/// Header value the kernel reports for tables above 255.
const RT_TABLE_COMPAT: u8 = 252;
const RT_SCOPE_NOWHERE: u8 = 255;

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
    /// The header's tos: part of the route's key, as the destination is.
    pub tos: u8,
    /// RTA_METRICS (mtu, advmss, initcwnd, ...), in the order of the dump.
    pub metrics: Vec<Metric>,
    /// Dumps only: the next hop is more than `oif` and `gateway` say
    /// (RTA_VIA, RTA_MULTIPATH, a nexthop object, an encapsulation), so
    /// this struct cannot add the same route back.
    pub other_nexthop: bool,
}

/// One RTAX_* value of RTA_METRICS, kept as the kernel reports it so that
/// a route goes back exactly as it was.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Metric {
    /// RTAX_*, e.g. [`RTAX_MTU`].
    pub kind: u16,
    /// The payload: a native-endian u32, but for congctl (a string).
    pub value: Vec<u8>,
}

impl Metric {
    pub fn u32(kind: u16, value: u32) -> Metric {
        Metric {
            kind,
            value: value.to_ne_bytes().to_vec(),
        }
    }

    pub fn as_u32(&self) -> Option<u32> {
        <[u8; 4]>::try_from(self.value.as_slice())
            .ok()
            .map(u32::from_ne_bytes)
    }

    fn from_attribute(m: &RouteMetric) -> Metric {
        let mut value = vec![0; m.value_len()];
        m.emit_value(&mut value);
        Metric {
            kind: m.kind(),
            value,
        }
    }

    fn to_attribute(&self) -> RouteMetric {
        RouteMetric::Other(DefaultNla::new(self.kind, self.value.clone()))
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RouteFilter {
    /// `None`: both families. Some(true): v4.
    pub v4: Option<bool>,
    /// `None`: every table.
    pub table: Option<u32>,
    pub oif: Option<u32>,
}

impl Route {
    /// A unicast route with protocol boot, universe scope, no metric.
    pub fn new(dst: IpNet, table: u32) -> Route {
        Route {
            dst,
            gateway: None,
            prefsrc: None,
            oif: None,
            table,
            scope: RT_SCOPE_UNIVERSE,
            metric: None,
            protocol: RTPROT_BOOT,
            kind: RTN_UNICAST,
            tos: 0,
            metrics: Vec::new(),
            other_nexthop: false,
        }
    }

    /// The `mtu` metric, when the route has one.
    pub fn mtu(&self) -> Option<u32> {
        self.metrics
            .iter()
            .find(|m| m.kind == RTAX_MTU)
            .and_then(Metric::as_u32)
    }

    /// "default via 10.1.0.1 dev 3 table 100" for messages.
    pub fn describe(&self) -> String {
        let mut s = if self.dst.prefix_len() == 0 {
            "default".to_string()
        } else {
            self.dst.to_string()
        };
        if let Some(g) = self.gateway {
            s += &format!(" via {g}");
        }
        if let Some(o) = self.oif {
            s += &format!(" dev {o}");
        }
        if let Some(p) = self.prefsrc {
            s += &format!(" src {p}");
        }
        if let Some(m) = self.metric {
            s += &format!(" metric {m}");
        }
        if let Some(m) = self.mtu() {
            s += &format!(" mtu {m}");
        }
        s + &format!(" table {}", self.table)
    }

    fn from_message(m: &RouteMessage) -> Option<Route> {
        let v4 = match m.header.address_family {
            AddressFamily::Inet => true,
            AddressFamily::Inet6 => false,
            _ => return None,
        };
        let len = m.header.destination_prefix_length;
        let mut dst: Option<IpAddr> = None;
        let mut r = Route::new(IpNet::default(), u32::from(m.header.table));
        r.scope = m.header.scope.into();
        r.protocol = m.header.protocol.into();
        r.kind = m.header.kind.into();
        r.tos = m.header.tos;
        for a in &m.attributes {
            match a {
                RouteAttribute::Destination(d) => dst = addr(d),
                RouteAttribute::Gateway(g) => r.gateway = addr(g),
                RouteAttribute::PrefSource(p) => r.prefsrc = addr(p),
                RouteAttribute::Oif(o) => r.oif = Some(*o),
                RouteAttribute::Priority(p) => r.metric = Some(*p),
                RouteAttribute::Table(t) => r.table = *t,
                RouteAttribute::Metrics(ms) => r.metrics = ms.iter().map(Metric::from_attribute).collect(),
                RouteAttribute::Via(_)
                | RouteAttribute::MultiPath(_)
                | RouteAttribute::NhId(_)
                | RouteAttribute::Encap(_)
                | RouteAttribute::EncapType(_)
                | RouteAttribute::NewDestination(_) => r.other_nexthop = true,
                _ => {}
            }
        }
        let dst = dst.unwrap_or(if v4 {
            IpAddr::from([0u8; 4])
        } else {
            IpAddr::from([0u16; 8])
        });
        r.dst = IpNet::new(dst, len).ok()?;
        Some(r)
    }

    fn to_message(&self, delete: bool) -> RouteMessage {
        let mut m = RouteMessage::default();
        let h = &mut m.header;
        h.address_family = family(self.dst.addr());
        h.destination_prefix_length = self.dst.prefix_len();
        // Tables above 255 only fit in RTA_TABLE; the header gets the compat id.
        h.table = u8::try_from(self.table).unwrap_or(RT_TABLE_COMPAT);
        h.tos = self.tos;
        if delete {
            // Lenient on what the caller may not know: any scope and type.
            // The protocol is kept: of two routes that differ only in who
            // made them, the delete takes the one named (0 matches any).
            h.scope = RT_SCOPE_NOWHERE.into();
            h.protocol = self.protocol.into();
        } else {
            h.scope = self.scope.into();
            h.protocol = if self.protocol == 0 {
                RTPROT_BOOT
            } else {
                self.protocol
            }
            .into();
            h.kind = if self.kind == 0 { RTN_UNICAST } else { self.kind }.into();
        }
        let a = &mut m.attributes;
        a.push(RouteAttribute::Table(self.table));
        if self.dst.prefix_len() > 0 {
            a.push(RouteAttribute::Destination(self.dst.addr().into()));
        }
        if let Some(g) = self.gateway {
            a.push(RouteAttribute::Gateway(g.into()));
        }
        if let Some(p) = self.prefsrc {
            a.push(RouteAttribute::PrefSource(p.into()));
        }
        if let Some(o) = self.oif {
            a.push(RouteAttribute::Oif(o));
        }
        if let Some(p) = self.metric {
            a.push(RouteAttribute::Priority(p));
        }
        // A delete without metrics matches the route whatever its metrics.
        if !delete && !self.metrics.is_empty() {
            a.push(RouteAttribute::Metrics(
                self.metrics.iter().map(Metric::to_attribute).collect(),
            ));
        }
        m
    }
}

fn family(a: IpAddr) -> AddressFamily {
    match a {
        IpAddr::V4(_) => AddressFamily::Inet,
        IpAddr::V6(_) => AddressFamily::Inet6,
    }
}

fn addr(a: &RouteAddress) -> Option<IpAddr> {
    match a {
        RouteAddress::Inet(v) => Some(IpAddr::V4(*v)),
        RouteAddress::Inet6(v) => Some(IpAddr::V6(*v)),
        _ => None,
    }
}

impl RouteFilter {
    fn matches(&self, r: &Route) -> bool {
        self.v4.is_none_or(|v4| v4 == r.dst.addr().is_ipv4())
            && self.table.is_none_or(|t| t == r.table)
            && self.oif.is_none_or(|o| Some(o) == r.oif)
    }
}

impl Socket {
    /// Dumped with strict checking, so the kernel filters by family, table
    /// and oif; filtered again here. A table that does not exist yet has no
    /// routes: Ok(empty).
    pub fn routes(&mut self, filter: &RouteFilter) -> Result<Vec<Route>> {
        let mut m = RouteMessage::default();
        m.header.address_family = match filter.v4 {
            None => AddressFamily::Unspec,
            Some(true) => AddressFamily::Inet,
            Some(false) => AddressFamily::Inet6,
        };
        if let Some(t) = filter.table {
            m.header.table = u8::try_from(t).unwrap_or(0);
            m.attributes.push(RouteAttribute::Table(t));
        }
        if let Some(o) = filter.oif {
            m.attributes.push(RouteAttribute::Oif(o));
        }
        let op = || match filter.table {
            Some(t) => format!("list routes in table {t}"),
            None => "list routes".to_string(),
        };
        let msgs = match self.dump_typed(RouteNetlinkMessage::GetRoute(m), &op) {
            Ok(m) => m,
            Err(e) if filter.table.is_some() && e.errno() == Some(libc::ENOENT) => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        Ok(msgs
            .iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewRoute(r) => Route::from_message(r),
                _ => None,
            })
            .filter(|r| filter.matches(r))
            .collect())
    }

    /// Refused with "file exists" when the same route is there. IPv6 keeps
    /// one direct route per link for a prefix and metric (every link has its
    /// `fe80::/64`), but only an append adds the second; an append of a
    /// route with a gateway would join it to the first as a multipath route,
    /// so those are added exclusively.
    pub fn add_route(&mut self, route: &Route) -> Result<()> {
        let m = route.to_message(false);
        let flags = if route.dst.addr().is_ipv6() && route.gateway.is_none() {
            NLM_F_CREATE | NLM_F_APPEND
        } else {
            NLM_F_CREATE | NLM_F_EXCL
        };
        self.change(RouteNetlinkMessage::NewRoute(m), flags, &|| {
            format!("add route {}", route.describe())
        })
    }

    /// Added beside a route with the same key, as the kernel adds a
    /// link's prefix route when another link has the same subnet. For
    /// IPv4, and IPv6 without a gateway (an IPv6 route with a gateway would
    /// join the other as a multipath route).
    pub fn append_route(&mut self, route: &Route) -> Result<()> {
        let m = route.to_message(false);
        self.change(
            RouteNetlinkMessage::NewRoute(m),
            NLM_F_CREATE | NLM_F_APPEND,
            &|| format!("append route {}", route.describe()),
        )
    }

    pub fn replace_route(&mut self, route: &Route) -> Result<()> {
        let m = route.to_message(false);
        self.change(
            RouteNetlinkMessage::NewRoute(m),
            NLM_F_CREATE | NLM_F_REPLACE,
            &|| format!("replace route {}", route.describe()),
        )
    }

    /// Ok(false) when there was no such route.
    pub fn delete_route(&mut self, route: &Route) -> Result<bool> {
        let m = route.to_message(true);
        match self.change(RouteNetlinkMessage::DelRoute(m), 0, &|| {
            format!("delete route {}", route.describe())
        }) {
            Ok(()) => Ok(true),
            Err(e) if e.is_not_found() => Ok(false),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cni_testkit::{root_or_skip, Ns};

    /// The kernel answers a v4 dump of a table that does not exist with
    /// ENOENT inside NLMSG_DONE: the socket must report it, not an empty list.
    #[test]
    fn error_in_done_from_the_kernel() {
        if !root_or_skip("error_in_done_from_the_kernel") {
            return;
        }
        let ns = Ns::new("route-done");
        let mut s = ns.inside(crate::Socket::new).expect("netlink socket");
        let mut m = RouteMessage::default();
        m.header.address_family = AddressFamily::Inet;
        m.attributes.push(RouteAttribute::Table(4242));
        let e = s
            .dump_typed(RouteNetlinkMessage::GetRoute(m), &|| {
                "list routes in table 4242".to_string()
            })
            .unwrap_err();
        assert!(e.is_not_found(), "{e}");
        assert!(e.to_string().starts_with("list routes in table 4242"), "{e}");
        // routes() knows that this means "no routes yet".
        let f = RouteFilter {
            v4: Some(true),
            table: Some(4242),
            oif: None,
        };
        assert!(s.routes(&f).unwrap().is_empty());
    }
}
