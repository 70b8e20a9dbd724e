use nl_ops::qdisc::{Qdisc, Tbf};

use super::*;

fn link(index: u32, name: &str, kind: &str, alias: Option<&str>) -> Link {
    Link {
        index,
        name: name.into(),
        mtu: 1500,
        kind: Some(kind.into()),
        alias: alias.map(str::to_string),
        up: true,
        txqlen: 0,
        link: None,
        link_netnsid: None,
        mac: None,
        master: None,
        vrf_table: None,
    }
}

fn tbf(index: u32, handle: u32, rate: u64, bytes: u64) -> QdiscStats {
    QdiscStats {
        qdisc: Qdisc {
            index,
            handle,
            parent: TC_H_ROOT,
            kind: "tbf".into(),
            // 1 s of bucket at the rate: `rate` bytes.
            tbf: Some(Tbf {
                rate,
                buffer: 15_625_000,
                limit: 3000,
                burst: None,
                peak: None,
            }),
            fq_codel: None,
            ingress_block: None,
        },
        counters: Counters {
            bytes,
            packets: bytes / 1000,
            drops: 2,
            overlimits: 3,
            backlog: 1514,
            qlen: 1,
            requeues: 0,
        },
    }
}

fn ingress_qdisc(index: u32) -> QdiscStats {
    QdiscStats {
        qdisc: Qdisc {
            index,
            handle: INGRESS_HANDLE,
            parent: TC_H_INGRESS,
            kind: "ingress".into(),
            tbf: None,
            fq_codel: None,
            ingress_block: None,
        },
        counters: Counters::default(),
    }
}

/// ours (alias, both directions), the reference's (alias-less ifb), an
/// ingress-only veth, and things that are not attachments.
fn node() -> Sample {
    Sample {
        links: vec![
            link(1, "lo", "", None),
            link(10, "veth1", "veth", None),
            link(
                11,
                "bwp111111111111",
                "ifb",
                Some("cni-bandwidth net1 ctr-a eth0"),
            ),
            link(20, "veth2", "veth", None),
            link(21, "bwp5145007e2a84", "ifb", None),
            link(30, "veth3", "veth", None),
            link(40, "veth4", "veth", None),
            link(41, "myifb", "ifb", None),
            link(42, "bwpforeign0", "ifb", Some("someone else's")),
        ],
        qdiscs: vec![
            tbf(10, TBF_HANDLE, 125_000, 5_000),
            ingress_qdisc(10),
            tbf(11, TBF_HANDLE, 250_000, 7_000),
            ingress_qdisc(20),
            tbf(21, TBF_HANDLE, 1_000_000, 9_000),
            tbf(30, TBF_HANDLE, 500_000, 1_000),
            // Not our handle: someone else's.
            tbf(40, 0x2_0000, 500_000, 1_000),
            tbf(41, TBF_HANDLE, 500_000, 1_000),
            tbf(42, TBF_HANDLE, 500_000, 1_000),
            // An AQM under veth1's TBF.
            QdiscStats {
                qdisc: Qdisc {
                    index: 10,
                    handle: 0x10_0000,
                    parent: TBF_HANDLE | 1,
                    kind: "fq_codel".into(),
                    tbf: None,
                    fq_codel: None,
                    ingress_block: None,
                },
                counters: Counters::default(),
            },
        ],
        redirects: vec![(10, 11), (20, 21)],
    }
}

#[test]
fn finds_ours_the_references_and_ingress_only_attachments() {
    let rows = attachments(&node(), Psched::default());
    let names: Vec<_> = rows
        .iter()
        .map(|r| (r.network.as_deref(), r.host_veth.as_deref(), r.ifb.as_deref()))
        .collect();
    assert_eq!(
        names,
        vec![
            (Some("net1"), Some("veth1"), Some("bwp111111111111")),
            (None, Some("veth2"), Some("bwp5145007e2a84")),
            (None, Some("veth3"), None),
        ]
    );
    let ours = &rows[0];
    assert_eq!(ours.container_id.as_deref(), Some("ctr-a"));
    assert_eq!(ours.ifname.as_deref(), Some("eth0"));
    let (i, e) = (ours.ingress.as_ref().unwrap(), ours.egress.as_ref().unwrap());
    assert_eq!(
        (i.device.as_str(), i.rate_bits, i.burst_bytes),
        ("veth1", 1_000_000, 125_000)
    );
    assert_eq!(
        (e.device.as_str(), e.rate_bits, e.burst_bytes),
        ("bwp111111111111", 2_000_000, 250_000)
    );
    assert_eq!((e.counters.bytes, e.limit_bytes), (7_000, 3000));
    assert_eq!((i.child.as_deref(), e.child.as_deref()), (Some("fq_codel"), None));
    // The reference's ifb has no TBF on its veth here: egress only.
    assert!(rows[1].ingress.is_none() && rows[1].egress.is_some());
    assert!(!rows[1].known() && !rows[2].known());
}

