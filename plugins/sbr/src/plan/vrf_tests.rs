//! vrf mode's plans, applied to the kernel model of `sim`.
#![allow(clippy::unwrap_used)]

use cni_core::Code;
use serde_json::json;

use super::sim::*;
use super::*;
use crate::config::Mode;

/// snap() with IPv6 on net1 too: fd00:1::2/64, its kernel routes, and a
/// route via its gateway in main.
fn dual() -> Snapshot {
    let mut o = snap();
    o.link_addresses.push(net("fd00:1::2/128"));
    let mut local = route("fd00:1::2/128", None, None, NET1, 255);
    local.kind = RTN_LOCAL;
    local.metric = Some(0);
    o.routes.push(local);
    o.routes.push(route("fd00:1::/64", None, None, NET1, 254));
    o.routes
        .push(route("fd00:9::/48", Some("fd00:1::1"), None, NET1, 254));
    o
}

fn both() -> [Address; 2] {
    [
        addr("10.1.0.2/24", Some("10.1.0.1")),
        addr("fd00:1::2/64", Some("fd00:1::1")),
    ]
}

fn vrf_cfg(extra: serde_json::Value) -> Config {
    let mut c = json!({"mode": "vrf"});
    c.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    cfg(c)
}

#[test]
fn vrf_add_golden() {
    let plan = plan_add(&vrf_cfg(json!({})), &both(), &dual()).unwrap();
    assert_eq!(
        lines(&plan),
        [
            "add vrf vrf-net1 table 100",
            // What the kernel would not make again leaves main first, so
            // that a rollback puts it back.
            "delete route 10.9.0.0/16 via 10.1.0.1 dev net1 from table main",
            "delete route fd00:9::/48 via fd00:1::1 dev net1 metric 1024 from table main",
            "enslave net1 to vrf vrf-net1, keeping fd00:1::2/64",
            "add route default via 10.1.0.1 dev net1 to table 100",
            "add route default via fd00:1::1 dev net1 to table 100",
            "add route 10.9.0.0/16 via 10.1.0.1 dev net1 to table 100",
            "add route fd00:9::/48 via fd00:1::1 dev net1 metric 1024 to table 100",
        ]
    );
    let Change::AddRoute(d) = &plan.steps[4].change else {
        panic!()
    };
    assert_eq!(d.protocol, RTPROT_SBR);
    // Every step has its inverse.
    assert!(plan.steps.iter().all(|s| s.undo.is_some()));
}

/// The end state: the link in the VRF, main without its routes, the VRF's
/// table with the subnets (the kernel's), the defaults and the moved
/// routes; the IPv6 address still there.
#[test]
fn vrf_add_converges_and_checks() {
    let c = vrf_cfg(json!({}));
    let o = dual();
    let after = simulate(&o, &plan_add(&c, &both(), &o).unwrap());
    let v = &after.vrfs[0];
    assert_eq!(
        (v.name.as_str(), v.table, v.ours, after.master),
        ("vrf-net1", 100, true, Some(v.index))
    );
    assert!(!after.routes.iter().any(|r| r.table == RT_TABLE_MAIN
        && r.oif == Some(NET1)
        && !r.dst.addr().is_unspecified()
        && is_v4(&r.dst)));
    for dst in [
        "0.0.0.0/0",
        "::/0",
        "10.1.0.0/24",
        "10.9.0.0/16",
        "fd00:1::/64",
        "fd00:9::/48",
    ] {
        assert!(
            after
                .routes
                .iter()
                .any(|r| r.table == 100 && r.dst == net(dst) && r.oif == Some(NET1)),
            "{dst} in table 100"
        );
    }
    assert!(after.link_addresses.contains(&net("fd00:1::2/128")));
    // Again: nothing to do, and CHECK is content.
    assert!(plan_add(&c, &both(), &after).unwrap().is_empty());
    check(&c, &both(), &after).unwrap();
    // A sbr-mode CHECK of the same namespace is not.
    assert!(check(&Config::default(), &both(), &after).is_err());
}

