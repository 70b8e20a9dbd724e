#![allow(clippy::unwrap_used)]
//! Routes against `ip -j route`, each test in its own namespace.

use std::net::IpAddr;

use cni_testkit::Ns;
use nl_ops::route::{Route, RouteFilter, RTN_THROW, RT_SCOPE_LINK, RT_TABLE_MAIN};
use nl_ops::Socket;

/// A namespace with a veth end "eth0" up, holding 10.9.0.2/24 and fd00:9::2/64.
fn setup(tag: &str) -> (Ns, Socket, u32) {
    let ns = Ns::new(tag);
    ns.veth("eth0", "peer0", None);
    ns.ip(&["link", "set", "eth0", "up"]);
    ns.ip(&["link", "set", "peer0", "up"]);
    ns.ip(&["addr", "add", "10.9.0.2/24", "dev", "eth0"]);
    ns.ip(&["addr", "add", "fd00:9::2/64", "dev", "eth0", "nodad"]);
    let s = ns.inside(nl_ops::Socket::new).expect("netlink socket");
    let idx = ns.ifindex("eth0");
    (ns, s, idx)
}

fn filter(v4: Option<bool>, table: Option<u32>, oif: Option<u32>) -> RouteFilter {
    RouteFilter { v4, table, oif }
}

