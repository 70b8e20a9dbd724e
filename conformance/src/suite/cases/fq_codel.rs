//! Issue 19: where the kernel has fq_codel, each TBF gets it as its queue,
//! so a small request beside a bulk upload waits a few milliseconds, not
//! the seconds a queue as large as containerd's bucket holds. Needs
//! fq_codel: `scripts/test-vm` runs it on Debian's 6.1 kernel.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cni_netns::NetNs;
use serde_json::{json, Value};

use super::{call, pod};
use crate::suite::pod::{bw_conf, bytes, ifb_name, Pod, BOTH};
use crate::suite::{ensure, ok, Case, CaseResult, Ctx, Failure};
use cni_testkit::{kernel, Ns};

/// containerd's burst for a pod with a bandwidth annotation (2^32-1 bits).
const CONTAINERD_BURST: u64 = u32::MAX as u64;
/// The bound asserted on the probe's p90 in every row. The TBF splits GSO
/// packets in front of fq_codel (a peak bucket of one frame), so the probe
/// waits behind at most one frame (12 ms at 1 Mbit/s, 1.2 ms at 10 Mbit/s)
/// and what fq_codel lets the bulk flow keep (its 5 ms target). Measured in
/// the amd64 TCG guest: p90 13 to 20 ms at 1 Mbit/s, 5.5 to 8 ms at
/// 10 Mbit/s, no probe lost (docs/bandwidth.md); without the split 51 to
/// 54 ms at 10 Mbit/s (a whole 64 KiB packet in flight) and half a second
/// at 1 Mbit/s. The bound leaves room for an emulated, shared machine (the
/// arm64 guest is slower). A lost probe counts as its 3 s timeout.
const P90_BOUND: Duration = Duration::from_millis(50);

/// (rate bit/s, burst bits, into the pod): containerd's burst both ways at
/// 1 and 10 Mbit/s (at 1 Mbit/s, 25 ms is two frames: without the split a
/// 64 KiB packet is half a second of the rate).
const ROWS: &[(u64, u64, bool)] = &[
    (10_000_000, CONTAINERD_BURST, false),
    (10_000_000, CONTAINERD_BURST, true),
    (1_000_000, CONTAINERD_BURST, false),
    (1_000_000, CONTAINERD_BURST, true),
];

pub fn cases() -> Vec<Case> {
    vec![
        Case::new(
            "bandwidth",
            "fq_codel under the tbf: a probe beside a TCP flow waits little (1M, 10M, containerd's burst, both ways)",
            beside_a_bulk_flow,
        )
        .needs(&["fq_codel"]),
        Case::new(
            "bandwidth",
            "the queue under each tbf follows the kernel, said in the log",
            follows_the_kernel,
        ),
    ]
}

