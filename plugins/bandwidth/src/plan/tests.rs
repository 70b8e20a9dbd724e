#![allow(clippy::unwrap_used)]

use cni_core::plan::Step;
use cni_core::{Attachment, CniResult, Code};
use nl_ops::filter::Filter;
use nl_ops::link::Link;
use nl_ops::qdisc::{Qdisc, Tbf, TC_H_INGRESS, TC_H_ROOT};

use super::*;
use crate::config::Limits;
use crate::ifb::Owner;
use crate::tbf::{Limit, Psched};

const HOST: u32 = 7;
const IFB: u32 = 9;

fn owner() -> Owner {
    Owner {
        network: "net".into(),
        container_id: "c1".into(),
        ifname: "eth0".into(),
    }
}

fn link(index: u32, name: &str, kind: &str, alias: Option<String>) -> Link {
    Link {
        index,
        name: name.into(),
        mtu: 1500,
        kind: Some(kind.into()),
        alias,
        up: true,
        txqlen: 1000,
        link: None,
        link_netnsid: None,
        mac: None,
    }
}

fn qdisc(index: u32, kind: &str, tbf: Option<Tbf>) -> Qdisc {
    let (parent, handle) = if kind == "ingress" || kind == "clsact" {
        (TC_H_INGRESS, 0xffff_0000)
    } else {
        (TC_H_ROOT, 0x1_0000)
    };
    Qdisc {
        index,
        handle,
        parent,
        kind: kind.into(),
        tbf,
    }
}

fn filter(targets: Vec<u32>) -> Filter {
    Filter {
        parent: 0xffff_0000,
        priority: 1,
        protocol: 3,
        kind: "u32".into(),
        mirred_targets: targets,
    }
}

fn fresh() -> Snapshot {
    Snapshot {
        host: Some(HostSide {
            veth: link(HOST, "veth1", "veth", None),
            qdiscs: vec![qdisc(HOST, "noqueue", None)],
            ingress_filters: vec![],
        }),
        ifb: None,
    }
}

/// The state a complete ADD of `limits` leaves.
fn done(limits: &Limits) -> Snapshot {
    let mut o = fresh();
    if let Some(l) = limits.ingress {
        o.host.as_mut().unwrap().qdiscs = vec![qdisc(HOST, "tbf", Some(l.tbf()))];
    }
    if let Some(l) = limits.egress {
        o.host.as_mut().unwrap().qdiscs.push(qdisc(HOST, "ingress", None));
        o.host.as_mut().unwrap().ingress_filters = vec![filter(vec![]), filter(vec![IFB])];
        o.ifb = Some(IfbSide {
            link: link(IFB, "bwpx", "ifb", Some(owner().alias())),
            qdiscs: vec![qdisc(IFB, "tbf", Some(l.tbf()))],
        });
    }
    o
}

fn both() -> Limits {
    Limits {
        ingress: Some(Limit {
            rate_bits: 10_000_000,
            burst_bits: 1_000_000,
        }),
        egress: Some(Limit {
            rate_bits: 20_000_000,
            burst_bits: 2_000_000,
        }),
    }
}

fn add(limits: &Limits, o: &Snapshot) -> CniResult<Plan> {
    plan_add(limits, &owner(), "bwpx", o, Psched::default())
}

#[test]
fn fresh_add_golden_plan() {
    let lim = both();
    let p = add(&lim, &fresh()).unwrap();
    let ing = lim.ingress.unwrap().tbf();
    let eg = lim.egress.unwrap().tbf();
    assert_eq!(
        p.steps.steps,
        vec![
            Step::new(
                Change::SetTbf {
                    dev: Device::HostVeth,
                    tbf: ing
                },
                Some(Change::DeleteRootQdisc {
                    dev: Device::HostVeth
                })
            ),
            Step::new(
                Change::CreateIfb {
                    mtu: 1500,
                    txqlen: 1000,
                    alias: owner().alias()
                },
                Some(Change::DeleteIfb)
            ),
            Step::new(
                Change::SetTbf {
                    dev: Device::Ifb,
                    tbf: eg
                },
                None
            ),
            Step::new(Change::AddIngressQdisc, Some(Change::DeleteIngressQdisc)),
            Step::new(Change::Redirect { to: Device::Ifb }, None),
        ]
    );
    assert_eq!(p.devices.host, Some((HOST, "veth1".into())));
    assert_eq!(p.devices.ifb_index, None);
}

