//! Issue 11: the reference's acceptance boundary with the values runtimes
//! really send. What the reference accepts, the plugin under test accepts;
//! where the reference's bucket cannot work (below one frame, beyond the
//! kernel's 2^32 ticks, at rates where the kernel passes no full frame
//! through a bucket given as time), the installed one works and CHECK
//! agrees. The reference runs these too: its failures are its known bugs.

use serde_json::{json, Value};

use super::bandwidth::root_tbf_burst;
use super::chains::cni_run;
use super::{call, pod};
use crate::suite::pod::{bw_conf, ifb_name, limits, Pod};
use crate::suite::{ensure, ok, ran, Case, CaseResult, Ctx, Failure};
use cni_testkit::state::State;
use cni_testkit::Ns;

pub fn cases() -> Vec<Case> {
    vec![
        Case::new(
            "acceptance",
            "containerd's burst (2^32-1 bits) at 1M and 10M: capped, not wrapped",
            |c| sentinel(c, "bw-ctrd", u64::from(u32::MAX), &[1_000_000, 10_000_000]),
        ),
        Case::new(
            "acceptance",
            "CRI-O's burst ((2^32-1)*8-1 bits) at 100M: capped, not wrapped",
            |c| sentinel(c, "bw-crio", u64::from(u32::MAX) * 8 - 1, &[100_000_000]),
        ),
        Case::new(
            "acceptance",
            "the seed document's example (MTU 512, 123/456), 800/80000 at 1500: full-size frames pass",
            seed_example,
        ),
        Case::new(
            "acceptance",
            "upstream's chained-ptp-bandwidth list via cni-run: ADD, full-size frames, DEL",
            upstream_chain,
        ),
        Case::new(
            "acceptance",
            "burst below a frame: full-size pings pass both ways (MTU 1500, 512)",
            full_size_pings,
        ),
    ]
}

/// The kernel's largest bucket: 2^32 - 1 ticks of the scheduler clock, read
/// from `/proc/net/psched` as iproute2 reads it (hex words t2us, us2t and
/// clock resolution: ticks per us = t2us / us2t * res / 1e6, 15.625 on every
/// kernel since 2.6.31), the suite's own oracle, independent of the plugin's.
#[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
fn kernel_max_bytes(rate: u64) -> u64 {
    let text = std::fs::read_to_string("/proc/net/psched").unwrap_or_default();
    let w: Vec<f64> = text
        .split_whitespace()
        .filter_map(|w| u32::from_str_radix(w, 16).ok())
        .map(f64::from)
        .collect();
    let ticks_per_us = match w[..] {
        [_, _, res, ..] if res == 1e9 => res / 1e6,
        [t2us, us2t, res, ..] if us2t > 0.0 => t2us / us2t * res / 1e6,
        _ => 15.625,
    };
    (f64::from(u32::MAX) / ticks_per_us * rate as f64 / 1e6) as u64
}

/// runtimeConfig.bandwidth as containerd and CRI-O write it for a pod's
/// annotations.
fn runtime_conf(p: &Pod, rate: u64, burst: u64) -> Value {
    let mut c = bw_conf("1.0.0", &[], Some(p.prev_result("1.0.0")));
    c["capabilities"] = json!({"bandwidth": true});
    c["runtimeConfig"] = json!({"bandwidth": {
        "ingressRate": rate, "ingressBurst": burst, "egressRate": rate, "egressBurst": burst}});
    c
}

fn sentinel(ctx: &Ctx, tag: &str, burst: u64, rates: &[u64]) -> CaseResult {
    for rate in rates {
        let cid = format!("{tag}-{rate}");
        let p = pod(&cid)?;
        let conf = runtime_conf(&p, *rate, burst);
        let out = call(ctx, "bandwidth", &p, "ADD", &conf)?;
        ok("ADD", &out)?;
        ensure(ctx.is_reference() || out.stderr_text().contains("WARN"), || {
            format!("no warning that the bucket was capped: {}", out.stderr_text())
        })?;
        let host = State::read(&p.host)?;
        let want = kernel_max_bytes(rate / 8).min(burst / 8);
        for dev in ["vh0".to_string(), ifb_name("bwnet", &cid)] {
            let got = root_tbf_burst(&host, &dev)?;
            // tc reads the bucket back in whole microseconds.
            ensure(
                got.abs_diff(want) <= rate / 8 / 1_000_000 + 2 + want / 100_000,
                || {
                    format!(
                    "at {rate} bit/s the bucket on {dev} holds {got} bytes; the most the kernel holds is {want} \
                     (a wrapped bucket is anything)"
                )
                },
            )?;
        }
        ok("CHECK", &call(ctx, "bandwidth", &p, "CHECK", &conf)?)?;
        ok("DEL", &call(ctx, "bandwidth", &p, "DEL", &conf)?)?;
    }
    Ok(())
}

