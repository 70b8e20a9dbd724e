//! Real traffic through a shaped veth: iperf3 goodput must land between
//! 0.90 and 1.0 of the configured rate, into and out of the container.

#![allow(clippy::unwrap_used)]

mod common;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::*;
use nl_ops::testutil::program_or_skip;
use serde_json::Value;

const NET: &str = "trafficnet";

/// A one-shot server bound to `addr` inside `ns`.
fn server(ns: &TestNs, addr: &str) -> Child {
    Command::new("ip")
        .args([
            "netns", "exec", &ns.name, "iperf3", "-s", "-1", "-B", addr, "-p", "5201",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// Receiver goodput in bit/s of a 3 s run after 1 s warm-up (which also
/// drains the initial bucket).
fn goodput(client_ns: &TestNs, from: &str, to: &str) -> f64 {
    for _ in 0..50 {
        let (ok, out, err) = client_ns.try_exec(&[
            "iperf3", "-c", to, "-B", from, "-p", "5201", "-t", "3", "-O", "1", "-J",
        ]);
        let v: Option<Value> = serde_json::from_str(&out).ok();
        if let Some(bps) = v
            .as_ref()
            .and_then(|v| v["end"]["sum_received"]["bits_per_second"].as_f64())
        {
            assert!(ok, "iperf3 failed: {out} {err}");
            return bps;
        }
        // The server may not listen yet.
        let error = v
            .as_ref()
            .and_then(|v| v["error"].as_str())
            .unwrap_or(&err)
            .to_string();
        assert!(error.contains("connect"), "iperf3 failed: {out} {err}");
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("iperf3 server never came up");
}

fn run_at(rate: u64) -> (f64, f64) {
    let host = TestNs::new("traffic");
    let a = Attachment::new(&host, "traffic", 1);
    // A bucket of 10 ms at the rate: large buckets let a TCP sender that
    // backs off after drops catch up above the rate.
    let burst = rate / 100;
    a.run(&host, "ADD", &a.conf(NET, limits((rate, burst), (rate, burst))))
        .assert_ok();

    // Into the container: host sends, container receives (TBF on the veth).
    let mut s = server(&a.ctr, &a.ctr_ip);
    let ingress = goodput(&host, &a.host_ip, &a.ctr_ip);
    let _ = s.wait();

    // Out of the container: container sends, host receives (TBF on the ifb).
    let mut s = server(&host, &a.host_ip);
    let egress = goodput(&a.ctr, &a.ctr_ip, &a.host_ip);
    let _ = s.wait();
    (ingress / rate as f64, egress / rate as f64)
}

#[test]
fn goodput_follows_configured_rate() {
    if !root_or_skip("traffic") || !program_or_skip("traffic", "iperf3") {
        return;
    }
    let mut report = Vec::new();
    for rate in [10_000_000u64, 100_000_000] {
        let (ingress, egress) = run_at(rate);
        eprintln!("rate {rate} bit/s: ingress ratio {ingress:.3}, egress ratio {egress:.3}");
        report.push((rate, ingress, egress));
    }
    for (rate, ingress, egress) in report {
        assert!(
            (0.90..=1.0).contains(&ingress),
            "ingress at {rate} bit/s: goodput ratio {ingress:.3}"
        );
        assert!(
            (0.90..=1.0).contains(&egress),
            "egress at {rate} bit/s: goodput ratio {egress:.3}"
        );
    }
}