#[test]
fn add_on_done_state_is_empty() {
    let lim = both();
    assert_eq!(add(&lim, &done(&lim)).unwrap().steps.steps, vec![]);
    assert!(check(&lim, &owner(), "bwpx", &done(&lim)).is_ok());
}

#[test]
fn add_converges_changed_values_with_undo_to_old() {
    let old = both();
    let mut new = both();
    new.ingress = Some(Limit {
        rate_bits: 8_000_000,
        burst_bits: 1_000_000,
    });
    let p = add(&new, &done(&old)).unwrap();
    assert_eq!(
        p.steps.steps,
        vec![Step::new(
            Change::SetTbf {
                dev: Device::HostVeth,
                tbf: new.ingress.unwrap().tbf()
            },
            Some(Change::SetTbf {
                dev: Device::HostVeth,
                tbf: old.ingress.unwrap().tbf()
            })
        )]
    );
}

#[test]
fn add_dropping_egress_removes_ifb_and_redirect() {
    let lim = both();
    let only_in = Limits {
        ingress: lim.ingress,
        egress: None,
    };
    let p = add(&only_in, &done(&lim)).unwrap();
    assert_eq!(p.changes(), vec![Change::DeleteIngressQdisc, Change::DeleteIfb]);
    let none_in = Limits {
        ingress: None,
        egress: lim.egress,
    };
    let p = add(&none_in, &done(&lim)).unwrap();
    assert_eq!(
        p.changes(),
        vec![Change::DeleteRootQdisc {
            dev: Device::HostVeth
        }]
    );
}

#[test]
fn add_after_partial_add_completes_it() {
    // Killed after creating the ifb, before its alias, tbf and redirect.
    let lim = both();
    let mut o = fresh();
    let mut l = link(IFB, "bwpx", "ifb", None);
    l.up = false;
    o.ifb = Some(IfbSide {
        link: l,
        qdiscs: vec![],
    });
    let p = add(&lim, &o).unwrap();
    assert_eq!(
        p.changes(),
        vec![
            Change::SetTbf {
                dev: Device::HostVeth,
                tbf: lim.ingress.unwrap().tbf()
            },
            Change::SetIfbAlias {
                alias: owner().alias()
            },
            Change::SetIfbUp { up: true },
            Change::SetTbf {
                dev: Device::Ifb,
                tbf: lim.egress.unwrap().tbf()
            },
            Change::AddIngressQdisc,
            Change::Redirect { to: Device::Ifb },
        ]
    );
    // The ifb existed, so its TBF's undo deletes only the qdisc.
    assert_eq!(
        p.steps.steps[3].undo,
        Some(Change::DeleteRootQdisc { dev: Device::Ifb })
    );
    assert_eq!(p.devices.ifb_index, Some(IFB));
}

#[test]
fn add_replaces_reference_double_mirred_filter() {
    let lim = both();
    let mut o = done(&lim);
    o.ifb.as_mut().unwrap().link.alias = None;
    o.host.as_mut().unwrap().ingress_filters = vec![filter(vec![IFB, IFB])];
    let p = add(&lim, &o).unwrap();
    assert_eq!(
        p.steps.steps,
        vec![
            Step::new(
                Change::SetIfbAlias {
                    alias: owner().alias()
                },
                None
            ),
            Step::new(
                Change::Redirect { to: Device::Ifb },
                Some(Change::Redirect {
                    to: Device::Index(IFB)
                })
            ),
        ]
    );
}

#[test]
fn add_fixes_ifb_mtu() {
    let lim = both();
    let mut o = done(&lim);
    o.ifb.as_mut().unwrap().link.mtu = 9000;
    assert_eq!(
        add(&lim, &o).unwrap().steps.steps,
        vec![Step::new(
            Change::SetIfbMtu { mtu: 1500 },
            Some(Change::SetIfbMtu { mtu: 9000 })
        )]
    );
}

#[test]
fn add_refuses_other_owners_and_non_ifb() {
    let lim = both();
    let mut o = done(&lim);
    let other = Owner {
        ifname: "eth1".into(),
        ..owner()
    };
    o.ifb.as_mut().unwrap().link.alias = Some(other.alias());
    let e = add(&lim, &o).unwrap_err();
    assert!(e.msg.contains("another interface"), "{}", e.msg);
    o.ifb.as_mut().unwrap().link.kind = Some("dummy".into());
    let e = add(&lim, &o).unwrap_err();
    assert!(e.msg.contains("not an ifb"), "{}", e.msg);
    assert_eq!(e.code, Code::InvalidConfig);
    o.ifb.as_mut().unwrap().link.kind = Some("ifb".into());
    o.ifb.as_mut().unwrap().link.alias = Some("someone else's".into());
    let e = add(&lim, &o).unwrap_err();
    assert!(e.msg.contains("foreign alias"), "{}", e.msg);
    assert_eq!(e.code, Code::InvalidConfig);
}

