#![allow(clippy::unwrap_used)]

use cni_core::{Code, NetResult};
use nl_ops::route::{Metric, RTAX_MTU, RT_SCOPE_UNIVERSE};
use nl_ops::rule::Rule;
use serde_json::json;

use super::sim::*;
use super::*;
use crate::config::Config;
#[test]
fn single_ipv4_golden() {
    let plan = plan_add(
        &Config::default(),
        &[addr("10.1.0.2/24", Some("10.1.0.1"))],
        &snap(),
    )
    .unwrap();
    assert_eq!(
        lines(&plan),
        [
            "add rule from 10.1.0.2/32 to table 100",
            "add route 10.1.0.0/24 dev net1 src 10.1.0.2 scope link to table 100",
            // Each copy's marker, metric 0 + 2^31: DEL gives back the marked.
            "add route throw 10.1.0.0/24 metric 2147483648 to table 100",
            "add route default via 10.1.0.1 dev net1 to table 100",
            "add route 10.9.0.0/16 via 10.1.0.1 dev net1 to table 100",
            "add route throw 10.9.0.0/16 metric 2147483648 to table 100",
            // Via-gateway routes leave first: undone, their gateway's route comes back first.
            "delete route 10.9.0.0/16 via 10.1.0.1 dev net1 from table main",
            "delete route 10.1.0.0/24 dev net1 src 10.1.0.2 scope link from table main",
        ]
    );
    // The default route is the reference's (scope global, no metric) with
    // sbr's mark, as the rule: DEL knows them as sbr's.
    let Change::AddRoute(d) = &plan.steps[3].change else {
        panic!()
    };
    assert_eq!(
        (d.protocol, d.scope, d.metric, d.oif),
        (RTPROT_SBR, RT_SCOPE_UNIVERSE, None, Some(NET1))
    );
    let Change::AddRule(r) = &plan.steps[0].change else {
        panic!()
    };
    assert_eq!((r.protocol, r.other_selectors), (RTPROT_SBR, false));
    // Copies keep the kernel route's protocol.
    let Change::AddRoute(s) = &plan.steps[1].change else {
        panic!()
    };
    assert_eq!(s.protocol, RTPROT_KERNEL);
    let Change::AddRoute(m) = &plan.steps[2].change else {
        panic!()
    };
    assert_eq!(
        (m.kind, m.protocol, m.oif, m.metric),
        (RTN_THROW, RTPROT_SBR, None, Some(MARKER_OFFSET))
    );
    // The IPv6 link-local route stays in main: no IPv6 address here.
    assert!(!lines(&plan).iter().any(|l| l.contains("fe80")));
}

#[test]
fn tables_taken_by_rules_or_routes_are_skipped() {
    let mut o = snap();
    o.rules.push(rule(true, Some("192.168.0.0/16"), 100, 1000));
    o.routes
        .push(route("192.168.0.0/16", Some("10.0.0.1"), None, ETH0, 101));
    o.rules.push(rule(false, Some("fd00::/8"), 102, 1001));
    let plan = plan_add(&Config::default(), &[addr("10.1.0.2/24", Some("10.1.0.1"))], &o).unwrap();
    assert_eq!(lines(&plan)[0], "add rule from 10.1.0.2/32 to table 103");
}

#[test]
fn several_addresses_get_one_table_each() {
    let mut o = snap();
    o.rules.push(rule(true, Some("192.168.0.0/16"), 101, 1000));
    let a = [
        addr("10.1.0.2/24", Some("10.1.0.1")),
        addr("10.1.0.3/24", Some("10.1.0.1")),
    ];
    let plan = plan_add(&Config::default(), &a, &o).unwrap();
    let l = lines(&plan);
    assert_eq!(l[0], "add rule from 10.1.0.2/32 to table 100");
    assert_eq!(l[6], "add rule from 10.1.0.3/32 to table 102");
    // Both tables get the subnet, default and via-gateway routes and the
    // copies' markers; main loses them once.
    assert_eq!(l.iter().filter(|x| x.contains("to table 102")).count(), 6);
    assert_eq!(l.iter().filter(|x| x.starts_with("delete")).count(), 2);
}

#[test]
fn dual_stack_routes_by_family() {
    let mut o = snap();
    o.link_addresses.push(net("2001:db8::2/64"));
    o.routes.push(route("2001:db8::/64", None, None, NET1, 254));
    o.routes
        .push(route("default6", Some("2001:db8::1"), None, NET1, 254));
    let a = [
        addr("10.1.0.2/24", Some("10.1.0.1")),
        addr("2001:db8::2/64", Some("2001:db8::1")),
    ];
    let plan = plan_add(&Config::default(), &a, &o).unwrap();
    assert_eq!(
        lines(&plan),
        [
            "add rule from 10.1.0.2/32 to table 100",
            "add route 10.1.0.0/24 dev net1 src 10.1.0.2 scope link to table 100",
            "add route throw 10.1.0.0/24 metric 2147483648 to table 100",
            "add route default via 10.1.0.1 dev net1 to table 100",
            "add route 10.9.0.0/16 via 10.1.0.1 dev net1 to table 100",
            "add route throw 10.9.0.0/16 metric 2147483648 to table 100",
            "add rule from 2001:db8::2/128 to table 101",
            "add route fe80::/64 dev net1 metric 256 to table 101",
            "add route throw fe80::/64 metric 2147483904 to table 101",
            "add route 2001:db8::/64 dev net1 metric 256 to table 101",
            "add route throw 2001:db8::/64 metric 2147483904 to table 101",
            // The main table's default (metric 1024) replaces ours: same key.
            "add route default via 2001:db8::1 dev net1 metric 1024 to table 101",
            "add route throw default metric 2147484672 to table 101",
            "delete route 10.9.0.0/16 via 10.1.0.1 dev net1 from table main",
            "delete route default via 2001:db8::1 dev net1 metric 1024 from table main",
            "delete route 10.1.0.0/24 dev net1 src 10.1.0.2 scope link from table main",
            "delete route fe80::/64 dev net1 metric 256 from table main",
            "delete route 2001:db8::/64 dev net1 metric 256 from table main",
        ]
    );
}

#[test]
fn static_gateway_wins_per_family() {
    let c = cfg(json!({"gateways": ["10.1.0.254", "2001:db8::fe"]}));
    let a = [
        addr("10.1.0.2/24", Some("10.1.0.1")),
        addr("2001:db8::2/64", None),
    ];
    let plan = plan_add(&c, &a, &snap()).unwrap();
    let l = lines(&plan);
    assert!(
        l.contains(&"add route default via 10.1.0.254 dev net1 to table 100".to_string()),
        "{l:#?}"
    );
    assert!(
        l.contains(&"add route default via 2001:db8::fe dev net1 to table 101".to_string()),
        "{l:#?}"
    );
    assert!(!l.iter().any(|x| x.contains("default via 10.1.0.1 ")));
}

#[test]
fn mains_default_on_the_link_wins_over_a_static_gateway_as_in_the_reference() {
    // The reference adds the static default, then replaces it with the copy
    // of main's default: so does sbr, and DEL gives main exactly its default.
    let c = cfg(json!({"gateways": ["10.1.0.254"]}));
    let a = [addr("10.1.0.2/24", Some("10.1.0.1"))];
    let mut o = snap();
    o.routes.retain(|r| r.oif != Some(ETH0));
    o.routes.push(route("default", Some("10.1.0.1"), None, NET1, 254));
    let plan = plan_add(&c, &a, &o).unwrap();
    let l = lines(&plan);
    assert!(
        l.contains(&"add route default via 10.1.0.1 dev net1 to table 100".to_string()),
        "{l:#?}"
    );
    assert!(!l.iter().any(|x| x.contains("10.1.0.254")), "{l:#?}");
    let added = simulate(&o, &plan);
    assert!(plan_add(&c, &a, &added).unwrap().is_empty());
    let back = simulate(&added, &plan_del(&c, Some(&a), &added));
    assert_eq!(sorted(back), sorted(o));
}

#[test]
fn address_without_gateway_gets_no_default_route() {
    let mut o = snap();
    o.routes.retain(|r| r.oif != Some(NET1) || r.gateway.is_none());
    let plan = plan_add(&Config::default(), &[addr("10.1.0.2/24", None)], &o).unwrap();
    assert_eq!(
        lines(&plan),
        [
            "add rule from 10.1.0.2/32 to table 100",
            "add route 10.1.0.0/24 dev net1 src 10.1.0.2 scope link to table 100",
            "add route throw 10.1.0.0/24 metric 2147483648 to table 100",
            "delete route 10.1.0.0/24 dev net1 src 10.1.0.2 scope link from table main",
        ]
    );
}