#[test]
fn rates_come_from_the_earlier_sample_of_the_same_tbf() {
    let earlier = node();
    let mut later = node();
    for q in &mut later.qdiscs {
        q.counters.bytes += 250_000;
    }
    // veth3's TBF was replaced between the samples: its counters restarted.
    later.qdiscs[5].counters.bytes = 10;
    let mut rows = attachments(&later, Psched::default());
    with_rates(&mut rows, &earlier.qdiscs, 2.0);
    let egress = rows[0].egress.as_ref().unwrap();
    assert_eq!(egress.current_bits, Some(1_000_000.0));
    assert_eq!(rows[2].ingress.as_ref().unwrap().current_bits, None);
    // One sample: no rate.
    let mut rows = attachments(&later, Psched::default());
    with_rates(&mut rows, &earlier.qdiscs, 0.0);
    assert!(rows
        .iter()
        .flat_map(|r| r.directions())
        .all(|(_, d)| d.current_bits.is_none()));
}

#[test]
fn units_read_as_people_write_them() {
    assert_eq!(bits_text(10_000_000.0), "10Mbit");
    assert_eq!(bits_text(1_500_000.0), "1.5Mbit");
    assert_eq!(bits_text(9_987_654.0), "9.99Mbit");
    assert_eq!(bits_text(123_456_789.0), "123Mbit");
    assert_eq!(bits_text(0.0), "0bit");
    assert_eq!(bytes_text(125_000.0), "125kB");
    assert_eq!(bytes_text(512.0), "512B");
    assert_eq!(bytes_text(4_294_967_295.0), "4.29GB");
}

#[test]
fn the_table_has_a_line_per_direction() {
    let mut rows = attachments(&node(), Psched::default());
    rows[0].container_id = Some("0123456789abcdef0123".into());
    let t = table(&rows);
    let lines: Vec<&str> = t.lines().collect();
    assert_eq!(lines.len(), 1 + 2 + 1 + 1, "{t}");
    assert!(lines[0].starts_with("NETWORK"), "{t}");
    assert!(lines[1].contains("net1") && lines[1].contains("0123456789ab ") && lines[1].contains("ingress"));
    assert!(!t.contains("0123456789abc"), "{t}");
    assert!(lines[1].contains(" tbf+fq_codel "), "{t}");
    assert!(lines[2].contains("egress") && lines[2].contains(" tbf ") && lines[2].contains("2Mbit"));
    assert!(lines[2].contains("250kB"), "{t}");
    assert!(lines[3].starts_with("? "), "{t}");
    assert!(table(&[]).contains("no bandwidth attachments"));
}

#[test]
fn json_names_every_field_and_null_for_unknown() {
    let mut rows = attachments(&node(), Psched::default());
    with_rates(&mut rows, &node().qdiscs, 1.0);
    let v = json_report(&rows, Duration::from_millis(500));
    let text = serde_json::to_string(&v).unwrap();
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["intervalSeconds"], 0.5);
    let a = &v["attachments"];
    assert_eq!(a.as_array().unwrap().len(), 3);
    assert_eq!(a[0]["network"], "net1");
    assert_eq!(a[0]["containerID"], "ctr-a");
    assert_eq!(a[0]["ifName"], "eth0");
    assert_eq!(a[0]["egress"]["rateBitsPerSecond"], 2_000_000);
    assert_eq!(a[0]["egress"]["drops"], 2);
    assert_eq!(a[0]["ingress"]["childQdisc"], "fq_codel");
    assert!(a[0]["egress"]["childQdisc"].is_null());
    assert_eq!(a[0]["egress"]["lastIntervalBitsPerSecond"], 0.0);
    assert_eq!(a[1]["known"], false);
    assert!(a[1]["network"].is_null() && a[1]["ingress"].is_null());
}

