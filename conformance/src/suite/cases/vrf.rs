//! Issue 21: the seed's story with packets in vrf mode. The site of
//! `traffic` (eth0 to a management router that owns the main table, net1
//! to the only router that reaches the peer, strict reverse path filters):
//! with `"mode": "vrf"` net1 joins a VRF whose table holds its routes, and
//! the peer's pings and TCP connections to net1's addresses are answered
//! through net1, as with sbr mode's rules, while the management path keeps
//! working. TCP reaches a server listening on no address and no device
//! only with `l3mdevAccept` (the kernel's `tcp_l3mdev_accept`), which sbr
//! sets only when asked. DEL leaves the namespace as it was, but for the
//! kernel's l3mdev rule (see docs/sbr.md). Needs the vrf module:
//! `scripts/test-vm` runs these on Debian's 6.1 kernel.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use serde_json::{json, Value};

use super::call;
use super::traffic::{
    add, all_answered, del, lost, management_path, need_ping, Site, FAMILIES, PORT, TCP_WAIT,
};
use crate::suite::probe::{counters, grew, tcp_listening_on};
use crate::suite::{ensure, ok, Case, CaseResult, Ctx, Failure};
use cni_testkit::state::{text, State};
use cni_testkit::Ns;

/// The VRF sbr names after net1.
const VRF: &str = "vrf-net1";

pub fn cases() -> Vec<Case> {
    vec![
        Case::new(
            "vrf",
            "mode vrf, dual stack: peer behind net1 answered (ping, TCP with l3mdevAccept), management path kept, DEL restores",
            answered,
        )
        .needs(&["vrf"]),
        Case::new(
            "vrf",
            "mode vrf without l3mdevAccept: pings answered, TCP to an unbound listener not, sysctls untouched; DEL without prevResult, twice",
            unasked,
        )
        .needs(&["vrf"]),
        Case::new(
            "vrf",
            "mode vrf: a failed ADD (unreachable gateway, code 7) rolls back to the namespace before; another's VRF of the name is joined, left by DEL, not deleted",
            rollback_and_foreign,
        )
        .needs(&["vrf"]),
    ]
}

/// The reference has no vrf mode (v1.1.1 ignores the field).
fn not_reference(ctx: &Ctx) -> CaseResult {
    super::not_reference(
        ctx,
        "the reference has no `mode` option (v1.1.1 ignores the field)",
    )
}

fn answered(ctx: &Ctx) -> CaseResult {
    not_reference(ctx)?;
    need_ping()?;
    let s = Site::new("vrf-answered")?;
    lost(&s, "before ADD")?;
    let before = State::read(&s.pod)?;
    let conf = s.conf(json!({"mode": "vrf", "l3mdevAccept": true}), s.prev_result(true));
    add(ctx, &s, &conf)?;
    in_vrf(&s.pod, "after ADD")?;
    ensure(sysctls(&s.pod)? == "1 1", || {
        "after ADD with l3mdevAccept: net.ipv4.tcp_l3mdev_accept and udp_l3mdev_accept are not both 1".into()
    })?;
    // Only the pod's: not the namespace the plugin ran in.
    ensure(sysctls(&s.net1.host)? == "0 0", || {
        "after ADD with l3mdevAccept: the l3mdev sysctls changed outside the pod".into()
    })?;
    answers(&s, true, "after ADD")?;
    ok("CHECK", &call(ctx, "sbr", &s.net1, "CHECK", &conf)?)?;
    del(ctx, &s, &conf)?;
    restored(&s.pod, &before, "after DEL")?;
    lost(&s, "after DEL")
}

fn unasked(ctx: &Ctx) -> CaseResult {
    not_reference(ctx)?;
    need_ping()?;
    let s = Site::new("vrf-unasked")?;
    let before = State::read(&s.pod)?;
    let conf = s.conf(json!({"mode": "vrf"}), s.prev_result(true));
    add(ctx, &s, &conf)?;
    in_vrf(&s.pod, "after ADD")?;
    ensure(sysctls(&s.pod)? == "0 0", || {
        "after ADD without l3mdevAccept: the l3mdev sysctls changed".into()
    })?;
    answers(&s, false, "after ADD")?;
    let mut bare = conf.clone();
    if let Some(o) = bare.as_object_mut() {
        o.remove("prevResult");
    }
    del(ctx, &s, &bare)?;
    restored(&s.pod, &before, "after DEL without prevResult")?;
    del(ctx, &s, &bare)?;
    restored(&s.pod, &before, "after a second DEL")
}

fn rollback_and_foreign(ctx: &Ctx) -> CaseResult {
    not_reference(ctx)?;
    let s = Site::new("vrf-rollback")?;
    let before = State::read(&s.pod)?;
    // The VRF is made and net1 is in it when the default route fails.
    let bad = s.conf(
        json!({"mode": "vrf", "gateways": ["10.9.9.9"]}),
        s.prev_result(true),
    );
    match call(ctx, "sbr", &s.net1, "ADD", &bad)?.error() {
        None => {
            return Err(Failure::Fail(
                "ADD with the unreachable gateway 10.9.9.9 succeeded".into(),
            ))
        }
        Some(e) => ensure(e.code == Some(7), || {
            format!(
                "ADD with an unreachable gateway: code {:?} ({}), want 7",
                e.code, e.msg
            )
        })?,
    }
    restored(&s.pod, &before, "after the failed ADD")?;
    // Someone else's VRF with the name sbr would give its own.
    s.pod
        .try_ip(&["link", "add", VRF, "type", "vrf", "table", "300"])?;
    s.pod.try_ip(&["link", "set", VRF, "up"])?;
    let with_theirs = State::read(&s.pod)?;
    let conf = s.conf(json!({"mode": "vrf"}), s.prev_result(true));
    add(ctx, &s, &conf)?;
    let out = s.pod.try_ip_line("-j route show table 300 default")?;
    ensure(out.contains("\"dev\":\"net1\""), || {
        format!("after ADD: table 300 of the existing {VRF} has no default route through net1: {out}")
    })?;
    del(ctx, &s, &conf)?;
    ensure(s.pod.try_ip(&["link", "show", "dev", VRF]).is_ok(), || {
        format!("DEL deleted {VRF}, which sbr did not make")
    })?;
    restored(&s.pod, &with_theirs, "after DEL")
}

