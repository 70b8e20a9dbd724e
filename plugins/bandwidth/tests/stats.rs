//! `bandwidth stats` on a node with real attachments and real traffic: it
//! finds them by their ifb alias, its counters are the kernel's, and the
//! rate over the last second is the shaped rate while a flow runs.

#![allow(clippy::unwrap_used)]

mod common;

use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use cni_testkit::SHAPED;
use cni_testkit::{path_or_skip, program_or_skip};
use common::*;
use serde_json::{json, Value};

const RATE: u64 = 8_000_000;

/// `bandwidth stats ARGS` inside `host`, no CNI variables.
fn stats(host: &Ns, args: &[&str]) -> Output {
    Command::new("ip")
        .args(["netns", "exec", &host.name, BIN, "stats"])
        .args(args)
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn stats_json(host: &Ns, args: &[&str]) -> Value {
    let mut a = vec!["--json"];
    a.extend_from_slice(args);
    let out = stats(host, &a);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "stats failed: {text} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("stats --json is no JSON ({e}): {text}"))
}

fn find<'a>(report: &'a Value, cid: &str) -> &'a Value {
    report["attachments"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["containerID"] == cid)
        .unwrap_or_else(|| panic!("no attachment {cid} in {report}"))
}

/// The root TBF's sent bytes as `tc -s` reads them.
fn tc_bytes(host: &Ns, dev: &str) -> u64 {
    host.tc_json(&["-s", "qdisc", "show", "dev", dev, "root"])[0]["bytes"]
        .as_u64()
        .unwrap()
}

