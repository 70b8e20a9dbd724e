//! Test network namespaces and shell-outs to iproute2. Every namespace is
//! named after this process so a crashed run's leftovers can be swept.

use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

const PREFIX: &str = "cnf";
static NEXT: AtomicU32 = AtomicU32::new(0);

/// Runs a command and returns its stdout; a non-zero exit is an error with stderr.
pub fn sh(args: &[&str]) -> Result<String, String> {
    let (prog, rest) = args.split_first().ok_or("empty command")?;
    let mut cmd = Command::new(prog);
    cmd.args(rest);
    output(cmd, &args.join(" "))
}

/// [`sh`] for a prepared command (environment, wrapper); `what` names it in errors.
pub fn output(mut cmd: Command, what: &str) -> Result<String, String> {
    let out = cmd
        .output()
        .map_err(|e| format!("failed to run {}: {e}", cmd.get_program().to_string_lossy()))?;
    if !out.status.success() {
        return Err(format!(
            "`{what}` failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// A network namespace under /run/netns, deleted on drop.
#[derive(Debug)]
pub struct Ns {
    pub name: String,
    gone: bool,
}

impl Ns {
    /// A fresh namespace with `lo` up.
    pub fn new() -> Result<Ns, String> {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let name = format!("{PREFIX}{}-{n}", std::process::id());
        sh(&["ip", "netns", "add", &name])?;
        let ns = Ns { name, gone: false };
        ns.ip(&["link", "set", "lo", "up"])?;
        Ok(ns)
    }

    pub fn path(&self) -> String {
        format!("/run/netns/{}", self.name)
    }

    /// `ip -n NS ARGS...`
    pub fn ip(&self, args: &[&str]) -> Result<String, String> {
        let mut v = vec!["ip", "-n", &self.name];
        v.extend_from_slice(args);
        sh(&v)
    }

    /// `tc -n NS ARGS...`
    pub fn tc(&self, args: &[&str]) -> Result<String, String> {
        let mut v = vec!["tc", "-n", &self.name];
        v.extend_from_slice(args);
        sh(&v)
    }

    /// `ip netns exec NS ARGS...`
    pub fn exec(&self, args: &[&str]) -> Result<String, String> {
        let mut v = vec!["ip", "netns", "exec", &self.name];
        v.extend_from_slice(args);
        sh(&v)
    }

    /// Deletes the namespace now (a test of "namespace gone").
    pub fn delete(&mut self) -> Result<(), String> {
        if !self.gone {
            sh(&["ip", "netns", "del", &self.name])?;
            self.gone = true;
        }
        Ok(())
    }
}

impl Drop for Ns {
    fn drop(&mut self) {
        if !self.gone {
            let _ = sh(&["ip", "netns", "del", &self.name]);
        }
    }
}

/// Deletes namespaces left by earlier runs whose process is gone.
pub fn sweep_stale() {
    let Ok(rd) = std::fs::read_dir("/run/netns") else {
        return;
    };
    for e in rd.filter_map(Result::ok) {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(rest) = name.strip_prefix(PREFIX) else {
            continue;
        };
        let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        if pid != std::process::id() && !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            let _ = sh(&["ip", "netns", "del", &name]);
        }
    }
}
