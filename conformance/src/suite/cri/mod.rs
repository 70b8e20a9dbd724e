//! A throwaway containerd driven through its CRI API, as kubelet drives it.
//!
//! Everything it owns is its own: root, state, sockets, runc root, CNI bin
//! and conf dirs live under one scratch directory, and the daemon runs in a
//! network namespace made for it (`nsenter --net`, so it keeps the
//! machine's mounts and cgroups), so the host veths, ifbs and routes that
//! the CNI plugins make for its pods never touch the machine's own
//! namespace. Dropping a [`Containerd`] removes every pod it still has,
//! stops the daemon, its shims and containers, unmounts what is left under
//! the scratch directory and deletes the namespace, also after a failure.

pub mod goodput;
pub mod image;

use std::collections::HashMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hyper_util::rt::TokioIo;
use k8s_cri::v1::runtime_service_client::RuntimeServiceClient;
use k8s_cri::v1::{
    LinuxPodSandboxConfig, LinuxSandboxSecurityContext, ListPodSandboxRequest, NamespaceOption,
    PodSandboxConfig, PodSandboxMetadata, PodSandboxStatusRequest, RemovePodSandboxRequest,
    RunPodSandboxRequest, StatusRequest, StopPodSandboxRequest,
};
use serde_json::Value;
use tonic::transport::{Channel, Endpoint, Uri};

use super::block_on;
use cni_testkit::ns::{sh, Ns};

/// Programs the daemon and the cases need, with the Debian package of each.
pub const TOOLS: &[(&str, &str)] = &[
    ("containerd", "containerd"),
    ("containerd-shim-runc-v2", "containerd"),
    ("ctr", "containerd"),
    ("runc", "runc"),
    ("nsenter", "util-linux"),
    ("tar", "tar"),
    ("iperf3", "iperf3"),
];

/// The CNI plugins the daemon's bin dir must hold besides the two under test.
pub const HELPERS: &[&str] = &["ptp", "host-local", "loopback"];

/// The shim socket directory containerd 1.6 uses whatever its `state`
/// (`/run/containerd/s/<hash>`): the only path outside the scratch
/// directory that the daemon creates besides libcni's cache.
const SHIM_SOCKETS: &str = "/run/containerd/s";

/// Deadline of one CRI call (RunPodSandbox runs the whole CNI chain).
const CALL_TIMEOUT: Duration = Duration::from_secs(90);

/// `prog` on `PATH` (the usual directories without one), executable.
pub fn find_program(prog: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/sbin:/usr/bin:/sbin:/bin".into());
    let dirs: Vec<PathBuf> = std::env::split_paths(&path).collect();
    cni_runtime::exec::find_in_path(prog, &dirs)
}

/// What is missing to run containerd here, as one sentence; `None` when all is there.
pub fn missing() -> Option<String> {
    let mut v: Vec<String> = TOOLS
        .iter()
        .filter(|(p, _)| find_program(p).is_none())
        .map(|(p, pkg)| format!("{p} (Debian package {pkg})"))
        .collect();
    if !Path::new(image::BUSYBOX).is_file() {
        v.push(format!("{} (Debian package busybox-static)", image::BUSYBOX));
    }
    (!v.is_empty()).then(|| format!("not installed: {}", v.join(", ")))
}

/// What a daemon is made of.
pub struct Setup {
    /// Scratch directory owning everything the daemon writes.
    pub base: PathBuf,
    /// (name in the CNI bin dir, binary it links to).
    pub plugins: Vec<(String, PathBuf)>,
    /// The one network list in the CNI conf dir.
    pub conflist: Value,
    /// The pause image archive.
    pub image: PathBuf,
}

/// A pod as the CRI reports it after RunPodSandbox.
#[derive(Debug, Clone)]
pub struct PodInfo {
    pub id: String,
    pub ip: String,
    /// The sandbox's process (pause), to check it is gone after removal.
    pub pid: u64,
    /// The pod's network namespace (a bind mount under containerd's state).
    pub netns: PathBuf,
}

