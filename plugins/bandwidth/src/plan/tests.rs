#![allow(clippy::unwrap_used)]

use cni_core::plan::Step;
use cni_core::{Attachment, CniResult, Code};
use nl_ops::filter::{Filter, CLSACT_INGRESS, ETH_P_ALL};
use nl_ops::link::Link;
use nl_ops::qdisc::{ChildQueue, FqCodel, Qdisc, Tbf, INGRESS_HANDLE, TC_H_INGRESS, TC_H_ROOT};

use super::*;
use crate::config::Limits;
use crate::ifb::Owner;
use crate::tbf::{Limit, Psched, TBF_HANDLE};

const HOST: u32 = 7;
const IFB: u32 = 9;
const P: Psched = Psched { ticks_per_us: 15.625 };
const U32_FIRST: u32 = 0x8000_0800;

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
        txqlen: 0,
        link: None,
        link_netnsid: None,
        mac: None,
        master: None,
        vrf_table: None,
    }
}

fn qdisc(index: u32, kind: &str, handle: u32, tbf: Option<Tbf>) -> Qdisc {
    let parent = if kind == "ingress" || kind == "clsact" {
        TC_H_INGRESS
    } else {
        TC_H_ROOT
    };
    Qdisc {
        index,
        handle,
        parent,
        kind: kind.into(),
        tbf,
        ingress_block: None,
        fq_codel: None,
    }
}

fn filter(handle: u32, targets: Vec<u32>) -> Filter {
    Filter {
        parent: 0xffff_0000,
        priority: 1,
        protocol: ETH_P_ALL,
        kind: "u32".into(),
        handle,
        actions: targets.len(),
        mirred_targets: targets,
        cookie: None,
        match_all: true,
    }
}

/// A redirect ADD made, marked with `mark`.
fn marked(handle: u32, targets: Vec<u32>, mark: Mark) -> Filter {
    Filter {
        cookie: Some(mark.bytes().to_vec()),
        ..filter(handle, targets)
    }
}

fn add_redirect(priority: u16, mark: Mark) -> Change {
    Change::AddRedirect {
        parent: INGRESS_HANDLE,
        priority,
        mark,
    }
}

fn host_mut(o: &mut Snapshot) -> &mut HostSide {
    o.host.as_mut().unwrap()
}

fn root_tbf(o: &mut Snapshot) -> &mut Tbf {
    host_mut(o).qdiscs[0].tbf.as_mut().unwrap()
}

fn fresh() -> Snapshot {
    Snapshot {
        host: Some(HostSide {
            veth: link(HOST, "veth1", "veth", None),
            qdiscs: vec![qdisc(HOST, "noqueue", 0, None)],
            ingress_filters: vec![],
            dead_targets: vec![],
        }),
        ifb: None,
        fq_codel: false,
    }
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
        max_burst_ms: None,
        queue: Default::default(),
    }
}

fn tbf(limits: &Limits, ingress: bool) -> Tbf {
    let l = if ingress { limits.ingress } else { limits.egress };
    crate::tbf::bucket("x", l.unwrap(), 1514, P, limits.max_burst_ms)
        .unwrap()
        .queued(limits.queue.discipline(false), 1514)
        .tbf
}

/// The state a complete ADD of `limits` leaves.
fn done(limits: &Limits) -> Snapshot {
    let mut o = fresh();
    if limits.ingress.is_some() {
        host_mut(&mut o).qdiscs = vec![qdisc(HOST, "tbf", TBF_HANDLE, Some(tbf(limits, true).dumped()))];
    }
    if limits.egress.is_some() {
        let h = host_mut(&mut o);
        h.qdiscs.push(qdisc(HOST, "ingress", 0xffff_0000, None));
        h.ingress_filters = vec![marked(U32_FIRST, vec![IFB], Mark::FilterAndQdisc)];
        o.ifb = Some(IfbSide {
            link: link(IFB, "bwpx", "ifb", Some(owner().alias())),
            qdiscs: vec![qdisc(IFB, "tbf", TBF_HANDLE, Some(tbf(limits, false).dumped()))],
        });
    }
    o
}

fn add(limits: &Limits, o: &Snapshot) -> CniResult<Plan> {
    plan_add(limits, &owner(), "bwpx", o, P)
}

fn del(o: &Snapshot) -> Vec<Change> {
    plan_del(&owner(), "bwpx", o, true).changes()
}

fn only(limits: &Limits, ingress: bool) -> Limits {
    Limits {
        ingress: limits.ingress.filter(|_| ingress),
        egress: limits.egress.filter(|_| !ingress),
        max_burst_ms: limits.max_burst_ms,
        queue: limits.queue,
    }
}

#[test]
fn fresh_add_golden_plan() {
    let lim = both();
    let p = add(&lim, &fresh()).unwrap();
    assert_eq!(
        p.steps.steps,
        vec![
            Step::new(
                Change::AddTbf {
                    dev: Device::HostVeth,
                    tbf: tbf(&lim, true)
                },
                Some(Change::DeleteTbf {
                    dev: Device::HostVeth
                })
            ),
            Step::new(
                Change::CreateIfb {
                    mtu: 1500,
                    alias: owner().alias()
                },
                Some(Change::DeleteIfb)
            ),
            // The ifb's deletion takes its TBF with it.
            Step::once(Change::AddTbf {
                dev: Device::Ifb,
                tbf: tbf(&lim, false)
            }),
            Step::new(
                Change::AddIngressWithRedirect { priority: 1 },
                Some(Change::DeleteIngressQdisc)
            ),
        ]
    );
    assert_eq!(p.devices.host, Some((HOST, "veth1".into())));
    assert_eq!(p.devices.ifb_index, None);
}

