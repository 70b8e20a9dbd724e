#![allow(clippy::unwrap_used)]
//! Rules against `ip -j rule`, each test in its own namespace.

use cni_testkit::Ns;
use nl_ops::rule::{Rule, RuleFilter, FR_ACT_TO_TBL};

fn rule(src: &str, table: u32, priority: Option<u32>) -> Rule {
    let src: ipnet::IpNet = src.parse().unwrap();
    Rule {
        v4: src.addr().is_ipv4(),
        src: Some(src),
        table,
        priority,
        action: FR_ACT_TO_TBL,
        protocol: 0,
        other_selectors: false,
    }
}

#[test]
fn add_dump_filter_delete() {
    cni_testkit::need_root!("add_dump_filter_delete");
    let ns = Ns::new("rule-basic");
    let mut s = ns.inside(nl_ops::Socket::new).expect("netlink socket");
    let a = rule("10.1.0.2/32", 100, Some(1000));
    let b = rule("10.1.0.3/32", 300, None);
    let c = rule("fd00:1::2/128", 100, Some(1000));
    s.add_rule(&a).unwrap();
    s.add_rule(&b).unwrap();
    s.add_rule(&c).unwrap();

    let j = ns.ip_json(&["rule", "show"]);
    let ours: Vec<_> = j
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["src"] == "10.1.0.2")
        .collect();
    assert_eq!(ours.len(), 1, "{j}");
    assert_eq!(ours[0]["table"], "100");
    assert_eq!(ours[0]["priority"], 1000);
    let big: Vec<_> = j
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["src"] == "10.1.0.3")
        .collect();
    assert_eq!(big[0]["table"], "300");
    let j6 = ns.ip_json(&["-6", "rule", "show"]);
    assert!(
        j6.as_array()
            .unwrap()
            .iter()
            .any(|r| r["src"] == "fd00:1::2" && r["table"] == "100"),
        "{j6}"
    );

    // Filters: by table, source, family, priority.
    let by_table = s
        .rules(&RuleFilter {
            table: Some(100),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(by_table.len(), 2);
    assert!(by_table.contains(&a) && by_table.contains(&c));
    let v4_100 = s
        .rules(&RuleFilter {
            v4: Some(true),
            table: Some(100),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(v4_100, vec![a.clone()]);
    let by_src = s
        .rules(&RuleFilter {
            src: b.src,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(by_src.len(), 1);
    assert_eq!(by_src[0].table, 300);
    assert!(by_src[0].priority.is_some());
    let by_prio = s
        .rules(&RuleFilter {
            priority: Some(1000),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(by_prio.len(), 2);
    // The default rules are there, unfiltered.
    let all = s.rules(&RuleFilter::default()).unwrap();
    assert!(
        all.iter()
            .any(|r| r.table == 255 && r.priority == Some(0) && r.src.is_none()),
        "{all:?}"
    );
    assert!(all.iter().any(|r| r.table == 254 && r.priority == Some(32766)));

    // Same rule again: exists.
    let e = s.add_rule(&a).unwrap_err();
    assert!(e.is_exists(), "{e}");
    assert_eq!(
        e.to_string(),
        "add rule from 10.1.0.2/32 table 100 priority 1000: file exists"
    );

    assert!(s.delete_rule(&a).unwrap());
    assert!(!s.delete_rule(&a).unwrap());
    assert!(s.delete_rule(&rule("10.1.0.3/32", 300, None)).unwrap());
    assert!(s.delete_rule(&c).unwrap());
    let j = ns.ip_json(&["rule", "show"]);
    assert!(!j
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r["src"] == "10.1.0.2" || r["src"] == "10.1.0.3"));
    assert!(s
        .rules(&RuleFilter {
            table: Some(100),
            ..Default::default()
        })
        .unwrap()
        .is_empty());
}

#[test]
fn rule_routes_traffic_by_source() {
    cni_testkit::need_root!("rule_routes_traffic_by_source");
    let ns = Ns::new("rule-lookup");
    ns.veth("eth0", "peer0", None);
    ns.ip(&["link", "set", "eth0", "up"]);
    ns.ip(&["addr", "add", "10.7.0.2/24", "dev", "eth0"]);
    ns.ip_line("route add default via 10.7.0.9 dev eth0 table 123");
    let mut s = ns.inside(nl_ops::Socket::new).expect("netlink socket");
    s.add_rule(&rule("10.7.0.2/32", 123, Some(500))).unwrap();
    // The rule has action to-table: the lookup goes to table 123, not a black hole.
    let j = ns.ip_json(&["route", "get", "192.0.2.7", "from", "10.7.0.2"]);
    assert_eq!(j[0]["gateway"], "10.7.0.9", "{j}");
}

/// What a plugin needs to tell its own rule from the reference's and from
/// anyone else's: the protocol it was made with, and whether it selects on
/// more than its source.
#[test]
fn protocol_and_other_selectors_from_dumps() {
    cni_testkit::need_root!("protocol_and_other_selectors_from_dumps");
    let ns = Ns::new("rule-owner");
    let mut s = ns.inside(nl_ops::Socket::new).expect("netlink socket");
    let mut marked = rule("10.1.0.2/32", 100, Some(500));
    marked.protocol = 83;
    s.add_rule(&marked).unwrap();
    let j = ns.ip_json(&["rule", "show", "pref", "500"]);
    assert_eq!(j[0]["protocol"], "83", "{j}");

    let foreign: &[&[&str]] = &[
        &[
            "from",
            "10.1.0.2",
            "to",
            "198.51.100.0/24",
            "lookup",
            "200",
            "pref",
            "600",
        ],
        &["from", "10.1.0.2", "iif", "lo", "lookup", "200", "pref", "601"],
        &[
            "from", "10.1.0.2", "fwmark", "0x1", "lookup", "200", "pref", "602",
        ],
        &["not", "from", "10.1.0.2", "lookup", "200", "pref", "603"],
        &["from", "10.1.0.2", "tos", "0x10", "lookup", "200", "pref", "604"],
        &[
            "from", "10.1.0.2", "ipproto", "tcp", "lookup", "200", "pref", "605",
        ],
        &[
            "from", "10.1.0.2", "uidrange", "1-2", "lookup", "200", "pref", "606",
        ],
    ];
    for args in foreign {
        let mut a = vec!["rule", "add"];
        a.extend_from_slice(args);
        ns.ip(&a);
    }
    ns.ip(&["rule", "add", "from", "10.1.0.2", "lookup", "200", "pref", "607"]);
    let dumped = s.rules(&RuleFilter::default()).unwrap();
    let by_prio = |p: u32| dumped.iter().find(|r| r.priority == Some(p)).unwrap();
    assert_eq!(by_prio(500), &marked);
    for p in 600..=606 {
        assert!(by_prio(p).other_selectors, "{:?}", by_prio(p));
    }
    // What the reference and `ip rule add` make: source and table only.
    let plain = by_prio(607);
    assert!(!plain.other_selectors, "{plain:?}");
    assert_eq!(plain.protocol, 0);
    // The kernel's own rules select nothing either.
    assert!(dumped
        .iter()
        .filter(|r| r.src.is_none() && r.priority != Some(603))
        .all(|r| !r.other_selectors));

    // A delete that names the protocol leaves an unmarked twin alone.
    let mut twin = marked.clone();
    twin.protocol = 0;
    twin.priority = Some(700);
    s.add_rule(&twin).unwrap();
    let mut del = marked.clone();
    del.priority = None;
    assert!(s.delete_rule(&del).unwrap());
    let left = s
        .rules(&RuleFilter {
            table: Some(100),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(left, vec![twin]);
}
