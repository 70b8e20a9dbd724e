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

/// An eBPF agent's stand-in: a `sched_cls` program that only says "next"
/// (TCX_NEXT), attached to a link's ingress through a tcx link (kernel
/// 6.6+, as Cilium and newer agents attach), held by the link's fd: it
/// stays attached while this value lives.
#[derive(Debug)]
pub struct TcxLink {
    _prog: std::os::fd::OwnedFd,
    _link: std::os::fd::OwnedFd,
}

const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_PROG_QUERY: libc::c_long = 16;
const BPF_LINK_CREATE: libc::c_long = 28;
const BPF_PROG_TYPE_SCHED_CLS: u32 = 3;
const BPF_TCX_INGRESS: u32 = 46;

/// bpf(2) with a zero-padded attribute block.
fn bpf(cmd: libc::c_long, attr: &mut [u8; 128]) -> std::io::Result<i32> {
    // SAFETY: the kernel reads and writes at most `attr.len()` bytes of the
    // block we own; pointers inside it point at live buffers of the caller.
    let rc = unsafe { libc::syscall(libc::SYS_bpf, cmd, attr.as_mut_ptr(), attr.len()) };
    if rc < 0 {
        return Err(std::io::Error::last_os_error());
    }
    i32::try_from(rc).map_err(|_| std::io::Error::other("bpf returned out of range"))
}

fn put(attr: &mut [u8; 128], at: usize, bytes: &[u8]) {
    attr[at..at + bytes.len()].copy_from_slice(bytes);
}

impl TestNs {
    /// Runs `f` on a thread inside this namespace (ifindexes in bpf(2) are
    /// resolved in the caller's).
    fn inside<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        let path = self.path();
        std::thread::spawn(move || {
            let ns = std::fs::File::open(&path).unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
            // SAFETY: plain setns on an fd we own; the thread ends right after.
            let rc = unsafe { libc::setns(std::os::fd::AsRawFd::as_raw_fd(&ns), libc::CLONE_NEWNET) };
            assert_eq!(
                rc,
                0,
                "setns {}: {}",
                path.display(),
                std::io::Error::last_os_error()
            );
            f()
        })
        .join()
        .unwrap_or_else(|_| panic!("thread in {} panicked", self.name))
    }

    /// Attaches a pass-through program to `dev`'s ingress with tcx.
    pub fn attach_tcx_ingress(&self, dev: &str) -> TcxLink {
        use std::os::fd::FromRawFd;
        let index = self.ifindex(dev);
        self.inside(move || {
            // r0 = -1 (TCX_NEXT); exit.
            let insns: [u8; 16] = [
                0xb7, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, //
                0x95, 0, 0, 0, 0, 0, 0, 0,
            ];
            let license = b"GPL\0";
            let mut attr = [0u8; 128];
            put(&mut attr, 0, &BPF_PROG_TYPE_SCHED_CLS.to_ne_bytes());
            put(&mut attr, 4, &2u32.to_ne_bytes());
            put(&mut attr, 8, &(insns.as_ptr() as u64).to_ne_bytes());
            put(&mut attr, 16, &(license.as_ptr() as u64).to_ne_bytes());
            put(&mut attr, 68, &BPF_TCX_INGRESS.to_ne_bytes());
            let prog = bpf(BPF_PROG_LOAD, &mut attr).unwrap_or_else(|e| panic!("load bpf program: {e}"));
            // SAFETY: a new fd the kernel just gave us, owned from here on.
            let prog = unsafe { std::os::fd::OwnedFd::from_raw_fd(prog) };
            let mut attr = [0u8; 128];
            let fd = u32::try_from(std::os::fd::AsRawFd::as_raw_fd(&prog)).unwrap_or(0);
            put(&mut attr, 0, &fd.to_ne_bytes());
            put(&mut attr, 4, &index.to_ne_bytes());
            put(&mut attr, 8, &BPF_TCX_INGRESS.to_ne_bytes());
            let link =
                bpf(BPF_LINK_CREATE, &mut attr).unwrap_or_else(|e| panic!("tcx attach to {index}: {e}"));
            // SAFETY: as above.
            let link = unsafe { std::os::fd::OwnedFd::from_raw_fd(link) };
            TcxLink {
                _prog: prog,
                _link: link,
            }
        })
    }

    /// How many programs tcx runs on `dev`'s ingress.
    pub fn tcx_ingress_programs(&self, dev: &str) -> u32 {
        let index = self.ifindex(dev);
        self.inside(move || {
            let mut attr = [0u8; 128];
            put(&mut attr, 0, &index.to_ne_bytes());
            put(&mut attr, 4, &BPF_TCX_INGRESS.to_ne_bytes());
            bpf(BPF_PROG_QUERY, &mut attr).unwrap_or_else(|e| panic!("query tcx of {index}: {e}"));
            u32::from_ne_bytes([attr[24], attr[25], attr[26], attr[27]])
        })
    }
}