pub struct Containerd {
    /// The daemon's network namespace: the "node" of its pods.
    pub ns: Ns,
    pub base: PathBuf,
    pub sock: PathBuf,
    child: Option<Child>,
    client: Option<RuntimeServiceClient<Channel>>,
    cgroup_parent: String,
    /// `/run/containerd/s` and `/run/containerd` when this daemon made them.
    made_run_dirs: Vec<PathBuf>,
}

fn mkdir(p: &Path) -> Result<(), String> {
    std::fs::create_dir_all(p).map_err(|e| format!("failed to create {}: {e}", p.display()))
}

fn toml_str(p: &Path) -> String {
    // TOML basic strings take JSON's escapes for these paths.
    serde_json::to_string(&p.display().to_string()).unwrap_or_default()
}

/// The daemon's config (version 2, the format of containerd 1.5 to 1.7).
pub fn config_toml(base: &Path, runc: &Path) -> String {
    let p = |s: &str| toml_str(&base.join(s));
    let cri = "plugins.\"io.containerd.grpc.v1.cri\"";
    format!(
        r#"version = 2
root = {root}
state = {state}
# Plugins that would write outside the scratch directory or probe for
# filesystems the machine lacks.
disabled_plugins = [
  "io.containerd.internal.v1.opt",
  "io.containerd.snapshotter.v1.aufs",
  "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.snapshotter.v1.zfs",
  "io.containerd.tracing.processor.v1.otlp",
  "io.containerd.internal.v1.tracing",
]

[grpc]
  address = {sock}
[ttrpc]
  address = {ttrpc}

[{cri}]
  sandbox_image = "{image}"
  # Root here lacks CAP_SYS_RESOURCE: the sandbox's oom_score_adj of -998
  # would be refused.
  restrict_oom_score_adj = true
  # Pod namespaces under this daemon's state, not /var/run/netns.
  netns_mounts_under_state_dir = true
  disable_apparmor = true
  enable_selinux = false
  [{cri}.containerd]
    snapshotter = "native"
    default_runtime_name = "runc"
    [{cri}.containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [{cri}.containerd.runtimes.runc.options]
        BinaryName = {runc}
        Root = {runc_root}
        SystemdCgroup = false
  [{cri}.cni]
    bin_dir = {bin}
    conf_dir = {conf}
    max_conf_num = 1
"#,
        root = p("root"),
        state = p("state"),
        sock = p("containerd.sock"),
        ttrpc = p("containerd.sock.ttrpc"),
        image = image::PAUSE_REF,
        runc = toml_str(runc),
        runc_root = p("runc"),
        bin = p("cni-bin"),
        conf = p("cni-conf"),
    )
}

/// Runs a CRI call with a deadline; the error names the call and carries
/// the runtime's message (for RunPodSandbox: the CNI plugin's error).
fn call<T, F>(what: &str, f: F) -> Result<T, String>
where
    F: Future<Output = Result<tonic::Response<T>, tonic::Status>>,
{
    block_on(async {
        match tokio::time::timeout(CALL_TIMEOUT, f).await {
            Ok(Ok(r)) => Ok(r.into_inner()),
            Ok(Err(s)) => Err(format!("{what} failed: {:?}: {}", s.code(), s.message())),
            Err(_) => Err(format!(
                "{what} did not answer within {} s",
                CALL_TIMEOUT.as_secs()
            )),
        }
    })
}

async fn connect(sock: PathBuf) -> Result<RuntimeServiceClient<Channel>, String> {
    // The URI is required by the API but unused: the connector dials the socket.
    let channel = Endpoint::try_from("http://[::]:50051")
        .map_err(|e| format!("bad endpoint: {e}"))?
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let sock = sock.clone();
            async move { Ok::<_, std::io::Error>(TokioIo::new(tokio::net::UnixStream::connect(sock).await?)) }
        }))
        .await
        .map_err(|e| format!("cannot connect: {e}"))?;
    Ok(RuntimeServiceClient::new(channel))
}