/// An upload from the container to the host for `secs` seconds.
fn upload(a: &Pod, secs: u32) -> (Child, Child) {
    let server = Command::new("ip")
        .args([
            "netns",
            "exec",
            &a.host.name,
            "timeout",
            "30",
            "iperf3",
            "-s",
            "-1",
            "-B",
            &a.gateway(),
            "-p",
            "5203",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let client = Command::new("ip")
        .args([
            "netns",
            "exec",
            &a.ctr.name,
            "iperf3",
            "-c",
            &a.gateway(),
            "-B",
            &a.addr(),
            "-p",
            "5203",
            "-t",
            &secs.to_string(),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    (server, client)
}

/// One sample line of the text exposition format: name, labels, number.
fn prometheus_line_ok(line: &str) -> bool {
    let Some((series, value)) = line.rsplit_once(' ') else {
        return false;
    };
    let name_end = series.find('{').unwrap_or(series.len());
    let name = &series[..name_end];
    let labels = &series[name_end..];
    value.parse::<f64>().is_ok()
        && name.starts_with("cni_bandwidth_")
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        && (labels.is_empty() || (labels.starts_with('{') && labels.ends_with("\"}")))
}

#[test]
fn stats_lists_attachments_with_kernel_counters_and_the_current_rate() {
    if !program_or_skip("stats", "iperf3") || !program_or_skip("stats", "ping") {
        return;
    }
    let Some(a) = setup("stats") else { return };
    let b = attach(&a, "ctr-b", 1);
    let host = &a.host;
    let conf_a = conf(&a, "statnet", limits((RATE, 80_000), (RATE, 80_000)));
    run(&a, "ADD", &conf_a).assert_ok();
    let conf_b = conf(&b, "othernet", limits((2_000_000, 40_000), (3_000_000, 60_000)));
    run(&b, "ADD", &conf_b).assert_ok();
    let ifb_a = ifb_name("statnet", &a.container_id);

    // Before traffic: both listed, with what was configured.
    let r = stats_json(host, &["--interval", "0"]);
    assert_eq!(r["attachments"].as_array().unwrap().len(), 2, "{r}");
    // Its names and rates as the suite's case checks them, and more.
    let ra = find(&r, &a.container_id);
    assert_eq!(ra["ifb"], json!(ifb_a), "{ra}");
    assert_eq!(ra["egress"]["rateBitsPerSecond"], RATE);
    assert_eq!(ra["egress"]["burstBytes"], 10_000);
    assert_eq!(ra["ingress"]["device"], json!(a.host_veth));
    let rb = find(&r, &b.container_id);
    assert_eq!(rb["network"], "othernet");
    assert_eq!(rb["ingress"]["rateBitsPerSecond"], 2_000_000);
    assert_eq!(rb["egress"]["burstBytes"], 7_500);
    assert!(rb["egress"]["lastIntervalBitsPerSecond"].is_null(), "{rb}");

    // Ten pings into B: its ingress TBF sends at least their replies' requests.
    host.exec(&["ping", "-c", "10", "-i", "0.05", "-q", &b.addr()]);

    // A qdisc grafted under B's ingress TBF (as an AQM would be) is named.
    host.exec(&[
        "tc",
        "qdisc",
        "add",
        "dev",
        &b.host_veth,
        "parent",
        "1:1",
        "handle",
        "10:",
        "pfifo",
    ]);

    // A bulk upload from A, its bucket drained: the last second's rate is A's.
    let (mut server, client) = upload(&a, 6);
    std::thread::sleep(Duration::from_secs(3));
    let r = stats_json(host, &[]);
    let prom = stats(host, &["--prometheus"]);
    let table = stats(host, &[]);
    let out = client.wait_with_output().unwrap();
    let _ = server.wait();
    assert!(
        out.status.success(),
        "iperf3: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    let eg = &find(&r, &a.container_id)["egress"];
    let now = eg["lastIntervalBitsPerSecond"].as_f64().unwrap();
    let ratio = now / RATE as f64;
    eprintln!("stats: egress of A over the last second {now:.0} bit/s, ratio {ratio:.3}: {eg}");
    assert!(
        SHAPED.contains(&ratio),
        "last second at {ratio:.3} of the rate: {eg}"
    );
    assert!(eg["packets"].as_u64().unwrap() > 1000, "{eg}");
    assert!(
        eg["overlimits"].as_u64().unwrap() > 0,
        "a bulk flow never waited: {eg}"
    );
    // The kernel's own count, read after, is at least what stats saw.
    let bytes = eg["bytes"].as_u64().unwrap();
    let tc = tc_bytes(host, &ifb_a);
    assert!(bytes > 3 * RATE / 8 && bytes <= tc, "stats {bytes} B, tc {tc} B");
    // B was idle but for the pings.
    let rb = find(&r, &b.container_id);
    let b_in = &rb["ingress"];
    assert!(b_in["packets"].as_u64().unwrap() >= 10, "{b_in}");
    assert_eq!(b_in["childQdisc"], "pfifo", "{b_in}");
    assert!(rb["egress"]["childQdisc"].is_null(), "{rb}");
    assert!(
        b_in["lastIntervalBitsPerSecond"].as_f64().unwrap() < 100_000.0,
        "{b_in}"
    );

    let prom = String::from_utf8(prom.stdout).unwrap();
    for line in prom.lines().filter(|l| !l.starts_with('#')) {
        assert!(prometheus_line_ok(line), "malformed: {line:?}\n{prom}");
    }
    let help = prom.lines().filter(|l| l.starts_with("# HELP ")).count();
    let types = prom.lines().filter(|l| l.starts_with("# TYPE ")).count();
    assert!(help > 5 && help == types, "{prom}");
    let want = format!(
        "cni_bandwidth_rate_bits_per_second{{network=\"statnet\",container_id=\"{}\",interface=\"eth0\",device=\"{ifb_a}\",direction=\"egress\"}} {RATE}",
        a.container_id
    );
    assert!(prom.contains(&want), "no {want:?} in\n{prom}");
    assert!(
        prom.contains("cni_bandwidth_attachments{known=\"true\"} 2"),
        "{prom}"
    );

    let table = String::from_utf8(table.stdout).unwrap();
    eprintln!("{table}");
    assert!(table.starts_with("NETWORK"), "{table}");
    for want in [&a.container_id, &b.container_id, &ifb_a, &a.host_veth] {
        assert!(table.contains(want.as_str()), "no {want} in\n{table}");
    }

    // After DEL it is gone.
    run(&a, "DEL", &conf_a).assert_ok();
    let r = stats_json(host, &["--interval", "0"]);
    assert_eq!(r["attachments"].as_array().unwrap().len(), 1, "{r}");
}

/// The reference leaves no alias on its ifb: its attachment is listed, as
/// unknown, with its counters.
#[test]
fn reference_attachments_are_listed_as_unknown() {
    if !path_or_skip("stats-ref", REFERENCE) {
        return;
    }
    let Some(a) = setup("stats-ref") else { return };
    let host = &a.host;
    run_as(
        REFERENCE,
        &a,
        "ADD",
        &conf(&a, "refnet", limits((RATE, 80_000), (RATE, 80_000))),
    )
    .assert_ok();
    let r = stats_json(host, &["--interval", "0.2"]);
    let list = r["attachments"].as_array().unwrap();
    assert_eq!(list.len(), 1, "{r}");
    let x = &list[0];
    assert_eq!(x["known"], false, "{x}");
    assert!(x["network"].is_null() && x["containerID"].is_null(), "{x}");
    assert_eq!(x["ifb"], json!(ifb_name("refnet", &a.container_id)));
    assert_eq!(x["hostVeth"], json!(a.host_veth));
    assert_eq!(x["egress"]["rateBitsPerSecond"], RATE);
    assert_eq!(x["ingress"]["rateBitsPerSecond"], RATE);
}

#[test]
fn a_wrong_command_line_is_refused_on_stderr() {
    let out = Command::new(BIN)
        .args(["stats", "--json", "--prometheus"])
        .env_clear()
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    assert!(String::from_utf8_lossy(&out.stderr).contains("exclude each other"));
}