fn set_mtu(p: &Pod, mtu: u32) -> Result<(), String> {
    let m = mtu.to_string();
    p.host.try_ip(&["link", "set", &p.host_veth, "mtu", &m])?;
    p.ctr.try_ip(&["link", "set", &p.ifname, "mtu", &m]).map(drop)
}

/// No IPv6 chatter (router solicitations, MLD) in buckets that fill at a
/// few bytes per second, ahead of the packet the case sends.
fn ipv6_off(ns: &Ns) -> Result<(), String> {
    for key in ["all", "default"] {
        ns.try_exec(&["sysctl", "-qw", &format!("net.ipv6.conf.{key}.disable_ipv6=1")])?;
    }
    Ok(())
}

/// One ICMP echo of exactly `mtu` bytes, unfragmented, from the container
/// to `to`: the echo leaves through the egress bucket (the ifb's), the reply
/// comes in through the ingress one (the veth's), each a full-size frame.
/// The buckets start full, so it passes unless the kernel drops frames of
/// that size: the reference's buckets at these rates pass none, ever (at
/// 800 bit/s with 200 bits not even the ARP request before it).
fn full_size_echo(ctr: &Ns, to: &str, mtu: u32) -> CaseResult {
    let size = (mtu - 28).to_string();
    let out = std::process::Command::new("ip")
        .args([
            "netns", "exec", &ctr.name, "ping", "-c", "1", "-W", "30", "-M", "do", "-s", &size, to,
        ])
        .output()
        .map_err(|e| format!("cannot run ping: {e}"))?;
    ensure(out.status.success(), || {
        format!(
            "a {mtu}-byte echo from the container to {to} got no reply: the buckets dropped it, its \
             reply or the ARP before them (ping: {} {})",
            String::from_utf8_lossy(&out.stdout).trim(),
            String::from_utf8_lossy(&out.stderr).trim()
        )
    })
}

/// The seed document's example, and 800 bit/s with 80000 bits at MTU
/// 1500, whose reference bucket holds 10000 bytes but passes no packet
/// above 429 (the kernel counts at most 4.29 s of rate for the largest).
fn seed_example(ctx: &Ctx) -> CaseResult {
    for (rate, burst, mtu) in [(123, 456, 512), (800, 80_000, 1500)] {
        let p = pod(&format!("bw-seed-{mtu}"))?;
        set_mtu(&p, mtu)?;
        ipv6_off(&p.host)?;
        ipv6_off(&p.ctr)?;
        let limits = limits((rate, burst), (rate, burst));
        let conf = bw_conf("0.3.1", &limits, Some(p.prev_result("0.3.1")));
        ok("ADD", &call(ctx, "bandwidth", &p, "ADD", &conf)?)?;
        // At 15 B/s a 526-byte frame takes 35 s: one echo, each bucket full.
        let echo = full_size_echo(&p.ctr, &p.gateway(), mtu);
        // CHECK needs 0.4.0: the same limits in a 1.0.0 config.
        let check = bw_conf("1.0.0", &limits, Some(p.prev_result("1.0.0")));
        let checked = call(ctx, "bandwidth", &p, "CHECK", &check);
        ok("DEL", &call(ctx, "bandwidth", &p, "DEL", &conf)?)?;
        echo?;
        ok("CHECK", &checked?)?;
    }
    Ok(())
}

