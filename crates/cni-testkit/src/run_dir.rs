//! A private `/run/cni-rs` per test, and the wait for a plugin's lock.

use std::path::PathBuf;
use std::process::Command;

/// A mount namespace whose `/run/cni-rs` is an empty tmpfs of its own, held
/// by a sleeping process: plugins run in it through [`PrivateRun::command`],
/// and [`PrivateRun::files`] lists what they left under `/run/cni-rs`, with
/// nothing from other tests or runs on the machine mixed in. The rest of the
/// file system, `/run/netns` included, is the machine's.
#[derive(Debug)]
pub struct PrivateRun {
    holder: std::process::Child,
}

impl PrivateRun {
    pub fn new() -> PrivateRun {
        use std::io::BufRead;
        // The mount point; plugins make it anyway.
        std::fs::create_dir_all("/run/cni-rs").unwrap_or_else(|e| panic!("mkdir /run/cni-rs: {e}"));
        let mut holder = Command::new("unshare")
            // slave: namespaces that `ip netns add` mounts later still show up inside.
            .args(["--mount", "--propagation", "slave", "sh", "-c"])
            .arg("mount -t tmpfs -o mode=0755 cni-test /run/cni-rs && echo ready && exec sleep 3600")
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run unshare: {e}"));
        let mut line = String::new();
        let stdout = holder.stdout.take().unwrap_or_else(|| panic!("no stdout"));
        let _ = std::io::BufReader::new(stdout).read_line(&mut line);
        assert_eq!(line.trim(), "ready", "private /run/cni-rs was not set up");
        PrivateRun { holder }
    }

    /// `program` to be run inside (through `nsenter --mount`).
    pub fn command(&self, program: &str) -> Command {
        let mut c = Command::new("nsenter");
        c.arg(format!("--mount=/proc/{}/ns/mnt", self.holder.id()))
            .arg("--")
            .arg(program);
        c
    }

    /// Every file and directory below `/run/cni-rs` inside, relative to it, sorted.
    pub fn files(&self) -> Vec<PathBuf> {
        let root = PathBuf::from(format!("/proc/{}/root/run/cni-rs", self.holder.id()));
        let mut out = Vec::new();
        let mut todo = vec![root.clone()];
        while let Some(dir) = todo.pop() {
            let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("read {}: {e}", dir.display()));
            for e in entries {
                let e = e.unwrap_or_else(|e| panic!("read {}: {e}", dir.display()));
                let path = e.path();
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    todo.push(path.clone());
                }
                out.push(path.strip_prefix(&root).unwrap_or(&path).to_path_buf());
            }
        }
        out.sort();
        out
    }
}

impl Default for PrivateRun {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for PrivateRun {
    fn drop(&mut self) {
        // The tmpfs goes with the last process of the namespace.
        let _ = self.holder.kill();
        let _ = self.holder.wait();
    }
}

/// Whether `child` waits for a lock someone holds: true once a thread of it
/// is seen in `flock(2)` twice, 100 ms apart (an uncontended flock returns
/// in microseconds), false when it ends first.
pub fn waits_in_flock(child: &mut std::process::Child) -> bool {
    let flock = libc::SYS_flock.to_string();
    let tasks = format!("/proc/{}/task", child.id());
    let in_flock = || {
        std::fs::read_dir(&tasks)
            .into_iter()
            .flatten()
            .flatten()
            .any(|t| {
                std::fs::read_to_string(t.path().join("syscall"))
                    .is_ok_and(|s| s.split_whitespace().next() == Some(flock.as_str()))
            })
    };
    let start = std::time::Instant::now();
    while start.elapsed() < std::time::Duration::from_secs(30) {
        if matches!(child.try_wait(), Ok(Some(_))) {
            return false;
        }
        if in_flock() {
            std::thread::sleep(std::time::Duration::from_millis(100));
            if in_flock() && matches!(child.try_wait(), Ok(None)) {
                return true;
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    panic!("process {} neither waits in flock nor ends", child.id());
}