#[test]
fn add_on_done_state_is_empty_and_check_agrees() {
    let lim = both();
    assert!(add(&lim, &done(&lim)).unwrap().is_empty());
    check(&lim, &owner(), "bwpx", &done(&lim), P).unwrap();
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
            Change::ChangeTbf {
                dev: Device::HostVeth,
                tbf: tbf(&new, true)
            },
            Some(Change::ChangeTbf {
                dev: Device::HostVeth,
                tbf: tbf(&old, true)
            })
        )]
    );
}

/// Issue 12: an ADD for one direction leaves the other as it finds it.
#[test]
fn add_of_one_direction_leaves_the_other_alone() {
    let lim = both();
    assert!(add(&only(&lim, true), &done(&lim)).unwrap().is_empty());
    assert!(add(&only(&lim, false), &done(&lim)).unwrap().is_empty());
    // An egress-only ADD beside someone's root TBF keeps it.
    let mut o = fresh();
    host_mut(&mut o).qdiscs = vec![qdisc(HOST, "tbf", 0x8001_0000, Some(tbf(&lim, true)))];
    let p = add(&only(&lim, false), &o).unwrap();
    assert!(!p.changes().iter().any(|c| matches!(
        c,
        Change::DeleteTbf { .. }
            | Change::AddTbf {
                dev: Device::HostVeth,
                ..
            }
    )));
}

/// Issue 12: someone else's root qdisc where ours must go is a typed error
/// before anything changes; the reference fails with "file exists".
#[test]
fn add_refuses_a_foreign_root_qdisc() {
    let lim = both();
    for (kind, handle) in [("htb", 0x1_0000), ("tbf", 0x8001_0000), ("htb", 0x5_0000)] {
        let mut o = fresh();
        let t = (kind == "tbf").then(|| tbf(&lim, true));
        host_mut(&mut o).qdiscs = vec![qdisc(HOST, kind, handle, t)];
        let e = add(&lim, &o).unwrap_err();
        assert_eq!(e.code, Code::InvalidConfig, "{kind}");
        assert!(
            e.msg.starts_with("cannot shape veth1: its root qdisc is a"),
            "{}",
            e.msg
        );
        assert!(e.msg.contains(kind), "{}", e.msg);
    }
    // Someone else's qdisc on our own ifb: not ours to replace either.
    let mut o = done(&lim);
    o.ifb.as_mut().unwrap().qdiscs = vec![qdisc(IFB, "htb", 0x1_0000, None)];
    assert!(add(&lim, &o).unwrap_err().msg.contains("cannot shape bwpx"));
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
            Change::AddTbf {
                dev: Device::HostVeth,
                tbf: tbf(&lim, true)
            },
            Change::SetIfbAlias {
                alias: owner().alias()
            },
            Change::SetIfbUp { up: true },
            Change::AddTbf {
                dev: Device::Ifb,
                tbf: tbf(&lim, false)
            },
            Change::AddIngressWithRedirect { priority: 1 },
        ]
    );
    // The ifb existed, so its TBF's undo deletes only the qdisc.
    assert_eq!(
        p.steps.steps[3].undo,
        Some(Change::DeleteTbf { dev: Device::Ifb })
    );
    assert_eq!(p.devices.ifb_index, Some(IFB));
}

#[test]
fn add_makes_the_references_double_mirred_and_stale_redirects_single_in_place() {
    let lim = both();
    let mut o = done(&lim);
    o.ifb.as_mut().unwrap().link.alias = None;
    host_mut(&mut o).ingress_filters = vec![filter(U32_FIRST, vec![IFB, IFB])];
    assert_eq!(
        add(&lim, &o).unwrap().changes(),
        vec![
            Change::SetIfbAlias {
                alias: owner().alias()
            },
            Change::ReplaceRedirect {
                parent: INGRESS_HANDLE,
                priority: 1,
                handle: U32_FIRST,
                mark: Mark::FilterAndQdisc,
            },
        ]
    );
    // A redirect to an ifb that is gone (ours, from before it was made anew).
    let mut o = done(&lim);
    let h = host_mut(&mut o);
    h.ingress_filters = vec![filter(U32_FIRST, vec![41])];
    h.dead_targets = vec![41];
    assert_eq!(
        add(&lim, &o).unwrap().changes(),
        vec![Change::ReplaceRedirect {
            parent: INGRESS_HANDLE,
            priority: 1,
            handle: U32_FIRST,
            mark: Mark::FilterAndQdisc,
        }]
    );
}

