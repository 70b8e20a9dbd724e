//! containerd's CRI, as kubelet uses it: a pod per case with the
//! `kubernetes.io/ingress-bandwidth` and `kubernetes.io/egress-bandwidth`
//! annotations, which containerd turns into the `bandwidth` capability with
//! its own burst of 2^32-1 bits. The conflist is the usual Kubernetes one
//! (ptp with host-local, then bandwidth); the bin dir holds this directory's
//! `sbr` and `bandwidth` and the reference's `ptp`, `host-local` and
//! `loopback`. Each case starts its own containerd in its own network
//! namespace (see [`crate::suite::cri`]) and checks, for its pod: the TBF
//! rates on the host veth (ingress) and on the ifb (egress), shaped TCP
//! goodput both ways, and that StopPodSandbox + RemovePodSandbox leave no
//! link, qdisc, route, lease, cache entry or network namespace.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use cni_testkit::SHAPED;
use serde_json::{json, Value};

use crate::suite::cri::goodput::{self, Direction, PodServer};
use crate::suite::cri::{self, image, Containerd, PodInfo, Setup};
use crate::suite::pod::ifb_name;
use crate::suite::probe;
use crate::suite::{ensure, Case, CaseResult, Ctx, Failure};
use cni_runtime::cache;
use cni_testkit::state::{text, State};

/// The pods' subnet, inside the daemon's own namespace (no other case uses it).
const SUBNET: &str = "10.254.0.0/24";
/// Seconds of each transfer: the burst plus the steady part. Out of a 1M
/// pod containerd's bucket (34 MB, the most a TBF holds at that rate)
/// passes at about 45 Mbit/s, so it takes about 6 s to drain: with 4 s the
/// second transfer began with 2 to 2.5 s of it and left 1.5 s to judge
/// (one run in about eight failed); with 6 s the first drains nearly all.
const SECS: u32 = 6;
/// Above this rate the veth of a busy 2-core VM may carry little more than
/// the rate (about 18 Gbit/s when idle): the 512 MiB bucket then empties
/// too slowly to tell burst from rate, and goodput proves nothing either
/// way. There the TBF must show that it throttled (its overlimits counter
/// grew during a transfer); with the rate the qdisc holds, that is the
/// shaping. No goodput bound is judged there.
const LINE_RATE_DOUBT: u64 = 500_000_000;

pub fn cases() -> Vec<Case> {
    let shaped = [
        ("1M", 1_000_000u64),
        ("10M", 10_000_000),
        ("100M", 100_000_000),
        ("1G", 1_000_000_000),
    ];
    let mut v: Vec<Case> = shaped
        .into_iter()
        .map(|(label, bits)| {
            Case::new(
                "containerd",
                format!("pod with {label} in and out: tbf rates, shaped goodput, removal leaves nothing"),
                move |c| pod_case(c, Some((label, bits))),
            )
        })
        .collect();
    v.push(Case::new(
        "containerd",
        "pod without annotations: no qdisc, traffic flows, removal leaves nothing",
        |c| pod_case(c, None),
    ));
    v
}

fn network(ctx: &Ctx) -> String {
    // Per run and directory: the ifb name and libcni's cache entry derive from it.
    format!(
        "cnfcri{}-{}",
        std::process::id(),
        ctx.tmp.file_name().and_then(|n| n.to_str()).unwrap_or("0")
    )
}

fn conflist(name: &str, ipam: &Path) -> Value {
    json!({"cniVersion": "1.0.0", "name": name, "plugins": [
        {"type": "ptp", "ipMasq": false, "ipam": {"type": "host-local", "subnet": SUBNET,
            "dataDir": ipam, "routes": [{"dst": "0.0.0.0/0"}]}},
        {"type": "bandwidth", "capabilities": {"bandwidth": true}}
    ]})
}

