//! The bench's pods: the test kit's (`cni_testkit::Pod`) from the "host"
//! namespace this process's one thread enters, attached afresh for every
//! cycle, and links by the thousand for the scaling rows (`ip -batch`).

use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use cni_testkit::plugin::run_with_input;
use cni_testkit::pod::Pod;
use cni_testkit::Ns;

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

/// Moves this thread (the bench runs on one) into `ns`: the processes it
/// starts from then on are born there, as a runtime's plugins are.
pub fn enter(ns: &Ns) -> Result<(), String> {
    let f = std::fs::File::open(ns.path()).map_err(|e| format!("open {}: {e}", ns.path_str()))?;
    nix::sched::setns(f, nix::sched::CloneFlags::CLONE_NEWNET)
        .map_err(|e| format!("setns into {}: {e}", ns.name))
}

/// The host end of every pod's veth.
const HOST_VETH: &str = "vh0";

/// A pod whose veth goes when it is dropped (its peer, routes and any
/// qdiscs with it), so the next cycle starts from the same state.
pub struct Up(pub Pod);

impl Drop for Up {
    fn drop(&mut self) {
        let _ = self.0.host.try_ip(&["link", "del", HOST_VETH]);
    }
}

/// A fresh pod from `host` into `ctr`, its default route through the host end.
pub fn up(host: &Arc<Ns>, ctr: &Arc<Ns>) -> Result<Up, String> {
    if INTERRUPTED.load(Ordering::Relaxed) {
        return Err("interrupted".into());
    }
    let pod = Pod::attach(
        host.clone(),
        ctr.clone(),
        "bench-container-1",
        "eth0",
        HOST_VETH,
        0,
    )
    .map(Up)
    .inspect_err(|_| {
        let _ = host.try_ip(&["link", "del", HOST_VETH]);
    })?;
    pod.0.default_route()?;
    Ok(pod)
}

/// Many `ip` commands in `ns` in one process: thousands of links in seconds.
fn ip_batch(ns: &Ns, lines: &[String]) -> Result<(), String> {
    let mut cmd = Command::new("ip");
    cmd.args(["-n", &ns.name, "-batch", "-"]);
    let out = run_with_input(&mut cmd, (lines.join("\n") + "\n").as_bytes());
    if out.status.success() {
        return Ok(());
    }
    let err = String::from_utf8_lossy(&out.stderr);
    Err(format!(
        "ip -batch failed: {}",
        err.trim().chars().take(500).collect::<String>()
    ))
}

/// Veths `have..want` whose host ends stay in `host` and whose peers go to
/// `others`, as other pods' veths on a node.
pub fn host_veths(host: &Ns, others: &Ns, have: usize, want: usize) -> Result<(), String> {
    let lines: Vec<String> = (have..want)
        .map(|n| format!("link add ov{n} type veth peer name op{n} netns {}", others.name))
        .collect();
    lines.chunks(500).try_for_each(|chunk| ip_batch(host, chunk))
}

/// Container interfaces `c{have}..c{want}` in `ctr` (veths with an address
/// each; their peers up in `peers`).
pub fn container_ifaces(ctr: &Ns, peers: &Ns, have: usize, want: usize) -> Result<(), String> {
    if have >= want {
        return Ok(());
    }
    let lines: Vec<String> = (have..want)
        .flat_map(|k| {
            [
                format!("link add c{k} type veth peer name p{k} netns {}", peers.name),
                format!("addr add 10.201.{k}.2/24 dev c{k}"),
                format!("link set c{k} up"),
            ]
        })
        .collect();
    ip_batch(ctr, &lines)?;
    let up: Vec<String> = (have..want).map(|k| format!("link set p{k} up")).collect();
    ip_batch(peers, &up)
}