/// Issue 12: other filters on the veth's ingress stay; ours goes after
/// them. Issue 20 item 2: a filter at priority 1 of another protocol (the
/// kernel takes no u32 for all protocols beside it) no longer refuses ADD.
#[test]
fn add_keeps_foreign_filters_and_goes_after_them() {
    let lim = only(&both(), false);
    let mut o = fresh();
    let h = host_mut(&mut o);
    h.qdiscs.push(qdisc(HOST, "ingress", 0xffff_0000, None));
    // Someone's u32 for all protocols at priority 1, redirecting to a live
    // link of theirs, and a flower filter at priority 5.
    h.ingress_filters = vec![filter(U32_FIRST, vec![3])];
    let mut flower = filter(1, vec![]);
    flower.kind = "flower".into();
    flower.priority = 5;
    h.ingress_filters.push(flower);
    let p = add(&lim, &o).unwrap();
    assert_eq!(p.changes().last(), Some(&add_redirect(6, Mark::Filter)));
    assert!(!p
        .changes()
        .iter()
        .any(|c| matches!(c, Change::DeleteRedirect { .. } | Change::ReplaceRedirect { .. })));
    // Another protocol at priority 1 (`match ip dst`): ours at 2.
    let mut ip_only = filter(U32_FIRST, vec![3]);
    ip_only.protocol = 0x0800;
    ip_only.match_all = false;
    host_mut(&mut o).ingress_filters = vec![ip_only];
    let p = add(&lim, &o).unwrap();
    assert_eq!(p.changes().last(), Some(&add_redirect(2, Mark::Filter)));
    // Theirs on the last priority: ours on the lowest free one.
    let mut last = filter(U32_FIRST, vec![3]);
    last.priority = u16::MAX;
    host_mut(&mut o).ingress_filters.push(last);
    let p = add(&lim, &o).unwrap();
    assert_eq!(p.changes().last(), Some(&add_redirect(2, Mark::Filter)));
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

/// Issue 20 item 1: eBPF agents' clsact with their filters (cls_bpf,
/// u32): our redirect goes on its ingress hook after theirs, and DEL takes
/// only ours, never their qdisc or filters.
#[test]
fn clsact_takes_our_redirect_after_theirs_and_stays() {
    let lim = both();
    let mut o = fresh();
    let h = host_mut(&mut o);
    h.qdiscs.push(qdisc(HOST, "clsact", 0xffff_0000, None));
    let mut bpf = filter(1, vec![]);
    bpf.kind = "bpf".into();
    bpf.match_all = false;
    let mut u32_theirs = filter(U32_FIRST, vec![]);
    u32_theirs.priority = 3;
    u32_theirs.actions = 1;
    h.ingress_filters = vec![bpf.clone(), u32_theirs.clone()];
    let p = add(&lim, &o).unwrap();
    let changes = p.changes();
    assert!(
        !changes
            .iter()
            .any(|c| matches!(c, Change::AddIngressWithRedirect { .. })),
        "{changes:?}"
    );
    assert_eq!(
        p.steps.steps.last().unwrap(),
        &Step::new(
            Change::AddRedirect {
                parent: CLSACT_INGRESS,
                priority: 4,
                mark: Mark::Filter
            },
            Some(Change::DeleteMarkedRedirect {
                parent: CLSACT_INGRESS,
                priority: 4,
                mark: Mark::Filter
            })
        )
    );
    // As ADD leaves it: CHECK agrees, a second ADD has nothing to do.
    let mut done_o = done(&lim);
    let h = host_mut(&mut done_o);
    h.qdiscs.retain(|q| q.kind != "ingress");
    h.qdiscs.push(qdisc(HOST, "clsact", 0xffff_0000, None));
    let mut ours = marked(U32_FIRST + 0x1000, vec![IFB], Mark::Filter);
    ours.priority = 4;
    h.ingress_filters = vec![bpf, u32_theirs, ours];
    check(&lim, &owner(), "bwpx", &done_o, P).unwrap();
    assert!(add(&lim, &done_o).unwrap().is_empty());
    assert_eq!(
        del(&done_o),
        vec![
            Change::DeleteIfb,
            Change::DeleteRedirect {
                parent: CLSACT_INGRESS,
                priority: 4,
                handle: U32_FIRST + 0x1000,
                whole: true
            },
            Change::DeleteTbf {
                dev: Device::HostVeth
            }
        ]
    );
    // Ours alone on it: the clsact still stays.
    host_mut(&mut done_o).ingress_filters.drain(..2);
    assert!(!del(&done_o).contains(&Change::DeleteIngressQdisc));
    // Another kind in the ingress slot is still refused.
    let mut o = fresh();
    host_mut(&mut o)
        .qdiscs
        .push(qdisc(HOST, "htb", 0xffff_0000, None));
    host_mut(&mut o).qdiscs[1].parent = TC_H_INGRESS;
    let e = add(&both(), &o).unwrap_err();
    assert_eq!(e.code, Code::InvalidConfig);
    assert!(e.msg.contains("veth1 has a htb qdisc"), "{}", e.msg);
    // Ingress shaping alone does not need the slot.
    assert!(add(&only(&both(), true), &o).is_ok());
}

/// Issue 20 item 12: an egress-only attachment's DEL keeps the look-alikes
/// that were there before its ADD: an empty ingress qdisc (the redirect's
/// mark says ADD did not make it), a root `tbf 1:` (an egress-only config
/// makes none), a u32 that redirects some packets to a deleted link.
#[test]
fn an_egress_only_del_keeps_what_was_there_before() {
    let lim = only(&both(), false);
    let mut o = fresh();
    let h = host_mut(&mut o);
    h.qdiscs = vec![
        qdisc(HOST, "tbf", TBF_HANDLE, Some(tbf(&both(), true))),
        qdisc(HOST, "ingress", 0xffff_0000, None),
    ];
    let mut theirs = filter(U32_FIRST, vec![0]);
    theirs.priority = 3;
    theirs.match_all = false;
    h.ingress_filters = vec![theirs.clone()];
    h.dead_targets = vec![0];
    assert_eq!(
        add(&lim, &o).unwrap().changes().last(),
        Some(&add_redirect(4, Mark::Filter))
    );
    // As ADD leaves it.
    let h = host_mut(&mut o);
    let mut ours = marked(U32_FIRST + 0x1000, vec![IFB], Mark::Filter);
    ours.priority = 4;
    h.ingress_filters.push(ours);
    o.ifb = done(&lim).ifb;
    let del_egress = |o: &Snapshot| plan_del(&owner(), "bwpx", o, false).changes();
    let want = vec![
        Change::DeleteIfb,
        Change::DeleteRedirect {
            parent: INGRESS_HANDLE,
            priority: 4,
            handle: U32_FIRST + 0x1000,
            whole: true,
        },
    ];
    assert_eq!(del_egress(&o), want);
    // Without theirs, the empty ingress qdisc stays all the same.
    host_mut(&mut o).ingress_filters.remove(0);
    assert_eq!(del_egress(&o), want);
    // The ifb gone, its mirred dumps index 0: still only ours.
    host_mut(&mut o).ingress_filters.insert(0, theirs);
    host_mut(&mut o).ingress_filters[1].mirred_targets = vec![0];
    o.ifb = None;
    assert_eq!(del_egress(&o), want[1..]);
}

/// An ingress qdisc on a shared filter block takes no redirect of the
/// veth's own: refused before any change, like clsact, and someone else's
/// for DEL, even beside our ifb.
#[test]
fn a_shared_block_ingress_is_refused_and_not_ours() {
    let mut o = fresh();
    let mut shared = qdisc(HOST, "ingress", 0xffff_0000, None);
    shared.ingress_block = Some(7);
    host_mut(&mut o).qdiscs.push(shared);
    let e = add(&both(), &o).unwrap_err();
    assert_eq!(e.code, Code::InvalidConfig);
    assert!(
        e.msg
            .starts_with("veth1 has an ingress qdisc on shared block 7 where egress shaping needs its own"),
        "{}",
        e.msg
    );
    assert!(del(&o).is_empty());
    o.ifb = done(&both()).ifb;
    assert_eq!(del(&o), vec![Change::DeleteIfb]);
}

#[test]
fn add_keeps_an_existing_ingress_qdisc() {
    let lim = only(&both(), false);
    let mut o = fresh();
    host_mut(&mut o)
        .qdiscs
        .push(qdisc(HOST, "ingress", 0xffff_0000, None));
    let p = add(&lim, &o).unwrap();
    assert_eq!(p.changes().last(), Some(&add_redirect(1, Mark::Filter)));
    assert!(!p
        .changes()
        .iter()
        .any(|c| matches!(c, Change::AddIngressWithRedirect { .. })));
}

/// Issue 11: what the reference installs broken, ADD installs working.
#[test]
fn add_installs_the_nearest_working_bucket() {
    // The seed document's example at MTU 512.
    let lim = Limits {
        ingress: Some(Limit {
            rate_bits: 123,
            burst_bits: 456,
        }),
        egress: Some(Limit {
            rate_bits: 123,
            burst_bits: 456,
        }),
        max_burst_ms: None,
        queue: Default::default(),
    };
    let mut o = fresh();
    host_mut(&mut o).veth.mtu = 512;
    let p = add(&lim, &o).unwrap();
    // No bucket given as time passes a 526-byte frame at 15 B/s: in bytes.
    let in_bytes = Tbf {
        rate: 15,
        buffer: crate::tbf::kernel_buffer_ticks(15, 526),
        // Two frames and room for small packets: the bounded queue.
        limit: 1052 + 512,
        burst: Some(526),
        peak: None,
    };
    assert_eq!(
        p.changes()
            .iter()
            .filter(|c| matches!(c, Change::AddTbf { tbf, .. } if *tbf == in_bytes))
            .count(),
        2
    );
    // CHECK passes on what the kernel dumps (no burst), as ADD planned it.
    let mut dumped = done(&lim);
    let as_dumped = Tbf {
        burst: None,
        peak: None,
        ..in_bytes
    };
    host_mut(&mut dumped).veth.mtu = 512;
    *root_tbf(&mut dumped) = as_dumped;
    let ifb = dumped.ifb.as_mut().unwrap();
    ifb.link.mtu = 512;
    ifb.qdiscs[0].tbf = Some(as_dumped);
    check(&lim, &owner(), "bwpx", &dumped, P).unwrap();
    // ADD sends it again (the dump cannot tell it from the reference's
    // bucket as time, which passes no frame), with nothing to undo.
    assert_eq!(
        add(&lim, &dumped).unwrap().steps.steps,
        vec![
            Step::once(Change::ChangeTbf {
                dev: Device::HostVeth,
                tbf: in_bytes
            }),
            Step::once(Change::ChangeTbf {
                dev: Device::Ifb,
                tbf: in_bytes
            }),
        ]
    );
    // containerd's burst at 1 Mbit/s: capped at the kernel's largest.
    let lim = Limits {
        ingress: Some(Limit {
            rate_bits: 1_000_000,
            burst_bits: 4_294_967_295,
        }),
        egress: None,
        max_burst_ms: None,
        queue: Default::default(),
    };
    let p = add(&lim, &fresh()).unwrap();
    let Change::AddTbf { tbf, .. } = &p.changes()[0] else {
        panic!()
    };
    assert_eq!(tbf.buffer, u32::MAX);
    // And with the operator's cap: 20 ms at 125 kB/s is 2500 bytes.
    let capped = Limits {
        max_burst_ms: Some(20),
        ..lim
    };
    let p = add(&capped, &fresh()).unwrap();
    let Change::AddTbf { tbf, .. } = &p.changes()[0] else {
        panic!()
    };
    assert!(crate::tbf::bytes_of(125_000, u64::from(tbf.buffer), P).abs_diff(2500) <= 1);
    // CHECK compares with the same numbers.
    let mut o = fresh();
    host_mut(&mut o).qdiscs = vec![qdisc(HOST, "tbf", TBF_HANDLE, Some(*tbf))];
    check(&capped, &owner(), "bwpx", &o, P).unwrap();
    assert!(check(&lim, &owner(), "bwpx", &o, P).is_err());
}

#[test]
fn del_golden_plans() {
    let lim = both();
    let o = done(&lim);
    assert_eq!(
        del(&o),
        vec![
            Change::DeleteIfb,
            Change::DeleteIngressQdisc,
            Change::DeleteTbf {
                dev: Device::HostVeth
            }
        ]
    );
    // Veth unknown (no netns, no prevResult): the ifb alone.
    let mut no_host = o.clone();
    no_host.host = None;
    assert_eq!(del(&no_host), vec![Change::DeleteIfb]);
    // Everything gone: nothing to do.
    assert!(del(&fresh()).is_empty());
    // The reference's state: no alias, double mirred.
    let mut r = o.clone();
    r.ifb.as_mut().unwrap().link.alias = None;
    host_mut(&mut r).ingress_filters = vec![filter(U32_FIRST, vec![IFB, IFB])];
    assert_eq!(del(&r), del(&o));
}

/// Issue 12: DEL leaves everything that is not this attachment's.
#[test]
fn del_spares_foreign_qdiscs_filters_and_other_attachments() {
    let lim = both();
    // Another attachment's ifb under our name, and a redirect on the veth
    // to a live link of someone else: only the root TBF (ours by shape) goes.
    let mut o = done(&lim);
    o.ifb.as_mut().unwrap().link.alias = Some(
        Owner {
            ifname: "eth1".into(),
            ..owner()
        }
        .alias(),
    );
    host_mut(&mut o).ingress_filters = vec![filter(U32_FIRST, vec![42])];
    assert_eq!(
        del(&o),
        vec![Change::DeleteTbf {
            dev: Device::HostVeth
        }]
    );

    // DEL without ADD: someone's root TBF (another handle) and ingress
    // qdisc with their filter stay.
    let mut o = fresh();
    let h = host_mut(&mut o);
    h.qdiscs = vec![
        qdisc(HOST, "tbf", 0x8001_0000, Some(tbf(&lim, true))),
        qdisc(HOST, "ingress", 0xffff_0000, None),
    ];
    h.ingress_filters = vec![filter(U32_FIRST, vec![42])];
    assert!(del(&o).is_empty());

    // DEL without ADD, and after an ADD rolled back: someone's empty
    // ingress qdisc stays.
    let mut o = fresh();
    host_mut(&mut o)
        .qdiscs
        .push(qdisc(HOST, "ingress", 0xffff_0000, None));
    assert!(del(&o).is_empty());
    // Beside our ifb too: ADD makes ours with its redirect in one
    // datagram, so an empty one was never ADD's (issue 20 item 12).
    o.ifb = done(&lim).ifb;
    assert_eq!(del(&o), vec![Change::DeleteIfb]);
    let p = add(&only(&lim, false), &o).unwrap();
    assert_eq!(p.changes().last(), Some(&add_redirect(1, Mark::Filter)));

    // Our redirect beside someone's filters: ours alone goes, as a node
    // when theirs shares its priority, with its priority when not.
    let mut o = done(&lim);
    host_mut(&mut o)
        .ingress_filters
        .push(filter(U32_FIRST + 1, vec![42]));
    assert_eq!(
        del(&o),
        vec![
            Change::DeleteIfb,
            Change::DeleteRedirect {
                parent: INGRESS_HANDLE,
                priority: 1,
                handle: U32_FIRST,
                whole: false
            },
            Change::DeleteTbf {
                dev: Device::HostVeth
            }
        ]
    );
    let mut o = done(&lim);
    let mut theirs = filter(U32_FIRST, vec![42]);
    theirs.priority = 7;
    host_mut(&mut o).ingress_filters.push(theirs);
    assert!(del(&o).contains(&Change::DeleteRedirect {
        parent: INGRESS_HANDLE,
        priority: 1,
        handle: U32_FIRST,
        whole: true
    }));
}

/// Only redirects for all protocols are ours: a u32 for IPv4 alone that
/// redirects to a link since gone is someone else's. Taken for ours, DEL
/// would delete it as ours are deleted (protocol all), which the kernel
/// refuses at its priority (EINVAL) on every retry.
#[test]
fn only_protocol_all_redirects_are_ours() {
    let lim = both();
    let mut o = done(&lim);
    let mut ip_only = filter(U32_FIRST + 0x1000, vec![0]);
    ip_only.protocol = 0x0800;
    ip_only.priority = 5;
    let h = host_mut(&mut o);
    h.ingress_filters.push(ip_only);
    h.dead_targets = vec![0];
    assert_eq!(
        del(&o),
        vec![
            Change::DeleteIfb,
            Change::DeleteRedirect {
                parent: INGRESS_HANDLE,
                priority: 1,
                handle: U32_FIRST,
                whole: true
            },
            Change::DeleteTbf {
                dev: Device::HostVeth
            }
        ]
    );
    assert!(add(&lim, &o).unwrap().is_empty());
}

#[test]
fn check_names_each_mismatch() {
    let lim = both();
    type Break = Box<dyn Fn(&mut Snapshot)>;
    let cases: Vec<(Break, &str)> = vec![
        (
            Box::new(|o| host_mut(o).qdiscs.retain(|q| q.kind != "tbf")),
            "veth1 has no root tbf",
        ),
        (
            Box::new(|o| root_tbf(o).rate += 1),
            "tbf on veth1 has rate (B/s) 1250001, want 1250000",
        ),
        (
            Box::new(|o| root_tbf(o).buffer += 100),
            "tbf on veth1 has buffer (ticks)",
        ),
        (Box::new(|o| root_tbf(o).limit += 1), "tbf on veth1 has limit (B)"),
        (
            Box::new(|o| host_mut(o).qdiscs[0].handle = 0x8001_0000),
            "the root qdisc of veth1 is a tbf (8001:), not bandwidth's tbf",
        ),
        (Box::new(|o| o.ifb = None), "ifb bwpx does not exist"),
        (Box::new(|o| o.ifb.as_mut().unwrap().link.mtu = 1400), "mtu 1400"),
        (Box::new(|o| o.ifb.as_mut().unwrap().link.up = false), "is down"),
        (
            Box::new(|o| o.ifb.as_mut().unwrap().link.alias = Some("cni-bandwidth net c2 eth0".into())),
            "alias",
        ),
        (
            Box::new(|o| o.ifb.as_mut().unwrap().qdiscs.clear()),
            "bwpx has no root tbf",
        ),
        (
            Box::new(|o| host_mut(o).qdiscs.retain(|q| q.kind != "ingress")),
            "no ingress qdisc",
        ),
        (
            Box::new(|o| host_mut(o).ingress_filters.clear()),
            "no filter redirecting",
        ),
        (
            Box::new(|o| host_mut(o).ingress_filters = vec![filter(U32_FIRST, vec![IFB, 42])]),
            "want one redirect to bwpx",
        ),
        (
            Box::new(|o| host_mut(o).ingress_filters = vec![filter(U32_FIRST, vec![IFB, IFB, IFB])]),
            "want one redirect to bwpx",
        ),
        (
            Box::new(|o| host_mut(o).ingress_filters[0].protocol = 0x0800),
            "protocol 0x800",
        ),
    ];
    for (mutate, want) in cases {
        let mut o = done(&lim);
        mutate(&mut o);
        let e = check(&lim, &owner(), "bwpx", &o, P).unwrap_err();
        assert_eq!(e.code, Code::CheckFailed);
        assert!(e.msg.contains(want), "want {want:?} in {:?}", e.msg);
    }
}

/// Issue 20 item 11: a pod the reference made before an in-place upgrade
/// passes CHECK (no alias, two mirred actions, its TBF to the wrapped
/// number, containerd's burst included), and ADD converges it to ours.
#[test]
fn check_accepts_the_references_exact_shape_and_add_converges_it() {
    for (rate_bits, burst_bits) in [(20_000_000, 2_000_000), (10_000_000, 4_294_967_295)] {
        let l = Limit {
            rate_bits,
            burst_bits,
        };
        let lim = Limits {
            ingress: Some(l),
            egress: Some(l),
            ..Limits::default()
        };
        let theirs = crate::tbf::reference_tbf(l, P);
        let mut r = done(&lim);
        *root_tbf(&mut r) = theirs;
        r.ifb.as_mut().unwrap().link.alias = None;
        r.ifb.as_mut().unwrap().qdiscs[0].tbf = Some(theirs);
        host_mut(&mut r).ingress_filters = vec![filter(U32_FIRST, vec![IFB, IFB])];
        check(&lim, &owner(), "bwpx", &r, P).unwrap();
        // With an empty alias too, as the kernel may show it.
        r.ifb.as_mut().unwrap().link.alias = Some(String::new());
        check(&lim, &owner(), "bwpx", &r, P).unwrap();
        let ours = tbf(&lim, true);
        assert_ne!(ours.limit, theirs.limit, "{rate_bits} {burst_bits}");
        let changes = add(&lim, &r).unwrap().changes();
        for dev in [Device::HostVeth, Device::Ifb] {
            assert!(
                changes.contains(&Change::ChangeTbf { dev, tbf: ours }),
                "{changes:?}"
            );
        }
        assert!(changes.contains(&Change::SetIfbAlias {
            alias: owner().alias()
        }));
        assert!(changes.contains(&Change::ReplaceRedirect {
            parent: INGRESS_HANDLE,
            priority: 1,
            handle: U32_FIRST,
            mark: Mark::FilterAndQdisc,
        }));
        // Our earlier releases' queue (the reference's limit on our bucket).
        let mut old = done(&lim);
        let earlier = crate::tbf::bucket("x", l, 1514, P, None).unwrap().tbf;
        *root_tbf(&mut old) = earlier;
        check(&lim, &owner(), "bwpx", &old, P).unwrap();
        // And the bounded FIFO before the peak bucket: a whole GSO packet
        // (72 KiB) and no peak; ADD converges it, its undo restores it.
        let floor = Tbf {
            limit: 73_728,
            ..earlier
        };
        *root_tbf(&mut old) = floor;
        check(&lim, &owner(), "bwpx", &old, P).unwrap();
        // And the split in front of 25 ms of rate without room for small
        // packets.
        let no_room = Tbf {
            limit: u32::try_from(l.rate_bytes() * 25 / 1000).unwrap(),
            peak: ours.peak,
            ..earlier
        };
        *root_tbf(&mut old) = no_room.dumped();
        check(&lim, &owner(), "bwpx", &old, P).unwrap();
        *root_tbf(&mut old) = floor;
        assert!(ours.peak.is_some());
        let steps = add(&lim, &old).unwrap().steps.steps;
        assert!(
            steps.contains(&Step::new(
                Change::ChangeTbf {
                    dev: Device::HostVeth,
                    tbf: ours
                },
                Some(Change::ChangeTbf {
                    dev: Device::HostVeth,
                    tbf: floor
                })
            )),
            "{steps:?}"
        );
        // Our own shape as dumped (the peak bucket's bytes are not): done,
        // nothing to send again.
        assert!(add(&lim, &done(&lim)).unwrap().is_empty());
        // A peak bucket of other numbers is not ours.
        *root_tbf(&mut old) = Tbf {
            peak: ours.peak.map(|p| nl_ops::qdisc::Peak {
                mtu: 2,
                burst: None,
                ..p
            }),
            ..ours
        };
        let e = check(&lim, &owner(), "bwpx", &old, P).unwrap_err();
        assert!(e.msg.contains("mtu (ticks) 2, want 1"), "{}", e.msg);
        // Anything else still fails, naming what ADD installs.
        *root_tbf(&mut old) = Tbf {
            limit: ours.limit + 1,
            ..ours
        };
        let e = check(&lim, &owner(), "bwpx", &old, P).unwrap_err();
        assert!(
            e.msg
                .contains(&format!("limit (B) {}, want {}", ours.limit + 1, ours.limit)),
            "{}",
            e.msg
        );
    }
    // With queue "reference", ADD installs (and CHECK wants) the reference's
    // queue limit.
    let l = Limit {
        rate_bits: 10_000_000,
        burst_bits: 4_294_967_295,
    };
    let lim = Limits {
        ingress: Some(l),
        queue: crate::config::Queue::Reference,
        ..Limits::default()
    };
    let Change::AddTbf { tbf: got, .. } = add(&lim, &fresh()).unwrap().changes()[0] else {
        panic!()
    };
    assert_eq!(got.limit, 31_250 + 343_597_383);
}

#[test]
fn check_without_limits_is_fine() {
    check(&Limits::default(), &owner(), "bwpx", &fresh(), P).unwrap();
}

#[test]
fn text_names_devices() {
    let p = add(&both(), &fresh()).unwrap();
    let text = |i: usize| p.steps.steps[i].change.text(&p.devices);
    assert_eq!(text(1), "create ifb bwpx with mtu 1500");
    assert_eq!(
        text(3),
        "add ingress qdisc to veth1 redirecting to bwpx at priority 1"
    );
    assert!(text(0).starts_with("add tbf 1: rate 1250000 B/s"), "{}", text(0));
    assert!(text(0).ends_with("on veth1"), "{}", text(0));
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
    let long = "c".repeat(10_000);
    let links = vec![
        link(1, "bwpkeep", "ifb", Some(mine("c1", "eth0").alias())),
        link(2, "bwpstale", "ifb", Some(mine("c2", "eth0").alias())),
        link(3, "bwpnet1", "ifb", Some(mine("c1", "net1").alias())),
        link(4, "bwpother", "ifb", Some(other_net.alias())),
        link(5, "ifb0", "ifb", None),
        link(6, "bwpveth", "veth", Some(mine("c3", "eth0").alias())),
        link(7, "bwplongkeep", "ifb", Some(mine(&long, "eth0").alias())),
        link(8, "bwplongstale", "ifb", Some(mine(&long[1..], "eth0").alias())),
    ];
    let valid = vec![
        Attachment {
            container_id: "c1".into(),
            ifname: "eth0".into(),
        },
        Attachment {
            container_id: long.clone(),
            ifname: "eth0".into(),
        },
    ];
    let names: Vec<_> = plan_gc(&links, "net", &valid)
        .iter()
        .map(|(l, _)| l.name.as_str())
        .collect();
    assert_eq!(names, ["bwpstale", "bwpnet1", "bwplongstale"]);
    assert!(plan_gc(&links, "none", &valid).is_empty());
}

fn fq_codel_child(index: u32, f: FqCodel) -> Qdisc {
    Qdisc {
        index,
        handle: FQ_CODEL_HANDLE,
        parent: QUEUE_CLASS,
        kind: "fq_codel".into(),
        tbf: None,
        ingress_block: None,
        fq_codel: Some(f),
    }
}

/// `done` with fq_codel in the kernel and under both TBFs, as it dumps
/// (CoDel's times a microsecond short).
fn done_aqm(limits: &Limits) -> Snapshot {
    let mut o = done(limits);
    o.fq_codel = true;
    let dumped = FqCodel {
        target_us: FQ_CODEL.target_us - 1,
        interval_us: FQ_CODEL.interval_us - 1,
        ..FQ_CODEL
    };
    host_mut(&mut o).qdiscs.push(fq_codel_child(HOST, dumped));
    if let Some(ifb) = o.ifb.as_mut() {
        ifb.qdiscs.push(fq_codel_child(IFB, dumped));
    }
    o
}

fn set_queue(dev: Device, queue: ChildQueue) -> Change {
    Change::SetQueue { dev, queue }
}

#[test]
fn with_fq_codel_each_new_tbf_gets_it_undone_with_the_tbf() {
    let lim = both();
    let mut o = fresh();
    o.fq_codel = true;
    let steps = add(&lim, &o).unwrap().steps.steps;
    let fq = ChildQueue::FqCodel(FQ_CODEL);
    assert_eq!(steps[1], Step::once(set_queue(Device::HostVeth, fq)));
    assert_eq!(steps[4], Step::once(set_queue(Device::Ifb, fq)));
    assert!(matches!(
        steps[0].change,
        Change::AddTbf {
            dev: Device::HostVeth,
            ..
        }
    ));
    assert!(matches!(steps[3].change, Change::AddTbf { dev: Device::Ifb, .. }));
    // Then the ingress qdisc and the redirect, one step.
    assert_eq!(steps.len(), 6);
    // Without fq_codel in the kernel: the TBF's own FIFO, nothing more.
    let plain = add(&lim, &fresh()).unwrap().changes();
    assert!(
        !plain.iter().any(|c| matches!(c, Change::SetQueue { .. })),
        "{plain:?}"
    );
}

#[test]
fn fq_codel_done_is_empty_and_checks_with_the_kernels_rounding() {
    let lim = both();
    let o = done_aqm(&lim);
    assert!(add(&lim, &o).unwrap().is_empty());
    check(&lim, &owner(), "bwpx", &o, P).unwrap();
    // A plain DEL: the TBFs take their queues with them.
    assert_eq!(del(&o), del(&done(&lim)));
}

#[test]
fn fq_codel_onto_an_existing_tbf_is_undone_to_a_fifo() {
    let lim = both();
    let mut o = done(&lim);
    o.fq_codel = true;
    let steps = add(&lim, &o).unwrap().steps.steps;
    let fq = ChildQueue::FqCodel(FQ_CODEL);
    assert_eq!(
        steps,
        vec![
            Step::new(
                set_queue(Device::HostVeth, fq),
                Some(set_queue(
                    Device::HostVeth,
                    ChildQueue::Bfifo(tbf(&lim, true).limit)
                ))
            ),
            Step::new(
                set_queue(Device::Ifb, fq),
                Some(set_queue(Device::Ifb, ChildQueue::Bfifo(tbf(&lim, false).limit)))
            ),
        ]
    );
}

#[test]
fn without_fq_codel_ours_makes_way_for_the_fifo() {
    let lim = only(&both(), true);
    let mut o = done_aqm(&lim);
    o.fq_codel = false;
    let have = our_fq_codel(&o.host.as_ref().unwrap().qdiscs).unwrap();
    let steps = add(&lim, &o).unwrap().steps.steps;
    assert_eq!(
        steps,
        vec![Step::new(
            set_queue(Device::HostVeth, ChildQueue::Bfifo(tbf(&lim, true).limit)),
            Some(set_queue(Device::HostVeth, ChildQueue::FqCodel(have)))
        )]
    );
    check(&lim, &owner(), "bwpx", &o, P).unwrap();
}

#[test]
fn check_wants_our_fq_codel_where_the_kernel_has_it() {
    let lim = both();
    let mut o = done(&lim);
    o.fq_codel = true;
    let e = check(&lim, &owner(), "bwpx", &o, P).unwrap_err();
    assert!(e.msg.contains("veth1 has no fq_codel 10:"), "{}", e.msg);
    let mut o = done_aqm(&lim);
    let ifb = o.ifb.as_mut().unwrap();
    ifb.qdiscs[1].fq_codel = Some(FqCodel {
        target_us: 20_000,
        ..FQ_CODEL
    });
    let e = check(&lim, &owner(), "bwpx", &o, P).unwrap_err();
    assert!(e.msg.contains("fq_codel under the tbf of bwpx"), "{}", e.msg);
    // Someone else's handle under our TBF is no fq_codel of ours.
    let mut o = done_aqm(&lim);
    let q = host_mut(&mut o)
        .qdiscs
        .iter_mut()
        .find(|q| q.kind == "fq_codel")
        .unwrap();
    q.handle = 0x20_0000;
    assert!(check(&lim, &owner(), "bwpx", &o, P).is_err());
}

#[test]
fn queue_bounded_or_reference_keeps_the_fifo_where_fq_codel_is() {
    for queue in [crate::config::Queue::Bounded, crate::config::Queue::Reference] {
        let lim = Limits { queue, ..both() };
        let mut o = fresh();
        o.fq_codel = true;
        let plan = add(&lim, &o).unwrap().changes();
        assert!(
            !plan.iter().any(|c| matches!(c, Change::SetQueue { .. })),
            "{queue:?}: {plan:?}"
        );
        // Ours from an earlier ADD with queue auto makes way for the FIFO.
        let mut o = done_aqm(&both());
        o.fq_codel = true;
        let plan = add(&lim, &o).unwrap().changes();
        assert!(
            plan.iter().any(|c| matches!(
                c,
                Change::SetQueue {
                    queue: ChildQueue::Bfifo(_),
                    ..
                }
            )),
            "{queue:?}: {plan:?}"
        );
        check(&lim, &owner(), "bwpx", &fresh_done(&lim), P).unwrap();
    }
}

fn fresh_done(lim: &Limits) -> Snapshot {
    let mut o = done(lim);
    o.fq_codel = true;
    o
}

/// At 1 Mbit/s with containerd's burst the TBF splits GSO packets (a peak
/// bucket of one frame) in front of fq_codel and of its own FIFO of eight
/// frames (the floor behind a bucket above 1 MiB) and room for small
/// packets alike. CHECK wants what ADD installs on
/// each kernel.
#[test]
fn the_tbf_splits_gso_packets_at_low_rates() {
    let l = Limit {
        rate_bits: 1_000_000,
        burst_bits: 4_294_967_295,
    };
    let lim = Limits {
        ingress: Some(l),
        ..Limits::default()
    };
    for (fq_codel, limit, split) in [(true, 12_624, true), (false, 12_624, true)] {
        let mut o = fresh();
        o.fq_codel = fq_codel;
        let Change::AddTbf { tbf: got, .. } = add(&lim, &o).unwrap().changes()[0] else {
            panic!()
        };
        assert_eq!(
            (got.limit, got.peak.is_some()),
            (limit, split),
            "fq_codel {fq_codel}"
        );
        host_mut(&mut o).qdiscs = vec![qdisc(HOST, "tbf", TBF_HANDLE, Some(got.dumped()))];
        if fq_codel {
            host_mut(&mut o).qdiscs.push(Qdisc {
                fq_codel: Some(FQ_CODEL),
                ..qdisc(HOST, "fq_codel", FQ_CODEL_HANDLE, None)
            });
            o.host.as_mut().unwrap().qdiscs[1].parent = QUEUE_CLASS;
        }
        check(&lim, &owner(), "bwpx", &o, P).unwrap();
    }
}

#[test]
fn gc_of_one_ifb_is_planned_again_from_what_is_there() {
    let owner = |cid: &str| Owner {
        network: "net".into(),
        container_id: cid.into(),
        ifname: "eth0".into(),
    };
    let valid = vec![Attachment {
        container_id: "c1".into(),
        ifname: "eth0".into(),
    }];
    let stale = link(2, "bwpstale", "ifb", Some(owner("c2").alias()));
    let p = plan_gc_ifb("bwpstale", Some(&stale), "net", &valid);
    assert_eq!(p.changes(), [Change::DeleteIfb]);
    assert_eq!(p.devices.ifb_index, Some(2));
    // Gone, or made again for a valid attachment, or no longer ours: nothing.
    assert!(plan_gc_ifb("bwpstale", None, "net", &valid).is_empty());
    let valid_now = link(3, "bwpstale", "ifb", Some(owner("c1").alias()));
    assert!(plan_gc_ifb("bwpstale", Some(&valid_now), "net", &valid).is_empty());
    let foreign = link(4, "bwpstale", "ifb", Some("someone's".into()));
    assert!(plan_gc_ifb("bwpstale", Some(&foreign), "net", &valid).is_empty());
}