/// Both sysctls, "tcp udp".
fn sysctls(pod: &Ns) -> Result<String, String> {
    let out = pod.try_exec(&[
        "sysctl",
        "-n",
        "net.ipv4.tcp_l3mdev_accept",
        "net.ipv4.udp_l3mdev_accept",
    ])?;
    Ok(out.split_whitespace().collect::<Vec<_>>().join(" "))
}

/// net1 in sbr's VRF: alias `cni-sbr`, table 100 (the first free).
fn in_vrf(pod: &Ns, when: &str) -> CaseResult {
    let link = |dev: &str| -> Result<Value, String> {
        let out = pod.try_ip(&["-j", "-d", "link", "show", "dev", dev])?;
        let v: Value = serde_json::from_str(&out).map_err(|e| format!("ip -j link: {e}: {out}"))?;
        Ok(v.get(0).cloned().unwrap_or(Value::Null))
    };
    let net1 = link("net1")?;
    ensure(text(&net1, "master") == VRF, || {
        format!("{when}: net1's master is {:?}, want {VRF}", net1.get("master"))
    })?;
    let vrf = link(VRF)?;
    ensure(
        vrf.pointer("/linkinfo/info_kind") == Some(&json!("vrf"))
            && vrf.pointer("/linkinfo/info_data/table") == Some(&json!(100))
            && text(&vrf, "ifalias") == "cni-sbr",
        || format!("{when}: {VRF} is not sbr's vrf with table 100: {vrf}"),
    )
}

/// The peer's pings are answered through net1 in both families, its TCP
/// connections to a listener bound to no address reach it when `tcp` and
/// are refused otherwise; nothing dies at a reverse path filter or at the
/// management router; the management path works both ways.
fn answers(s: &Site, tcp: bool, when: &str) -> CaseResult {
    for f in &FAMILIES {
        let out = s.pod.try_ip(&["-j", "route", "get", f.peer, "vrf", VRF])?;
        let r: Value = serde_json::from_str(&out).map_err(|e| format!("ip route get: {e}: {out}"))?;
        let dev = text(&r[0], "dev");
        ensure(dev == "net1", || {
            format!(
                "{when}: in {VRF} the peer {} is reached through {dev}, want net1",
                f.peer
            )
        })?;
    }
    let (pod0, mgmt0) = (counters(&s.pod)?, counters(&s.mgmt)?);
    for (i, f) in FAMILIES.iter().enumerate() {
        let net1 = format!("{} ({})", f.net1, f.name);
        all_answered(&s.peer, "the peer", f.net1, &net1, when)?;
        let addr: IpAddr = f.net1.parse().map_err(|e| format!("{}: {e}", f.net1))?;
        let any = if addr.is_ipv4() {
            IpAddr::V4(Ipv4Addr::UNSPECIFIED)
        } else {
            IpAddr::V6(Ipv6Addr::UNSPECIFIED)
        };
        // A port per family: a socket on :: would take IPv4's too.
        let port = PORT + u16::try_from(i).unwrap_or(0);
        let connected = tcp_listening_on(&s.pod, &s.peer, any, addr, port, TCP_WAIT)?;
        ensure(connected == tcp, || {
            format!(
                "{when}: the peer's TCP connection to {}:{port} (listener on {any}) {}",
                f.net1,
                if tcp {
                    "did not form"
                } else {
                    "formed without l3mdevAccept"
                }
            )
        })?;
    }
    let (pod1, mgmt1) = (counters(&s.pod)?, counters(&s.mgmt)?);
    for (name, before, after, what) in [
        ("TcpExtIPReversePathFilter", &pod0, &pod1, "pod"),
        ("IpExtInNoRoutes", &mgmt0, &mgmt1, "management router"),
        ("Ip6InNoRoutes", &mgmt0, &mgmt1, "management router"),
    ] {
        let n = grew(before, after, name);
        ensure(n == 0, || {
            format!("{when}: {name} of the {what} grew by {n}, want 0")
        })?;
    }
    management_path(s, when)
}

/// Rules, routes and links as before ADD, but the l3mdev rule the kernel
/// adds with a namespace's first VRF and never takes back (nor makes again:
/// it is not sbr's to delete).
fn restored(pod: &Ns, before: &State, when: &str) -> CaseResult {
    let now = State::read(pod)?;
    let diff: Vec<String> = now
        .diff(before, when, "before ADD")
        .lines()
        .filter(|l| !(l.starts_with("rule only in") && l.contains("l3mdev")))
        .map(str::to_string)
        .collect();
    ensure(diff.is_empty(), || {
        format!("{when}: the namespace differs:\n{}", diff.join("\n"))
    })
}