/// fq_codel `10:` under each TBF where the kernel has fq_codel, else the
/// TBF's own FIFO, said in the log either way (this case runs on both
/// kinds of kernel: the kit's probe is the oracle); `queue: "reference"`
/// keeps a FIFO; STATUS names fq_codel as optional, there or not.
fn follows_the_kernel(ctx: &Ctx) -> CaseResult {
    let has = kernel::has("fq_codel")?;
    let p = pod("bw-follows")?;
    let mut conf = bw_conf("1.0.0", BOTH, Some(p.prev_result("1.0.0")));
    conf["logLevel"] = json!("info");
    let out = call(ctx, "bandwidth", &p, "ADD", &conf)?;
    ok("ADD", &out)?;
    let log = out.stderr_text();
    let ifb = ifb_name("bwnet", "bw-follows");
    for dev in ["vh0", ifb.as_str()] {
        let child = child_of(&p.host, dev)?;
        let (want, said) = if has {
            (
                Some(("fq_codel".into(), "10:".into())),
                vec![format!("{dev}: fq_codel under the tbf")],
            )
        } else {
            let fifo = format!("{dev}: the tbf's own fifo of");
            (None, vec![fifo, "no fq_codel in this kernel".into()])
        };
        ensure(child == want && said.iter().all(|s| log.contains(s)), || {
            format!("the tbf on {dev} holds {child:?}, want {want:?} and {said:?} in the log: {log}")
        })?;
    }
    ok("CHECK", &call(ctx, "bandwidth", &p, "CHECK", &conf)?)?;
    let mut reference = conf.clone();
    reference["queue"] = json!("reference");
    ok("ADD", &call(ctx, "bandwidth", &p, "ADD", &reference)?)?;
    let child = child_of(&p.host, &ifb)?;
    ensure(
        child.as_ref().map(|c| c.0.as_str()) == has.then_some("bfifo"),
        || format!("with queue \"reference\" the tbf on {ifb} holds {child:?}"),
    )?;
    ok("CHECK", &call(ctx, "bandwidth", &p, "CHECK", &reference)?)?;
    ok("DEL", &call(ctx, "bandwidth", &p, "DEL", &reference)?)?;
    let left = p.host.try_tc(&["qdisc", "show", "dev", "vh0"])?;
    ensure(!left.contains("tbf") && !left.contains("fq_codel"), || {
        format!("DEL left qdiscs on vh0: {left}")
    })?;
    let status = json!({"cniVersion": "1.1.0", "name": "bwnet", "type": "bandwidth", "logLevel": "info"});
    let env = [("CNI_COMMAND", "STATUS"), ("CNI_PATH", "/")].map(|(k, v)| (k.into(), v.into()));
    let out = ctx.invoke("bandwidth", &p.host, &env, &bytes(&status))?;
    ok("STATUS", &out)?;
    let said = if has {
        "fq_codel present"
    } else {
        "fq_codel absent"
    };
    ensure(out.stderr_text().contains(&format!("{said} (optional)")), || {
        format!("STATUS did not say {said} (optional): {}", out.stderr_text())
    })
}

fn in_ns<T>(ns: &Ns, f: impl FnOnce() -> T) -> Result<T, String> {
    NetNs::open(Path::new(&ns.path_str()))
        .and_then(|n| n.run(f))
        .map_err(|e| e.to_string())
}

/// The child of the TBF on `dev` in `tc -j` (kind, handle).
fn child_of(host: &Ns, dev: &str) -> Result<Option<(String, String)>, String> {
    let out = host.try_tc(&["-j", "qdisc", "show", "dev", dev])?;
    let v: Value = serde_json::from_str(&out).map_err(|e| format!("tc -j qdisc: {e}: {out}"))?;
    Ok(v.as_array().into_iter().flatten().find_map(|q| {
        (q["parent"] == "1:1").then(|| {
            (
                q["kind"].as_str().unwrap_or_default().to_string(),
                q["handle"].as_str().unwrap_or_default().to_string(),
            )
        })
    }))
}

fn beside_a_bulk_flow(ctx: &Ctx) -> CaseResult {
    // Every row runs; the failures are reported together.
    let mut failed = Vec::new();
    for (i, &(rate, burst, into_pod)) in ROWS.iter().enumerate() {
        match one_row(ctx, i, rate, burst, into_pod) {
            Ok(()) => {}
            Err(Failure::Fail(f)) => failed.push(f),
            Err(other) => return Err(other),
        }
    }
    ensure(failed.is_empty(), || failed.join("; "))
}