impl Drop for TestNs {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.name]).status();
    }
}

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

/// Starts `cmd` (a plugin, or a wrapper that execs one) as a runtime would:
/// only PATH and the CNI variables set, `conf` on stdin, stdout and stderr
/// piped.
pub fn spawn_plugin(
    mut cmd: Command,
    verb: &str,
    container_id: &str,
    netns: &std::path::Path,
    ifname: &str,
    conf: &serde_json::Value,
) -> std::process::Child {
    use std::io::Write;
    use std::process::Stdio;
    let mut child = cmd
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .env("CNI_COMMAND", verb)
        .env("CNI_CONTAINERID", container_id)
        .env("CNI_NETNS", netns)
        .env("CNI_IFNAME", ifname)
        .env("CNI_PATH", "/usr/lib/cni")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
    if let Some(mut stdin) = child.stdin.take() {
        // A plugin that exits before reading it all is the caller's to judge.
        let _ = stdin.write_all(conf.to_string().as_bytes());
    }
    child
}

/// Waits for `child` and panics, with its output, unless it succeeded.
#[track_caller]
pub fn must_succeed(child: std::process::Child, what: &str) {
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

/// A plugin binary (`bin`, config type `plugin`) given a `logFile` it must
/// not write (a FIFO nobody reads, a path below a symlinked directory, a
/// symlink, a hard link to another file, a directory that does not exist)
/// returns at once, leaves what is there unchanged, warns on stderr naming
/// the path and why, and goes on with the command: logging settings never
/// fail one. The outcome is the plugin's own: an error about the namespace
/// (sbr opens it first) or the prevResult passed on (bandwidth without
/// limits touches nothing). The namespace path is in the test's own
/// directory and cannot be a namespace, and the interface exists nowhere,
/// so the plugin finds nothing to change, least of all in the machine's
/// own namespace.
pub fn assert_unsafe_log_files_unused(bin: &str, plugin: &str) {
    use std::fs;
    let dir = std::env::temp_dir().join(format!("{plugin}-logfile-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    let real = dir.join("real");
    fs::create_dir_all(&real).unwrap_or_else(|e| panic!("mkdir {}: {e}", real.display()));
    let fifo = real.join("fifo.log");
    run("mkfifo", &[&fifo.to_string_lossy()]);
    std::os::unix::fs::symlink(&real, dir.join("linked")).unwrap_or_else(|e| panic!("symlink: {e}"));
    let target = real.join("target");
    fs::write(&target, b"keep\n").unwrap_or_else(|e| panic!("write {}: {e}", target.display()));
    std::os::unix::fs::symlink(&target, real.join("sym.log")).unwrap_or_else(|e| panic!("symlink: {e}"));
    let victim = dir.join("victim");
    fs::write(&victim, b"keep\n").unwrap_or_else(|e| panic!("write {}: {e}", victim.display()));
    fs::hard_link(&victim, real.join("hard.log")).unwrap_or_else(|e| panic!("hard link: {e}"));
    let netns = dir.join("no-such-netns");

    for (path, why) in [
        (fifo.clone(), "fifo"),
        (dir.join("linked/x.log"), "symlink"),
        (real.join("sym.log"), "symlink"),
        (real.join("hard.log"), "hard links"),
        (dir.join("no/such/x.log"), "no such file"),
    ] {
        let conf = serde_json::json!({
            "cniVersion": "1.0.0", "name": "logtest", "type": plugin,
            "logFile": path,
            "prevResult": {"cniVersion": "1.0.0", "ips": [{"address": "10.1.0.2/24"}]}
        });
        let mut child = Command::new(bin)
            .env_clear()
            .env("CNI_COMMAND", "ADD")
            .env("CNI_CONTAINERID", "logtest")
            .env("CNI_NETNS", &netns)
            .env("CNI_IFNAME", "lognone0")
            .env("CNI_PATH", "/usr/lib/cni")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {bin}: {e}"));
        if let Some(mut stdin) = child.stdin.take() {
            use std::io::Write;
            let _ = stdin.write_all(conf.to_string().as_bytes());
        }
        let start = std::time::Instant::now();
        while matches!(child.try_wait(), Ok(None)) {
            if start.elapsed() > std::time::Duration::from_secs(10) {
                let _ = child.kill();
                let _ = child.wait();
                panic!("{plugin} hangs on logFile {}", path.display());
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let out = child
            .wait_with_output()
            .unwrap_or_else(|e| panic!("wait for {bin}: {e}"));
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        let json: serde_json::Value = serde_json::from_str(&stdout).unwrap_or_default();
        let p = path.to_string_lossy();
        assert!(
            stderr
                .lines()
                .any(|l| l.contains(" WARN ") && l.contains(&*p) && l.contains(why) && l.contains("stderr")),
            "want a warning naming {p} and {why:?} on stderr: {stderr}"
        );
        match json.get("code") {
            Some(_) => {
                let msg = json["msg"].as_str().unwrap_or_default();
                assert!(
                    msg.contains(&*netns.to_string_lossy()) && !msg.contains("logFile"),
                    "{p}: want the error about the netns, got: {json}"
                );
            }
            None => {
                assert_eq!(out.status.code(), Some(0), "{p}: {stdout} {stderr}");
                assert_eq!(json["ips"][0]["address"], "10.1.0.2/24", "{p}: {stdout}");
            }
        }
    }
    let meta = fs::symlink_metadata(&fifo).unwrap_or_else(|e| panic!("stat {}: {e}", fifo.display()));
    assert!(
        std::os::unix::fs::FileTypeExt::is_fifo(&meta.file_type()),
        "the fifo was replaced"
    );
    assert!(
        !real.join("x.log").exists(),
        "written through a symlinked directory"
    );
    for f in [&target, &victim] {
        let now = fs::read_to_string(f).unwrap_or_else(|e| panic!("read {}: {e}", f.display()));
        assert_eq!(now, "keep\n", "{} was written", f.display());
    }
    assert!(!dir.join("no").exists(), "a missing directory was made");
    assert!(!netns.exists(), "something was made at the netns path");
    let _ = fs::remove_dir_all(&dir);
}

/// `logFile` naming a knob of the kernel, sysfs's `ifalias` of `lo` and
/// procfs's hostname, must be refused with the warning and left unwritten.
/// The plugin runs in a fresh network namespace (whose sysfs `ip netns
/// exec` mounts) and a fresh UTS namespace, so even a plugin that writes
/// there changes nothing of the machine's; both files are read back inside.
pub fn assert_kernel_files_unused(bin: &str, plugin: &str) {
    if !root_or_skip(&format!("{plugin} logFile on kernel interfaces")) {
        return;
    }
    let ns = TestNs::new("logkern");
    let netns = std::env::temp_dir().join(format!("{plugin}-no-such-netns-{}", std::process::id()));
    for (path, why) in [
        ("/sys/devices/virtual/net/lo/ifalias", "sysfs"),
        ("/proc/sys/kernel/hostname", "procfs"),
    ] {
        let conf = serde_json::json!({
            "cniVersion": "1.0.0", "name": "logtest", "type": plugin,
            "logFile": path,
            "prevResult": {"cniVersion": "1.0.0", "ips": [{"address": "10.1.0.2/24"}]}
        });
        // The plugin's stdout, a marker, then the two files as the plugin left them.
        let script = r#"hostname logtest-host && printf '%s' "$CONF" | "$0"; echo; echo @@; hostname; cat /sys/devices/virtual/net/lo/ifalias"#;
        let out = Command::new("ip")
            .args([
                "netns", "exec", &ns.name, "unshare", "--uts", "--", "sh", "-c", script, bin,
            ])
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .env("CONF", conf.to_string())
            .env("CNI_COMMAND", "ADD")
            .env("CNI_CONTAINERID", "logtest")
            .env("CNI_NETNS", &netns)
            .env("CNI_IFNAME", "lognone0")
            .env("CNI_PATH", "/usr/lib/cni")
            .output()
            .unwrap_or_else(|e| panic!("cannot run {bin}: {e}"));
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        let (result, after) = stdout
            .split_once("\n@@\n")
            .unwrap_or_else(|| panic!("{path}: the script did not finish: {stdout} {stderr}"));
        let mut after = after.lines();
        assert_eq!(
            after.next(),
            Some("logtest-host"),
            "{path}: the hostname was written: {stdout}"
        );
        assert_eq!(
            after.next().unwrap_or_default(),
            "",
            "{path}: lo's alias was written: {stdout}"
        );
        assert!(
            stderr
                .lines()
                .any(|l| l.contains(" WARN ") && l.contains(path) && l.contains(why) && l.contains("stderr")),
            "want a warning naming {path} and {why:?} on stderr: {stderr}"
        );
        // bandwidth without limits passes the prevResult on; sbr needs the netns.
        let json: serde_json::Value = serde_json::from_str(result.trim()).unwrap_or_default();
        match json["msg"].as_str() {
            Some(msg) => assert!(
                msg.contains(&*netns.to_string_lossy()),
                "{path}: want the error about the netns, got: {result}"
            ),
            None => assert_eq!(json["ips"][0]["address"], "10.1.0.2/24", "{path}: {result}"),
        }
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
