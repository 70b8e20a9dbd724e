#![allow(clippy::unwrap_used)]
//! Qdiscs against `tc -j qdisc`, each test in its own namespace.

use cni_testkit::{root_or_skip, Ns};
use nl_ops::qdisc::{ChildQueue, FqCodel, Peak, Tbf, INGRESS_HANDLE, TC_H_INGRESS, TC_H_ROOT};

const H1: u32 = 0x1_0000;

fn tbf_json(ns: &Ns, dev: &str) -> serde_json::Value {
    let j = ns.tc_json(&["qdisc", "show", "dev", dev, "root"]);
    let q = j.as_array().unwrap().iter().find(|q| q["kind"] == "tbf").cloned();
    q.unwrap_or_else(|| panic!("no tbf on {dev}: {j}"))
}

/// tc adds a root tbf with `tc_args` on "vtc", nl-ops adds `ours(tc's)`
/// with handle 1: on "vnl" of the same namespace; both must dump the same
/// to `tc -j`. Returns (tc's qdisc, ours) as nl-ops reads them back.
fn beside_tc(tag: &str, tc_args: &[&str], ours: impl FnOnce(Tbf) -> Tbf) -> (Tbf, Tbf) {
    let ns = Ns::new(tag);
    ns.veth("vtc", "vnl", None);
    ns.exec(&[&["tc", "qdisc", "add", "dev", "vtc", "root"], tc_args].concat());
    let mut s = ns.inside(nl_ops::Socket::new).expect("netlink socket");
    let theirs = s.qdiscs(ns.ifindex("vtc")).unwrap()[0].tbf.unwrap();
    let idx = ns.ifindex("vnl");
    s.add_root_tbf(idx, H1, &ours(theirs)).unwrap();
    let dumped = s.qdiscs(idx).unwrap();
    assert_eq!(dumped[0].handle, H1);
    let (a, b) = (tbf_json(&ns, "vtc"), tbf_json(&ns, "vnl"));
    eprintln!("{tag}: tc: {}  nl-ops: {}", a["options"], b["options"]);
    assert_eq!(a["options"], b["options"]);
    (theirs, dumped[0].tbf.unwrap())
}

/// What tc makes of rate, burst and latency, read back through nl-ops and
/// written again through nl-ops on another link: the same qdisc.
fn same_as_tc(tag: &str, rate_bits: u64, burst: u32) {
    let (rate, burst) = (format!("{rate_bits}bit"), burst.to_string());
    let (theirs, ours) = beside_tc(
        tag,
        &["tbf", "rate", &rate, "burst", &burst, "latency", "25ms"],
        |t| t,
    );
    assert_eq!(theirs.rate, rate_bits / 8);
    assert_eq!(ours, theirs);
}

#[test]
fn tbf_matches_tc_1mbit() {
    if root_or_skip("tbf_matches_tc_1mbit") {
        same_as_tc("tbf-1m", 1_000_000, 10_000);
    }
}

#[test]
fn tbf_matches_tc_333kbit_odd_burst() {
    if root_or_skip("tbf_matches_tc_333kbit_odd_burst") {
        same_as_tc("tbf-333k", 333_000, 3_001);
    }
}

#[test]
fn tbf_matches_tc_rate64_50gbit() {
    if root_or_skip("tbf_matches_tc_rate64_50gbit") {
        same_as_tc("tbf-50g", 50_000_000_000, 1_000_000);
    }
}

/// With a burst in bytes the kernel ignores the buffer sent and derives its
/// own from the bytes: the same qdisc as tc's (tc always sends the bytes).
#[test]
fn tbf_burst_in_bytes_is_tcs_qdisc() {
    cni_testkit::need_root!("tbf_burst_in_bytes_is_tcs_qdisc");
    let tc = ["tbf", "rate", "800bit", "burst", "1514", "limit", "1516"];
    let ours = Tbf {
        rate: 100,
        buffer: 1,
        limit: 1516,
        burst: Some(1514),
        peak: None,
    };
    let (theirs, dumped) = beside_tc("tbf-burst", &tc, |_| ours);
    // 1514 bytes at 100 B/s: 15.14 s, 236562500 ticks of 64 ns.
    assert_eq!(dumped.buffer, 236_562_500);
    assert_eq!(dumped, theirs);
}