#[test]
fn vrf_check_names_what_is_missing() {
    let c = vrf_cfg(json!({}));
    let o = dual();
    let e = check(&c, &both(), &o).unwrap_err();
    assert_eq!(
        (e.code, e.msg.as_str()),
        (Code::CheckFailed, "missing vrf vrf-net1 (table 100)")
    );
    let mut after = simulate(&o, &plan_add(&c, &both(), &o).unwrap());
    // Someone took net1 out of the VRF.
    let p = Port {
        link: NET1,
        vrf: "vrf-net1".into(),
        keep: Vec::new(),
    };
    after = simulate_changes(&after, &[Change::Release(p)]);
    let e = check(&c, &both(), &after).unwrap_err();
    assert_eq!(e.msg, "net1 is not in vrf vrf-net1");
}

/// DEL, with and without the prevResult, gives main back what it had and
/// deletes sbr's VRF: the namespace is as before ADD.
#[test]
fn vrf_del_restores_the_namespace() {
    let c = vrf_cfg(json!({}));
    let o = dual();
    let after = simulate(&o, &plan_add(&c, &both(), &o).unwrap());
    let del_cfg = Config {
        mode: Mode::Vrf,
        ..Config::default()
    };
    let with_prev = plan_del(&del_cfg, Some(&both()), &after);
    assert_eq!(
        lines(&with_prev),
        [
            "release net1 from vrf vrf-net1, keeping fd00:1::2/64",
            "add route 10.9.0.0/16 via 10.1.0.1 dev net1 to table main",
            "add route fd00:9::/48 via fd00:1::1 dev net1 metric 1024 to table main",
            "delete vrf vrf-net1 (table 100)",
        ]
    );
    let undone = simulate(&after, &with_prev);
    assert_eq!(sorted(undone.clone()), sorted(o.clone()));
    // Again: nothing left to do.
    assert!(plan_del(&del_cfg, Some(&both()), &undone).is_empty());
    // No prevResult: the link's addresses (with prefixes) stand in; a DEL
    // with sbr's default config finds the VRF by its link and its alias.
    let mut read = after.clone();
    read.link_addresses = vec![net("10.1.0.2/24"), net("fd00:1::2/64"), net("fe80::1/64")];
    for conf in [del_cfg, Config::default()] {
        let plan = plan_del(&conf, None, &read);
        assert_eq!(plan.len(), 4, "{:?}", lines(&plan));
        let mut undone = simulate(&read, &plan);
        undone.link_addresses = o.link_addresses.clone();
        assert_eq!(sorted(undone), sorted(o.clone()));
    }
}

/// ADD fails at every step in turn: the rollback leaves the namespace as
/// it was.
#[test]
fn vrf_rollback_at_each_step() {
    let c = vrf_cfg(json!({"l3mdevAccept": true}));
    let mut o = dual();
    o.l3mdev_accept = Some([false, false]);
    let plan = plan_add(&c, &both(), &o).unwrap();
    assert_eq!(
        lines(&plan)[plan.len() - 2..],
        [
            "set net.ipv4.tcp_l3mdev_accept to 1",
            "set net.ipv4.udp_l3mdev_accept to 1"
        ]
    );
    for k in 0..=plan.len() {
        let partial = simulate_changes(&o, plan.steps[..k].iter().map(|s| &s.change));
        let back = simulate_changes(&partial, &rollback_of(&plan, k));
        assert_eq!(sorted(back), sorted(o.clone()), "failure after {k} step(s)");
    }
    // Set already: nothing to set.
    o.l3mdev_accept = Some([true, true]);
    let plan = plan_add(&c, &both(), &o).unwrap();
    assert!(!lines(&plan).iter().any(|l| l.contains("l3mdev")));
}