#[test]
fn prev_result_default_route_is_the_fallback_gateway() {
    let prev = NetResult::parse(
        "1.0.0",
        &json!({"cniVersion": "1.0.0",
            "interfaces": [{"name": "eth0"}, {"name": "net1"}],
            "ips": [
                {"address": "10.0.0.2/24", "gateway": "10.0.0.1", "interface": 0},
                {"address": "10.1.0.2/24", "interface": 1},
                {"address": "2001:db8::2/64", "gateway": "2001:db8::1"}
            ],
            "routes": [{"dst": "0.0.0.0/0", "gw": "10.1.0.254"}]}),
    )
    .unwrap();
    let a = addresses_from_result(&prev, "net1");
    assert_eq!(
        a,
        [
            Address {
                addr: net("10.1.0.2/24"),
                gateway: Some(ip("10.1.0.254")),
            },
            Address {
                addr: net("2001:db8::2/64"),
                gateway: Some(ip("2001:db8::1")),
            },
        ]
    );
    let own = addresses_from_result(&prev, "eth0");
    assert_eq!(own[0].gateway, Some(ip("10.0.0.1")));
}

/// Go's `*int` index: -1 and an index past the list name no interface, so
/// the address is this attachment's, as the reference takes it.
#[test]
fn negative_or_stray_interface_index_is_no_interface() {
    let prev = NetResult::parse(
        "1.0.0",
        &json!({"cniVersion": "1.0.0",
        "interfaces": [{"name": "eth0"}, {"name": "net1"}],
        "ips": [
            {"address": "10.0.0.2/24", "interface": 0},
            {"address": "10.1.0.2/24", "interface": -1},
            {"address": "10.2.0.2/24", "interface": 7}
        ]}),
    )
    .unwrap();
    let got: Vec<String> = addresses_from_result(&prev, "net1")
        .iter()
        .map(|a| a.addr.to_string())
        .collect();
    assert_eq!(got, ["10.1.0.2/24", "10.2.0.2/24"]);
}

#[test]
fn table_option_only_adds_rules() {
    let c = cfg(json!({"table": 500, "priority": 2000}));
    let a = [
        addr("10.1.0.2/24", Some("10.1.0.1")),
        addr("2001:db8::2/64", None),
    ];
    let plan = plan_add(&c, &a, &snap()).unwrap();
    assert_eq!(
        lines(&plan),
        [
            "add rule from 10.1.0.2/32 to table 500 priority 2000",
            "add rule from 2001:db8::2/128 to table 500 priority 2000"
        ]
    );
    // Works without the link too, as the reference's table mode does.
    let mut o = snap();
    o.link = None;
    assert_eq!(plan_add(&c, &a, &o).unwrap(), plan);
    // And converges.
    let after = simulate(&snap(), &plan);
    assert!(plan_add(&c, &a, &after).unwrap().is_empty());
}

#[test]
fn priority_option_is_on_the_rule() {
    let plan = plan_add(
        &cfg(json!({"priority": 1234})),
        &[addr("10.1.0.2/24", Some("10.1.0.1"))],
        &snap(),
    )
    .unwrap();
    assert_eq!(
        plan.steps[0].change,
        Change::AddRule(sbr_rule(true, "10.1.0.2/32", 100, 1234))
    );
}

#[test]
fn source_hints_keep_the_subnet_route_in_main() {
    let c = cfg(json!({"addSourceHints": true}));
    let plan = plan_add(&c, &[addr("10.1.0.2/24", Some("10.1.0.1"))], &snap()).unwrap();
    let l = lines(&plan);
    assert!(
        !l.contains(&"delete route 10.1.0.0/24 dev net1 src 10.1.0.2 scope link from table main".to_string())
    );
    assert!(l.contains(&"delete route 10.9.0.0/16 via 10.1.0.1 dev net1 from table main".to_string()));
    assert!(l.contains(&"add route 10.1.0.0/24 dev net1 src 10.1.0.2 scope link to table 100".to_string()));
}

#[test]
fn source_hints_replace_a_route_without_hint() {
    let c = cfg(json!({"addSourceHints": true}));
    let mut o = snap();
    o.link_addresses.push(net("2001:db8::2/128"));
    o.routes.push(route("2001:db8::/64", None, None, NET1, 254));
    let plan = plan_add(&c, &[addr("2001:db8::2/64", None)], &o).unwrap();
    assert_eq!(
        lines(&plan),
        [
            "add rule from 2001:db8::2/128 to table 100",
            // The copy of main's route takes the place of the hint's copy.
            "add route 2001:db8::/64 dev net1 metric 256 to table 100",
            "add route throw 2001:db8::/64 metric 2147483904 to table 100",
            "add route fe80::/64 dev net1 metric 256 to table 100",
            "add route throw fe80::/64 metric 2147483904 to table 100",
            "delete route fe80::/64 dev net1 metric 256 from table main",
            "delete route 2001:db8::/64 dev net1 metric 256 from table main",
            "add route 2001:db8::/64 dev net1 src 2001:db8::2 metric 256 to table main",
        ]
    );
}

#[test]
fn add_is_convergent_and_reuses_the_table_of_an_existing_rule() {
    let a = [addr("10.1.0.2/24", Some("10.1.0.1"))];
    let o = snap();
    let first = plan_add(&Config::default(), &a, &o).unwrap();
    let after = simulate(&o, &first);
    assert!(plan_add(&Config::default(), &a, &after).unwrap().is_empty());

    // The reference's rule for this address: its table (with the copy of
    // main's subnet route) is reused.
    let mut o2 = snap();
    o2.rules.push(rule(true, Some("10.1.0.2/32"), 107, 32765));
    o2.routes
        .push(route("10.1.0.0/24", None, Some("10.1.0.2"), NET1, 107));
    let plan = plan_add(&Config::default(), &a, &o2).unwrap();
    assert!(
        lines(&plan).iter().all(|l| !l.contains("add rule")),
        "{:#?}",
        lines(&plan)
    );
    assert!(lines(&plan)
        .iter()
        .any(|l| l == "add route default via 10.1.0.1 dev net1 to table 107"));
}

#[test]
fn sbrs_own_route_with_another_gateway_is_replaced_a_copy_is_kept() {
    let mut o = snap();
    o.rules.push(sbr_rule(true, "10.1.0.2/32", 100, 32765));
    let mut stale = route("default", Some("10.1.0.99"), None, NET1, 100);
    stale.protocol = RTPROT_SBR;
    o.routes.push(stale.clone());
    let a = [addr("10.1.0.2/24", Some("10.1.0.1"))];
    let plan = plan_add(&Config::default(), &a, &o).unwrap();
    let i = plan
        .changes()
        .position(|x| *x == Change::DelRoute(stale.clone()))
        .unwrap();
    assert_eq!(
        lines(&plan)[i + 1],
        "add route default via 10.1.0.1 dev net1 to table 100"
    );
    // Unmarked, it is main's moved default (main had it, the reference
    // keeps it too): it stays for DEL to give back.
    stale.protocol = RTPROT_BOOT;
    o.routes.retain(|r| r.table != 100);
    o.routes.push(stale.clone());
    let plan = plan_add(&Config::default(), &a, &o).unwrap();
    assert!(
        !lines(&plan).iter().any(|l| l.contains("default")),
        "{:#?}",
        lines(&plan)
    );
}

#[test]
fn add_then_del_restores_the_namespace() {
    for (c, a) in [
        (Config::default(), vec![addr("10.1.0.2/24", Some("10.1.0.1"))]),
        (
            cfg(json!({"addSourceHints": true})),
            vec![addr("10.1.0.2/24", Some("10.1.0.1"))],
        ),
        (
            cfg(json!({"table": 300})),
            vec![addr("10.1.0.2/24", Some("10.1.0.1"))],
        ),
        (
            cfg(json!({"addSourceHints": true})),
            vec![
                addr("10.1.0.2/24", Some("10.1.0.1")),
                addr("2001:db8::2/64", Some("2001:db8::1")),
            ],
        ),
    ] {
        let mut o = snap();
        o.link_addresses.push(net("2001:db8::2/64"));
        o.routes.push(route("2001:db8::/64", None, None, NET1, 254));
        let added = simulate(&o, &plan_add(&c, &a, &o).unwrap());
        let del = plan_del(&c, Some(&a), &added);
        let back = simulate(&added, &del);
        assert_eq!(
            sorted(back.clone()),
            sorted(o.clone()),
            "{c:?}\n{:#?}",
            lines(&del)
        );
        // DEL again: nothing left to do.
        assert!(plan_del(&c, Some(&a), &back).is_empty());
    }
}

/// Item 4 of issue 12: DEL gives main what ADD took, whatever the
/// prevResult says about default routes.
#[test]
fn del_gives_back_exactly_what_add_took_whatever_the_prev_result_lists() {
    let with_default = |prev_lists_default: bool| {
        let mut a = addr("10.1.0.2/24", Some("10.1.0.1"));
        if !prev_lists_default {
            a.gateway = None;
        }
        a
    };
    // Main has a default via the link, the prevResult lists no route.
    let mut o = snap();
    o.routes.retain(|r| r.oif != Some(ETH0));
    o.routes.push(route("default", Some("10.1.0.1"), None, NET1, 254));
    let a = [with_default(false)];
    let added = simulate(&o, &plan_add(&Config::default(), &a, &o).unwrap());
    for prev in [Some(&a[..]), None] {
        let back = simulate(&added, &plan_del(&Config::default(), prev, &added));
        assert_eq!(sorted(back), sorted(o.clone()));
    }
    // The prevResult lists 0.0.0.0/0, main had none through the link: the
    // table's default is sbr's and main gets none.
    let mut o = snap();
    o.routes
        .retain(|r| !(r.oif == Some(NET1) && r.dst.prefix_len() == 0));
    let a = [with_default(true)];
    let added = simulate(&o, &plan_add(&Config::default(), &a, &o).unwrap());
    for prev in [Some(&a[..]), None] {
        let del = plan_del(&Config::default(), prev, &added);
        assert!(
            !lines(&del)
                .iter()
                .any(|l| l.contains("default") && l.contains("main")),
            "{:#?}",
            lines(&del)
        );
        assert_eq!(sorted(simulate(&added, &del)), sorted(o.clone()));
    }
}