fn one_row(ctx: &Ctx, i: usize, rate: u64, burst: u64, into_pod: bool) -> CaseResult {
    let cid = format!("bw-fqcodel{i}");
    let p = pod(&cid)?;
    let mut conf = bw_conf("1.0.0", &[], Some(p.prev_result("1.0.0")));
    conf["capabilities"] = json!({"bandwidth": true});
    conf["runtimeConfig"] = json!({"bandwidth": {
        "egressRate": rate, "egressBurst": burst, "ingressRate": rate, "ingressBurst": burst}});
    ok("ADD", &call(ctx, "bandwidth", &p, "ADD", &conf)?)?;
    let ifb = ifb_name("bwnet", &cid);
    for dev in [ifb.as_str(), "vh0"] {
        let child = child_of(&p.host, dev)?;
        ensure(
            child.as_ref().is_some_and(|(k, h)| k == "fq_codel" && h == "10:"),
            || format!("the tbf on {dev} holds {child:?}, want fq_codel 10:"),
        )?;
    }
    ok("CHECK", &call(ctx, "bandwidth", &p, "CHECK", &conf)?)?;
    let (rtts, lost, goodput) = probe_beside_bulk_flow(&p, rate, into_pod)?;
    let (p50, p90) = (percentile(&rtts, 50), percentile(&rtts, 90));
    let row = format!(
        "{} Mbit/s, burst {burst} bits, {}",
        rate / 1_000_000,
        if into_pod { "ingress" } else { "egress" }
    );
    eprintln!(
        "fq_codel at {row}: probe RTT p50 {:.1} ms, p90 {:.1} ms, {lost} of {} lost, goodput {goodput:.2} of the rate",
        p50.as_secs_f64() * 1e3,
        p90.as_secs_f64() * 1e3,
        rtts.len()
    );
    ensure(p90 <= P90_BOUND, || {
        format!(
            "probe RTT beside a TCP flow at {row}: p50 {p50:?}, p90 {p90:?} ({lost} lost); want p90 <= {P90_BOUND:?}"
        )
    })?;
    ok("DEL", &call(ctx, "bandwidth", &p, "DEL", &conf)?)?;
    // The ifb goes, and its TBF and fq_codel with it.
    let left = p.host.try_tc(&["qdisc", "show"])?;
    ensure(
        !left.contains("fq_codel")
            && !left.contains("tbf")
            && p.host.try_ip(&["link", "show", &ifb]).is_err(),
        || format!("DEL left {ifb} or its qdiscs: {left}"),
    )
}

fn percentile(v: &[Duration], pct: usize) -> Duration {
    let mut s = v.to_vec();
    s.sort();
    s.get((s.len() * pct / 100).min(s.len().saturating_sub(1)))
        .copied()
        .unwrap_or(Duration::MAX)
}

/// A TCP flow between the pod and its gateway (an upload from the pod, or
/// with `into_pod` a download into it), and beside it a UDP request from
/// the pod every 50 ms (as a DNS query or a health check would be) answered
/// on the host. Samples are taken once the bucket is empty (the flow's
/// goodput near the rate), for 4 s: the RTTs, how many were lost, and the
/// flow's goodput over those seconds as a fraction of `rate`.
fn probe_beside_bulk_flow(p: &Pod, rate: u64, into_pod: bool) -> Result<(Vec<Duration>, usize, f64), String> {
    let gw: std::net::IpAddr = p.gateway().parse().map_err(|e| format!("gateway: {e}"))?;
    let pod_ip: std::net::IpAddr = p.addr().parse().map_err(|e| format!("pod address: {e}"))?;
    let (sink_ns, source_ns, sink_ip) = if into_pod {
        (&p.ctr, &p.host, pod_ip)
    } else {
        (&p.host, &p.ctr, gw)
    };
    let tcp_at = SocketAddr::new(sink_ip, 5201);
    let udp_at = SocketAddr::new(gw, 5353);
    let stop = Arc::new(AtomicBool::new(false));
    let received = Arc::new(AtomicU64::new(0));

    let listener =
        in_ns(sink_ns, || TcpListener::bind(tcp_at))?.map_err(|e| format!("listen {tcp_at}: {e}"))?;
    let echo = in_ns(&p.host, || UdpSocket::bind(udp_at))?.map_err(|e| format!("bind {udp_at}: {e}"))?;
    echo.set_read_timeout(Some(Duration::from_millis(200)))
        .map_err(|e| e.to_string())?;
    let (stop_s, got) = (Arc::clone(&stop), Arc::clone(&received));
    let sink = std::thread::spawn(move || {
        if let Ok((mut s, _)) = listener.accept() {
            let _ = s.set_read_timeout(Some(Duration::from_millis(200)));
            let mut buf = vec![0u8; 1 << 16];
            while !stop_s.load(Ordering::Relaxed) {
                match s.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => {
                        got.fetch_add(n as u64, Ordering::Relaxed);
                    }
                    Err(_) => {}
                }
            }
        }
    });
    let stop_e = Arc::clone(&stop);
    let echoer = std::thread::spawn(move || {
        let mut buf = [0u8; 64];
        while !stop_e.load(Ordering::Relaxed) {
            if let Ok((n, from)) = echo.recv_from(&mut buf) {
                let _ = echo.send_to(&buf[..n], from);
            }
        }
    });
    let upload = in_ns(source_ns, || {
        TcpStream::connect_timeout(&tcp_at, Duration::from_secs(5))
    })?
    .map_err(|e| format!("connect {tcp_at}: {e}"))?;
    let stop_u = Arc::clone(&stop);
    let uploader = std::thread::spawn(move || {
        let mut s = upload;
        let _ = s.set_write_timeout(Some(Duration::from_millis(200)));
        let chunk = vec![0u8; 1 << 16];
        while !stop_u.load(Ordering::Relaxed) {
            if s.write(&chunk).is_err() && stop_u.load(Ordering::Relaxed) {
                break;
            }
        }
    });
    let result = sample(p, rate, &received, udp_at);
    stop.store(true, Ordering::Relaxed);
    for t in [uploader, sink, echoer] {
        let _ = t.join();
    }
    result
}