/// The bin dir: sbr and bandwidth under test, the rest from the reference.
fn plugins(ctx: &Ctx) -> Result<Vec<(String, PathBuf)>, Failure> {
    let mut v: Vec<(String, PathBuf)> = cni_testkit::PLUGINS
        .iter()
        .map(|p| ((*p).to_string(), ctx.plugin(p)))
        .collect();
    for p in cri::HELPERS {
        let found = [Some(ctx.dir.clone()), ctx.reference.clone()]
            .into_iter()
            .flatten()
            .map(|d| d.join(p))
            .find(|f| f.is_file())
            .ok_or_else(|| Failure::Skip(format!("no {p} plugin (reference plugins not installed)")))?;
        v.push(((*p).to_string(), found));
    }
    Ok(v)
}

fn pod_case(ctx: &Ctx, limit: Option<(&str, u64)>) -> CaseResult {
    if let Some(why) = cri::missing() {
        return Err(Failure::Skip(why));
    }
    let plugins = plugins(ctx)?;
    static SWEEP: std::sync::Once = std::sync::Once::new();
    SWEEP.call_once(cri::sweep_stale);
    let label = limit.map_or("none", |(l, _)| l).to_lowercase();
    let base = ctx.scratch(&format!("containerd-{label}"))?;
    let ipam = base.join("ipam");
    let net = network(ctx);
    let setup = Setup {
        base: base.clone(),
        plugins,
        conflist: conflist(&net, &ipam),
        image: image::pause_archive(&ctx.tmp)?,
    };
    let daemon = Containerd::start(&setup)?;
    let mut annotations = HashMap::new();
    if let Some((l, _)) = limit {
        annotations.insert("kubernetes.io/ingress-bandwidth".to_string(), l.to_string());
        annotations.insert("kubernetes.io/egress-bandwidth".to_string(), l.to_string());
    }
    let id = match daemon.run_pod(&format!("cnf-{label}"), annotations) {
        Ok(id) => id,
        Err(e) => {
            // A failed RunPodSandbox must still leave nothing behind.
            let left = left_over(&daemon, &net, &ipam, None)
                .err()
                .map(|l| format!("\nand it left: {l}"))
                .unwrap_or_default();
            return Err(Failure::Fail(format!("{e}{left}")));
        }
    };
    let pod = daemon.pod_info(&id)?;
    // The pod is removed and checked for leftovers whatever the checks
    // while it runs found; both verdicts are reported.
    let running = check_running(&daemon, &net, &pod, limit);
    let removed = daemon
        .stop_pod(&id)
        .and_then(|()| daemon.remove_pod(&id))
        .and_then(|()| left_over(&daemon, &net, &ipam, Some(&pod)).map_err(|l| format!("removal left: {l}")));
    match (running, removed) {
        (Ok(()), Ok(())) => Ok(()),
        (Err(Failure::Fail(a)), Err(b)) => Err(Failure::Fail(format!("{a}\n{b}"))),
        (Err(f), _) => Err(f),
        (Ok(()), Err(b)) => Err(Failure::Fail(b)),
    }
}

/// What must hold while the pod runs: its IP, the TBF rates, the traffic.
fn check_running(d: &Containerd, net: &str, pod: &PodInfo, limit: Option<(&str, u64)>) -> CaseResult {
    ensure(pod.ip.starts_with("10.254.0."), || {
        format!("pod IP {} is not in {SUBNET}", pod.ip)
    })?;
    let ifb = ifb_name(net, &pod.id);
    let veth = host_veth(d, pod)?;
    let node = State::read(&d.ns)?;
    match limit {
        Some((l, bits)) => {
            tbf_rate(&node, &veth, bits, "host veth (ingress)")?;
            tbf_rate(&node, &ifb, bits, "ifb (egress)")?;
            shaped_traffic(d, pod, &veth, &ifb, l, bits)
        }
        None => {
            ensure(!node.has_link(&ifb), || {
                format!("ifb {ifb} exists without annotations")
            })?;
            let q = node.qdiscs_of(&veth);
            ensure(
                !q.iter()
                    .any(|q| ["tbf", "ingress"].contains(&text(q, "kind").as_str())),
                || format!("qdiscs on {veth} without annotations: {q:?}"),
            )?;
            flowing_traffic(d, pod)
        }
    }
}