#[test]
fn del_without_link_or_prev_result_removes_rules_only() {
    let a = [addr("10.1.0.2/24", Some("10.1.0.1"))];
    let o = snap();
    let mut added = simulate(&o, &plan_add(&Config::default(), &a, &o).unwrap());
    // prevResult gone: the link's addresses still name the rule.
    let p = plan_del(&Config::default(), None, &added);
    assert!(matches!(p.steps[0].change, Change::DelRule(_)));
    // Link gone (its routes with it): only the rule.
    added.link = None;
    added.link_addresses.clear();
    added.routes.retain(|r| r.oif != Some(NET1));
    // Only the rule and the markers (they name no link) go.
    let rule_and_markers = [
        "delete rule from 10.1.0.2/32 to table 100 priority 32765",
        "delete route throw 10.1.0.0/24 metric 2147483648 from table 100",
        "delete route throw 10.9.0.0/16 metric 2147483648 from table 100",
    ];
    assert_eq!(
        lines(&plan_del(&Config::default(), Some(&a), &added)),
        rule_and_markers
    );
    // Neither: the markers only, they are in a table no rule uses now.
    let gone = simulate(&added, &plan_del(&Config::default(), Some(&a), &added));
    assert!(plan_del(&Config::default(), None, &gone).is_empty());
}

#[test]
fn del_without_prev_result_gives_main_back_its_default() {
    let a = [addr("10.1.0.2/24", Some("10.1.0.1"))];
    // net1 alone, with main's default through it: it comes back.
    let mut alone = snap();
    alone.routes.retain(|r| r.oif != Some(ETH0));
    alone
        .routes
        .push(route("default", Some("10.1.0.1"), None, NET1, 254));
    let added = simulate(&alone, &plan_add(&Config::default(), &a, &alone).unwrap());
    let back = simulate(&added, &plan_del(&Config::default(), None, &added));
    assert_eq!(sorted(back.clone()), sorted(alone));
    assert!(plan_del(&Config::default(), None, &back).is_empty());
    // net1 beside eth0, which keeps main's default: the table's own
    // default (from the gateway) is not a second one for main.
    let o = snap();
    let added = simulate(&o, &plan_add(&Config::default(), &a, &o).unwrap());
    let del = plan_del(&Config::default(), None, &added);
    assert!(!lines(&del)
        .iter()
        .any(|l| l.contains("default") && l.contains("main")));
    assert_eq!(sorted(simulate(&added, &del)), sorted(o));
}

#[test]
fn del_never_replaces_a_route_of_another_link() {
    // The table's default is sbr's (main's is eth0's): nothing of net1
    // joins main's default.
    let a = [addr("10.1.0.2/24", Some("10.1.0.1"))];
    let o = snap();
    let added = simulate(&o, &plan_add(&Config::default(), &a, &o).unwrap());
    let del = plan_del(&Config::default(), Some(&a), &added);
    assert!(
        !lines(&del)
            .iter()
            .any(|l| l.contains("default") && l.contains("main")),
        "{:#?}",
        lines(&del)
    );
    // A route someone put on eth0 meanwhile keeps its place (first, so it
    // wins lookups); net1's, which ADD moved, goes back beside it.
    let mut moved = added.clone();
    moved
        .routes
        .push(route("10.9.0.0/16", Some("10.0.0.1"), None, ETH0, 254));
    let del = plan_del(&Config::default(), Some(&a), &moved);
    let l = lines(&del);
    assert!(!l
        .iter()
        .any(|l| l.starts_with("delete route 10.9.0.0/16") && l.contains("main")));
    assert!(
        l.contains(&"append route 10.9.0.0/16 via 10.1.0.1 dev net1 to table main".to_string()),
        "{l:#?}"
    );
}

/// What ptp leaves in main for 10.1.0.2/24 via 10.1.0.1: no direct
/// subnet route, a host route to the gateway, the subnet and the
/// default via the gateway.
fn ptp_observed() -> Snapshot {
    let mut o = snap();
    o.routes.retain(|r| r.oif != Some(NET1) || r.dst.addr().is_ipv6());
    o.routes.retain(|r| r.oif != Some(ETH0));
    o.routes
        .push(route("10.1.0.1/32", None, Some("10.1.0.2"), NET1, 254));
    o.routes.push(route(
        "10.1.0.0/24",
        Some("10.1.0.1"),
        Some("10.1.0.2"),
        NET1,
        254,
    ));
    o.routes.push(route("default", Some("10.1.0.1"), None, NET1, 254));
    o
}

#[test]
fn ptp_layout_add_check_del() {
    let a = [addr("10.1.0.2/24", Some("10.1.0.1"))];
    let c = Config::default();
    let o = ptp_observed();
    let plan = plan_add(&c, &a, &o).unwrap();
    assert_eq!(
        lines(&plan),
        [
            "add rule from 10.1.0.2/32 to table 100",
            "add route 10.1.0.1/32 dev net1 src 10.1.0.2 scope link to table 100",
            "add route throw 10.1.0.1/32 metric 2147483648 to table 100",
            "add route default via 10.1.0.1 dev net1 to table 100",
            "add route throw default metric 2147483648 to table 100",
            "add route 10.1.0.0/24 via 10.1.0.1 dev net1 src 10.1.0.2 to table 100",
            "add route throw 10.1.0.0/24 metric 2147483648 to table 100",
            "delete route 10.1.0.0/24 via 10.1.0.1 dev net1 src 10.1.0.2 from table main",
            "delete route default via 10.1.0.1 dev net1 from table main",
            "delete route 10.1.0.1/32 dev net1 src 10.1.0.2 scope link from table main",
        ]
    );
    let added = simulate(&o, &plan);
    check(&c, &a, &added).unwrap();
    // The subnet route via the gateway is what CHECK looks for.
    let mut no_subnet = added.clone();
    no_subnet
        .routes
        .retain(|r| !(r.table == 100 && r.dst == net("10.1.0.0/24")));
    let e = check(&c, &a, &no_subnet).unwrap_err();
    assert_eq!(e.msg, "missing route 10.1.0.0/24 dev net1 in table 100");
    // DEL gives main back what ptp made, with or without prevResult.
    for prev in [Some(&a[..]), None] {
        let back = simulate(&added, &plan_del(&c, prev, &added));
        assert_eq!(sorted(back), sorted(o.clone()), "prev {}", prev.is_some());
    }
}

#[test]
fn del_leaves_tables_other_rules_use() {
    let a = [addr("10.1.0.2/24", Some("10.1.0.1"))];
    let mut o = snap();
    o.rules.push(sbr_rule(true, "10.1.0.2/32", 100, 32765));
    o.rules.push(rule(true, Some("172.16.0.0/12"), 100, 500));
    o.routes
        .push(route("10.1.0.0/24", None, Some("10.1.0.2"), NET1, 100));
    let p = plan_del(&Config::default(), Some(&a), &o);
    assert_eq!(
        lines(&p),
        ["delete rule from 10.1.0.2/32 to table 100 priority 32765"]
    );
}

/// Issue 12: DEL deletes only rules sbr made or the reference's exact shape
/// for a prevResult address; it never empties a foreign table.
#[test]
fn del_leaves_other_tools_rules_and_tables_alone() {
    let a = [addr("10.1.0.2/24", Some("10.1.0.1"))];
    let foreign = |mut r: Rule| {
        r.other_selectors = true;
        r
    };
    let mut o = snap();
    o.link_addresses.push(net("10.1.0.77/24"));
    // Someone's policy for the pod address, with a destination: table 200
    // holds a route through net1 that must not move to main.
    o.rules.push(foreign(rule(true, Some("10.1.0.2/32"), 200, 90)));
    o.routes
        .push(route("198.51.100.0/24", Some("10.1.0.1"), None, NET1, 200));
    // A rule for another address on the link (not in the prevResult).
    o.rules.push(rule(true, Some("10.1.0.77/32"), 201, 91));
    o.routes
        .push(route("203.0.113.0/24", Some("10.1.0.1"), None, NET1, 201));
    // A plain rule for the pod address into a table with a route through
    // another link: not the reference's shape.
    o.rules.push(rule(true, Some("10.1.0.2/32"), 202, 92));
    o.routes
        .push(route("192.0.2.0/24", Some("10.0.0.1"), None, ETH0, 202));
    // Someone else's marked-looking rule for another source.
    o.rules.push(sbr_rule(true, "10.9.9.9/32", 203, 93));
    let before = sorted(o.clone());
    for prev in [Some(&a[..]), None] {
        let p = plan_del(&Config::default(), prev, &o);
        assert!(p.is_empty(), "prev {}: {:#?}", prev.is_some(), lines(&p));
    }
    // ADD does not adopt any of them, and DEL after it restores them all.
    let c = Config::default();
    let plan = plan_add(&c, &a, &o).unwrap();
    assert_eq!(lines(&plan)[0], "add rule from 10.1.0.2/32 to table 100");
    let added = simulate(&o, &plan);
    for prev in [Some(&a[..]), None] {
        let back = simulate(&added, &plan_del(&c, prev, &added));
        assert_eq!(sorted(back), before, "prev {}", prev.is_some());
    }
}