/// The exposition format's own grammar for a sample line.
fn well_formed(line: &str) -> bool {
    let Some((series, value)) = line.rsplit_once(' ') else {
        return false;
    };
    if value.parse::<f64>().is_err() {
        return false;
    }
    let (name, labels) = match series.split_once('{') {
        Some((n, rest)) => (n, rest.strip_suffix('}')),
        None => (series, Some("")),
    };
    let name_ok =
        name.starts_with(METRIC_PREFIX) && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    let Some(mut rest) = labels else {
        return false;
    };
    while !rest.is_empty() {
        let Some((key, after)) = rest.split_once("=\"") else {
            return false;
        };
        if key.is_empty() || !key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            return false;
        }
        // The value ends at the first quote not escaped.
        let bytes = after.as_bytes();
        let mut i = 0;
        while i < bytes.len() && bytes[i] != b'"' {
            if bytes[i] == b'\n' {
                return false;
            }
            i += if bytes[i] == b'\\' { 2 } else { 1 };
        }
        if i >= bytes.len() {
            return false;
        }
        rest = after[i + 1..].strip_prefix(',').unwrap_or(&after[i + 1..]);
    }
    name_ok
}

#[test]
fn prometheus_lines_are_well_formed_and_escaped() {
    let mut rows = attachments(&node(), Psched::default());
    rows[0].network = Some("we\"ird\\net\nx".into());
    with_rates(&mut rows, &node().qdiscs, 1.0);
    let text = prometheus(&rows);
    let mut typed = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap();
            assert!(["gauge", "counter"].contains(&kind), "{line}");
            assert!(!kind.contains("counter") || name.ends_with("_total"), "{line}");
            typed.push(name.to_string());
        } else if line.starts_with("# HELP ") {
        } else {
            assert!(well_formed(line), "malformed: {line:?}");
            let name = line.split(['{', ' ']).next().unwrap();
            assert_eq!(typed.last().map(String::as_str), Some(name), "{line}");
        }
    }
    // HELP and TYPE once per metric.
    let mut unique = typed.clone();
    unique.dedup();
    assert_eq!(unique, typed);
    assert!(text.contains(r#"network="we\"ird\\net\nx""#), "{text}");
    assert!(text.contains(
        "cni_bandwidth_sent_bytes_total{network=\"\",container_id=\"\",interface=\"\",device=\"bwp5145007e2a84\",direction=\"egress\"} 9000"
    ));
    assert!(text.contains("cni_bandwidth_attachments{known=\"false\"} 2"));
    // A line that breaks the grammar is caught.
    assert!(!well_formed("cni_bandwidth_x{a=\"b} 1"));
    assert!(!well_formed("cni_bandwidth_x{a=\"b\"} one"));
}

#[test]
fn command_line() {
    let args = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let o = parse_options(&[]).unwrap();
    assert_eq!(
        (o.format, o.interval, o.help),
        (Format::Table, Duration::from_secs(1), false)
    );
    let o = parse_options(&args(&["--json", "--interval", "500ms"])).unwrap();
    assert_eq!((o.format, o.interval), (Format::Json, Duration::from_millis(500)));
    let o = parse_options(&args(&["--interval=2.5s", "--prometheus"])).unwrap();
    assert_eq!(
        (o.format, o.interval),
        (Format::Prometheus, Duration::from_millis(2500))
    );
    assert_eq!(
        parse_options(&args(&["--interval", "0"])).unwrap().interval,
        Duration::ZERO
    );
    for bad in [
        &["--json", "--prometheus"][..],
        &["--interval"],
        &["--interval", "fast"],
        &["--interval", "-1s"],
        &["--interval", "nan"],
        &["--interval", "61"],
        &["--frobnicate"],
    ] {
        assert!(parse_options(&args(bad)).is_err(), "{bad:?}");
    }
    assert!(parse_options(&args(&["--help"])).unwrap().help);
}

#[test]
fn reference_ifb_names() {
    assert!(reference_ifb_name("bwp5145007e2a84"));
    assert!(!reference_ifb_name("bwpforeign0"));
    assert!(!reference_ifb_name("bwp5145007E2A84"));
    assert!(!reference_ifb_name("bwp5145007e2a8"));
}