/// The host side of the pod's veth: where the node routes the pod's IP.
fn host_veth(d: &Containerd, pod: &PodInfo) -> Result<String, String> {
    let dev = probe::route_dev(&d.ns, &pod.ip, None)?;
    if dev.is_empty() {
        return Err(format!("no route to the pod's {} in the node namespace", pod.ip));
    }
    Ok(dev)
}

/// The root TBF of `dev` shapes at the annotation's rate (bits/8 bytes per second).
fn tbf_rate(node: &State, dev: &str, bits: u64, what: &str) -> CaseResult {
    let qs = node.qdiscs_of(dev);
    let tbf = qs
        .iter()
        .find(|q| text(q, "kind") == "tbf" && q.get("root") == Some(&Value::Bool(true)))
        .ok_or_else(|| format!("no root tbf on the {what} {dev}: {qs:?}"))?;
    let rate = tbf.pointer("/options/rate").and_then(Value::as_u64);
    ensure(rate == Some(bits / 8), || {
        format!(
            "tbf on the {what} {dev} has rate {rate:?} B/s, the annotation asks {} B/s: {tbf}",
            bits / 8
        )
    })
}

fn shaped_traffic(
    d: &Containerd,
    pod: &PodInfo,
    veth: &str,
    ifb: &str,
    label: &str,
    bits: u64,
) -> CaseResult {
    let rate = bits / 8;
    let _server = PodServer::start(&pod.netns)?;
    let mut errors = Vec::new();
    for dir in [Direction::IntoPod, Direction::FromPod] {
        let (what, dev) = match dir {
            Direction::IntoPod => ("into the pod", veth),
            Direction::FromPod => ("out of the pod", ifb),
        };
        if bits > LINE_RATE_DOUBT {
            if let Err(e) = throttled(d, pod, dir, dev, label, what, rate) {
                errors.push(e);
            }
            continue;
        }
        let mut iv = goodput::transfer(&d.ns, &pod.ip, dir, SECS, rate)?;
        let mut measured = goodput::steady(&iv, rate as f64);
        if measured.is_err() {
            // The burst outlasted the transfer (a slow moment of the VM):
            // the bucket is empty now, so a second transfer shows the rate.
            iv = goodput::transfer(&d.ns, &pod.ip, dir, SECS, rate)?;
            measured = goodput::steady(&iv, rate as f64);
        }
        let s = match measured {
            Ok(s) => s,
            Err(e) => {
                errors.push(format!("{what}: {e}"));
                continue;
            }
        };
        let ratio = s.rate / rate as f64;
        // The figures, for the log: the suite prints details only on failure.
        eprintln!(
            "           containerd {label} {what}: goodput {ratio:.3}x the rate over {:.1} s after a {:.1} s burst",
            s.secs, s.burst_secs
        );
        if !SHAPED.contains(&ratio) {
            errors.push(format!(
                "{what}: goodput {:.3} Mbit/s over {:.1} s after a {:.1} s burst is {ratio:.2}x the rate, want {SHAPED:?} (% of rate per interval: {})",
                s.rate * 8.0 / 1e6,
                s.secs,
                s.burst_secs,
                goodput::percents(&iv, rate as f64)
            ));
        }
    }
    ensure(errors.is_empty(), || errors.join("\n"))
}