fn sample(
    p: &Pod,
    rate_bits: u64,
    received: &AtomicU64,
    udp_at: SocketAddr,
) -> Result<(Vec<Duration>, usize, f64), String> {
    // The bucket (up to 2^32 ticks of the rate) drains at line rate first.
    // Two half seconds near the rate in a row: an emulated guest's stall
    // alone reads as one (the arm64 guest once sampled at 12 times the rate).
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut last = received.load(Ordering::Relaxed);
    let mut near_rate = 0;
    loop {
        std::thread::sleep(Duration::from_millis(500));
        let now = received.load(Ordering::Relaxed);
        let rate = (now - last) * 8 * 2;
        last = now;
        near_rate = if now > 0 && rate < rate_bits * 3 / 2 {
            near_rate + 1
        } else {
            0
        };
        if near_rate == 2 {
            break;
        }
        if Instant::now() > deadline {
            return Err(format!(
                "the upload still ran at {rate} bit/s after 60 s: the bucket never emptied"
            ));
        }
    }
    let client = in_ns(&p.ctr, || UdpSocket::bind("0.0.0.0:0"))?.map_err(|e| format!("udp client: {e}"))?;
    client
        .set_read_timeout(Some(Duration::from_secs(3)))
        .map_err(|e| e.to_string())?;
    let mut rtts = Vec::new();
    let mut lost = 0;
    let (start, from) = (Instant::now(), received.load(Ordering::Relaxed));
    let mut buf = [0u8; 64];
    for i in 0u32..80 {
        let t = Instant::now();
        client
            .send_to(&i.to_be_bytes(), udp_at)
            .map_err(|e| format!("send to {udp_at}: {e}"))?;
        // A lost probe counts as the timeout: a queue that drops is no pass.
        let rtt = loop {
            match client.recv_from(&mut buf) {
                Ok((4, _)) if buf[..4] == i.to_be_bytes() => break t.elapsed(),
                Ok(_) => continue,
                Err(_) => {
                    lost += 1;
                    break t.elapsed();
                }
            }
        };
        rtts.push(rtt);
        std::thread::sleep(Duration::from_millis(50).saturating_sub(rtt));
    }
    let bits = (received.load(Ordering::Relaxed) - from) * 8;
    let goodput = bits as f64 / start.elapsed().as_secs_f64() / rate_bits as f64;
    Ok((rtts, lost, goodput))
}
