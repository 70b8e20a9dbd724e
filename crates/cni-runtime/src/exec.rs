//! Running one plugin process: environment, stdin, a deadline, and the
//! spec's error object read back from stdout.

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use tokio::io::AsyncWriteExt;
use tokio::process::{Child, Command};

/// One call of a plugin binary.
#[derive(Debug, Clone)]
pub struct Invocation {
    pub program: PathBuf,
    pub args: Vec<OsString>,
    /// Run through this prefix, e.g. `ip netns exec NS`.
    pub wrapper: Vec<OsString>,
    /// Variables set on top of the inherited (or cleared) environment.
    pub env: Vec<(String, String)>,
    /// Start from an empty environment (plus PATH) instead of inheriting.
    pub clear_env: bool,
    pub stdin: Vec<u8>,
    pub timeout: Duration,
    /// Pass the plugin's stderr through instead of capturing it.
    pub inherit_stderr: bool,
}

impl Invocation {
    pub fn new(program: impl Into<PathBuf>) -> Self {
        Invocation {
            program: program.into(),
            args: Vec::new(),
            wrapper: Vec::new(),
            env: Vec::new(),
            clear_env: false,
            stdin: Vec::new(),
            timeout: Duration::from_secs(60),
            inherit_stderr: false,
        }
    }

    pub fn env(mut self, key: &str, value: impl Into<String>) -> Self {
        self.env.retain(|(k, _)| k != key);
        self.env.push((key.to_string(), value.into()));
        self
    }

    /// Starts the process with stdin, stdout and (unless inherited) stderr piped.
    pub fn spawn(&self) -> std::io::Result<Child> {
        let mut cmd = match self.wrapper.split_first() {
            Some((first, rest)) => {
                let mut c = Command::new(first);
                c.args(rest).arg(&self.program);
                c
            }
            None => Command::new(&self.program),
        };
        cmd.args(&self.args);
        if self.clear_env {
            cmd.env_clear();
            cmd.env(
                "PATH",
                std::env::var("PATH").unwrap_or_else(|_| "/usr/sbin:/usr/bin:/sbin:/bin".into()),
            );
        }
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        // Its own process group, so a deadline kills what it started too
        // (a child holding our pipes would keep us waiting).
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .process_group(0);
        cmd.stderr(if self.inherit_stderr {
            Stdio::inherit()
        } else {
            Stdio::piped()
        });
        cmd.spawn()
    }

    /// Runs to completion or kills the process at the deadline.
    pub async fn run(&self) -> Result<Outcome, ExecError> {
        let mut child = self
            .spawn()
            .map_err(|e| ExecError::Spawn(self.program.clone(), e))?;
        let stdin = child.stdin.take();
        let data = self.stdin.clone();
        let writer = tokio::spawn(async move {
            if let Some(mut s) = stdin {
                // A plugin may exit without reading stdin: a broken pipe is fine.
                let _ = s.write_all(&data).await;
                let _ = s.shutdown().await;
            }
        });
        let pgid = child.id().and_then(|p| i32::try_from(p).ok());
        let out = match tokio::time::timeout(self.timeout, child.wait_with_output()).await {
            Ok(r) => r.map_err(|e| ExecError::Wait(self.program.clone(), e))?,
            Err(_) => {
                if let Some(g) = pgid {
                    // Our own child's process group: the child is not
                    // reaped yet, so the group id is still ours.
                    let _ = killpg(Pid::from_raw(g), Signal::SIGKILL);
                }
                return Err(ExecError::Timeout(self.program.clone(), self.timeout));
            }
        };
        let _ = writer.await;
        Ok(Outcome {
            code: out.status.code(),
            stdout: out.stdout,
            stderr: out.stderr,
        })
    }
}

#[derive(Debug, Clone)]
pub struct Outcome {
    /// `None` when killed by a signal.
    pub code: Option<i32>,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

impl Outcome {
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }

    pub fn stdout_json(&self) -> Option<Value> {
        serde_json::from_slice(&self.stdout).ok()
    }

    /// The spec's error object, when the plugin failed.
    pub fn error(&self) -> Option<PluginError> {
        if self.success() {
            return None;
        }
        Some(PluginError::from_output(&self.stdout, &self.stderr, self.code))
    }

    pub fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&self.stderr).trim().to_string()
    }
}

/// A failed plugin as the runtime reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginError {
    /// `None` when stdout held no error object.
    pub code: Option<u64>,
    pub msg: String,
    pub details: String,
}

impl PluginError {
    pub fn from_output(stdout: &[u8], stderr: &[u8], status: Option<i32>) -> PluginError {
        let obj = serde_json::from_slice::<Value>(stdout).ok();
        let code = obj.as_ref().and_then(|o| o.get("code")).and_then(Value::as_u64);
        match (obj, code) {
            (Some(o), Some(code)) => PluginError {
                code: Some(code),
                msg: o
                    .get("msg")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string(),
                details: o
                    .get("details")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string(),
            },
            _ => {
                let err = String::from_utf8_lossy(stderr).trim().to_string();
                let msg = match status {
                    Some(s) => format!("netplugin failed with status {s} and no error object"),
                    None => "netplugin killed by a signal".to_string(),
                };
                PluginError {
                    code: None,
                    msg,
                    details: err,
                }
            }
        }
    }
}

impl fmt::Display for PluginError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.code {
            Some(c) => write!(f, "[code {c}] {}", self.msg)?,
            None => write!(f, "{}", self.msg)?,
        }
        if !self.details.is_empty() {
            write!(f, "; {}", self.details)?;
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    #[error("failed to start {p}: {1}", p = .0.display())]
    Spawn(PathBuf, std::io::Error),
    #[error("failed to wait for {p}: {1}", p = .0.display())]
    Wait(PathBuf, std::io::Error),
    #[error("{p} timed out after {s} s and was killed", p = .0.display(), s = .1.as_secs_f64())]
    Timeout(PathBuf, Duration),
}

/// Finds a plugin binary named `name` in the `CNI_PATH` directories.
pub fn find_in_path(name: &str, dirs: &[PathBuf]) -> Option<PathBuf> {
    if name.is_empty() || name.contains('/') {
        return None;
    }
    dirs.iter().map(|d| d.join(name)).find(|p| is_executable(p))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_error_object() {
        let e = PluginError::from_output(br#"{"code":7,"msg":"bad","details":"why"}"#, b"", Some(1));
        assert_eq!(e.code, Some(7));
        assert_eq!(e.to_string(), "[code 7] bad; why");
        let e = PluginError::from_output(b"", b"panic: boom\n", Some(2));
        assert_eq!(e.code, None);
        assert!(e.to_string().contains("panic: boom"));
    }

    #[tokio::test]
    async fn kills_at_deadline() {
        let mut inv = Invocation::new("/bin/sleep");
        inv.args = vec!["5".into()];
        inv.timeout = Duration::from_millis(100);
        let r = inv.run().await;
        assert!(matches!(r, Err(ExecError::Timeout(..))), "{r:?}");
    }

    #[tokio::test]
    async fn passes_stdin_and_env() {
        let mut inv = Invocation::new("/bin/sh").env("X", "y");
        inv.args = vec!["-c".into(), "cat; echo $X".into()];
        inv.stdin = b"in-".to_vec();
        let out = inv.run().await.unwrap();
        assert!(out.success());
        assert_eq!(out.stdout, b"in-y\n");
    }
}
