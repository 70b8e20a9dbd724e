//! podman with its CNI backend on a ptp + bandwidth + sbr conflist. Every
//! podman call runs under `nsenter --net` in a namespace the case makes (as
//! the containerd cases run their daemon): rootful podman runs the CNI
//! plugins itself, and conmon and its cleanup call inherit the namespace,
//! so the host veths, addresses, routes, ifb, qdiscs and ptp's ip_forward
//! stay there. `nsenter` and not `ip netns exec`, whose own mount namespace
//! would hide podman's `/run/netns/cni-*` bind mounts from the next call.
//! podman's storage, per-boot files and event log live in the case's
//! scratch directory.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use serde_json::{json, Value};

use crate::suite::cri::{find_program, image};
use crate::suite::{block_on, ensure, Case, CaseResult, Ctx, Failure};
use cni_runtime::cache::{self, Cached};
use cni_runtime::exec::Invocation;
use cni_testkit::ns::{self, Ns};
use cni_testkit::state::State;

pub fn cases() -> Vec<Case> {
    vec![Case::new(
        "podman",
        "run, rule and table inside, shaped traffic, rm leaves nothing",
        podman_case,
    )]
}

/// 8 Mbit/s each way: a 2 MiB download takes about 2 s.
const RATE: u64 = 8_000_000;
const BLOB_KIB: usize = 2048;

/// The storage.conf beside a containers.conf: images and containers live in
/// the case's scratch directory, not in the machine's podman storage.
fn storage_conf(conf: &Path) -> PathBuf {
    conf.with_file_name("storage.conf")
}

/// podman with our containers.conf, inside the case's namespace. Dropping
/// it removes the containers and the image it names, then the namespace.
struct Podman {
    conf: PathBuf,
    names: Vec<String>,
    image: String,
    ns: Ns,
}

impl Podman {
    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new("nsenter");
        cmd.arg(format!("--net={}", self.ns.path_str()))
            .arg("podman")
            .args(args)
            .env("CONTAINERS_CONF", &self.conf)
            .env("CONTAINERS_STORAGE_CONF", storage_conf(&self.conf));
        cmd
    }

    fn run(&self, args: &[&str]) -> Result<String, String> {
        ns::output(self.command(args), &format!("podman {}", args.join(" "))).map(|o| o.trim().to_string())
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        for n in &self.names {
            let _ = self.run(&["rm", "-f", "-t", "0", n]);
        }
        let _ = self.run(&["rmi", "-f", &self.image]);
    }
}

fn make_image(dir: &Path, podman: &Podman) -> Result<(), String> {
    let root = dir.join("rootfs");
    image::busybox_rootfs(&root, &["sh", "ip", "wget", "httpd", "sleep", "time", "cat"])?;
    let www = root.join("www");
    std::fs::create_dir_all(&www).map_err(|e| format!("mkdir: {e}"))?;
    std::fs::write(www.join("blob"), vec![0u8; BLOB_KIB * 1024]).map_err(|e| format!("blob: {e}"))?;
    let tar = dir.join("rootfs.tar");
    image::tar(&root, &tar, &["."])?;
    podman
        .run(&["import", &tar.display().to_string(), &podman.image])
        .map(|_| ())
}