/// Above [`LINE_RATE_DOUBT`]: the TBF on `dev` throttled during a transfer.
/// A transfer that never outran the bucket leaves it emptier, so a second
/// one runs before the case gives up.
fn throttled(
    d: &Containerd,
    pod: &PodInfo,
    dir: Direction,
    dev: &str,
    label: &str,
    what: &str,
    rate: u64,
) -> Result<(), String> {
    for _ in 0..2 {
        let before = probe::tbf_overlimits(&d.ns, dev)?;
        let iv = goodput::transfer(&d.ns, &pod.ip, dir, SECS, rate)?;
        let grew = probe::tbf_overlimits(&d.ns, dev)?.saturating_sub(before);
        let mib = iv.iter().map(|i| i.bytes).sum::<u64>() as f64 / f64::from(1u32 << 20);
        // The figures, for the log: the suite prints details only on failure.
        eprintln!(
            "           containerd {label} {what}: the tbf on {dev} throttled {grew} times while {mib:.0} MiB arrived in {SECS} s"
        );
        if grew > 0 {
            return Ok(());
        }
    }
    Err(format!(
        "{what}: the tbf on {dev} never throttled in two {SECS} s transfers (its overlimits counter did not grow): no shaping shown"
    ))
}

fn flowing_traffic(d: &Containerd, pod: &PodInfo) -> CaseResult {
    let _server = PodServer::start(&pod.netns)?;
    for dir in [Direction::IntoPod, Direction::FromPod] {
        let iv = goodput::transfer(&d.ns, &pod.ip, dir, 1, 0)?;
        let bytes: u64 = iv.iter().map(|i| i.bytes).sum();
        ensure(bytes > 0, || format!("no data arrived {dir:?}"))?;
    }
    Ok(())
}

/// What the pod left in the node namespace (any link, qdisc or route of
/// either family but `lo`'s), the host-local store, libcni's cache, the
/// mounts and the process table; `Err` lists it.
fn left_over(d: &Containerd, net: &str, ipam: &Path, pod: Option<&PodInfo>) -> Result<(), String> {
    let mut left = Vec::new();
    match State::read(&d.ns) {
        Ok(node) => left.extend(node.beyond_lo()),
        Err(e) => left.push(format!("(the node namespace could not be read: {e})")),
    }
    if let Ok(rd) = std::fs::read_dir(ipam.join(net)) {
        for e in rd.filter_map(Result::ok) {
            let f = e.file_name().to_string_lossy().into_owned();
            if f != "lock" && !f.starts_with("last_reserved_ip") {
                left.push(format!("host-local lease {f}"));
            }
        }
    }
    let cache_dir = Path::new(cache::DEFAULT_DIR).join("results");
    if let Ok(rd) = std::fs::read_dir(&cache_dir) {
        for e in rd.filter_map(Result::ok) {
            let f = e.file_name().to_string_lossy().into_owned();
            // go-cni's loopback entry of this daemon's pods, by the pod's
            // sandbox id or by a sandbox path under the daemon's dir.
            let loopback = cri::is_loopback_entry(&f)
                && (pod.is_some_and(|p| f == format!("{}-{}-lo", cri::LOOPBACK_NETWORK, p.id))
                    || cache::read(&e.path())
                        .ok()
                        .flatten()
                        .and_then(|c| cri::loopback_sandbox(&c))
                        .is_some_and(|s| Path::new(&s).starts_with(&d.base)));
            if f.starts_with(&format!("{net}-")) || loopback {
                left.push(format!("libcni cache entry {}", cache_dir.join(f).display()));
            }
        }
    }
    let netns_dir = d.base.join("state/io.containerd.grpc.v1.cri/netns");
    if let Ok(rd) = std::fs::read_dir(&netns_dir) {
        for e in rd.filter_map(Result::ok) {
            left.push(format!("network namespace {}", e.path().display()));
        }
    }
    if let Some(p) = pod {
        if p.netns.exists() {
            left.push(format!("network namespace {}", p.netns.display()));
        }
        if Path::new(&format!("/proc/{}", p.pid)).exists() {
            left.push(format!("sandbox process {}", p.pid));
        }
    }
    match d.pods() {
        Ok(ids) if !ids.is_empty() => left.push(format!("sandboxes {ids:?}")),
        Ok(_) => {}
        Err(e) => left.push(e),
    }
    if left.is_empty() {
        Ok(())
    } else {
        Err(left.join(", "))
    }
}