#[test]
fn add_validates_mtu_and_buffer_before_anything() {
    let lim = Limits {
        ingress: Some(Limit {
            rate_bits: 8000,
            burst_bits: 80,
        }),
        egress: None,
    };
    let e = add(&lim, &fresh()).unwrap_err();
    assert_eq!(e.code, Code::InvalidConfig);
    assert!(e.msg.contains("mtu 1500 of veth1"), "{}", e.msg);
    let lim = Limits {
        ingress: None,
        egress: Some(Limit {
            rate_bits: 1_000_000,
            burst_bits: 800_000_000,
        }),
    };
    let e = add(&lim, &fresh()).unwrap_err();
    assert_eq!(e.code, Code::InvalidConfig);
    assert!(e.msg.contains("to drain"), "{}", e.msg);
}

#[test]
fn add_refuses_clsact_in_the_ingress_slot() {
    let mut o = fresh();
    o.host.as_mut().unwrap().qdiscs.push(qdisc(HOST, "clsact", None));
    let e = add(&both(), &o).unwrap_err();
    assert_eq!(e.code, Code::InvalidConfig);
    assert!(e.msg.contains("veth1 has a clsact qdisc"), "{}", e.msg);
    // Ingress shaping alone does not need the slot.
    assert!(add(
        &Limits {
            ingress: both().ingress,
            egress: None
        },
        &o
    )
    .is_ok());
}

#[test]
fn add_keeps_existing_ingress_qdisc_and_undoes_to_delete_when_empty() {
    let lim = Limits {
        ingress: None,
        egress: both().egress,
    };
    let mut o = fresh();
    o.host.as_mut().unwrap().qdiscs.push(qdisc(HOST, "ingress", None));
    let p = add(&lim, &o).unwrap();
    assert_eq!(
        p.steps.steps.last(),
        Some(&Step::new(Change::Redirect { to: Device::Ifb }, None))
    );
    assert!(!p.changes().contains(&Change::AddIngressQdisc));
}

#[test]
fn del_golden_plans() {
    let lim = both();
    let o = done(&lim);
    let del = o.clone();
    let p = plan_del(&owner(), "bwpx", &del);
    assert_eq!(
        p.changes(),
        vec![
            Change::DeleteIfb,
            Change::DeleteIngressQdisc,
            Change::DeleteRootQdisc {
                dev: Device::HostVeth
            }
        ]
    );
    // Veth unknown (no netns, no prevResult): the ifb alone.
    let p = plan_del(
        &owner(),
        "bwpx",
        &Snapshot {
            host: None,
            ifb: del.ifb.clone(),
        },
    );
    assert_eq!(p.changes(), vec![Change::DeleteIfb]);
    // Everything gone: nothing to do.
    let p = plan_del(
        &owner(),
        "bwpx",
        &Snapshot {
            host: fresh().host,
            ifb: None,
        },
    );
    assert_eq!(p.changes(), vec![]);
}

#[test]
fn del_spares_other_attachments_and_foreign_redirects() {
    let lim = both();
    let o = done(&lim);
    let mut ifb = o.ifb.as_ref().unwrap().link.clone();
    ifb.alias = Some(
        Owner {
            ifname: "eth1".into(),
            ..owner()
        }
        .alias(),
    );
    let mut host = o.host.clone().unwrap();
    host.ingress_filters = vec![filter(vec![42])];
    let p = plan_del(
        &owner(),
        "bwpx",
        &Snapshot {
            host: Some(host),
            ifb: Some(IfbSide {
                link: ifb,
                qdiscs: vec![],
            }),
        },
    );
    assert_eq!(
        p.changes(),
        vec![Change::DeleteRootQdisc {
            dev: Device::HostVeth
        }]
    );
}