/// Upstream's own integration list (ptp at MTU 512, bursts of 200 bits in
/// runtimeConfig) through cni-run with libcni's semantics.
fn upstream_chain(ctx: &Ctx) -> CaseResult {
    if ctx.reference.is_none() && !ctx.has_plugin("ptp") {
        return Err(Failure::Skip(
            "no ptp/host-local (reference plugins not installed)".into(),
        ));
    }
    let base = ctx.scratch("upstream-chain")?;
    let (netd, cache, ipam) = (base.join("net.d"), base.join("cache"), base.join("ipam"));
    std::fs::create_dir_all(&netd).map_err(|e| format!("mkdir: {e}"))?;
    let list = json!({
        "cniVersion": "0.3.1",
        "name": "chained-ptp-bandwidth",
        "plugins": [
            {"type": "ptp", "ipMasq": false, "mtu": 512,
             "ipam": {"type": "host-local", "subnet": "10.253.2.0/24", "dataDir": ipam}},
            {"type": "bandwidth", "runtimeConfig": {"bandWidth": {
                "ingressRate": 800, "ingressBurst": 200, "egressRate": 800, "egressBurst": 200}}}
        ]
    });
    std::fs::write(netd.join("chain.conflist"), list.to_string()).map_err(|e| format!("write: {e}"))?;
    let host = Ns::try_new("cnf")?;
    let ctr = Ns::try_new("cnf")?;
    ipv6_off(&host)?;
    ipv6_off(&ctr)?;
    let before = (State::read(&host)?, State::read(&ctr)?);
    let env = vec![
        ("NETCONFPATH", netd.display().to_string()),
        ("CNI_PATH", ctx.cni_path()),
        ("CNI_CACHE_DIR", cache.display().to_string()),
    ];
    let netns = ctr.path_str();
    let result = ran(
        "cni-run add",
        &cni_run(ctx, &host, &["add", "chained-ptp-bandwidth", &netns], &env)?,
    )?
    .ok_or("cni-run add printed no result")?;
    // ptp's gateway is its host veth's address; 800 bit/s is 100 B/s, a
    // 526-byte frame 5.3 s of it: one echo, each bucket full.
    let echo = match result.pointer("/ips/0/gateway").and_then(Value::as_str) {
        Some(gw) => full_size_echo(&ctr, gw, 512),
        None => Err(Failure::Fail(format!("ptp's result names no gateway: {result}"))),
    };
    // 0.3.1 has no CHECK; upstream's test runs ADD and DEL.
    ran(
        "cni-run del",
        &cni_run(ctx, &host, &["del", "chained-ptp-bandwidth", &netns], &env)?,
    )?;
    echo?;
    let d = State::read(&host)?.diff(&before.0, "host after DEL", "host before ADD")
        + &State::read(&ctr)?.diff(&before.1, "container after DEL", "container before ADD");
    ensure(d.is_empty(), || format!("DEL left state behind:\n{d}"))
}

/// ICMP echoes of exactly the MTU, unfragmented, from the container and to
/// it, through buckets configured at 100 bytes: all three must come back.
fn full_size_pings(ctx: &Ctx) -> CaseResult {
    for mtu in [1500u32, 512] {
        let cid = format!("bw-ping-{mtu}");
        let p = pod(&cid)?;
        set_mtu(&p, mtu)?;
        let limits = limits((1_000_000, 800), (1_000_000, 800));
        let conf = bw_conf("1.0.0", &limits, Some(p.prev_result("1.0.0")));
        ok("ADD", &call(ctx, "bandwidth", &p, "ADD", &conf)?)?;
        let size = (mtu - 28).to_string();
        for (ns, to) in [(&p.ctr, p.gateway()), (&p.host, p.addr())] {
            // With a deadline (-w), ping fails unless all three replies come
            // back; with -c alone one reply of three would do.
            let out = ns.try_exec(&[
                "ping", "-c", "3", "-w", "5", "-i", "0.3", "-W", "2", "-M", "do", "-s", &size, &to,
            ]);
            ensure(out.is_ok(), || {
                format!(
                    "MTU {mtu}: fewer than 3 of 3 {}-byte pings to {to} came back ({})",
                    mtu,
                    out.err().unwrap_or_default()
                )
            })?;
        }
        ok("DEL", &call(ctx, "bandwidth", &p, "DEL", &conf)?)?;
    }
    Ok(())
}