/// A node upgraded in place: DEL removes what the reference's ADD made.
#[test]
fn del_recognises_the_references_rule_and_table() {
    let a = [addr("10.1.0.2/24", Some("10.1.0.1"))];
    let o = ptp_observed();
    // What the reference leaves: plain unmarked rule, copies and its own
    // default (boot) in table 100, main without the link's routes.
    let mut r = o.clone();
    r.rules.push(rule(true, Some("10.1.0.2/32"), 100, 32765));
    for x in o.routes.iter().filter(|x| x.oif == Some(NET1) && is_v4(&x.dst)) {
        r.routes.retain(|y| y != x);
        r.routes.push(Route {
            table: 100,
            ..x.clone()
        });
    }
    let del = plan_del(&Config::default(), Some(&a), &r);
    assert_eq!(
        sorted(simulate(&r, &del)),
        sorted(o.clone()),
        "{:#?}",
        lines(&del)
    );
    // Without a prevResult (issue 20 item 10) the link's addresses name
    // the reference's rule too.
    let mut r_noprev = r.clone();
    r_noprev.link_addresses = vec![net("10.1.0.2/24")];
    assert_eq!(
        sorted(simulate(
            &r_noprev,
            &plan_del(&Config::default(), None, &r_noprev)
        )),
        sorted(Snapshot {
            link_addresses: vec![net("10.1.0.2/24")],
            ..o.clone()
        })
    );
    // ADD over it converges onto the reference's table, CHECK agrees.
    assert!(plan_add(&Config::default(), &a, &r).unwrap().is_empty());
    check(&Config::default(), &a, &r).unwrap();
}

/// Issue 12 item 3: after someone deletes sbr's rule, ADD takes the table
/// up again and DEL gives main its routes back.
#[test]
fn a_table_that_lost_its_rule_is_repaired_by_add_and_emptied_by_del() {
    for (c, o, a) in [
        (
            Config::default(),
            ptp_observed(),
            addr("10.1.0.2/24", Some("10.1.0.1")),
        ),
        (Config::default(), snap(), addr("10.1.0.2/24", None)),
        (
            cfg(json!({"gateways": ["10.1.0.254"]})),
            snap(),
            addr("10.1.0.2/24", None),
        ),
    ] {
        let a = [a];
        let added = simulate(&o, &plan_add(&c, &a, &o).unwrap());
        let mut broken = added.clone();
        broken.rules.retain(|r| r.protocol != RTPROT_SBR);
        let e = check(&c, &a, &broken).unwrap_err();
        assert!(e.msg.contains("missing rule from 10.1.0.2/32"), "{}", e.msg);
        let repair = plan_add(&c, &a, &broken).unwrap();
        assert_eq!(lines(&repair), ["add rule from 10.1.0.2/32 to table 100"]);
        let repaired = simulate(&broken, &repair);
        check(&c, &a, &repaired).unwrap();
        for prev in [Some(&a[..]), None] {
            let back = simulate(&broken, &plan_del(&c, prev, &broken));
            assert_eq!(sorted(back), sorted(o.clone()), "prev {}", prev.is_some());
        }
    }
}

#[test]
fn every_add_step_is_undone_by_its_inverse() {
    let plan = plan_add(
        &Config::default(),
        &[addr("10.1.0.2/24", Some("10.1.0.1"))],
        &snap(),
    )
    .unwrap();
    for s in &plan.steps {
        assert_eq!(s.undo.as_ref(), Some(&s.change.inverse()));
        assert_eq!(s.change.inverse().inverse(), s.change);
    }
    // Every prefix rolled back gives back the snapshot.
    for k in 0..=plan.len() {
        let o = snap();
        let prefix: Plan = plan.steps[..k].iter().cloned().collect();
        let mut undone = simulate_changes(&simulate(&o, &prefix), &rollback_of(&plan, k));
        for r in &mut undone.rules {
            if r.src.is_some() {
                r.priority = None;
            }
        }
        assert_eq!(sorted(undone), sorted(o), "prefix {k}");
    }
}

#[test]
fn missing_link_is_an_error() {
    let mut o = snap();
    o.link = None;
    let e = plan_add(&Config::default(), &[addr("10.1.0.2/24", None)], &o).unwrap_err();
    assert_eq!(e.code, Code::InvalidEnvironment);
    assert!(e.msg.contains("net1"), "{}", e.msg);
}

#[test]
fn check_names_the_missing_piece() {
    let a = [addr("10.1.0.2/24", Some("10.1.0.1"))];
    let o = snap();
    let c = Config::default();
    let e = check(&c, &a, &o).unwrap_err();
    assert!(e.msg.contains("missing rule from 10.1.0.2/32"), "{}", e.msg);
    let added = simulate(&o, &plan_add(&c, &a, &o).unwrap());
    check(&c, &a, &added).unwrap();

    let mut no_default = added.clone();
    no_default
        .routes
        .retain(|r| !(r.table == 100 && r.dst.prefix_len() == 0));
    let e = check(&c, &a, &no_default).unwrap_err();
    assert_eq!(e.msg, "missing route default via 10.1.0.1 dev net1 in table 100");

    let mut no_subnet = added.clone();
    no_subnet
        .routes
        .retain(|r| !(r.table == 100 && r.dst == net("10.1.0.0/24")));
    let e = check(&c, &a, &no_subnet).unwrap_err();
    assert_eq!(e.msg, "missing route 10.1.0.0/24 dev net1 in table 100");

    let mut back_in_main = added.clone();
    back_in_main
        .routes
        .push(route("10.9.0.0/16", Some("10.1.0.1"), None, NET1, 254));
    let e = check(&c, &a, &back_in_main).unwrap_err();
    assert_eq!(
        e.msg,
        "route 10.9.0.0/16 via 10.1.0.1 dev net1 is still in table main"
    );
}

mod props {
    use super::*;
    use proptest::prelude::*;

    /// (address, its gateway) to pick from.
    const POOL: [(&str, &str); 5] = [
        ("10.1.0.2/24", "10.1.0.1"),
        ("10.1.0.3/24", "10.1.0.1"),
        ("10.2.0.2/16", "10.2.0.1"),
        ("2001:db8::2/64", "2001:db8::1"),
        ("2001:db8:1::2/64", "2001:db8:1::1"),
    ];

    #[derive(Debug, Clone)]
    struct Case {
        picked: Vec<usize>,
        own_gw: [bool; 5],
        default_main: [bool; 2],
        extra_via: bool,
        extra_direct: bool,
        ll6: bool,
        hints: bool,
        static_gw: [bool; 2],
        taken: Vec<u32>,
        reuse_rule: bool,
        /// The link has 10.3.0.2/24, not in the prevResult, with its
        /// subnet route and a route via its gateway 10.3.0.1.
        other_address: bool,
        /// A /32 address (10.5.0.7, gateway 169.254.1.1 through a link
        /// route) is in the prevResult too.
        slash32: bool,
    }

    fn case() -> impl Strategy<Value = Case> {
        (
            proptest::sample::subsequence((0..5).collect::<Vec<usize>>(), 1..=3),
            any::<[bool; 5]>(),
            any::<[bool; 2]>(),
            any::<(bool, bool, bool, bool)>(),
            any::<[bool; 2]>(),
            proptest::sample::subsequence(vec![100u32, 101, 102, 104], 0..=3),
            prop::bool::weighted(0.2),
            // Last: the cases of the seeds on file draw as before.
            any::<(bool, bool)>(),
        )
            .prop_map(
                |(
                    picked,
                    own_gw,
                    default_main,
                    (extra_via, extra_direct, ll6, hints),
                    static_gw,
                    taken,
                    reuse_rule,
                    (other_address, slash32),
                )| Case {
                    picked,
                    own_gw,
                    default_main,
                    extra_via,
                    extra_direct,
                    ll6,
                    hints,
                    static_gw,
                    taken,
                    reuse_rule,
                    other_address,
                    slash32,
                },
            )
    }

    fn fam(v4: bool) -> usize {
        usize::from(!v4)
    }