/// A peak bucket in bytes (TCA_TBF_PBURST) at a peak rate past 2^32 B/s
/// (TCA_TBF_PRATE64) is the qdisc tc makes from `peakrate 100gbit mtu
/// 1514`: the kernel dumps it as time (one 64 ns tick), never in bytes.
#[test]
fn tbf_peak_bucket_is_tcs_qdisc() {
    cni_testkit::need_root!("tbf_peak_bucket_is_tcs_qdisc");
    let tc = [
        "handle", "1:", "tbf", "rate", "1mbit", "burst", "64000", "limit", "3125", "peakrate", "100gbit",
        "mtu", "1514",
    ];
    let mut ours = None;
    let (theirs, dumped) = beside_tc("tbf-peak", &tc, |t| {
        let o = Tbf {
            rate: 125_000,
            buffer: t.buffer,
            limit: 3125,
            burst: None,
            peak: Some(Peak {
                rate: 12_500_000_000,
                mtu: 1,
                burst: Some(1514),
            }),
        };
        ours = Some(o);
        o
    });
    assert_eq!(Some(dumped), ours.map(|o| o.dumped()));
    assert_eq!(dumped, theirs);
}

#[test]
fn tbf_add_change_delete_by_handle() {
    cni_testkit::need_root!("tbf_add_change_delete_by_handle");
    let ns = Ns::new("tbf-r64");
    ns.veth("v0", "v1", None);
    let idx = ns.ifindex("v0");
    let mut s = ns.inside(nl_ops::Socket::new).expect("netlink socket");
    // 2^32 B/s and above needs TCA_TBF_RATE64.
    let big = Tbf {
        rate: 1 << 33,
        buffer: 7_450,
        limit: 100_000_000,
        burst: None,
        peak: None,
    };
    s.add_root_tbf(idx, H1, &big).unwrap();
    let q = s.qdiscs(idx).unwrap();
    let root: Vec<_> = q.iter().filter(|q| q.parent == TC_H_ROOT).collect();
    assert_eq!(root.len(), 1, "{q:?}");
    assert_eq!(
        (root[0].kind.as_str(), root[0].handle, root[0].tbf),
        ("tbf", H1, Some(big))
    );
    assert_eq!(tbf_json(&ns, "v0")["options"]["rate"].as_u64().unwrap(), 1 << 33);
    assert!(s.add_root_tbf(idx, H1, &big).unwrap_err().is_exists());

    // Changed in place: still one root qdisc, with the new numbers. The
    // largest bucket the kernel can hold (2^32 - 1 ticks, 274.9 s) is kept.
    let small = Tbf {
        rate: 125_000,
        buffer: u32::MAX,
        limit: 30_000,
        burst: None,
        peak: None,
    };
    s.change_root_tbf(idx, H1, &small).unwrap();
    let q = s.qdiscs(idx).unwrap();
    assert_eq!(q.iter().filter(|q| q.parent == TC_H_ROOT).count(), 1);
    assert_eq!(q[0].tbf, Some(small));
    assert_eq!(tbf_json(&ns, "v0")["options"]["rate"], 125_000);

    // A delete names the handle: another root qdisc is not ours to delete.
    assert!(!s.delete_root_qdisc(idx, 0x8001_0000).unwrap());
    assert!(s.delete_root_qdisc(idx, H1).unwrap());
    assert!(!s.delete_root_qdisc(idx, H1).unwrap());
    assert!(!ns
        .tc_json(&["qdisc", "show", "dev", "v0"])
        .as_array()
        .unwrap()
        .iter()
        .any(|q| q["kind"] == "tbf"));
    // A foreign root qdisc: add refuses (file exists), change cannot reach it.
    ns.exec(&["tc", "qdisc", "add", "dev", "v0", "root", "handle", "5:", "htb"]);
    assert!(s.add_root_tbf(idx, H1, &small).unwrap_err().is_exists());
    assert!(s.change_root_tbf(idx, H1, &small).is_err());
    assert_eq!(tbf_json_kind(&ns, "v0"), "htb");
}

fn tbf_json_kind(ns: &Ns, dev: &str) -> String {
    ns.tc_json(&["qdisc", "show", "dev", dev, "root"])[0]["kind"]
        .as_str()
        .unwrap()
        .to_string()
}