impl Containerd {
    /// Writes the dirs and config, starts the daemon in a fresh network
    /// namespace, waits until its CRI reports runtime and network ready,
    /// and imports the pause image.
    pub fn start(setup: &Setup) -> Result<Containerd, String> {
        let base = setup.base.clone();
        let (bin, conf) = (base.join("cni-bin"), base.join("cni-conf"));
        for d in [&bin, &conf, &base.join("logs")] {
            mkdir(d)?;
        }
        for (name, target) in &setup.plugins {
            std::os::unix::fs::symlink(target, bin.join(name))
                .map_err(|e| format!("failed to link {name} into the CNI bin dir: {e}"))?;
        }
        std::fs::write(conf.join("10-cnf.conflist"), setup.conflist.to_string())
            .map_err(|e| format!("failed to write the conflist: {e}"))?;
        let runc = find_program("runc").ok_or("runc is not installed")?;
        let config = base.join("config.toml");
        std::fs::write(&config, config_toml(&base, &runc))
            .map_err(|e| format!("failed to write {}: {e}", config.display()))?;

        let made_run_dirs = [SHIM_SOCKETS, "/run/containerd"]
            .iter()
            .map(PathBuf::from)
            .filter(|p| !p.exists())
            .collect();
        let ns = Ns::try_new("cnf")?;
        let log = std::fs::File::create(base.join("containerd.log"))
            .map_err(|e| format!("failed to create the daemon's log: {e}"))?;
        let log2 = log.try_clone().map_err(|e| format!("log: {e}"))?;
        let mut cmd = Command::new("nsenter");
        cmd.arg(format!("--net={}", ns.path_str()))
            .arg("containerd")
            .arg("--config")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2);
        // The daemon dies with the suite (nsenter execs it, so the signal stays set).
        // SAFETY: prctl in the child between fork and exec is async-signal-safe.
        unsafe {
            use std::os::unix::process::CommandExt;
            cmd.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd
            .spawn()
            .map_err(|e| format!("failed to start containerd: {e}"))?;
        let pid = std::process::id();
        let mut d = Containerd {
            ns,
            sock: base.join("containerd.sock"),
            cgroup_parent: format!("/cnfcri{pid}"),
            base,
            child: Some(child),
            client: None,
            made_run_dirs,
        };
        d.wait_ready()?;
        let out = Command::new("ctr")
            .arg("--address")
            .arg(&d.sock)
            .args([
                "--namespace",
                "k8s.io",
                "images",
                "import",
                "--snapshotter",
                "native",
            ])
            .arg(&setup.image)
            .output()
            .map_err(|e| format!("failed to run ctr: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "ctr images import failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(d)
    }

    /// The daemon's log lines at warning level and above, the last `n`.
    pub fn log_errors(&self, n: usize) -> String {
        let text = std::fs::read_to_string(self.base.join("containerd.log")).unwrap_or_default();
        let lines: Vec<&str> = text
            .lines()
            .filter(|l| l.contains("level=error") || l.contains("level=fatal") || l.contains("level=warn"))
            .collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut last = String::from("no socket yet");
        while Instant::now() < deadline {
            if let Some(c) = self.child.as_mut() {
                if let Ok(Some(status)) = c.try_wait() {
                    self.child = None;
                    return Err(format!(
                        "containerd exited with {status}:\n{}",
                        self.log_errors(10)
                    ));
                }
            }
            if self.sock.exists() {
                if self.client.is_none() {
                    match block_on(connect(self.sock.clone())) {
                        Ok(c) => self.client = Some(c),
                        Err(e) => last = e,
                    }
                }
                if let Some(mut c) = self.client.clone() {
                    match call("Status", c.status(StatusRequest { verbose: false })) {
                        Ok(r) => {
                            let conds = r.status.map(|s| s.conditions).unwrap_or_default();
                            let not_ready: Vec<String> = conds
                                .iter()
                                .filter(|c| !c.status)
                                .map(|c| format!("{} ({}: {})", c.r#type, c.reason, c.message))
                                .collect();
                            if !conds.is_empty() && not_ready.is_empty() {
                                return Ok(());
                            }
                            last = format!("not ready: {}", not_ready.join(", "));
                        }
                        Err(e) => last = e,
                    }
                }
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Err(format!(
            "containerd's CRI not ready after 30 s: {last}\n{}",
            self.log_errors(10)
        ))
    }

    fn client(&self) -> Result<RuntimeServiceClient<Channel>, String> {
        self.client
            .clone()
            .ok_or_else(|| "not connected to containerd".into())
    }

    /// RunPodSandbox with these annotations; returns the sandbox ID.
    pub fn run_pod(&self, name: &str, annotations: HashMap<String, String>) -> Result<String, String> {
        let config = PodSandboxConfig {
            metadata: Some(PodSandboxMetadata {
                name: name.to_string(),
                uid: format!("{name}-{}", std::process::id()),
                namespace: "cnf".into(),
                attempt: 0,
            }),
            hostname: name.to_string(),
            log_directory: self.base.join("logs").display().to_string(),
            annotations,
            linux: Some(LinuxPodSandboxConfig {
                cgroup_parent: self.cgroup_parent.clone(),
                security_context: Some(LinuxSandboxSecurityContext {
                    // Pod-level network, pid and ipc namespaces (mode POD is 0).
                    namespace_options: Some(NamespaceOption::default()),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        let mut c = self.client()?;
        let r = call(
            "RunPodSandbox",
            c.run_pod_sandbox(RunPodSandboxRequest {
                config: Some(config),
                runtime_handler: String::new(),
            }),
        )?;
        Ok(r.pod_sandbox_id)
    }

    /// PodSandboxStatus (verbose): the pod's IP, its pause pid and network namespace.
    pub fn pod_info(&self, id: &str) -> Result<PodInfo, String> {
        let mut c = self.client()?;
        let r = call(
            "PodSandboxStatus",
            c.pod_sandbox_status(PodSandboxStatusRequest {
                pod_sandbox_id: id.to_string(),
                verbose: true,
            }),
        )?;
        let status = r.status.ok_or("PodSandboxStatus without a status")?;
        let ip = status
            .network
            .map(|n| n.ip)
            .filter(|ip| !ip.is_empty())
            .ok_or("the pod has no IP")?;
        let info: Value = r
            .info
            .get("info")
            .and_then(|s| serde_json::from_str(s).ok())
            .ok_or("PodSandboxStatus verbose info has no \"info\" JSON")?;
        let pid = info
            .get("pid")
            .and_then(Value::as_u64)
            .ok_or("no pid in the sandbox info")?;
        let netns = info
            .pointer("/runtimeSpec/linux/namespaces")
            .and_then(Value::as_array)
            .and_then(|a| {
                a.iter()
                    .find(|n| n.get("type").and_then(Value::as_str) == Some("network"))
            })
            .and_then(|n| n.get("path"))
            .and_then(Value::as_str)
            .map(PathBuf::from)
            .ok_or("no network namespace path in the sandbox's runtime spec")?;
        Ok(PodInfo {
            id: id.to_string(),
            ip,
            pid,
            netns,
        })
    }

    pub fn stop_pod(&self, id: &str) -> Result<(), String> {
        let mut c = self.client()?;
        call(
            "StopPodSandbox",
            c.stop_pod_sandbox(StopPodSandboxRequest {
                pod_sandbox_id: id.to_string(),
            }),
        )
        .map(|_| ())
    }

    pub fn remove_pod(&self, id: &str) -> Result<(), String> {
        let mut c = self.client()?;
        call(
            "RemovePodSandbox",
            c.remove_pod_sandbox(RemovePodSandboxRequest {
                pod_sandbox_id: id.to_string(),
            }),
        )
        .map(|_| ())
    }

    /// IDs of every sandbox the daemon knows, ready or not.
    pub fn pods(&self) -> Result<Vec<String>, String> {
        let mut c = self.client()?;
        let r = call(
            "ListPodSandbox",
            c.list_pod_sandbox(ListPodSandboxRequest { filter: None }),
        )?;
        Ok(r.items.into_iter().map(|p| p.id).collect())
    }

    /// Stops the daemon: SIGTERM, then SIGKILL after 10 s.
    fn stop_daemon(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        if let Ok(pid) = i32::try_from(child.id()) {
            // SAFETY: kill(2) on our own unreaped child.
            unsafe { libc::kill(pid, libc::SIGTERM) };
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
    }

    fn teardown(&mut self) {
        // Pods first, through the CRI, as kubelet would.
        if self.child.is_some() {
            if let Ok(ids) = self.pods() {
                for id in ids {
                    let _ = self.stop_pod(&id);
                    let _ = self.remove_pod(&id);
                }
            }
        }
        self.client = None;
        self.stop_daemon();
        remove_leftovers(&self.base, &self.cgroup_parent);
        // Only when empty: another containerd may use them meanwhile.
        for d in &self.made_run_dirs {
            let _ = std::fs::remove_dir(d);
        }
    }
}

/// Processes whose command line starts with a program named `prog` and
/// has the argument `arg`.
fn processes_with(prog: &str, arg: &str) -> Vec<i32> {
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    rd.filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()))
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| {
                let args: Vec<&[u8]> = c.split(|b| *b == 0).collect();
                args.first().is_some_and(|a| a.ends_with(prog.as_bytes())) && args.contains(&arg.as_bytes())
            })
        })
        .collect()
}

fn cmdline(pid: i32) -> Vec<String> {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|c| {
            c.split(|b| *b == 0)
                .filter(|a| !a.is_empty())
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// The socket containerd 1.6's runc shim listens on; a killed shim leaves it.
pub fn shim_socket(address: &str, namespace: &str, id: &str) -> PathBuf {
    Path::new(SHIM_SOCKETS).join(image::sha256_hex(
        format!("{address}/{namespace}/{id}").as_bytes(),
    ))
}

/// Mount points at or below `dir`, deepest first.
fn mounts_below(dir: &Path) -> Vec<String> {
    let dir = dir.display().to_string();
    let text = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut v: Vec<String> = text
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|m| m.starts_with(&dir))
        .map(str::to_string)
        .collect();
    v.sort_by_key(|m| std::cmp::Reverse(m.len()));
    v
}

/// Removes what a daemon under `base` may have left once it is stopped (or
/// gone with a crashed run): a still running daemon, containers, shims,
/// mounts, the pods' parent cgroup and the directory itself.
fn remove_leftovers(base: &Path, cgroup_parent: &str) {
    let kill = |pid: i32| {
        // SAFETY: kill(2) on a process of this daemon, found by its paths.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    };
    for pid in processes_with("containerd", &base.join("config.toml").display().to_string()) {
        kill(pid);
    }
    let root = base.join("runc/k8s.io").display().to_string();
    if let Ok(list) = sh(&["runc", "--root", &root, "list", "-q"]) {
        for id in list.lines().filter(|l| !l.is_empty()) {
            let _ = sh(&["runc", "--root", &root, "delete", "--force", id]);
        }
    }
    let address = base.join("containerd.sock").display().to_string();
    for pid in processes_with("containerd-shim-runc-v2", &address) {
        let args = cmdline(pid);
        kill(pid);
        let arg = |name: &str| args.iter().position(|a| a == name).and_then(|i| args.get(i + 1));
        if let (Some(ns), Some(id)) = (arg("-namespace"), arg("-id")) {
            let _ = std::fs::remove_file(shim_socket(&address, ns, id));
        }
    }
    for m in mounts_below(base) {
        if let Ok(c) = std::ffi::CString::new(m) {
            // SAFETY: a valid C string; MNT_DETACH never blocks.
            unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
        }
    }
    // runc removes each pod's cgroup but leaves their parent in every hierarchy.
    let parent = cgroup_parent.trim_start_matches('/');
    if let Ok(rd) = std::fs::read_dir("/sys/fs/cgroup") {
        for e in rd.filter_map(Result::ok) {
            let _ = std::fs::remove_dir(e.path().join(parent));
        }
    }
    let _ = std::fs::remove_dir(Path::new("/sys/fs/cgroup").join(parent));
    // A directory still holding a mount is left: removing it would fail anyway.
    if mounts_below(base).is_empty() {
        let _ = std::fs::remove_dir_all(base);
    }
}

/// The network go-cni adds on `lo` for every pod (`WithLoNetwork`): libcni
/// caches it as `cni-loopback-<sandbox id>-lo`, beside the pod's own entry.
pub const LOOPBACK_NETWORK: &str = "cni-loopback";

/// A libcni cache file name of the loopback network.
pub fn is_loopback_entry(name: &str) -> bool {
    name.starts_with(&format!("{LOOPBACK_NETWORK}-")) && name.ends_with("-lo")
}

/// The sandbox (network namespace path) a loopback cache entry names.
pub fn loopback_sandbox(c: &cni_runtime::cache::Cached) -> Option<String> {
    c.result()?
        .pointer("/interfaces/0/sandbox")?
        .as_str()
        .map(str::to_string)
}

/// The suite run a loopback cache entry belongs to: its sandbox lies under
/// that run's scratch dir and its pod UID (`cnf-<label>-<pid>`, see
/// [`Containerd::run_pod`]) names the same run.
fn loopback_run(c: &cni_runtime::cache::Cached) -> Option<u32> {
    let cni_runtime::cache::Cached::V1(e) = c else {
        return None;
    };
    let run = run_of(&loopback_sandbox(c)?)?;
    let uid = &e.cni_args.iter().find(|(k, _)| k == "K8S_POD_UID")?.1;
    (uid.starts_with("cnf-") && uid.rsplit('-').next()? == run.to_string()).then_some(run)
}

/// The run (suite pid) a scratch path belongs to: `.../cni-conformance-PID/...`.
fn run_of(path: &str) -> Option<u32> {
    path.split('/')
        .find_map(|c| c.strip_prefix("cni-conformance-"))
        .and_then(|p| p.parse().ok())
}

/// Cleans up after earlier runs that died without tearing their daemons
/// down (a release build aborts on panic): their shims, containers and
/// mounts, found by the scratch paths in shim command lines and the mount
/// table, and their libcni cache entries. Their network namespaces go with
/// `ns::sweep_stale`.
pub fn sweep_stale() {
    // A killed run stays a zombie until it is reaped: that is dead too.
    let alive = |pid: u32| {
        pid == std::process::id()
            || std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
                s.rsplit_once(") ")
                    .is_some_and(|(_, rest)| !rest.starts_with('Z'))
            })
    };
    let mut bases = std::collections::BTreeSet::new();
    let text = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mounts = text
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(str::to_string);
    let shims = processes_with("containerd-shim-runc-v2", "-address")
        .into_iter()
        .filter_map(|pid| {
            let args = cmdline(pid);
            let i = args.iter().position(|a| a == "-address")?;
            args.get(i + 1).cloned()
        });
    for p in mounts.chain(shims) {
        let Some(run) = run_of(&p) else { continue };
        if alive(run) {
            continue;
        }
        // The case's scratch dir: .../cni-conformance-PID/N/containerd-LABEL
        let comps: Vec<&str> = p.split('/').collect();
        if let Some(i) = comps.iter().position(|c| c.starts_with("cni-conformance-")) {
            if comps.len() > i + 2 && comps[i + 2].starts_with("containerd-") {
                bases.insert((comps[..i + 3].join("/"), run));
            }
        }
    }
    let swept = !bases.is_empty();
    for (base, run) in bases {
        remove_leftovers(Path::new(&base), &format!("/cnfcri{run}"));
    }
    if swept {
        // What the dead daemon may have made there, when empty (a shim
        // started now makes the directory again).
        let _ = std::fs::remove_dir(SHIM_SOCKETS);
        let _ = std::fs::remove_dir("/run/containerd");
    }
    // libcni's cache entries of pods the dead runs never deleted: their
    // networks are named cnfcri<pid>-<dir> (the links went with the
    // namespaces), and go-cni's loopback entries name the run in their
    // sandbox path and pod UID.
    if let Ok(rd) = std::fs::read_dir(Path::new(cni_runtime::cache::DEFAULT_DIR).join("results")) {
        for e in rd.filter_map(Result::ok) {
            let name = e.file_name().to_string_lossy().into_owned();
            let run = if is_loopback_entry(&name) {
                cni_runtime::cache::read(&e.path())
                    .ok()
                    .flatten()
                    .and_then(|c| loopback_run(&c))
            } else {
                name.strip_prefix("cnfcri")
                    .and_then(|r| r.split('-').next())
                    .and_then(|p| p.parse::<u32>().ok())
            };
            if run.is_some_and(|r| !alive(r)) {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
    // The dead runs' scratch roots (the pause image, logs), once nothing is mounted there.
    if let Ok(rd) = std::fs::read_dir(std::env::temp_dir()) {
        for e in rd.filter_map(Result::ok) {
            let p = e.path();
            let name = e.file_name().to_string_lossy().into_owned();
            if run_of(&name).is_some_and(|r| !alive(r)) && mounts_below(&p).is_empty() {
                let _ = std::fs::remove_dir_all(&p);
            }
        }
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        self.teardown();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shim_socket_as_containerd_1_6_names_it() {
        assert_eq!(
            shim_socket(
                "/tmp/cni-conformance-15240/0/containerd-1m/containerd.sock",
                "k8s.io",
                "98a266144935544b665c9705b83f89ec02f4b10dc81a71a94add2511f4c18b03"
            ),
            Path::new("/run/containerd/s/7f15e37b0ecb2220e59652dd8b79c99a64fce1032489948e39255ae5517861bc")
        );
    }

    #[test]
    fn loopback_entries_name_their_run() {
        let entry = |sandbox: &str, uid: &str| {
            let v = serde_json::json!({"kind": "cniCacheV1", "containerId": "98a2", "ifName": "lo",
                "networkName": "cni-loopback", "config": "",
                "cniArgs": [["K8S_POD_NAMESPACE", "cnf"], ["K8S_POD_UID", uid]],
                "result": {"cniVersion": "0.3.1", "interfaces": [{"name": "lo", "sandbox": sandbox}]}});
            cni_runtime::cache::Cached::V1(Box::new(cni_runtime::cache::Entry::from_json(&v).unwrap()))
        };
        let ns = "/tmp/cni-conformance-15240/0/containerd-1m/state/io.containerd.grpc.v1.cri/netns/cni-083e";
        assert_eq!(loopback_run(&entry(ns, "cnf-1m-15240")), Some(15240));
        assert_eq!(loopback_sandbox(&entry(ns, "x")).as_deref(), Some(ns));
        // Both must name the run: someone else's pod under such a path, or ours elsewhere, is not swept.
        assert_eq!(loopback_run(&entry(ns, "cnf-1m-15241")), None);
        assert_eq!(loopback_run(&entry(ns, "kube-pod-15240")), None);
        assert_eq!(loopback_run(&entry("/var/run/netns/cni-1", "cnf-1m-15240")), None);
        assert!(is_loopback_entry("cni-loopback-98a2-lo"));
        assert!(!is_loopback_entry("cnfcri1-0-98a2-eth0"));
    }

    #[test]
    fn run_of_scratch_paths() {
        assert_eq!(run_of("/tmp/cni-conformance-42/0/containerd-1m/state"), Some(42));
        assert_eq!(run_of("cni-conformance-7"), Some(7));
        assert_eq!(run_of("/tmp/other/x"), None);
    }

    #[test]
    fn config_keeps_everything_under_base() {
        let t = config_toml(Path::new("/tmp/x"), Path::new("/usr/sbin/runc"));
        for needle in [
            "root = \"/tmp/x/root\"",
            "state = \"/tmp/x/state\"",
            "address = \"/tmp/x/containerd.sock\"",
            "Root = \"/tmp/x/runc\"",
            "bin_dir = \"/tmp/x/cni-bin\"",
            "conf_dir = \"/tmp/x/cni-conf\"",
            "restrict_oom_score_adj = true",
            "netns_mounts_under_state_dir = true",
            "version = 2",
        ] {
            assert!(t.contains(needle), "{needle} missing in\n{t}");
        }
    }
}