#[test]
fn vrf_table_and_name_from_the_config() {
    let c = vrf_cfg(json!({"vrfName": "blue", "table": 1001}));
    let o = dual();
    let plan = plan_add(&c, &both(), &o).unwrap();
    assert_eq!(lines(&plan)[0], "add vrf blue table 1001");
    // The first free table skips those of rules, routes and other VRFs.
    let mut o2 = o.clone();
    o2.routes.push(route("10.50.0.0/24", None, None, ETH0, 100));
    o2.vrfs.push(VrfLink {
        index: 50,
        name: "other".into(),
        table: 101,
        ours: false,
        ports: Vec::new(),
    });
    let plan = plan_add(&vrf_cfg(json!({})), &both(), &o2).unwrap();
    assert_eq!(lines(&plan)[0], "add vrf vrf-net1 table 102");
}

/// A VRF of that name with another table, or the link in another master,
/// is the config's error (code 7), with upstream's words.
#[test]
fn vrf_conflicts_are_code_7() {
    let mut o = dual();
    o.vrfs.push(VrfLink {
        index: 50,
        name: "blue".into(),
        table: 7,
        ours: false,
        ports: Vec::new(),
    });
    let e = plan_add(&vrf_cfg(json!({"vrfName": "blue", "table": 8})), &both(), &o).unwrap_err();
    assert_eq!(
        (e.code, e.msg.as_str()),
        (
            Code::InvalidConfig,
            "VRF blue already exist with different routing table 7"
        )
    );
    let e = plan_add(&vrf_cfg(json!({"table": 7})), &both(), &o).unwrap_err();
    assert_eq!(e.code, Code::InvalidConfig);
    o.master = Some(50);
    let e = plan_add(&vrf_cfg(json!({})), &both(), &o).unwrap_err();
    assert_eq!(
        (e.code, e.msg.as_str()),
        (
            Code::InvalidConfig,
            "interface net1 has already a master set: blue"
        )
    );
}

/// Someone else's VRF: joined when configured by name (as upstream's vrf
/// plugin joins an existing one), left on DEL, never deleted; without
/// vrf mode DEL does not take the link out of it at all.
#[test]
fn a_foreign_vrf_is_joined_and_left_never_deleted() {
    let mut o = dual();
    o.vrfs.push(VrfLink {
        index: 50,
        name: "blue".into(),
        table: 7,
        ours: false,
        ports: Vec::new(),
    });
    let c = vrf_cfg(json!({"vrfName": "blue"}));
    let plan = plan_add(&c, &both(), &o).unwrap();
    assert!(!lines(&plan).iter().any(|l| l.contains("add vrf")));
    let after = simulate(&o, &plan);
    let del = Config::for_del(
        &cni_core::NetConf::parse(
            br#"{"cniVersion":"1.0.0","name":"n","type":"sbr","mode":"vrf","vrfName":"blue"}"#,
        )
        .unwrap(),
    );
    let plan = plan_del(&del, Some(&both()), &after);
    assert!(lines(&plan)[0].starts_with("release net1 from vrf blue"));
    assert!(!lines(&plan).iter().any(|l| l.contains("delete vrf")));
    assert!(plan_del(&Config::default(), Some(&both()), &after).is_empty());
}

/// Two attachments in one VRF (one vrfName): the first DEL leaves the VRF
/// to the second, the second deletes it.
#[test]
fn a_shared_vrf_goes_with_its_last_port() {
    let c = vrf_cfg(json!({"vrfName": "blue"}));
    let o = dual();
    let mut after = simulate(&o, &plan_add(&c, &both(), &o).unwrap());
    // Another link, net2 (index 9), joined it.
    after.vrfs[0].ports.push(9);
    let plan = plan_del(&c, Some(&both()), &after);
    assert!(
        !lines(&plan).iter().any(|l| l.contains("delete vrf")),
        "{:?}",
        lines(&plan)
    );
    let mut left = simulate(&after, &plan);
    left.vrfs[0].ports.clear();
    // net1 is gone by now (its pod's main plugin deleted it).
    left.link = None;
    left.master = None;
    assert_eq!(lines(&plan_del(&c, None, &left)), ["delete vrf blue (table 100)"]);
}