    /// The namespace the main plugin leaves, the addresses and config.
    fn build(c: &Case) -> (Config, Vec<Address>, Snapshot) {
        let mut o = snap();
        o.routes.retain(|r| r.oif != Some(NET1));
        o.link_addresses = c.picked.iter().map(|&i| net(POOL[i].0)).collect();
        if c.ll6 {
            o.link_addresses.push(net("fe80::1/64"));
            o.routes.push(route("fe80::/64", None, None, NET1, 254));
        }
        // prevResult's default route per family: the first address's gateway.
        let mut prev_default: [Option<&str>; 2] = [None, None];
        for &i in &c.picked {
            let v4 = net(POOL[i].0).addr().is_ipv4();
            if c.default_main[fam(v4)] && prev_default[fam(v4)].is_none() {
                prev_default[fam(v4)] = Some(POOL[i].1);
            }
        }
        let mut subnets = Vec::new();
        for &i in &c.picked {
            let a = net(POOL[i].0);
            if subnets.contains(&a.trunc()) {
                continue;
            }
            subnets.push(a.trunc());
            let src = a.addr().to_string();
            let v4 = a.addr().is_ipv4();
            o.routes.push(route(
                &a.trunc().to_string(),
                None,
                v4.then_some(src.as_str()),
                NET1,
                254,
            ));
        }
        if let Some(gw) = prev_default[0] {
            o.routes
                .retain(|r| !(r.table == 254 && r.dst.prefix_len() == 0 && is_v4(&r.dst)));
            o.routes.push(route("default", Some(gw), None, NET1, 254));
        }
        if let Some(gw) = prev_default[1] {
            o.routes.push(route("default6", Some(gw), None, NET1, 254));
        }
        // Via 10.1.0.1: no one's unless an address of 10.1.0.0/24 is picked.
        if c.extra_via {
            o.routes
                .push(route("10.9.0.0/16", Some("10.1.0.1"), None, NET1, 254));
        }
        if c.other_address {
            o.link_addresses.push(net("10.3.0.2/24"));
            o.routes
                .push(route("10.3.0.0/24", None, Some("10.3.0.2"), NET1, 254));
            o.routes
                .push(route("192.0.2.0/24", Some("10.3.0.1"), None, NET1, 254));
        }
        if c.slash32 {
            o.link_addresses.push(net("10.5.0.7/32"));
            o.routes.push(route("169.254.1.1/32", None, None, NET1, 254));
            // Main's default is the /32's unless another address's is there.
            if prev_default[0].is_none() {
                o.routes
                    .retain(|r| !(r.table == 254 && r.dst.prefix_len() == 0 && is_v4(&r.dst)));
                o.routes
                    .push(route("default", Some("169.254.1.1"), None, NET1, 254));
            }
        }
        if c.extra_direct {
            let mut r = route("10.50.0.0/16", None, None, NET1, 254);
            r.protocol = RTPROT_BOOT;
            o.routes.push(r);
        }
        for (n, t) in c.taken.iter().enumerate() {
            o.rules.push(rule(
                true,
                Some(&format!("192.168.{n}.0/24")),
                *t,
                1000 + u32::try_from(n).unwrap(),
            ));
        }
        o.routes
            .push(route("172.16.0.0/12", Some("10.0.0.1"), None, ETH0, 103));
        if c.reuse_rule {
            let first = net(POOL[c.picked[0]].0);
            // The reference's rule for the first address, into an empty table.
            o.rules.push(Rule {
                v4: first.addr().is_ipv4(),
                src: Some(host(&first)),
                ..rule(true, None, 120, 32765)
            });
            o.rules.last_mut().unwrap().protocol = RTPROT_UNSPEC;
        }
        let mut addresses: Vec<Address> = c
            .picked
            .iter()
            .map(|&i| {
                let a = net(POOL[i].0);
                let v4 = a.addr().is_ipv4();
                let own = c.own_gw[i].then(|| ip(POOL[i].1));
                Address {
                    addr: a,
                    gateway: own.or(prev_default[fam(v4)].map(ip)),
                }
            })
            .collect();
        if c.slash32 {
            addresses.push(addr("10.5.0.7/32", Some("169.254.1.1")));
        }
        let mut config = Config {
            add_source_hints: c.hints,
            ..Config::default()
        };
        if c.static_gw[0] {
            config.gateway_v4 = Some("10.1.0.254".parse().unwrap());
        }
        if c.static_gw[1] {
            config.gateway_v6 = Some("2001:db8::fe".parse().unwrap());
        }
        (config, addresses, o)
    }

    fn strip_priorities(mut o: Snapshot) -> Snapshot {
        for r in &mut o.rules {
            if r.priority == Some(32765) {
                r.priority = None;
            }
        }
        sorted(o)
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

        #[test]
        fn add_converges_del_restores_rollback_undoes(c in case()) {
            let (config, addresses, o) = build(&c);
            let plan = plan_add(&config, &addresses, &o).unwrap();
            let after = simulate(&o, &plan);

            // Converges: nothing left to do, and CHECK agrees.
            let again = plan_add(&config, &addresses, &after).unwrap();
            prop_assert!(again.is_empty(), "second ADD: {:#?}", lines(&again));
            prop_assert!(check(&config, &addresses, &after).is_ok(), "{:?}", check(&config, &addresses, &after));

            // One table per address, fresh ones above 100 not taken before.
            let mut tables = Vec::new();
            for a in &addresses {
                let t = after.rules.iter().find(|r| r.src == Some(host(&a.addr))).unwrap().table;
                prop_assert!(!tables.contains(&t));
                tables.push(t);
                prop_assert!(t == 120 || (t >= FIRST_TABLE && !c.taken.contains(&t) && t != 103), "table {t}");
            }

            // Rollback of the whole plan gives back the namespace.
            prop_assert_eq!(strip_priorities(simulate_changes(&after, &rollback_of(&plan, plan.len()))), strip_priorities(o.clone()));

            // DEL restores it too (a rule that was there before is ours to remove).
            let del = plan_del(&config, Some(&addresses), &after);
            let back = simulate(&after, &del);
            prop_assert!(plan_del(&config, Some(&addresses), &back).is_empty());
            if !c.reuse_rule {
                prop_assert_eq!(sorted(back), sorted(o.clone()), "del: {:#?}", lines(&del));
            }

            // Without prevResult the marks say what is sbr's: as exact
            // (only the reference's rule, unknown without the addresses,
            // stays behind).
            if !c.reuse_rule {
                let del = plan_del(&config, None, &after);
                let back = simulate(&after, &del);
                prop_assert_eq!(sorted(back.clone()), sorted(o), "del without prevResult: {:#?}", lines(&del));
                prop_assert!(plan_del(&config, None, &back).is_empty());
            }
        }
    }
}

/// Each link has its own `fe80::/64`: net1's goes back to main beside
/// eth0's (an IPv6 route per link, not a conflict).
#[test]
fn del_gives_back_a_link_local_route_beside_another_links() {
    let mut o = snap();
    o.routes.push(route("fe80::/64", None, None, ETH0, 254));
    o.routes.push(route("2001:db8::/64", None, None, NET1, 254));
    o.link_addresses.push(net("2001:db8::2/64"));
    let a = [addr("2001:db8::2/64", Some("2001:db8::1"))];
    let plan = plan_add(&Config::default(), &a, &o).unwrap();
    assert!(lines(&plan).contains(&"add route fe80::/64 dev net1 metric 256 to table 100".to_string()));
    let added = simulate(&o, &plan);
    let del = plan_del(&Config::default(), Some(&a), &added);
    assert!(
        lines(&del).contains(&"add route fe80::/64 dev net1 metric 256 to table main".to_string()),
        "{:#?}",
        lines(&del)
    );
    assert_eq!(sorted(simulate(&added, &del)), sorted(o));
}

/// A VRF's table looks like a table that lost its rule (the l3mdev rule
/// names no table; the link's routes are in it), but holds local and
/// broadcast routes, which sbr never puts in its tables: not adopted by
/// ADD, not emptied by DEL.
#[test]
fn a_table_with_routes_sbr_never_makes_is_not_adopted() {
    let a = [addr("10.1.0.2/24", Some("10.1.0.1"))];
    let c = Config::default();
    let mut o = snap();
    o.routes
        .push(route("10.1.0.0/24", None, Some("10.1.0.2"), NET1, 100));
    let mut local = route("10.1.0.2/32", None, Some("10.1.0.2"), NET1, 100);
    local.kind = RTN_LOCAL;
    local.scope = 254;
    o.routes.push(local);
    let mut broadcast = route("10.1.0.255/32", None, Some("10.1.0.2"), NET1, 100);
    broadcast.kind = 3;
    o.routes.push(broadcast.clone());
    assert_eq!(orphan_table(&o, &a[0].addr, &BTreeSet::new()), None);
    let plan = plan_add(&c, &a, &o).unwrap();
    assert_eq!(lines(&plan)[0], "add rule from 10.1.0.2/32 to table 101");
    let added = simulate(&o, &plan);
    for prev in [Some(&a[..]), None] {
        let back = simulate(&added, &plan_del(&c, prev, &added));
        assert_eq!(sorted(back), sorted(o.clone()), "prev {}", prev.is_some());
    }
    // Only unicast routes: the same table is taken up again.
    o.routes.retain(|r| r.table != 100 || r.kind == RTN_UNICAST);
    assert_eq!(orphan_table(&o, &a[0].addr, &BTreeSet::new()), Some(100));
}

