//! Plugins run as a runtime runs them: only PATH and the CNI variables set,
//! the config on stdin, stdout and stderr piped.

use std::io::Write;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};

use serde_json::Value;

use crate::ns::Ns;

/// Starts `cmd` (a plugin, or a wrapper that execs one); CNI_NETNS is left
/// out when `netns` is `None`.
pub fn spawn_plugin(
    mut cmd: Command,
    verb: &str,
    container_id: &str,
    netns: Option<&Path>,
    ifname: &str,
    conf: &Value,
) -> Child {
    cmd.env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .env("CNI_COMMAND", verb)
        .env("CNI_CONTAINERID", container_id)
        .env("CNI_IFNAME", ifname)
        .env("CNI_PATH", "/usr/lib/cni");
    if let Some(p) = netns {
        cmd.env("CNI_NETNS", p);
    }
    spawn_with_input(&mut cmd, conf.to_string().as_bytes())
}

/// `bin` run inside `ns` (its "host namespace"): `ip netns exec` execs the
/// plugin in place, so a child's pid is the plugin's.
pub fn in_ns(ns: &Ns, bin: &str) -> Command {
    let mut c = Command::new("ip");
    c.args(["netns", "exec", &ns.name, bin]);
    c
}

/// Starts `cmd` with `input` on stdin (closed after it), stdout and stderr piped.
fn spawn_with_input(cmd: &mut Command, input: &[u8]) -> Child {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
    if let Some(mut stdin) = child.stdin.take() {
        // A plugin that exits before reading all of it is the caller's to judge.
        let _ = stdin.write_all(input);
    }
    child
}

/// Runs `cmd` with `input` on stdin (closed after it), stdout and stderr captured.
pub fn run_with_input(cmd: &mut Command, input: &[u8]) -> Output {
    spawn_with_input(cmd, input)
        .wait_with_output()
        .unwrap_or_else(|e| panic!("wait for {cmd:?}: {e}"))
}

/// Waits for `child` and panics, with its output, unless it succeeded.
#[track_caller]
pub fn must_succeed(child: Child, what: &str) {
    let out = child
        .wait_with_output()
        .unwrap_or_else(|e| panic!("{what}: wait: {e}"));
    assert!(
        out.status.success(),
        "{what} failed: {} {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A finished plugin: its exit, its JSON answer (`Null` when it wrote none), its stderr.
#[derive(Debug)]
pub struct Out {
    pub ok: bool,
    pub stdout: Value,
    pub stderr: String,
}

impl Out {
    /// Waits for `child`; stdout that is not JSON panics.
    pub fn wait(child: Child) -> Out {
        let out = child
            .wait_with_output()
            .unwrap_or_else(|e| panic!("wait for a plugin: {e}"));
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let stdout = if text.trim().is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("stdout is not json ({e}): {text}"))
        };
        Out {
            ok: out.status.success(),
            stdout,
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    pub fn code(&self) -> u64 {
        self.stdout["code"].as_u64().unwrap_or(0)
    }

    pub fn msg(&self) -> String {
        self.stdout["msg"].as_str().unwrap_or_default().to_string()
    }

    #[track_caller]
    pub fn assert_ok(&self) -> &Self {
        assert!(self.ok, "plugin failed: {} {}", self.stdout, self.stderr);
        self
    }

    #[track_caller]
    pub fn assert_err(&self, code: u64, msg_part: &str) {
        assert!(!self.ok, "plugin succeeded, wanted code {code}: {}", self.stdout);
        assert_eq!(self.code(), code, "{}", self.stdout);
        assert!(
            self.msg().contains(msg_part),
            "want {msg_part:?} in {:?}",
            self.msg()
        );
    }
}