fn podman_case(ctx: &Ctx) -> CaseResult {
    // Per run, so two suites at once (or a rerun after a crash) do not meet
    // in podman's cache entries; the subnet is the case's namespace's alone.
    let pid = std::process::id();
    let net = format!("cnfpod{pid}");
    let subnet = "10.251.0";
    for tool in ["podman", "runc", "tar", "nsenter"] {
        if find_program(tool).is_none() {
            return Err(Failure::Skip(format!("{tool} is not installed")));
        }
    }
    if !Path::new(image::BUSYBOX).is_file() {
        return Err(Failure::Skip(format!(
            "{} is not installed (Debian package busybox-static)",
            image::BUSYBOX
        )));
    }
    let base = ctx.scratch("podman")?;
    let (netd, netd_check, ipam) = (base.join("net.d"), base.join("net.d-check"), base.join("ipam"));
    for d in [&netd, &netd_check, &ipam] {
        std::fs::create_dir_all(d).map_err(|e| format!("mkdir: {e}"))?;
    }
    let dirs: Vec<String> = ctx.cni_path().split(':').map(|s| format!("{s:?}")).collect();
    let conf = base.join("containers.conf");
    let path = |p: &str| format!("{:?}", base.join(p).display().to_string());
    std::fs::write(
        storage_conf(&conf),
        format!(
            "[storage]\ndriver = \"vfs\"\ngraphroot = {}\nrunroot = {}\n",
            path("storage"),
            path("run")
        ),
    )
    .map_err(|e| format!("storage.conf: {e}"))?;
    std::fs::write(
        &conf,
        format!(
            "[network]\nnetwork_backend = \"cni\"\ncni_plugin_dirs = [{}]\nnetwork_config_dir = {:?}\n\
             [engine]\nruntime = \"runc\"\ncgroup_manager = \"cgroupfs\"\nevents_logger = \"file\"\n\
             events_logfile_path = {}\ntmp_dir = {}\n",
            dirs.join(", "),
            netd.display().to_string(),
            path("events.log"),
            path("libpod-tmp")
        ),
    )
    .map_err(|e| format!("containers.conf: {e}"))?;
    let burst = 160_000;
    let bw = json!({"type": "bandwidth", "ingressRate": RATE, "ingressBurst": burst, "egressRate": RATE, "egressBurst": burst});
    let ptp = json!({"type": "ptp", "ipMasq": false, "ipam": {"type": "host-local",
        "subnet": format!("{subnet}.0/24"), "dataDir": ipam, "routes": [{"dst": "0.0.0.0/0"}]}});
    let list = |plugins: Vec<Value>| json!({"cniVersion": "1.0.0", "name": net.as_str(), "plugins": plugins});
    let write = |dir: &Path, v: Value| {
        std::fs::write(dir.join(format!("{net}.conflist")), v.to_string())
            .map_err(|e| format!("conflist: {e}"))
    };
    write(&netd, list(vec![ptp, bw.clone(), json!({"type": "sbr"})]))?;
    write(&netd_check, list(vec![bw, json!({"type": "sbr"})]))?;

    let (server, client) = (format!("cnf{pid}-srv"), format!("cnf{pid}-cli"));
    let podman = Podman {
        conf: conf.clone(),
        names: vec![server.clone(), client.clone()],
        image: format!("localhost/cnf{pid}:test"),
        ns: Ns::try_new("cnf")?,
    };
    let image = podman.image.clone();
    make_image(&base, &podman)?;
    let limits = ["--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1000:1000"];
    let mut run = vec!["run", "-d", "--name", &server, "--network", net.as_str()];
    run.extend(limits);
    run.extend([image.as_str(), "httpd", "-f", "-p", "8080", "-h", "/www"]);
    let cid = podman.run(&run)?;

    // Inside: the rule from the address and its table's default route.
    let addr = podman.run(&["exec", &server, "ip", "-4", "-o", "addr", "show", "eth0"])?;
    let ip = addr
        .split_whitespace()
        .skip_while(|w| *w != "inet")
        .nth(1)
        .and_then(|c| c.split('/').next())
        .ok_or_else(|| format!("no address in {addr}"))?
        .to_string();
    let rules = podman.run(&["exec", &server, "ip", "rule"])?;
    let table = rules
        .lines()
        .find(|l| l.contains(&format!("from {ip} lookup")))
        .and_then(|l| l.split_whitespace().last())
        .ok_or_else(|| format!("no rule from {ip} inside: {rules}"))?
        .to_string();
    let routes = podman.run(&["exec", &server, "ip", "route", "show", "table", &table])?;
    ensure(
        routes.contains(&format!("default via {subnet}.1 dev eth0")),
        || format!("table {table} inside lacks the default route: {routes}"),
    )?;

    // podman's cache, read by cni-run: CHECK the attachment it made.
    let cache_file = cache::file(Path::new(cache::DEFAULT_DIR), net.as_str(), &cid, "eth0");
    match cache::read(&cache_file) {
        Ok(Some(Cached::V1(e))) if e.result.is_some() => {}
        other => {
            return Err(Failure::Fail(format!(
                "podman's cache {} unreadable: {other:?}",
                cache_file.display()
            )))
        }
    }
    let netns = podman.run(&["inspect", "-f", "{{.NetworkSettings.SandboxKey}}", &server])?;
    let mut inv = Invocation::new(&ctx.cni_run);
    inv.args = [
        "check",
        net.as_str(),
        netns.as_str(),
        "--container-id",
        cid.as_str(),
    ]
    .iter()
    .map(Into::into)
    .collect();
    inv = inv
        .env("NETCONFPATH", netd_check.display().to_string())
        .env("CNI_PATH", ctx.cni_path());
    inv.clear_env = true;
    inv.timeout = ctx.timeout;
    // Where podman ran the chain: bandwidth's host side is the case's namespace.
    inv.wrapper = vec!["nsenter".into(), format!("--net={}", podman.ns.path_str()).into()];
    let out = block_on(inv.run()).map_err(|e| e.to_string())?;
    // A failed CHECK is reported at the end: traffic and cleanup are still judged.
    let check_failed =
        (!out.success()).then(|| format!("cni-run check on podman's cache failed: {}", out.stderr_text()));

    // Real traffic: a client container downloads the blob. sbr leaves no
    // main-table route, so the client adds one in its own namespace.
    let script = format!(
        "ip route add default via {subnet}.1 dev eth0 onlink && time wget -q -O /dev/null http://{ip}:8080/blob"
    );
    let mut run = vec![
        "run",
        "--rm",
        "--name",
        &client,
        "--network",
        net.as_str(),
        "--cap-add",
        "NET_ADMIN",
    ];
    run.extend(limits);
    run.extend([image.as_str(), "sh", "-c", &script]);
    let t = Instant::now();
    let out = podman
        .command(&run)
        .output()
        .map_err(|e| format!("podman run: {e}"))?;
    let wall = t.elapsed().as_secs_f64();
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    ensure(out.status.success(), || format!("download failed: {err}"))?;
    let secs = parse_real(&err).ok_or_else(|| format!("no timing in {err:?}"))?;
    let expected = (BLOB_KIB * 1024 * 8) as f64 / RATE as f64;
    ensure(secs >= 0.8 * expected && secs <= 3.0 * expected, || {
        format!("download of {BLOB_KIB} KiB took {secs:.2}s (podman run {wall:.2}s), shaped at {RATE} bit/s it takes about {expected:.2}s")
    })?;

    podman.run(&["rm", "-f", "-t", "0", &server])?;
    let left = State::read(&podman.ns)?.beyond_lo();
    ensure(left.is_empty(), || {
        format!("podman rm left in the host namespace: {}", left.join(", "))
    })?;
    let leftovers: Vec<String> = std::fs::read_dir(Path::new(cache::DEFAULT_DIR).join("results"))
        .map(|rd| {
            rd.filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    ensure(
        !leftovers.iter().any(|f| f.starts_with(&format!("{net}-"))),
        || format!("cache entries left: {leftovers:?}"),
    )?;
    match check_failed {
        Some(e) => Err(Failure::Fail(e)),
        None => Ok(()),
    }
}

/// Busybox `time` prints "real\t0m 2.05s".
fn parse_real(stderr: &str) -> Option<f64> {
    let line = stderr.lines().find(|l| l.trim_start().starts_with("real"))?;
    let rest = line.trim_start().trim_start_matches("real").trim();
    let (m, s) = rest.split_once('m')?;
    let s = s.trim().trim_end_matches('s');
    Some(m.trim().parse::<f64>().ok()? * 60.0 + s.parse::<f64>().ok()?)
}

#[cfg(test)]
mod tests {
    #[test]
    fn parses_busybox_time() {
        assert_eq!(super::parse_real("real\t0m 2.05s\nuser\t0m 0.00s\n"), Some(2.05));
        assert_eq!(super::parse_real("real\t1m 0.50s"), Some(60.5));
        assert_eq!(super::parse_real("nothing"), None);
    }
}