/// sbr's rule into a kernel table (an earlier ADD with `table: 254`, the
/// config changed since) is no attachment: ADD makes its own table instead
/// of copying main into main and stripping it.
#[test]
fn a_marked_rule_into_a_kernel_table_is_not_the_attachment() {
    let a = [addr("10.1.0.2/24", Some("10.1.0.1"))];
    for t in [RT_TABLE_DEFAULT, RT_TABLE_MAIN, RT_TABLE_LOCAL] {
        let mut o = snap();
        o.rules.push(sbr_rule(true, "10.1.0.2/32", t, 32765));
        assert_eq!(attachment_rule(&o, &host(&a[0].addr), None), None, "table {t}");
        let plan = plan_add(&Config::default(), &a, &o).unwrap();
        let l = lines(&plan);
        assert_eq!(l[0], "add rule from 10.1.0.2/32 to table 100", "table {t}");
        assert!(
            l.contains(&"add route default via 10.1.0.1 dev net1 to table 100".to_string()),
            "{l:#?}"
        );
    }
    // Into a table of its own it is.
    let mut o = snap();
    o.rules.push(sbr_rule(true, "10.1.0.2/32", 300, 32765));
    assert_eq!(
        attachment_rule(&o, &host(&a[0].addr), None).map(|r| r.table),
        Some(300)
    );
}

/// Moved routes keep their metrics (mtu, ...) both ways; routes sbr could
/// not give back as they were (a tos, a next hop via another family,
/// multipath) stay in main, neither copied nor deleted.
#[test]
fn metrics_move_with_the_route_and_unmovable_routes_stay() {
    let a = [addr("10.1.0.2/24", Some("10.1.0.1"))];
    let c = Config::default();
    let mut o = snap();
    o.routes.retain(|r| r.oif != Some(ETH0));
    let mut default = route("default", Some("10.1.0.1"), None, NET1, 254);
    default.metrics = vec![Metric::u32(RTAX_MTU, 1400)];
    o.routes.push(default.clone());
    let mut tos = route("10.20.0.0/16", Some("10.1.0.1"), None, NET1, 254);
    tos.tos = 0x10;
    let mut via = route("10.30.0.0/16", None, None, NET1, 254);
    via.other_nexthop = true;
    // Its marker's metric (2^31 above it) would not fit in 32 bits.
    let mut far = route("10.40.0.0/16", Some("10.1.0.1"), None, NET1, 254);
    far.metric = Some(MARKER_OFFSET);
    o.routes.push(tos.clone());
    o.routes.push(via.clone());
    o.routes.push(far.clone());
    let plan = plan_add(&c, &a, &o).unwrap();
    let l = lines(&plan);
    assert!(
        l.contains(&"add route default via 10.1.0.1 dev net1 mtu 1400 to table 100".to_string()),
        "{l:#?}"
    );
    assert!(
        l.contains(&"delete route default via 10.1.0.1 dev net1 mtu 1400 from table main".to_string()),
        "{l:#?}"
    );
    assert!(
        !l.iter()
            .any(|x| x.contains("10.20.0.0") || x.contains("10.30.0.0") || x.contains("10.40.0.0")),
        "{l:#?}"
    );
    let added = simulate(&o, &plan);
    assert!(added.routes.contains(&tos) && added.routes.contains(&via) && added.routes.contains(&far));
    check(&c, &a, &added).unwrap();
    assert!(plan_add(&c, &a, &added).unwrap().is_empty());
    // A copy without the mtu is not main's default: when main has it again,
    // ADD replaces the copy by the newer one.
    let mut stale = added.clone();
    for r in &mut stale.routes {
        if r.table == 100 && r.dst.prefix_len() == 0 {
            r.metrics.clear();
        }
    }
    stale.routes.push(default);
    let repair = plan_add(&c, &a, &stale).unwrap();
    assert_eq!(
        lines(&repair),
        [
            "delete route default via 10.1.0.1 dev net1 to table 100".replace("to table", "from table"),
            "add route default via 10.1.0.1 dev net1 mtu 1400 to table 100".to_string(),
            "delete route default via 10.1.0.1 dev net1 mtu 1400 from table main".to_string(),
        ]
    );
    for prev in [Some(&a[..]), None] {
        let back = simulate(&added, &plan_del(&c, prev, &added));
        assert_eq!(sorted(back), sorted(o.clone()), "prev {}", prev.is_some());
    }
}

/// Routes of the link that belong to no prevResult address (another
/// address's subnet route and a route via its gateway) are neither copied
/// nor deleted: DEL could never give them back.
#[test]
fn routes_of_another_address_of_the_link_stay_in_main() {
    let a = [addr("10.1.0.2/24", Some("10.1.0.1"))];
    let c = Config::default();
    let mut o = snap();
    o.link_addresses.push(net("10.3.0.2/24"));
    let other = [
        route("10.3.0.0/24", None, Some("10.3.0.2"), NET1, 254),
        route("192.0.2.0/24", Some("10.3.0.1"), None, NET1, 254),
    ];
    o.routes.extend(other.iter().cloned());
    let plan = plan_add(&c, &a, &o).unwrap();
    let l = lines(&plan);
    assert!(
        !l.iter().any(|x| x.contains("10.3.0.") || x.contains("192.0.2.")),
        "{l:#?}"
    );
    // The rest is as without them.
    assert_eq!(l, lines(&plan_add(&c, &a, &snap()).unwrap()));
    let added = simulate(&o, &plan);
    assert!(other.iter().all(|r| added.routes.contains(r)));
    check(&c, &a, &added).unwrap();
    for prev in [Some(&a[..]), None] {
        let back = simulate(&added, &plan_del(&c, prev, &added));
        assert_eq!(sorted(back), sorted(o.clone()), "prev {}", prev.is_some());
    }
}

/// The /32 layout (Calico and others): the gateway is outside the address's
/// subnet and reached through a link route. Main's default via it is the
/// address's (its gateway), so it moves into the table in place of sbr's
/// own default and DEL gives it back; without a gateway it is no one's and
/// stays in main, where traffic from the address falls through to it.
#[test]
fn slash32_layout_moves_mains_default_via_the_gateway() {
    let mut o = snap();
    o.routes.retain(|r| r.oif != Some(NET1));
    o.link_addresses = vec![net("10.5.0.7/32")];
    o.routes.push(route("169.254.1.1/32", None, None, NET1, 254));
    // net1 is the pod's only way out.
    o.routes
        .retain(|r| !(r.dst.prefix_len() == 0 && r.oif == Some(ETH0)));
    o.routes
        .push(route("default", Some("169.254.1.1"), None, NET1, 254));
    for (c, a) in [
        (Config::default(), addr("10.5.0.7/32", Some("169.254.1.1"))),
        (
            cfg(json!({"gateways": ["169.254.1.1"]})),
            addr("10.5.0.7/32", None),
        ),
    ] {
        let a = [a];
        let plan = plan_add(&c, &a, &o).unwrap();
        assert_eq!(
            lines(&plan),
            [
                "add rule from 10.5.0.7/32 to table 100",
                "add route 169.254.1.1/32 dev net1 scope link to table 100",
                "add route throw 169.254.1.1/32 metric 2147483648 to table 100",
                "add route default via 169.254.1.1 dev net1 to table 100",
                "add route throw default metric 2147483648 to table 100",
                "delete route default via 169.254.1.1 dev net1 from table main",
                "delete route 169.254.1.1/32 dev net1 scope link from table main",
            ],
            "{c:?}"
        );
        // The table's default is main's (unmarked), not sbr's.
        assert!(plan.changes().any(
            |x| matches!(x, Change::AddRoute(r) if r.dst.prefix_len() == 0 && r.protocol == RTPROT_BOOT)
        ));
        let added = simulate(&o, &plan);
        check(&c, &a, &added).unwrap();
        assert!(plan_add(&c, &a, &added).unwrap().is_empty());
        for prev in [Some(&a[..]), None] {
            let back = simulate(&added, &plan_del(&c, prev, &added));
            assert_eq!(sorted(back), sorted(o.clone()), "{c:?} prev {}", prev.is_some());
        }
    }
    // No gateway anywhere: main's default is no one's and stays.
    let a = [addr("10.5.0.7/32", None)];
    let plan = plan_add(&Config::default(), &a, &o).unwrap();
    assert_eq!(
        lines(&plan),
        [
            "add rule from 10.5.0.7/32 to table 100",
            "add route 169.254.1.1/32 dev net1 scope link to table 100",
            "add route throw 169.254.1.1/32 metric 2147483648 to table 100",
            "delete route 169.254.1.1/32 dev net1 scope link from table main",
        ]
    );
    let added = simulate(&o, &plan);
    check(&Config::default(), &a, &added).unwrap();
    let back = simulate(&added, &plan_del(&Config::default(), Some(&a), &added));
    assert_eq!(sorted(back), sorted(o));
}

