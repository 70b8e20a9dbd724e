//! Throwaway network namespaces for root integration tests (feature
//! `testutil`). Every test makes its own, uniquely named, and never touches
//! the machine's root namespace.

use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

pub use cni_core::testutil::{path_or_skip, program_or_skip, root_or_skip, skip};

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A named namespace under /var/run/netns, deleted on drop.
#[derive(Debug)]
pub struct TestNs {
    pub name: String,
}

impl TestNs {
    /// `tag` keeps names readable; pid and a counter make them unique so
    /// tests run in parallel, also across test binaries.
    pub fn new(tag: &str) -> TestNs {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let tag: String = tag
            .chars()
            .filter(|c| c.is_ascii_alphanumeric())
            .take(12)
            .collect();
        let name = format!("t-{tag}-{}-{n}", std::process::id());
        run("ip", &["netns", "add", &name]);
        let ns = TestNs { name };
        ns.ip(&["link", "set", "lo", "up"]);
        ns
    }

    pub fn path(&self) -> PathBuf {
        PathBuf::from(format!("/var/run/netns/{}", self.name))
    }

    /// Runs a command inside; panics with its stderr when it fails.
    pub fn exec(&self, cmd: &[&str]) -> String {
        let mut args = vec!["netns", "exec", self.name.as_str()];
        args.extend_from_slice(cmd);
        run("ip", &args)
    }

    /// Like `exec` but returns the exit status and both streams.
    pub fn try_exec(&self, cmd: &[&str]) -> (bool, String, String) {
        let mut args = vec!["netns", "exec", self.name.as_str()];
        args.extend_from_slice(cmd);
        try_run("ip", &args)
    }

    /// `ip ARGS` inside the namespace.
    pub fn ip(&self, args: &[&str]) -> String {
        let mut a = vec!["-n", self.name.as_str()];
        a.extend_from_slice(args);
        run("ip", &a)
    }

    /// `ip -j ARGS` inside the namespace, parsed.
    pub fn ip_json(&self, args: &[&str]) -> serde_json::Value {
        let mut a = vec!["-j", "-n", self.name.as_str()];
        a.extend_from_slice(args);
        parse_json(&run("ip", &a))
    }

    /// `tc -j ARGS` inside the namespace, parsed.
    pub fn tc_json(&self, args: &[&str]) -> serde_json::Value {
        let mut a = vec!["-j", "-n", self.name.as_str()];
        a.extend_from_slice(args);
        parse_json(&run("tc", &a))
    }

    /// An nl-ops socket inside this namespace, made on a short-lived thread
    /// that enters it, so neither this thread nor cni-core is involved.
    pub fn socket(&self) -> crate::Socket {
        let path = self.path();
        std::thread::spawn(move || {
            let f = std::fs::File::open(&path).unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
            // SAFETY: plain setns on an fd we own; the thread ends right after.
            let rc = unsafe { libc::setns(std::os::fd::AsRawFd::as_raw_fd(&f), libc::CLONE_NEWNET) };
            assert_eq!(
                rc,
                0,
                "setns {}: {}",
                path.display(),
                std::io::Error::last_os_error()
            );
            crate::Socket::new().unwrap_or_else(|e| panic!("socket in {}: {e}", path.display()))
        })
        .join()
        .unwrap_or_else(|_| panic!("socket thread for {} panicked", self.name))
    }

    /// ifindex of `dev` here, from `ip -j link show`.
    pub fn ifindex(&self, dev: &str) -> u32 {
        let v = self.ip_json(&["link", "show", "dev", dev]);
        let i = v[0]["ifindex"]
            .as_u64()
            .unwrap_or_else(|| panic!("no ifindex for {dev}: {v}"));
        u32::try_from(i).unwrap_or_else(|_| panic!("ifindex {i}"))
    }

    /// A veth pair: `a` here, `b` in `peer` (or here when `None`).
    pub fn veth(&self, a: &str, b: &str, peer: Option<&TestNs>) {
        self.ip(&["link", "add", a, "type", "veth", "peer", "name", b]);
        if let Some(p) = peer {
            self.ip(&["link", "set", b, "netns", &p.name]);
        }
    }
}

impl Drop for TestNs {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.name]).status();
    }
}

fn parse_json(s: &str) -> serde_json::Value {
    if s.trim().is_empty() {
        return serde_json::Value::Array(vec![]);
    }
    serde_json::from_str(s).unwrap_or_else(|e| panic!("bad json from ip/tc: {e}: {s}"))
}

/// Runs a command; panics with its stderr when it fails.
pub fn run(cmd: &str, args: &[&str]) -> String {
    let (ok, out, err) = try_run(cmd, args);
    assert!(ok, "{cmd} {} failed: {err}", args.join(" "));
    out
}

pub fn try_run(cmd: &str, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd}: {e}"));
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