#[test]
fn check_names_each_mismatch() {
    let lim = both();
    type Break = Box<dyn Fn(&mut Snapshot)>;
    let cases: Vec<(Break, &str)> = vec![
        (
            Box::new(|o| o.host.as_mut().unwrap().qdiscs.retain(|q| q.kind != "tbf")),
            "veth1 has no root tbf",
        ),
        (
            Box::new(|o| o.host.as_mut().unwrap().qdiscs[0].tbf.as_mut().unwrap().rate += 1),
            "tbf on veth1 has rate 1250001 B/s, want 1250000 B/s",
        ),
        (
            Box::new(|o| o.host.as_mut().unwrap().qdiscs[0].tbf.as_mut().unwrap().burst += 100),
            "tbf on veth1 has burst",
        ),
        (
            Box::new(|o| o.host.as_mut().unwrap().qdiscs[0].tbf.as_mut().unwrap().limit += 1),
            "tbf on veth1 has limit",
        ),
        (Box::new(|o| o.ifb = None), "ifb bwpx does not exist"),
        (Box::new(|o| o.ifb.as_mut().unwrap().link.mtu = 1400), "mtu 1400"),
        (Box::new(|o| o.ifb.as_mut().unwrap().link.up = false), "is down"),
        (Box::new(|o| o.ifb.as_mut().unwrap().link.alias = None), "alias"),
        (
            Box::new(|o| o.ifb.as_mut().unwrap().qdiscs.clear()),
            "bwpx has no root tbf",
        ),
        (
            Box::new(|o| o.host.as_mut().unwrap().qdiscs.retain(|q| q.kind != "ingress")),
            "no ingress qdisc",
        ),
        (
            Box::new(|o| o.host.as_mut().unwrap().ingress_filters.clear()),
            "no filter redirecting",
        ),
        (
            Box::new(|o| o.host.as_mut().unwrap().ingress_filters = vec![filter(vec![IFB, IFB])]),
            "want only bwpx",
        ),
        (
            Box::new(|o| o.host.as_mut().unwrap().ingress_filters = vec![filter(vec![3])]),
            "want only bwpx",
        ),
        (
            Box::new(|o| o.host.as_mut().unwrap().ingress_filters[1].priority = 2),
            "priority 2",
        ),
    ];
    for (mutate, want) in cases {
        let mut o = done(&lim);
        mutate(&mut o);
        let e = check(&lim, &owner(), "bwpx", &o).unwrap_err();
        assert_eq!(e.code, Code::CheckFailed);
        assert!(e.msg.contains(want), "want {want:?} in {:?}", e.msg);
    }
}

#[test]
fn check_without_limits_is_fine() {
    assert!(check(&Limits::default(), &owner(), "bwpx", &fresh()).is_ok());
}

#[test]
fn tbf_match_tolerates_tick_rounding_only() {
    let want = Limit {
        rate_bits: 999_999_937,
        burst_bits: 777_777,
    }
    .tbf();
    // What the reference's qdisc decodes to on this kernel: 223 B short.
    let mut have = want;
    have.burst = 96_999;
    assert!(tbf_matches(&have, &want));
    have.burst -= 100;
    assert!(!tbf_matches(&have, &want));
}

#[test]
fn describe_names_devices() {
    let p = add(&both(), &fresh()).unwrap();
    assert_eq!(
        p.steps.steps[1].change.text(&p.devices),
        "create ifb bwpx with mtu 1500"
    );
    assert_eq!(
        p.steps.steps[4].change.text(&p.devices),
        "redirect ingress of veth1 to bwpx"
    );
    assert!(p.steps.steps[0].change.text(&p.devices).ends_with("on veth1"));
}

#[test]
fn gc_picks_only_this_networks_stale_ifbs() {
    let mine = |cid: &str, ifname: &str| Owner {
        network: "net".into(),
        container_id: cid.into(),
        ifname: ifname.into(),
    };
    let other_net = Owner {
        network: "other".into(),
        ..mine("c9", "eth0")
    };
    let links = vec![
        link(1, "bwpkeep", "ifb", Some(mine("c1", "eth0").alias())),
        link(2, "bwpstale", "ifb", Some(mine("c2", "eth0").alias())),
        link(3, "bwpnet1", "ifb", Some(mine("c1", "net1").alias())),
        link(4, "bwpother", "ifb", Some(other_net.alias())),
        link(5, "ifb0", "ifb", None),
        link(6, "bwpveth", "veth", Some(mine("c3", "eth0").alias())),
    ];
    let valid = vec![Attachment {
        container_id: "c1".into(),
        ifname: "eth0".into(),
    }];
    let names: Vec<_> = plan_gc(&links, "net", &valid)
        .iter()
        .map(|(l, _)| l.name.as_str())
        .collect();
    assert_eq!(names, ["bwpstale", "bwpnet1"]);
    assert!(plan_gc(&links, "none", &valid).is_empty());
}