/// `ip -j route show table t`'s routes.
fn in_table(ns: &Ns, t: &str) -> Vec<serde_json::Value> {
    let j = ns.ip_json(&["route", "show", "table", t]);
    j.as_array().cloned().unwrap_or_default()
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

#[test]
fn v4_default_route_in_table_100_round_trip() {
    cni_testkit::need_root!("v4_default_route_in_table_100_round_trip");
    let (ns, mut s, idx) = setup("route-v4");
    let mut r = Route::new("0.0.0.0/0".parse().unwrap(), 100);
    r.gateway = Some(ip("10.9.0.1"));
    r.oif = Some(idx);
    s.add_route(&r).unwrap();
    let j = in_table(&ns, "100");
    assert_eq!(j.len(), 1, "{j:?}");
    assert_eq!(j[0]["dst"], "default");
    assert_eq!(j[0]["gateway"], "10.9.0.1");
    assert_eq!(j[0]["dev"], "eth0");

    let got = s.routes(&filter(Some(true), Some(100), None)).unwrap();
    assert_eq!(got, vec![r.clone()]);

    let e = s.add_route(&r).unwrap_err();
    assert!(e.is_exists(), "{e}");
    assert_eq!(
        e.to_string(),
        format!("add route default via 10.9.0.1 dev {idx} table 100: file exists")
    );

    // Replace changes the gateway in place.
    let mut r2 = r.clone();
    r2.gateway = Some(ip("10.9.0.254"));
    s.replace_route(&r2).unwrap();
    let j = in_table(&ns, "100");
    assert_eq!(j.len(), 1, "{j:?}");
    assert_eq!(j[0]["gateway"], "10.9.0.254");

    assert!(s.delete_route(&r2).unwrap());
    assert!(!s.delete_route(&r2).unwrap());
    assert!(in_table(&ns, "100").is_empty());
    // The table is gone now: an empty list, not an error.
    assert!(s.routes(&filter(Some(true), Some(100), None)).unwrap().is_empty());
}

#[test]
fn table_above_255_round_trip() {
    cni_testkit::need_root!("table_above_255_round_trip");
    let (ns, mut s, idx) = setup("route-big");
    let mut link = Route::new("10.9.0.0/24".parse().unwrap(), 1000);
    link.oif = Some(idx);
    link.scope = RT_SCOPE_LINK;
    link.prefsrc = Some(ip("10.9.0.2"));
    let mut def = Route::new("0.0.0.0/0".parse().unwrap(), 1000);
    def.gateway = Some(ip("10.9.0.1"));
    def.oif = Some(idx);
    def.metric = Some(50);
    s.add_route(&link).unwrap();
    s.add_route(&def).unwrap();
    let j = in_table(&ns, "1000");
    assert_eq!(j.len(), 2, "{j:?}");
    let mut got = s.routes(&filter(Some(true), Some(1000), None)).unwrap();
    got.sort_by_key(|r| r.dst.prefix_len());
    assert_eq!(got, vec![def.clone(), link.clone()]);
    // Nothing of table 1000 leaks into main, and main is filtered by the kernel too.
    let main = s
        .routes(&filter(Some(true), Some(RT_TABLE_MAIN), Some(idx)))
        .unwrap();
    assert!(main
        .iter()
        .all(|r| r.table == RT_TABLE_MAIN && r.oif == Some(idx)));
    assert!(
        main.iter().any(|r| r.dst.to_string() == "10.9.0.0/24"),
        "{main:?}"
    );
    // Every table: both show up with their real table.
    let all = s.routes(&RouteFilter::default()).unwrap();
    assert_eq!(all.iter().filter(|r| r.table == 1000).count(), 2);
    assert!(s.delete_route(&def).unwrap());
    assert!(s.delete_route(&link).unwrap());
    assert!(in_table(&ns, "1000").is_empty());
}

#[test]
fn v6_routes_and_oif_filter() {
    cni_testkit::need_root!("v6_routes_and_oif_filter");
    let (ns, mut s, idx) = setup("route-v6");
    let mut r = Route::new("fd00:77::/64".parse().unwrap(), 200);
    r.gateway = Some(ip("fd00:9::1"));
    r.oif = Some(idx);
    r.metric = Some(1024);
    s.add_route(&r).unwrap();
    let j = ns.ip_json(&["-6", "route", "show", "table", "200"]);
    assert_eq!(j[0]["dst"], "fd00:77::/64");
    assert_eq!(j[0]["gateway"], "fd00:9::1");
    let got = s.routes(&filter(Some(false), Some(200), Some(idx))).unwrap();
    assert_eq!(got, vec![r.clone()]);
    // No v4 routes in table 200, and none on another oif.
    assert!(s.routes(&filter(Some(true), Some(200), None)).unwrap().is_empty());
    let lo = ns.ifindex("lo");
    assert!(s
        .routes(&filter(Some(false), Some(200), Some(lo)))
        .unwrap()
        .is_empty());
    // Main table: the connected v6 route of eth0 is there, as the kernel made it.
    let main = s
        .routes(&filter(Some(false), Some(RT_TABLE_MAIN), Some(idx)))
        .unwrap();
    assert!(
        main.iter()
            .any(|r| r.dst.to_string() == "fd00:9::/64" && r.protocol == 2),
        "{main:?}"
    );
    assert!(s.delete_route(&r).unwrap());
    assert!(!s.delete_route(&r).unwrap());
}

#[test]
fn bad_gateway_is_a_kernel_error_naming_the_route() {
    cni_testkit::need_root!("bad_gateway_is_a_kernel_error_naming_the_route");
    let (_ns, mut s, idx) = setup("route-bad");
    let mut r = Route::new("10.50.0.0/16".parse().unwrap(), 100);
    r.gateway = Some(ip("192.0.2.1"));
    r.oif = Some(idx);
    let e = s.add_route(&r).unwrap_err();
    assert!(e.errno().is_some(), "{e:?}");
    assert!(!e.is_exists() && !e.is_not_found(), "{e:?}");
    assert!(
        e.to_string().starts_with("add route 10.50.0.0/16 via 192.0.2.1"),
        "{e}"
    );
}

#[test]
fn large_dump_spans_many_datagrams() {
    cni_testkit::need_root!("large_dump_spans_many_datagrams");
    let (ns, mut s, _idx) = setup("route-many");
    let batch: String = (0..3000)
        .map(|i| {
            format!(
                "route add 10.{}.{}.0/24 via 10.9.0.1 table 300\n",
                100 + i / 256,
                i % 256
            )
        })
        .collect();
    let file = std::env::temp_dir().join(format!("nl-ops-batch-{}-{}", std::process::id(), ns.name));
    std::fs::write(&file, batch).unwrap();
    ns.ip(&["-batch", file.to_str().unwrap()]);
    std::fs::remove_file(&file).unwrap();
    let got = s.routes(&filter(Some(true), Some(300), None)).unwrap();
    assert_eq!(got.len(), 3000);
    assert!(got
        .iter()
        .all(|r| r.table == 300 && r.gateway == Some(ip("10.9.0.1"))));
}

/// A delete names the protocol of the route it means: a route with the same
/// destination but made by someone else (another protocol) stays.
#[test]
fn delete_names_the_protocol() {
    cni_testkit::need_root!("delete_names_the_protocol");
    for (tag, dst, gw) in [
        ("v4", "10.77.0.0/16", "10.9.0.1"),
        ("v6", "fd00:77::/64", "fd00:9::1"),
    ] {
        let (ns, mut s, idx) = setup(&format!("route-proto-{tag}"));
        let mut theirs = Route::new(dst.parse().unwrap(), 100);
        theirs.gateway = Some(ip(gw));
        theirs.oif = Some(idx);
        theirs.protocol = 4; // static
        s.add_route(&theirs).unwrap();
        let mut ours = theirs.clone();
        ours.protocol = 83;
        assert!(
            !s.delete_route(&ours).unwrap(),
            "{tag}: deleted the other protocol's route"
        );
        let left = s.routes(&filter(None, Some(100), None)).unwrap();
        assert_eq!(left.len(), 1, "{tag}: {left:?}");
        assert_eq!(left[0].protocol, 4);
        assert!(s.delete_route(&theirs).unwrap());
        drop(ns);
    }
}

/// IPv6 keeps one direct route per link for a prefix and metric: the second
/// link's goes in beside the first; the same route twice, and a route with a
/// gateway beside another link's, are "file exists" (never multipath).
#[test]
fn ipv6_direct_routes_per_link() {
    cni_testkit::need_root!("ipv6_direct_routes_per_link");
    let (ns, mut s, idx) = setup("route-v6link");
    ns.veth("eth1", "peer1", None);
    ns.ip(&["link", "set", "eth1", "up"]);
    let idx1 = ns.ifindex("eth1");
    let mut a = Route::new("fd00:77::/64".parse().unwrap(), RT_TABLE_MAIN);
    a.oif = Some(idx);
    let b = Route {
        oif: Some(idx1),
        ..a.clone()
    };
    s.add_route(&a).unwrap();
    s.add_route(&b).unwrap();
    assert!(s.add_route(&b).unwrap_err().is_exists());
    let mut g = Route::new("fd00:78::/64".parse().unwrap(), RT_TABLE_MAIN);
    g.gateway = Some(ip("fd00:9::1"));
    g.oif = Some(idx);
    s.add_route(&g).unwrap();
    let mut g1 = g.clone();
    g1.oif = Some(idx1);
    g1.gateway = Some(ip("fe80::1"));
    assert!(s.add_route(&g1).unwrap_err().is_exists());
    let j = ns.ip_json(&["-6", "route", "show", "fd00:78::/64"]);
    assert!(j[0]["nexthops"].is_null(), "became multipath: {j}");
}

/// RTA_METRICS come with the dump and go back with the add: a route moved
/// to another table and back is the route it was (`mtu lock`, `advmss`,
/// `initcwnd`, the `congctl` string), in both families.
#[test]
fn metrics_round_trip() {
    cni_testkit::need_root!("metrics_round_trip");
    let (ns, mut s, idx) = setup("route-mtu");
    ns.ip_line(
        "route add 10.50.0.0/16 via 10.9.0.1 dev eth0 mtu lock 1400 advmss 1360 initcwnd 10 congctl cubic",
    );
    ns.ip_line("-6 route add fd00:50::/64 via fd00:9::1 dev eth0 mtu 1300");
    for (v4, fam, dst, mtu) in [
        (true, "-4", "10.50.0.0/16", 1400),
        (false, "-6", "fd00:50::/64", 1300),
    ] {
        let f = RouteFilter {
            v4: Some(v4),
            table: Some(RT_TABLE_MAIN),
            oif: Some(idx),
        };
        let find = |s: &mut Socket, table: u32| {
            s.routes(&RouteFilter {
                table: Some(table),
                ..f.clone()
            })
            .unwrap()
            .into_iter()
            .find(|r| r.dst == dst.parse().unwrap())
        };
        let r = find(&mut s, RT_TABLE_MAIN).unwrap();
        assert_eq!(r.mtu(), Some(mtu), "{r:?}");
        assert!(r.describe().contains(&format!("mtu {mtu}")), "{}", r.describe());
        if v4 {
            let kinds: Vec<u16> = r.metrics.iter().map(|m| m.kind).collect();
            // lock, mtu, advmss, initcwnd, congctl (RTAX_* 1, 2, 8, 11, 16).
            assert_eq!(kinds, [1, 2, 8, 11, 16], "{r:?}");
        }
        let before = ns.ip_json(&[fam, "route", "show", dst]);
        assert!(s.delete_route(&r).unwrap());
        let moved = Route {
            table: 100,
            ..r.clone()
        };
        s.add_route(&moved).unwrap();
        assert_eq!(find(&mut s, 100), Some(moved.clone()));
        let in100 = ns.ip_json(&[fam, "route", "show", "table", "100", dst]);
        assert_eq!(in100[0]["metrics"], before[0]["metrics"], "{in100} {before}");
        assert!(s.delete_route(&moved).unwrap());
        s.add_route(&r).unwrap();
        assert_eq!(ns.ip_json(&[fam, "route", "show", dst]), before);
        assert_eq!(find(&mut s, RT_TABLE_MAIN), Some(r));
    }
}

/// What a route is beyond oif and gateway shows in the dump: the tos (part
/// of the key: a delete names it) and a next hop this struct cannot send
/// back (via another family, multipath).
#[test]
fn tos_and_other_nexthops_from_dumps() {
    cni_testkit::need_root!("tos_and_other_nexthops_from_dumps");
    let (ns, mut s, idx) = setup("route-tos");
    ns.ip(&["route", "add", "10.60.0.0/16", "via", "10.9.0.1", "dev", "eth0"]);
    ns.ip_line("route add 10.60.0.0/16 tos 0x10 via 10.9.0.1 dev eth0");
    ns.ip_line("route add 10.70.0.0/16 via inet6 fd00:9::1 dev eth0");
    ns.ip_line("route add 10.80.0.0/16 nexthop via 10.9.0.1 dev eth0 nexthop via 10.9.0.3 dev eth0");
    let all = s.routes(&filter(Some(true), Some(RT_TABLE_MAIN), None)).unwrap();
    let of = |dst: &str| -> Vec<&Route> { all.iter().filter(|r| r.dst == dst.parse().unwrap()).collect() };
    let tos: Vec<u8> = of("10.60.0.0/16").iter().map(|r| r.tos).collect();
    assert_eq!(tos.len(), 2, "{all:?}");
    assert!(tos.contains(&0) && tos.contains(&0x10), "{tos:?}");
    assert!(of("10.60.0.0/16").iter().all(|r| !r.other_nexthop));
    let via = of("10.70.0.0/16");
    assert!(
        via[0].other_nexthop && via[0].gateway.is_none() && via[0].oif == Some(idx),
        "{via:?}"
    );
    let multi = of("10.80.0.0/16");
    assert!(multi[0].other_nexthop && multi[0].oif.is_none(), "{multi:?}");
    // The delete names the tos: the tos 0x10 route goes, its twin stays.
    let with_tos = (*of("10.60.0.0/16").iter().find(|r| r.tos == 0x10).unwrap()).clone();
    assert!(s.delete_route(&with_tos).unwrap());
    let left = ns.ip(&["route", "show", "10.60.0.0/16"]);
    assert!(
        !left.contains("tos") && left.contains("10.60.0.0/16 via 10.9.0.1"),
        "{left}"
    );
}

/// An IPv4 direct route goes in beside another link's with the same key
/// only as an append (as the kernel adds prefix routes of a subnet two
/// links share); a throw route (sbr's marker) round-trips with its protocol
/// and metric, and the kernel reports an IPv6 one on `lo`.
#[test]
fn append_beside_another_link_and_throw_routes() {
    cni_testkit::need_root!("append_beside_another_link_and_throw_routes");
    let (ns, mut s, idx) = setup("route-append");
    ns.veth("eth1", "peer1", None);
    ns.ip(&["link", "set", "eth1", "up"]);
    let idx1 = ns.ifindex("eth1");
    // eth0's kernel route holds 10.9.0.0/24 metric 0.
    let mut b = Route::new("10.9.0.0/24".parse().unwrap(), RT_TABLE_MAIN);
    b.oif = Some(idx1);
    b.scope = RT_SCOPE_LINK;
    assert!(s.add_route(&b).unwrap_err().is_exists());
    s.append_route(&b).unwrap();
    let both = s
        .routes(&filter(Some(true), Some(RT_TABLE_MAIN), None))
        .unwrap()
        .into_iter()
        .filter(|r| r.dst == b.dst)
        .map(|r| r.oif)
        .collect::<Vec<_>>();
    assert_eq!(both, [Some(idx), Some(idx1)]);
    for (dst, v4) in [("10.9.0.0/24", true), ("fd00:9::/64", false)] {
        let mut t = Route::new(dst.parse().unwrap(), 100);
        t.kind = RTN_THROW;
        t.protocol = 83;
        t.metric = Some(1 << 31);
        s.add_route(&t).unwrap();
        let got = s.routes(&filter(Some(v4), Some(100), None)).unwrap();
        assert_eq!(got.len(), 1, "{got:?}");
        assert_eq!(
            (got[0].kind, got[0].protocol, got[0].metric),
            (RTN_THROW, 83, Some(1 << 31))
        );
        assert_eq!(got[0].oif.is_some(), !v4, "{got:?}");
        assert!(s.delete_route(&t).unwrap());
    }
}