/// What the kernel refuses: a bucket that holds no byte at the rate (time
/// for less than one byte), and a rate of zero.
#[test]
fn tbf_buffer_of_zero_ticks_is_refused() {
    cni_testkit::need_root!("tbf_buffer_of_zero_ticks_is_refused");
    let ns = Ns::new("tbf-zero");
    ns.veth("v0", "v1", None);
    let idx = ns.ifindex("v0");
    let mut s = ns.inside(nl_ops::Socket::new).expect("netlink socket");
    // At 1000 B/s a byte takes 1 ms, 15625 ticks of 64 ns; at 125 GB/s one
    // tick holds 8000 bytes.
    for (rate, too_small, enough) in [(1_000, 15_000, 15_700), (125_000_000_000, 0, 1)] {
        let e = s
            .add_root_tbf(
                idx,
                H1,
                &Tbf {
                    rate,
                    buffer: too_small,
                    limit: 1_000_000,
                    burst: None,
                    peak: None,
                },
            )
            .unwrap_err();
        assert_eq!(e.errno(), Some(libc::EINVAL), "{e}");
        s.add_root_tbf(
            idx,
            H1,
            &Tbf {
                rate,
                buffer: enough,
                limit: 1_000_000,
                burst: None,
                peak: None,
            },
        )
        .unwrap();
        assert!(s.delete_root_qdisc(idx, H1).unwrap());
    }
    let e = s
        .add_root_tbf(
            idx,
            H1,
            &Tbf {
                rate: 0,
                buffer: 1000,
                limit: 1000,
                burst: None,
                peak: None,
            },
        )
        .unwrap_err();
    assert_eq!(e.errno(), Some(libc::EINVAL), "rate 0: {e}");
}

#[test]
fn ingress_add_is_idempotent_and_delete_tolerates_absence() {
    cni_testkit::need_root!("ingress_add_is_idempotent_and_delete_tolerates_absence");
    let ns = Ns::new("ingress");
    ns.veth("v0", "v1", None);
    let idx = ns.ifindex("v0");
    let mut s = ns.inside(nl_ops::Socket::new).expect("netlink socket");
    assert!(!s.delete_ingress_qdisc(idx).unwrap());
    assert!(s.add_ingress_qdisc(idx).unwrap());
    assert!(!s.add_ingress_qdisc(idx).unwrap());
    let j = ns.tc_json(&["qdisc", "show", "dev", "v0", "ingress"]);
    assert_eq!(j[0]["kind"], "ingress", "{j}");
    assert_eq!(j[0]["handle"], "ffff:");
    let q = s.qdiscs(idx).unwrap();
    let ing: Vec<_> = q.iter().filter(|q| q.kind == "ingress").collect();
    assert_eq!(ing.len(), 1);
    assert_eq!((ing[0].handle, ing[0].parent), (INGRESS_HANDLE, TC_H_INGRESS));
    assert_eq!(ing[0].ingress_block, None);
    assert!(s.delete_ingress_qdisc(idx).unwrap());
    assert!(!s.delete_ingress_qdisc(idx).unwrap());
    assert!(ns
        .tc_json(&["qdisc", "show", "dev", "v0", "ingress"])
        .as_array()
        .unwrap()
        .is_empty());
}

/// An ingress qdisc on a shared filter block says which block.
#[test]
fn ingress_on_a_shared_block_is_decoded() {
    cni_testkit::need_root!("ingress_on_a_shared_block_is_decoded");
    let ns = Ns::new("ingress-blk");
    ns.veth("v0", "v1", None);
    ns.exec(&["tc", "qdisc", "add", "dev", "v0", "ingress_block", "7", "ingress"]);
    let q = ns
        .inside(nl_ops::Socket::new)
        .expect("netlink socket")
        .qdiscs(ns.ifindex("v0"))
        .unwrap();
    let ing: Vec<_> = q.iter().filter(|q| q.parent == TC_H_INGRESS).collect();
    assert_eq!(ing.len(), 1, "{q:?}");
    assert_eq!((ing[0].kind.as_str(), ing[0].ingress_block), ("ingress", Some(7)));
}