/// An IPv6 address still in DAD is no source yet (the kernel refuses the
/// hint, and with it the whole ADD): its subnet route stays in main as it
/// is (copied into the table as always), CHECK passes, DEL restores. Once
/// DAD is done, ADD adds the hint and CHECK asks for it.
#[test]
fn source_hints_wait_for_an_ipv6_address_in_dad() {
    let c = cfg(json!({"addSourceHints": true}));
    let a = [
        addr("10.1.0.2/24", Some("10.1.0.1")),
        addr("2001:db8::2/64", Some("2001:db8::1")),
    ];
    let mut o = snap();
    // Tentative: the link has it, the local table does not yet.
    o.routes.push(route("2001:db8::/64", None, None, NET1, 254));
    let plan = plan_add(&c, &a, &o).unwrap();
    let l = lines(&plan);
    assert!(
        l.contains(&"add route 2001:db8::/64 dev net1 metric 256 to table 101".to_string()),
        "{l:#?}"
    );
    assert!(
        !l.iter()
            .any(|x| x.contains("2001:db8::/64") && x.contains("main")),
        "{l:#?}"
    );
    // The IPv4 hint is there as ever.
    assert!(
        !l.contains(&"delete route 10.1.0.0/24 dev net1 src 10.1.0.2 scope link from table main".to_string()),
        "{l:#?}"
    );
    let added = simulate(&o, &plan);
    check(&c, &a, &added).unwrap();
    assert!(plan_add(&c, &a, &added).unwrap().is_empty());
    let back = simulate(&added, &plan_del(&c, Some(&a), &added));
    assert_eq!(sorted(back), sorted(o.clone()));
    // Without prevResult DEL reads the link's addresses from the address
    // dump, which lists tentative ones too.
    let mut dumped = added.clone();
    dumped.link_addresses.push(net("2001:db8::2/64"));
    let back = simulate(&dumped, &plan_del(&c, None, &dumped));
    let (back, o) = (sorted(back), sorted(o.clone()));
    assert_eq!((back.routes, back.rules), (o.routes, o.rules));
    // DAD done: CHECK finds main's route without the hint, and ADD
    // replaces it by the hint.
    let mut done = added.clone();
    done.link_addresses.push(net("2001:db8::2/128"));
    let e = check(&c, &a, &done).unwrap_err();
    assert_eq!(
        e.msg,
        "route 2001:db8::/64 dev net1 metric 256 is still in table main"
    );
    let repair = plan_add(&c, &a, &done).unwrap();
    assert_eq!(
        lines(&repair),
        [
            "delete route 2001:db8::/64 dev net1 metric 256 from table main",
            "add route 2001:db8::/64 dev net1 src 2001:db8::2 metric 256 to table main",
        ]
    );
    check(&c, &a, &simulate(&done, &repair)).unwrap();
}

// Issue 20: a pod with eth0 10.99.0.2/24 owning main's default and net1
// 10.77.0.2/24 (net2, when there, is index 4).

const NET2: u32 = 4;

fn local(a: &str, oif: u32) -> Route {
    let mut l = route(&format!("{a}/32"), None, Some(a), oif, 255);
    l.kind = RTN_LOCAL;
    l.scope = 254;
    l
}

/// `links`: (index, address) with its kernel subnet route in main.
fn pod20(links: &[(u32, &str)]) -> Snapshot {
    let mut o = Snapshot {
        ifname: "net1".into(),
        link: Some(NET1),
        link_addresses: Vec::new(),
        routes: vec![
            route("default", Some("10.99.0.1"), None, ETH0, 254),
            route("10.99.0.0/24", None, Some("10.99.0.2"), ETH0, 254),
            local("10.99.0.2", ETH0),
        ],
        rules: default_rules(),
        ..Snapshot::default()
    };
    for (i, a) in links {
        let n = net(&format!("{a}/24"));
        o.routes
            .push(route(&n.trunc().to_string(), None, Some(a), *i, 254));
        o.routes.push(local(a, *i));
    }
    o
}

/// The snapshot as the plugin for `ifname` (link `index`, `addr`) reads it.
fn as_link(o: &Snapshot, ifname: &str, index: u32, addr: &str) -> Snapshot {
    Snapshot {
        ifname: ifname.into(),
        link: Some(index),
        link_addresses: vec![net(addr)],
        ..o.clone()
    }
}

fn a77(a: &str) -> [Address; 1] {
    [addr(a, Some("10.77.0.1"))]
}

fn main_routes(o: &Snapshot) -> Snapshot {
    let mut m = o.clone();
    m.routes.retain(|r| r.table == 254);
    m.rules.clear();
    sorted(m)
}

/// Item 3: net1 and net2 with one address each keep their own table; DEL
/// of one leaves the other's rule and table, and each gets its routes back.
#[test]
fn two_links_with_one_address_keep_their_own_tables() {
    let c = Config::default();
    let a = a77("10.77.0.2/24");
    let o = pod20(&[(NET1, "10.77.0.2"), (NET2, "10.77.0.2")]);
    let v1 = |s: &Snapshot| as_link(s, "net1", NET1, "10.77.0.2/24");
    let v2 = |s: &Snapshot| as_link(s, "net2", NET2, "10.77.0.2/24");
    let s1 = simulate(&o, &plan_add(&c, &a, &v1(&o)).unwrap());
    let add2 = plan_add(&c, &a, &v2(&s1)).unwrap();
    assert_eq!(lines(&add2)[0], "add rule from 10.77.0.2/32 to table 101");
    let s2 = simulate(&s1, &add2);
    check(&c, &a, &v1(&s2)).unwrap();
    check(&c, &a, &v2(&s2)).unwrap();
    // Both subnet routes are in their tables.
    for (t, l) in [(100, NET1), (101, NET2)] {
        assert!(s2
            .routes
            .iter()
            .any(|r| r.table == t && r.oif == Some(l) && r.dst == net("10.77.0.0/24")));
    }
    let s3 = simulate(&s2, &plan_del(&c, Some(&a), &v2(&s2)));
    check(&c, &a, &v1(&s3)).unwrap();
    let s4 = simulate(&s3, &plan_del(&c, None, &v1(&s3)));
    assert_eq!(sorted(s4), sorted(o.clone()));
    // Multus order: net1 first.
    let s3 = simulate(&s2, &plan_del(&c, Some(&a), &v1(&s2)));
    check(&c, &a, &v2(&s3)).unwrap();
    let s4 = simulate(&s3, &plan_del(&c, Some(&a), &v2(&s3)));
    assert_eq!(sorted(s4), sorted(o));
}

/// Item 4: a subnet shared with eth0 (and with net2): DEL gives back
/// net1's own subnet route beside the other link's, ADD after DEL works.
#[test]
fn a_shared_subnet_route_comes_back_beside_the_other_links() {
    let c = Config::default();
    let a = a77("10.77.0.2/24");
    let mut o = pod20(&[(NET1, "10.77.0.2")]);
    o.routes = vec![
        route("default", Some("10.77.0.1"), None, ETH0, 254),
        route("10.77.0.0/24", None, Some("10.77.0.5"), ETH0, 254),
        local("10.77.0.5", ETH0),
        route("10.77.0.0/24", None, Some("10.77.0.2"), NET1, 254),
        local("10.77.0.2", NET1),
    ];
    let o = as_link(&o, "net1", NET1, "10.77.0.2/24");
    let added = simulate(&o, &plan_add(&c, &a, &o).unwrap());
    let del = plan_del(&c, Some(&a), &added);
    assert!(
        lines(&del).contains(
            &"append route 10.77.0.0/24 dev net1 src 10.77.0.2 scope link to table main".to_string()
        ),
        "{:#?}",
        lines(&del)
    );
    let back = simulate(&added, &del);
    assert_eq!(sorted(back.clone()), sorted(o.clone()));
    let again = simulate(&back, &plan_add(&c, &a, &back).unwrap());
    check(&c, &a, &again).unwrap();

    // net1 10.77.0.2 and net2 10.77.0.3 in one subnet, deleted net1 first.
    let o = pod20(&[(NET1, "10.77.0.2"), (NET2, "10.77.0.3")]);
    let v1 = |s: &Snapshot| as_link(s, "net1", NET1, "10.77.0.2/24");
    let v2 = |s: &Snapshot| as_link(s, "net2", NET2, "10.77.0.3/24");
    let a2 = a77("10.77.0.3/24");
    let s1 = simulate(&o, &plan_add(&c, &a, &v1(&o)).unwrap());
    let s2 = simulate(&s1, &plan_add(&c, &a2, &v2(&s1)).unwrap());
    let s3 = simulate(&s2, &plan_del(&c, Some(&a), &v1(&s2)));
    let s4 = simulate(&s3, &plan_del(&c, Some(&a2), &v2(&s3)));
    assert_eq!(sorted(s4), sorted(o));
}

/// Item 5: a route someone adds to the table after ADD is not moved into
/// main by DEL.
#[test]
fn del_moves_back_only_what_add_moved() {
    let c = Config::default();
    let a = a77("10.77.0.2/24");
    let o = as_link(&pod20(&[(NET1, "10.77.0.2")]), "net1", NET1, "10.77.0.2/24");
    let mut added = simulate(&o, &plan_add(&c, &a, &o).unwrap());
    let mut theirs = route("default", Some("10.77.0.254"), None, NET1, 100);
    theirs.metric = Some(5);
    theirs.protocol = 4;
    added.routes.push(theirs.clone());
    let back = simulate(&added, &plan_del(&c, Some(&a), &added));
    assert_eq!(main_routes(&back), main_routes(&o));
    assert!(back.routes.contains(&theirs));
}

