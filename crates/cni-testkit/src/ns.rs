//! Throwaway network namespaces and shell-outs to iproute2. Every test and
//! suite case makes its own, named after its process so a crashed run's
//! leftovers can be swept, and never touches the machine's own namespace.
//!
//! The plain methods panic with the command's stderr (root tests); the
//! `try_` ones return it as the error (the suite, where a case fails, not
//! the run).

use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

/// Specific enough that the sweep deletes no one else's namespace.
const PREFIX: &str = "cnitest-";
const NETNS_DIR: &str = "/run/netns";
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

/// [`sh`] that panics with the error.
#[track_caller]
pub fn run(args: &[&str]) -> String {
    sh(args).unwrap_or_else(|e| panic!("{e}"))
}

/// iproute2's `-j` output (empty output: an empty list); bad JSON is an error.
pub fn parse_json(out: &str) -> Result<serde_json::Value, String> {
    if out.trim().is_empty() {
        return Ok(serde_json::Value::Array(vec![]));
    }
    serde_json::from_str(out).map_err(|e| format!("bad json from iproute2: {e}: {out}"))
}

/// A network namespace under /run/netns, deleted on drop.
#[derive(Debug)]
pub struct Ns {
    pub name: String,
    gone: bool,
}

impl Ns {
    /// A fresh namespace with `lo` up; `tag` keeps names readable.
    #[track_caller]
    pub fn new(tag: &str) -> Ns {
        Ns::try_new(tag).unwrap_or_else(|e| panic!("{e}"))
    }

    /// [`Ns::new`], failing instead of panicking.
    pub fn try_new(tag: &str) -> Result<Ns, String> {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let tag: String = tag.chars().filter(char::is_ascii_alphanumeric).take(12).collect();
        let name = format!("{PREFIX}{tag}-{}-{n}", std::process::id());
        sh(&["ip", "netns", "add", &name])?;
        let ns = Ns { name, gone: false };
        ns.try_ip(&["link", "set", "lo", "up"])?;
        Ok(ns)
    }

    pub fn path(&self) -> PathBuf {
        PathBuf::from(self.path_str())
    }

    pub fn path_str(&self) -> String {
        format!("{NETNS_DIR}/{}", self.name)
    }

    /// `ip -n NS ARGS...`
    pub fn try_ip(&self, args: &[&str]) -> Result<String, String> {
        let mut v = vec!["ip", "-n", &self.name];
        v.extend_from_slice(args);
        sh(&v)
    }

    /// `tc -n NS ARGS...`
    pub fn try_tc(&self, args: &[&str]) -> Result<String, String> {
        let mut v = vec!["tc", "-n", &self.name];
        v.extend_from_slice(args);
        sh(&v)
    }

    /// `ip netns exec NS ARGS...`
    pub fn try_exec(&self, args: &[&str]) -> Result<String, String> {
        let mut v = vec!["ip", "netns", "exec", &self.name];
        v.extend_from_slice(args);
        sh(&v)
    }

    /// `ip netns exec NS ARGS...`: success, stdout and stderr whatever the
    /// exit (iperf3 and ping report failures on stdout too).
    pub fn exec_unchecked(&self, args: &[&str]) -> (bool, String, String) {
        let out = Command::new("ip")
            .args(["netns", "exec", &self.name])
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("cannot run ip netns exec: {e}"));
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    #[track_caller]
    pub fn ip(&self, args: &[&str]) -> String {
        self.try_ip(args).unwrap_or_else(|e| panic!("{e}"))
    }

    #[track_caller]
    pub fn tc(&self, args: &[&str]) -> String {
        self.try_tc(args).unwrap_or_else(|e| panic!("{e}"))
    }

    #[track_caller]
    pub fn exec(&self, args: &[&str]) -> String {
        self.try_exec(args).unwrap_or_else(|e| panic!("{e}"))
    }

    /// [`Ns::try_ip`] with the words of one line, for commands that need
    /// no argument with spaces: `ns.try_ip_line("route add default via 10.0.0.1")`.
    pub fn try_ip_line(&self, line: &str) -> Result<String, String> {
        self.try_ip(&line.split_whitespace().collect::<Vec<_>>())
    }

    /// [`Ns::try_tc`] with the words of one line.
    pub fn try_tc_line(&self, line: &str) -> Result<String, String> {
        self.try_tc(&line.split_whitespace().collect::<Vec<_>>())
    }

    #[track_caller]
    pub fn ip_line(&self, line: &str) -> String {
        self.try_ip_line(line).unwrap_or_else(|e| panic!("{e}"))
    }

    /// `ip -j ARGS` inside, parsed.
    #[track_caller]
    pub fn ip_json(&self, args: &[&str]) -> serde_json::Value {
        let mut a = vec!["-j"];
        a.extend_from_slice(args);
        parse_json(&self.ip(&a)).unwrap_or_else(|e| panic!("{e}"))
    }

    /// `tc -j ARGS` inside, parsed.
    #[track_caller]
    pub fn tc_json(&self, args: &[&str]) -> serde_json::Value {
        let mut a = vec!["-j"];
        a.extend_from_slice(args);
        parse_json(&self.tc(&a)).unwrap_or_else(|e| panic!("{e}"))
    }

    /// ifindex of `dev` here.
    pub fn ifindex(&self, dev: &str) -> u32 {
        let v = self.ip_json(&["link", "show", "dev", dev]);
        let i = v[0]["ifindex"]
            .as_u64()
            .unwrap_or_else(|| panic!("no ifindex for {dev}: {v}"));
        u32::try_from(i).unwrap_or_else(|_| panic!("ifindex {i}"))
    }

    /// A veth pair: `a` here, `b` in `peer` (or here when `None`).
    pub fn veth(&self, a: &str, b: &str, peer: Option<&Ns>) {
        self.ip(&["link", "add", a, "type", "veth", "peer", "name", b]);
        if let Some(p) = peer {
            self.ip(&["link", "set", b, "netns", &p.name]);
        }
    }

    /// Runs `f` on a short-lived thread inside this namespace (a netlink
    /// socket made there stays bound to it), so the caller's thread stays put.
    pub fn inside<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        let path = self.path();
        std::thread::spawn(move || {
            let ns = std::fs::File::open(&path).unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
            nix::sched::setns(&ns, nix::sched::CloneFlags::CLONE_NEWNET)
                .unwrap_or_else(|e| panic!("setns {}: {e}", path.display()));
            f()
        })
        .join()
        .unwrap_or_else(|_| panic!("thread in {} panicked", self.name))
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
    let Ok(rd) = std::fs::read_dir(NETNS_DIR) else {
        return;
    };
    for e in rd.filter_map(Result::ok) {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(rest) = name.strip_prefix(PREFIX) else {
            continue;
        };
        // TAG-PID-N
        let Some(pid) = rest.rsplit('-').nth(1).and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        if pid != std::process::id() && !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            let _ = sh(&["ip", "netns", "del", &name]);
        }
    }
}
