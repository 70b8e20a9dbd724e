//! Real traffic through a shaped veth: iperf3 goodput must land in
//! `SHAPED` of the configured rate, into and out of the container.

#![allow(clippy::unwrap_used)]

mod common;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use cni_testkit::program_or_skip;
use cni_testkit::SHAPED;
use common::*;
use serde_json::Value;

const NET: &str = "trafficnet";

/// A one-shot server bound to `addr` inside `ns`.
fn server(ns: &Ns, addr: &str) -> Child {
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
fn goodput(client_ns: &Ns, from: &str, to: &str) -> f64 {
    for _ in 0..50 {
        let (ok, out, err) = client_ns.exec_unchecked(&[
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
    let host = Ns::new("traffic");
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
            SHAPED.contains(&ingress),
            "ingress at {rate} bit/s: goodput ratio {ingress:.3}"
        );
        assert!(
            SHAPED.contains(&egress),
            "egress at {rate} bit/s: goodput ratio {egress:.3}"
        );
    }
}

/// Received bits per second in each whole second of a run: a server in
/// `server_ns` reporting as JSON, a client sending from `client_ns` for
/// `secs` seconds. The server gives up after a while, so a client that never
/// connects fails the test instead of hanging it.
fn received_per_second(server_ns: &Ns, client_ns: &Ns, from: &str, to: &str, secs: u32) -> Vec<f64> {
    let srv = Command::new("ip")
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
            to,
            "-p",
            "5202",
            "-J",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let t = secs.to_string();
    let mut connected = false;
    for _ in 0..200 {
        // iperf3 -J exits 0 also when it could not connect: the JSON says.
        let (ok, out, err) =
            client_ns.exec_unchecked(&["iperf3", "-c", to, "-B", from, "-p", "5202", "-t", &t, "-J"]);
        let v: Value = serde_json::from_str(&out).unwrap_or(Value::Null);
        match v["error"].as_str() {
            None if ok && v["end"].is_object() => {
                connected = true;
                break;
            }
            Some(e) if e.contains("connect") => {}
            _ => panic!("iperf3 failed: {out} {err}"),
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = srv.wait_with_output().unwrap();
    assert!(connected, "the iperf3 client never reached {to}");
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    v["intervals"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["sum"]["seconds"].as_f64().unwrap_or(0.0) >= 0.9)
        .map(|i| i["sum"]["bits_per_second"].as_f64().unwrap())
        .collect()
}

/// Issue 11: with containerd's burst (2^32 - 1 bits) at 20 Mbit/s and
/// `maxBurstMs: 20`, the first second stays within 1.5x the rate and the
/// rest at 0.9x or more; without the cap the first second runs far above
/// it (the reference's, and ours, bucket then holds minutes of rate).
#[test]
fn max_burst_ms_bounds_the_first_second() {
    let test = "max_burst_ms_bounds_the_first_second";
    if !root_or_skip(test) || !program_or_skip(test, "iperf3") {
        return;
    }
    let rate = 20_000_000u64;
    let containerd = |cap: Option<u64>| {
        let mut v = serde_json::json!({"runtimeConfig": {"bandwidth": {
            "ingressRate": rate, "ingressBurst": 4_294_967_295u64,
            "egressRate": rate, "egressBurst": 4_294_967_295u64}}});
        if let Some(ms) = cap {
            v["maxBurstMs"] = ms.into();
        }
        v
    };
    let mut report = Vec::new();
    for cap in [Some(20), None] {
        let host = Ns::new("maxburst");
        let a = Attachment::new(&host, "maxburst", 1);
        a.run(&host, "ADD", &a.conf(NET, containerd(cap))).assert_ok();
        let into = received_per_second(&a.ctr, &host, &a.host_ip, &a.ctr_ip, 4);
        let out_of = received_per_second(&host, &a.ctr, &a.ctr_ip, &a.host_ip, 4);
        eprintln!("maxBurstMs {cap:?}: into {into:?} out of {out_of:?} (bit/s)");
        report.push((cap, into, out_of));
    }
    for (cap, into, out_of) in report {
        for (dir, per_second) in [("into", into), ("out of", out_of)] {
            let first = per_second[0] / rate as f64;
            let steady = per_second[1..].iter().sum::<f64>() / (per_second.len() - 1) as f64 / rate as f64;
            match cap {
                Some(_) => {
                    assert!(
                        first <= 1.5,
                        "{dir} the container, first second at {first:.2}x the rate"
                    );
                    assert!(
                        steady >= *SHAPED.start(),
                        "{dir} the container, steady at {steady:.2}x the rate"
                    );
                }
                None => assert!(
                    first > 3.0,
                    "{dir} the container without a cap, first second only {first:.2}x"
                ),
            }
        }
    }
}

/// Issue 11: packets of exactly the MTU pass both ways where the
/// reference's buckets drop every one: a bucket configured below a frame
/// (1 Mbit/s with 800 bits: raised to hold one), and rates so low that no
/// bucket given as time passes a frame (the kernel counts at most 4.29 s of
/// it for the largest packet): the seed document's example (123 bit/s with
/// 456 bits at MTU 512), upstream's test (800 bit/s, 200 bits, MTU 512) and
/// 800 bit/s with 80000 bits at MTU 1500, whose reference bucket holds
/// 10000 bytes but passes no packet above 429. CHECK passes after each
/// ADD. Each direction gets an attachment of its own, so its buckets start
/// full: at 15 B/s a frame takes 35 s to come back.
#[test]
fn full_size_packets_pass_both_ways_at_any_rate() {
    let test = "full_size_packets_pass_both_ways_at_any_rate";
    if !root_or_skip(test) || !program_or_skip(test, "ping") {
        return;
    }
    for (rate, burst, mtu) in [
        (1_000_000u64, 800u64, 1500u32),
        (1_000_000, 800, 512),
        (123, 456, 512),
        (800, 200, 512),
        (800, 80_000, 1500),
    ] {
        for from_container in [true, false] {
            let host = Ns::new("fullframe");
            let a = Attachment::new(&host, "fullframe", 1);
            // No IPv6 chatter queueing ahead of the ping in buckets that
            // fill at a few bytes per second.
            for ns in [&host, &a.ctr] {
                ns.exec(&["sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1"]);
            }
            let m = mtu.to_string();
            host.ip(&["link", "set", &a.veth, "mtu", &m]);
            a.ctr.ip(&["link", "set", "eth0", "mtu", &m]);
            let conf = a.conf(NET, limits((rate, burst), (rate, burst)));
            a.run(&host, "ADD", &conf).assert_ok();
            a.run(&host, "CHECK", &conf).assert_ok();
            // ICMP echo of MTU bytes in IP: 20 IP + 8 ICMP + payload,
            // unfragmented; echo and reply each cross one of the buckets.
            let payload = (mtu - 28).to_string();
            let (ns, to) = if from_container {
                (&a.ctr, &a.host_ip)
            } else {
                (&host, &a.ctr_ip)
            };
            let (ok, out, err) =
                ns.exec_unchecked(&["ping", "-c", "1", "-W", "30", "-M", "do", "-s", &payload, to]);
            let qdiscs = host.exec(&["tc", "-s", "qdisc", "show"]);
            assert!(
                ok,
                "{rate} bit/s, {burst} bits, mtu {mtu}: the full-size ping to {to} was lost: {out} {err}\n{qdiscs}"
            );
            eprintln!(
                "{rate} bit/s, {burst} bits, mtu {mtu}, to {to}: {}",
                out.lines().last().unwrap_or_default()
            );
        }
    }
}