/// Item 6: an operator's rule for the address into their own table is
/// neither adopted by ADD nor deleted by DEL; with `table` set, a plain
/// rule into it that was there before ADD is not deleted either.
#[test]
fn an_operators_rule_and_table_for_the_address_stay() {
    let c = Config::default();
    let a = a77("10.77.0.2/24");
    let mut o = as_link(&pod20(&[(NET1, "10.77.0.2")]), "net1", NET1, "10.77.0.2/24");
    o.rules.push(rule(true, Some("10.77.0.2/32"), 200, 1000));
    o.routes
        .push(route("198.51.100.0/24", Some("10.77.0.1"), None, NET1, 200));
    let add = plan_add(&c, &a, &o).unwrap();
    assert_eq!(lines(&add)[0], "add rule from 10.77.0.2/32 to table 100");
    assert!(!lines(&add).iter().any(|l| l.contains("table 200")));
    let added = simulate(&o, &add);
    check(&c, &a, &added).unwrap();
    for prev in [Some(&a[..]), None] {
        let back = simulate(&added, &plan_del(&c, prev, &added));
        assert_eq!(sorted(back), sorted(o.clone()), "prev {}", prev.is_some());
    }

    let c = cfg(json!({"table": 500}));
    let mut o = as_link(&pod20(&[(NET1, "10.77.0.2")]), "net1", NET1, "10.77.0.2/24");
    o.rules.push(rule(true, Some("10.77.0.2/32"), 500, 1000));
    let added = simulate(&o, &plan_add(&c, &a, &o).unwrap());
    for prev in [Some(&a[..]), None] {
        assert!(plan_del(&c, prev, &added).is_empty(), "prev {}", prev.is_some());
    }
}

/// Item 7: `addSourceHints` with an address added `noprefixroute` and only
/// a host route to the gateway: CHECK passes right after ADD, a second
/// ADD adds nothing, DEL restores.
#[test]
fn source_hint_for_a_noprefixroute_address_converges() {
    let c = cfg(json!({"addSourceHints": true}));
    let a = a77("10.77.0.2/24");
    let mut o = as_link(&pod20(&[(NET1, "10.77.0.2")]), "net1", NET1, "10.77.0.2/24");
    o.routes.retain(|r| r.dst != net("10.77.0.0/24"));
    o.routes.push(route("10.77.0.1/32", None, None, NET1, 254));
    let added = simulate(&o, &plan_add(&c, &a, &o).unwrap());
    check(&c, &a, &added).unwrap();
    let again = plan_add(&c, &a, &added).unwrap();
    assert!(again.is_empty(), "{:#?}", lines(&again));
    for prev in [Some(&a[..]), None] {
        let back = simulate(&added, &plan_del(&c, prev, &added));
        assert_eq!(sorted(back), sorted(o.clone()), "prev {}", prev.is_some());
    }
}

/// Item 8: a foreign rule into sbr's table, added after ADD, does not keep
/// DEL from giving main its routes back; the rule stays.
#[test]
fn a_foreign_rule_into_the_table_does_not_strand_mains_routes() {
    let c = Config::default();
    let a = a77("10.77.0.2/24");
    let o = as_link(&pod20(&[(NET1, "10.77.0.2")]), "net1", NET1, "10.77.0.2/24");
    let mut added = simulate(&o, &plan_add(&c, &a, &o).unwrap());
    let mut theirs = rule(true, Some("10.77.0.2/32"), 100, 500);
    theirs.protocol = 4;
    added.rules.push(theirs.clone());
    let back = simulate(&added, &plan_del(&c, Some(&a), &added));
    assert_eq!(main_routes(&back), main_routes(&o));
    assert!(back.rules.contains(&theirs));
    assert!(!back.routes.iter().any(|r| r.table == 100));
}

/// Item 9: a route in main with protocol 83 that sbr did not make goes back
/// to main as it was.
#[test]
fn a_proto_83_route_sbr_did_not_make_comes_back() {
    let c = Config::default();
    let a = a77("10.77.0.2/24");
    let mut o = as_link(&pod20(&[(NET1, "10.77.0.2")]), "net1", NET1, "10.77.0.2/24");
    let mut theirs = route("198.51.100.0/24", Some("10.77.0.1"), None, NET1, 254);
    theirs.protocol = RTPROT_SBR;
    o.routes.push(theirs);
    let added = simulate(&o, &plan_add(&c, &a, &o).unwrap());
    for prev in [Some(&a[..]), None] {
        let back = simulate(&added, &plan_del(&c, prev, &added));
        assert_eq!(sorted(back), sorted(o.clone()), "prev {}", prev.is_some());
    }
}

/// Item 10: after the reference's ADD, DEL without prevResult removes the
/// reference's rule and gives main its routes back.
#[test]
fn del_without_prev_result_removes_the_references_rule() {
    let o = as_link(&pod20(&[(NET1, "10.77.0.2")]), "net1", NET1, "10.77.0.2/24");
    let mut r = o.clone();
    r.rules.push(rule(true, Some("10.77.0.2/32"), 100, 32765));
    let subnet = net("10.77.0.0/24");
    r.routes.retain(|x| x.dst != subnet);
    r.routes
        .push(route("10.77.0.0/24", None, Some("10.77.0.2"), NET1, 100));
    r.routes
        .push(route("default", Some("10.77.0.1"), None, NET1, 100));
    let back = simulate(&r, &plan_del(&Config::default(), None, &r));
    assert!(!back.rules.iter().any(|x| x.table == 100));
    assert!(!back.routes.iter().any(|x| x.table == 100));
    assert!(back
        .routes
        .iter()
        .any(|x| x.table == 254 && x.dst == subnet && x.oif == Some(NET1)));
}

/// A table made by sbr before markers (none in it): DEL gives back every
/// unmarked route through the link, as it did then.
#[test]
fn a_table_without_markers_is_emptied_as_before() {
    let c = Config::default();
    let a = a77("10.77.0.2/24");
    let o = as_link(&pod20(&[(NET1, "10.77.0.2")]), "net1", NET1, "10.77.0.2/24");
    let mut old = simulate(&o, &plan_add(&c, &a, &o).unwrap());
    old.routes.retain(|r| !is_marker(r));
    for prev in [Some(&a[..]), None] {
        let back = simulate(&old, &plan_del(&c, prev, &old));
        assert_eq!(sorted(back), sorted(o.clone()), "prev {}", prev.is_some());
    }
}

/// Issue 20 item 7, killed: a v4+v6 hinted ADD (noprefixroute addresses,
/// host routes to the gateways) killed after any of its steps; the next ADD
/// finishes it, CHECK passes, one more ADD adds nothing, DEL restores.
#[test]
fn a_killed_hinted_add_converges() {
    let c = cfg(json!({"addSourceHints": true}));
    let a = [
        addr("10.77.0.2/24", Some("10.77.0.1")),
        addr("2001:db8::2/64", Some("2001:db8::1")),
    ];
    let mut o = as_link(&pod20(&[(NET1, "10.77.0.2")]), "net1", NET1, "10.77.0.2/24");
    o.routes.retain(|r| r.dst != net("10.77.0.0/24"));
    o.routes.push(route("10.77.0.1/32", None, None, NET1, 254));
    o.routes.push(route("2001:db8::1/128", None, None, NET1, 254));
    o.routes.push(route("fe80::/64", None, None, NET1, 254));
    o.link_addresses.push(net("2001:db8::2/128"));
    let plan = plan_add(&c, &a, &o).unwrap();
    for k in 0..=plan.len() {
        let killed = simulate_changes(&o, plan.changes().take(k));
        let done = simulate(&killed, &plan_add(&c, &a, &killed).unwrap());
        check(&c, &a, &done).unwrap_or_else(|e| panic!("after {k}: {}", e.msg));
        let again = plan_add(&c, &a, &done).unwrap();
        assert!(again.is_empty(), "after {k}: {:#?}", lines(&again));
        let back = simulate(&done, &plan_del(&c, Some(&a), &done));
        assert_eq!(sorted(back), sorted(o.clone()), "after {k}");
    }
}

/// Main held a default through eth0 and one through net1 (ptp adds its
/// own beside eth0's): DEL gives net1's back beside eth0's, as it was.
#[test]
fn a_moved_default_comes_back_beside_another_links() {
    let c = Config::default();
    let a = a77("10.77.0.2/24");
    let mut o = as_link(&pod20(&[(NET1, "10.77.0.2")]), "net1", NET1, "10.77.0.2/24");
    o.routes
        .push(route("default", Some("10.77.0.1"), None, NET1, 254));
    let added = simulate(&o, &plan_add(&c, &a, &o).unwrap());
    assert!(!added
        .routes
        .iter()
        .any(|r| r.table == 254 && r.oif == Some(NET1) && r.dst.prefix_len() == 0));
    for prev in [Some(&a[..]), None] {
        let back = simulate(&added, &plan_del(&c, prev, &added));
        assert_eq!(sorted(back), sorted(o.clone()), "prev {}", prev.is_some());
    }
}
