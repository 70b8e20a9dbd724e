//! The bench's one pod shape in namespaces of the test kit (`cni_testkit::Ns`):
//! a "host" namespace this process's thread enters, a container namespace per
//! scenario, and namespaces for the peers of extra veths. The pod differs from
//! the kit's (a /32 host end, links made in `ip -batch` by the thousand).

use std::fs::File;
use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};

use serde_json::{json, Value};

/// Set by SIGINT or SIGTERM: the next pod is not made, the run unwinds and
/// its namespaces are deleted (the children in the terminal's process
/// group, iperf3 and ping, got the signal too).
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: nix::libc::c_int) {
    INTERRUPTED.store(true, Ordering::Relaxed);
}

/// Ctrl-C and kill end the run through its cleanup.
pub fn unwind_on_signals() -> Result<(), String> {
    use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};
    let action = SigAction::new(
        SigHandler::Handler(on_signal),
        SaFlags::SA_RESTART,
        SigSet::empty(),
    );
    for sig in [Signal::SIGINT, Signal::SIGTERM] {
        // SAFETY: the handler only stores to an atomic, which is
        // async-signal-safe.
        unsafe { sigaction(sig, &action) }.map_err(|e| format!("sigaction {sig}: {e}"))?;
    }
    Ok(())
}

pub const NETNS_DIR: &str = "/var/run/netns";
/// The pod's addresses: the host end and the container end of its veth.
pub const HOST_IP: &str = "10.200.0.1";
pub const CTR_IP: &str = "10.200.0.2";
/// The host end of the pod's veth.
pub const HOST_VETH: &str = "bh0";

/// `argv` (in `ns` through `ip netns exec` when given); its stdout, or its
/// stderr as the error when it fails.
pub fn sh(argv: &[&str], ns: Option<&str>) -> Result<String, String> {
    let mut full: Vec<&str> = Vec::new();
    if let Some(ns) = ns {
        full.extend(["ip", "netns", "exec", ns]);
    }
    full.extend(argv);
    let out = Command::new(full[0])
        .args(&full[1..])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {}: {e}", full[0]))?;
    if !out.status.success() {
        return Err(format!(
            "{} failed: {}",
            full.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `argv` (in `ns` when given); its stdout whatever its exit status
/// (iperf3 and ping report failures on stdout too).
pub fn output(argv: &[&str], ns: Option<&str>) -> String {
    let mut full: Vec<&str> = Vec::new();
    if let Some(ns) = ns {
        full.extend(["ip", "netns", "exec", ns]);
    }
    full.extend(argv);
    Command::new(full[0])
        .args(&full[1..])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default()
}

/// Many `ip` commands in one process: thousands of links in seconds.
pub fn ip_batch(lines: &[String], ns: Option<&str>) -> Result<(), String> {
    let mut cmd = Command::new("ip");
    if let Some(ns) = ns {
        cmd.args(["-n", ns]);
    }
    let mut child = cmd
        .args(["-batch", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run ip: {e}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        let text = lines.join("\n") + "\n";
        stdin
            .write_all(text.as_bytes())
            .map_err(|e| format!("ip -batch: {e}"))?;
    }
    let out = child.wait_with_output().map_err(|e| format!("ip -batch: {e}"))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        return Err(format!(
            "ip -batch failed: {}",
            err.trim().chars().take(500).collect::<String>()
        ));
    }
    Ok(())
}

/// Moves this thread (the bench runs on one) into namespace `name`: the
/// processes it starts from then on are born there.
pub fn enter(name: &str) -> Result<(), String> {
    let path = format!("{NETNS_DIR}/{name}");
    let f = File::open(&path).map_err(|e| format!("open {path}: {e}"))?;
    nix::sched::setns(f, nix::sched::CloneFlags::CLONE_NEWNET).map_err(|e| format!("setns into {name}: {e}"))
}

pub fn netns_path(ctr: &str) -> String {
    format!("{NETNS_DIR}/{ctr}")
}

fn mac(dev: &str, ns: Option<&str>) -> Result<String, String> {
    let mut argv = vec!["ip", "-j"];
    if let Some(ns) = ns {
        argv.extend(["-n", ns]);
    }
    argv.extend(["link", "show", dev]);
    let v: Value =
        serde_json::from_str(&sh(&argv, None)?).map_err(|e| format!("ip -j link show {dev}: {e}"))?;
    v[0]["address"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| format!("no address of {dev}"))
}

/// A ptp-like attachment: veth `bh0` (here) to `eth0` (in `ctr`) with
/// addresses and routes, and the prevResult a ptp plugin would have
/// returned for it.
pub fn up(ctr: &str) -> Result<Value, String> {
    if INTERRUPTED.load(Ordering::Relaxed) {
        return Err("interrupted".into());
    }
    ip_batch(
        &[
            format!("link add {HOST_VETH} type veth peer name eth0 netns {ctr}"),
            format!("addr add {HOST_IP}/32 dev {HOST_VETH}"),
            format!("link set {HOST_VETH} up"),
        ],
        None,
    )?;
    ip_batch(
        &[
            format!("addr add {CTR_IP}/24 dev eth0"),
            "link set eth0 up".to_string(),
            format!("route add {HOST_IP}/32 dev eth0 scope link src {CTR_IP}"),
            format!("route add default via {HOST_IP} dev eth0"),
        ],
        Some(ctr),
    )?;
    sh(
        &[
            "ip",
            "route",
            "add",
            &format!("{CTR_IP}/32"),
            "dev",
            HOST_VETH,
            "src",
            HOST_IP,
        ],
        None,
    )?;
    Ok(json!({
        "cniVersion": "1.0.0",
        "interfaces": [
            {"name": HOST_VETH, "mac": mac(HOST_VETH, None)?},
            {"name": "eth0", "mac": mac("eth0", Some(ctr))?, "sandbox": netns_path(ctr)},
        ],
        "ips": [{"interface": 1, "address": format!("{CTR_IP}/24"), "gateway": HOST_IP}],
        "routes": [{"dst": "0.0.0.0/0"}],
        "dns": {},
    }))
}

/// Removes the pod's veth (its peer, routes and any qdiscs go with it).
pub fn down() {
    let _ = sh(&["ip", "link", "del", HOST_VETH], None);
}

/// `n` veths from `have` on whose host ends stay here and whose peers go to
/// `others`, as other pods' veths on a node.
pub fn host_veths(others: &str, have: usize, want: usize) -> Result<(), String> {
    let lines: Vec<String> = (have..want)
        .map(|n| format!("link add ov{n} type veth peer name op{n} netns {others}"))
        .collect();
    for chunk in lines.chunks(500) {
        ip_batch(chunk, None)?;
    }
    Ok(())
}

/// Container interfaces `c{have}..c{want}` in `ctr` (veths with an address
/// each; their peers up in `peers`).
pub fn container_ifaces(ctr: &str, peers: &str, have: usize, want: usize) -> Result<(), String> {
    if have >= want {
        return Ok(());
    }
    let lines: Vec<String> = (have..want)
        .flat_map(|k| {
            [
                format!("link add c{k} type veth peer name p{k} netns {peers}"),
                format!("addr add 10.201.{k}.2/24 dev c{k}"),
                format!("link set c{k} up"),
            ]
        })
        .collect();
    ip_batch(&lines, Some(ctr))?;
    let up: Vec<String> = (have..want).map(|k| format!("link set p{k} up")).collect();
    ip_batch(&up, Some(peers))
}