#[test]
fn qdisc_errors_name_the_link() {
    cni_testkit::need_root!("qdisc_errors_name_the_link");
    let ns = Ns::new("qdisc-err");
    let mut s = ns.inside(nl_ops::Socket::new).expect("netlink socket");
    let e = s
        .add_root_tbf(
            9999,
            H1,
            &Tbf {
                rate: 1000,
                buffer: 2000,
                limit: 3000,
                burst: None,
                peak: None,
            },
        )
        .unwrap_err();
    assert!(e.is_not_found(), "{e}");
    assert!(
        e.to_string()
            .contains("root tbf 1: (rate 1000 B/s, buffer 2000 ticks, limit 3000 B) on link 9999"),
        "{e}"
    );
    let e = s.add_ingress_qdisc(9999).unwrap_err();
    assert!(e.is_not_found(), "{e}");
    assert_eq!(e.to_string(), "add ingress qdisc to link 9999: no such device");
}

/// The queue under a TBF's class: the kernel's FIFO at first, a bfifo of
/// ours in its place, and fq_codel where the kernel has it (this machine's
/// may not: then the graft fails and the FIFO stays; scripts/test-vm runs
/// the fq_codel side on a kernel that has it).
#[test]
fn queue_under_a_tbf_is_read_and_replaced() {
    cni_testkit::need_root!("queue_under_a_tbf_is_read_and_replaced");
    let ns = Ns::new("tbf-leaf");
    ns.veth("v0", "v1", None);
    let idx = ns.ifindex("v0");
    let mut s = ns.inside(nl_ops::Socket::new).expect("netlink socket");
    let class = H1 | 1;
    assert_eq!(s.leaf_qdisc(idx, class).unwrap(), None, "no tbf, no class");
    let tbf = Tbf {
        rate: 125_000,
        buffer: 1_250_000,
        limit: 13_125,
        burst: None,
        peak: None,
    };
    s.add_root_tbf(idx, H1, &tbf).unwrap();
    // The TBF's own FIFO is hidden: no qdisc to show.
    assert_eq!(s.leaf_qdisc(idx, class).unwrap(), None);

    s.graft_queue(idx, class, 0, &ChildQueue::Bfifo(3_000)).unwrap();
    let fifo = s.leaf_qdisc(idx, class).unwrap().unwrap();
    assert_eq!((fifo.kind.as_str(), fifo.parent), ("bfifo", class), "{fifo:?}");
    assert_ne!(fifo.handle, 0, "a visible qdisc of its own");
    let shown = ns.tc_json(&["qdisc", "show", "dev", "v0"]);
    assert!(
        shown
            .as_array()
            .unwrap()
            .iter()
            .any(|q| q["kind"] == "bfifo" && q["options"]["limit"] == 3_000),
        "{shown}"
    );

    let f = FqCodel {
        limit: 1_000,
        target_us: 5_000,
        interval_us: 100_000,
        ecn: true,
    };
    let grafted = s.graft_queue(idx, class, 0x10_0000, &ChildQueue::FqCodel(f));
    let leaf = s.leaf_qdisc(idx, class).unwrap().unwrap();
    if std::path::Path::new("/sys/module/sch_fq_codel").exists() {
        grafted.unwrap();
        assert_eq!(
            (leaf.kind.as_str(), leaf.handle),
            ("fq_codel", 0x10_0000),
            "{leaf:?}"
        );
        let got = leaf.fq_codel.unwrap();
        assert_eq!((got.limit, got.ecn), (1_000, true));
        assert!(
            got.target_us.abs_diff(5_000) <= 1 && got.interval_us.abs_diff(100_000) <= 1,
            "{got:?}"
        );
        // Back to a FIFO by kind: the kernel picks the handle.
        s.graft_queue(idx, class, 0, &ChildQueue::Bfifo(3_000)).unwrap();
        assert_eq!(s.leaf_qdisc(idx, class).unwrap().unwrap().kind, "bfifo");
    } else {
        let e = grafted.unwrap_err().to_string();
        assert!(e.contains("fq_codel 10:") && e.contains("class 1:1"), "{e}");
        assert_eq!(leaf, fifo, "a failed graft leaves the queue there");
    }
    // The TBF takes its queue with it.
    // A change of the TBF's numbers keeps the queue under it.
    s.change_root_tbf(idx, H1, &Tbf { limit: 20_000, ..tbf }).unwrap();
    assert_eq!(s.leaf_qdisc(idx, class).unwrap().unwrap().kind, leaf.kind);
    assert!(s.delete_root_qdisc(idx, H1).unwrap());
    assert_eq!(s.leaf_qdisc(idx, class).unwrap(), None);
}
