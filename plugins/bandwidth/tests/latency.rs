//! Issue 19: a pod shaped with containerd's burst stays responsive under
//! load. A TCP bulk flow through the shaper and a ping beside it: after the
//! flow's first 5 s the ping's 90th percentile stays under 60 ms, in both
//! directions (the reference's queue of 25 ms plus the whole bucket keeps
//! it at seconds). The bound is loose so noise does not flake it; the
//! measured figures belong in the bench.

#![allow(clippy::unwrap_used)]

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use cni_testkit::program_or_skip;
use common::*;
use serde_json::{json, Value};

const NET: &str = "latencynet";
const RATE: u64 = 10_000_000;
/// What containerd passes for a pod with a bandwidth annotation: 2^32 - 1
/// bits (its largest burst).
const CONTAINERD_BURST: u64 = 4_294_967_295;
/// The flow's length; pings start after its first 5 s and stop before it ends.
const SECS: u64 = 16;
const SETTLE: u64 = 5;
/// The FIFO holds 25 ms of rate (20 frames at 10 Mbit/s) and the TBF splits
/// GSO packets, so a ping waits at most about 27 ms: measured p90 17 to
/// 23 ms here (docs/bandwidth.md). Issue 19 asks for 100 ms so noise does
/// not flake it; 60 ms keeps room for a shared machine and still fails a
/// queue twice as long.
const BOUND_MS: f64 = 60.0;

/// Ping RTTs in ms from `client_ns` to `ping_to` during a TCP flow between
/// an iperf3 client there and a server at `server_ip` in `server_ns`
/// (`reverse`: the server sends), after the flow's first SETTLE seconds.
fn rtts_under_load(
    server_ns: &Ns,
    client_ns: &Ns,
    server_ip: &str,
    reverse: bool,
    ping_to: &str,
) -> Vec<f64> {
    let mut srv = Command::new("ip")
        .args([
            "netns",
            "exec",
            &server_ns.name,
            "timeout",
            "60",
            "iperf3",
            "-s",
            "-1",
            "-B",
            server_ip,
            "-p",
            "5203",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let secs = SECS.to_string();
    let mut args = vec![
        "ip",
        "netns",
        "exec",
        &client_ns.name,
        "iperf3",
        "-c",
        server_ip,
        "-p",
        "5203",
        "-t",
        &secs,
        "-J",
    ];
    if reverse {
        args.push("-R");
    }
    // The server may not listen yet: retried until it does.
    let mut client = None;
    for _ in 0..100 {
        std::thread::sleep(Duration::from_millis(50));
        let mut c = Command::new(args[0])
            .args(&args[1..])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(300));
        if c.try_wait().unwrap().is_none() {
            client = Some(c);
            break;
        }
    }
    let client = client.expect("iperf3 never connected");
    std::thread::sleep(Duration::from_secs(SETTLE));
    let count = ((SECS - SETTLE - 2) * 5).to_string();
    let out = client_ns.exec(&["ping", "-n", "-i", "0.2", "-c", &count, ping_to]);
    let done = client.wait_with_output().unwrap();
    let _ = srv.wait();
    let report: Value = serde_json::from_slice(&done.stdout).unwrap_or(Value::Null);
    assert!(
        report["end"].is_object() && report["error"].is_null(),
        "iperf3 failed: {report}"
    );
    let rtts: Vec<f64> = out
        .lines()
        .filter_map(|l| l.split("time=").nth(1))
        .filter_map(|t| t.split_whitespace().next()?.parse().ok())
        .collect();
    assert!(!rtts.is_empty(), "no ping answered: {out}");
    rtts
}

/// The `pct`th percentile (nearest rank below).
fn percentile(v: &mut [f64], pct: usize) -> f64 {
    v.sort_by(f64::total_cmp);
    v[(v.len() * pct / 100).min(v.len() - 1)]
}

#[test]
fn ping_beside_a_bulk_flow_waits_under_100_ms_with_containerds_burst() {
    let test = "latency";
    if !root_or_skip(test) || !program_or_skip(test, "iperf3") || !program_or_skip(test, "ping") {
        return;
    }
    let host = Ns::new(test);
    let a = Attachment::new(&host, test, 1);
    let bw = json!({"runtimeConfig": {"bandwidth": {
        "ingressRate": RATE, "ingressBurst": CONTAINERD_BURST,
        "egressRate": RATE, "egressBurst": CONTAINERD_BURST}}});
    a.run(&host, "ADD", &a.conf(NET, bw)).assert_ok();

    // Out of the pod: the pod sends to a server on the host side.
    let mut egress = rtts_under_load(&host, &a.ctr, &a.host_ip, false, &a.host_ip);
    // Into the pod: the host side sends (iperf3 -R).
    let mut ingress = rtts_under_load(&host, &a.ctr, &a.host_ip, true, &a.host_ip);
    let report = |v: &mut Vec<f64>| (percentile(v, 50), percentile(v, 90));
    let (e50, e90) = report(&mut egress);
    let (i50, i90) = report(&mut ingress);
    eprintln!("ping under load at 10 Mbit/s, containerd's burst: egress p50 {e50} p90 {e90} ms, ingress p50 {i50} p90 {i90} ms");
    assert!(
        e90 < BOUND_MS,
        "egress: ping p90 {e90} ms (p50 {e50}) beside a TCP flow"
    );
    assert!(
        i90 < BOUND_MS,
        "ingress: ping p90 {i90} ms (p50 {i50}) beside a TCP flow"
    );
}
