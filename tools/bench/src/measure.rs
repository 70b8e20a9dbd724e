//! The measurements: start-up floors, latency of each command, peak RSS,
//! scaling, shaping accuracy (latency under load is in `load`).

use std::collections::{BTreeMap, HashMap};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::pod::{self, CTR_IP, HOST_IP, HOST_VETH};
use crate::spawn::{median, median_ok, spawn, Run};
use crate::{floor, goodput, load, log, Args};
use cni_testkit::Ns;

pub const OURS: &str = "ours";
pub const REF: &str = "reference";
pub const COMMANDS: [&str; 3] = ["ADD", "CHECK", "DEL"];
/// The bandwidth limits of the latency rounds (bits, bits).
const RATE: u64 = 100_000_000;
const BURST: u64 = 1_000_000;

/// Median and successes of one (plugin, command, implementation).
#[derive(Debug, Clone, Copy)]
pub struct Latency {
    pub median_ns: f64,
    pub ok: usize,
    pub n: usize,
}

/// (plugin, command, implementation).
pub type Key = (String, String, String);

pub fn key(plugin: &str, cmd: &str, imp: &str) -> Key {
    (plugin.to_string(), cmd.to_string(), imp.to_string())
}

#[derive(Debug, Default)]
pub struct Results {
    pub spawn_ns: f64,
    pub version_ns: HashMap<String, f64>,
    pub floor_ns: BTreeMap<String, f64>,
    /// "ADD" and "DEL": the kernel's work of bandwidth's.
    pub kernel_ns: BTreeMap<String, f64>,
    pub latency: HashMap<Key, Latency>,
    pub rss_kb: HashMap<Key, i64>,
    pub rss_true_kb: i64,
    /// ((plugin, n), implementation -> median ns), in the order measured.
    pub scaling: Vec<((String, usize), HashMap<String, f64>)>,
    /// (rate in Mbit/s, direction, implementation) -> goodput / rate.
    pub accuracy: HashMap<(u64, String, String), f64>,
    pub size: HashMap<(String, String), u64>,
    pub kind: HashMap<String, String>,
    pub load: load::Points,
}

pub struct Bench {
    pub args: Args,
    /// Implementation -> its directory, ours and the reference first.
    pub impls: Vec<(String, String)>,
    pub host: String,
    pub ctr: String,
    /// The namespaces this run made, deleted when it ends.
    pub ns: Vec<Ns>,
    pub load_start: String,
    /// (implementation, what, detail)
    pub failures: Vec<(String, String, String)>,
    pub results: Results,
}

impl Bench {
    pub fn new(args: Args) -> Bench {
        let mut impls = vec![
            (OURS.to_string(), args.ours.clone()),
            (REF.to_string(), args.reference.clone()),
        ];
        impls.extend(args.also.iter().cloned());
        Bench {
            args,
            impls,
            host: String::new(),
            ctr: String::new(),
            ns: Vec::new(),
            load_start: loadavg(),
            failures: Vec::new(),
            results: Results::default(),
        }
    }

    pub fn names(&self) -> Vec<String> {
        self.impls.iter().map(|(n, _)| n.clone()).collect()
    }

    pub fn dir(&self, imp: &str) -> &str {
        self.impls
            .iter()
            .find(|(n, _)| n == imp)
            .map_or("", |(_, d)| d.as_str())
    }

    /// A fresh namespace kept until the run ends; its name.
    fn netns(&mut self, tag: &str) -> Result<String, String> {
        let ns = Ns::try_new(tag)?;
        let name = ns.name.clone();
        self.ns.push(ns);
        Ok(name)
    }

    pub fn run(&mut self) -> Result<(), String> {
        self.host = self.netns("benchhost")?;
        self.ctr = self.netns("benchctr")?;
        pod::enter(&self.host)?;
        if self.args.only_load {
            log("latency under load");
            return load::measure(self);
        }
        self.sizes();
        log("spawn cost");
        self.spawn_cost();
        log("latency of ADD, CHECK, DEL");
        self.latency()?;
        log("scaling");
        self.scaling()?;
        log("shaping accuracy");
        self.accuracy()?;
        log("latency under load");
        load::measure(self)
    }

    // ---- plugin invocation ------------------------------------------------

    pub fn env(&self, command: &str, ctr: &str) -> Vec<(String, String)> {
        vec![
            ("CNI_COMMAND".into(), command.into()),
            ("CNI_CONTAINERID".into(), "bench-container-1".into()),
            ("CNI_NETNS".into(), pod::netns_path(ctr)),
            ("CNI_IFNAME".into(), "eth0".into()),
            ("CNI_PATH".into(), self.args.reference.clone()),
            ("PATH".into(), "/usr/sbin:/usr/bin:/sbin:/bin".into()),
        ]
    }

    /// Runs `plugin` of `imp` with `conf` as given; a failure is recorded.
    pub fn call_conf(
        &mut self,
        imp: &str,
        plugin: &str,
        command: &str,
        ctr: &str,
        conf: &Value,
        rss: bool,
    ) -> Run {
        let path = format!("{}/{plugin}", self.dir(imp));
        let env = self.env(command, ctr);
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let r = spawn(&[&path], &env, conf.to_string().as_bytes(), rss);
        if !r.ok() {
            let detail: String = r.out.trim().replace('\n', " ").chars().take(300).collect();
            self.failures.push((
                imp.to_string(),
                format!("{plugin} {command}"),
                format!("exit {}: {detail}", r.status),
            ));
        }
        r
    }

    fn conf(plugin: &str, prev: &Value, extra: Option<&Value>) -> Value {
        let mut c = json!({"cniVersion": "1.0.0", "name": "bench", "type": plugin});
        if plugin == "bandwidth" {
            c["ingressRate"] = json!(RATE);
            c["ingressBurst"] = json!(BURST);
            c["egressRate"] = json!(RATE);
            c["egressBurst"] = json!(BURST);
        }
        if let Some(Value::Object(m)) = extra {
            for (k, v) in m {
                c[k] = v.clone();
            }
        }
        c["prevResult"] = prev.clone();
        c
    }

    /// Fresh pod, then `commands` (ADD first) with ADD's result as the
    /// prevResult of the others; the pod removed.
    fn cycle(
        &mut self,
        imp: &str,
        plugin: &str,
        ctr: &str,
        commands: &[&str],
        rss: bool,
    ) -> Result<Vec<(String, Run)>, String> {
        let prev = pod::up(ctr);
        let prev = match prev {
            Ok(p) => p,
            Err(e) => {
                pod::down();
                return Err(e);
            }
        };
        let mut runs = Vec::new();
        let add = self.call_conf(imp, plugin, "ADD", ctr, &Self::conf(plugin, &prev, None), rss);
        let result = if add.ok() {
            serde_json::from_str(&add.out).unwrap_or_else(|_| prev.clone())
        } else {
            prev.clone()
        };
        runs.push(("ADD".to_string(), add));
        for cmd in &commands[1..] {
            let r = self.call_conf(imp, plugin, cmd, ctr, &Self::conf(plugin, &result, None), rss);
            runs.push((cmd.to_string(), r));
        }
        pod::down();
        Ok(runs)
    }

    // ---- benchmarks -----------------------------------------------------

    fn spawn_cost(&mut self) {
        let runs: Vec<f64> = (0..self.args.repeats * 3)
            .map(|_| spawn(&["/bin/true"], &[], b"", false).ns)
            .collect();
        self.results.spawn_ns = median(&runs);
        // VERSION does no kernel work: it shows each binary's start-up cost.
        for (imp, dir) in self.impls.clone() {
            let path = format!("{dir}/sbr");
            let v: Vec<f64> = (0..self.args.repeats)
                .map(|_| spawn(&[&path], &[("CNI_COMMAND", "VERSION")], b"", false).ns)
                .collect();
            self.results.version_ns.insert(imp, median(&v));
        }
        self.results.floor_ns = floor::libc_floor(self.args.repeats * 3);
    }

    /// bandwidth ADD's and DEL's requests from this process, on a fresh pod.
    fn kernel_cycle(&mut self) -> Option<(f64, f64)> {
        let ctr = self.ctr.clone();
        if let Err(e) = pod::up(&ctr) {
            log(&format!("  kernel work: {e}"));
            pod::down();
            return None;
        }
        let work = floor::kernel_cycle(HOST_VETH, RATE, BURST);
        pod::down();
        work.map_err(|e| log(&format!("  kernel work: {e}"))).ok()
    }

    fn latency(&mut self) -> Result<(), String> {
        let mut data: HashMap<Key, Vec<Run>> = HashMap::new();
        let mut kernel = (Vec::new(), Vec::new());
        let names = self.names();
        let ctr = self.ctr.clone();
        for i in 0..self.args.repeats {
            let k = i % names.len();
            let order: Vec<&String> = names[k..].iter().chain(&names[..k]).collect();
            for plugin in crate::report::PLUGINS {
                for imp in &order {
                    for (cmd, run) in self.cycle(imp, plugin, &ctr, &COMMANDS, false)? {
                        data.entry(key(plugin, &cmd, imp)).or_default().push(run);
                    }
                }
            }
            if let Some((add, del)) = self.kernel_cycle() {
                kernel.0.push(add);
                kernel.1.push(del);
            }
            log(&format!("  latency: round {}/{}", i + 1, self.args.repeats));
        }
        for (cmd, v) in [("ADD", &kernel.0), ("DEL", &kernel.1)] {
            if !v.is_empty() {
                self.results.kernel_ns.insert(cmd.to_string(), median(v));
            }
        }
        self.results.latency = data
            .into_iter()
            .map(|(k, v)| {
                let lat = Latency {
                    median_ns: median_ok(&v),
                    ok: v.iter().filter(|r| r.ok()).count(),
                    n: v.len(),
                };
                (k, lat)
            })
            .collect();
        // Peak RSS in separate, untimed rounds under GNU time.
        for _ in 0..3 {
            for plugin in crate::report::PLUGINS {
                for imp in &names {
                    for (cmd, run) in self.cycle(imp, plugin, &ctr, &COMMANDS, true)? {
                        let e = self.results.rss_kb.entry(key(plugin, &cmd, imp)).or_insert(0);
                        *e = (*e).max(run.rss_kb);
                    }
                }
            }
        }
        self.results.rss_true_kb = (0..3)
            .map(|_| spawn(&["/bin/true"], &[], b"", true).rss_kb)
            .max()
            .unwrap_or(-1);
        Ok(())
    }

    /// ADD's median per implementation over `scale_repeats` cycles in `ctr`,
    /// alternating which goes first.
    fn add_medians(&mut self, plugin: &str, ctr: &str) -> Result<HashMap<String, f64>, String> {
        let mut data: HashMap<String, Vec<Run>> = HashMap::new();
        for i in 0..self.args.scale_repeats {
            let order = if i % 2 == 0 { [OURS, REF] } else { [REF, OURS] };
            for imp in order {
                let runs = self.cycle(imp, plugin, ctr, &["ADD", "DEL"], false)?;
                if let Some((_, add)) = runs.into_iter().next() {
                    data.entry(imp.to_string()).or_default().push(add);
                }
            }
        }
        Ok(data.into_iter().map(|(k, v)| (k, median_ok(&v))).collect())
    }

    fn scaling(&mut self) -> Result<(), String> {
        let others_ns = Ns::try_new("benchothers")?;
        let others = others_ns.name.clone();
        let ctr = self.ctr.clone();
        let mut have = 0;
        for n in self.args.veths.clone() {
            let t0 = Instant::now();
            pod::host_veths(&others, have, n)?;
            have = have.max(n);
            log(&format!(
                "  scaling: {n} other veths in the host namespace ({:.1}s to create)",
                t0.elapsed().as_secs_f64()
            ));
            let m = self.add_medians("bandwidth", &ctr)?;
            self.results.scaling.push((("bandwidth".into(), n), m));
        }
        drop(others_ns);
        // Extra container interfaces: veths with an address each, their
        // peers up in another namespace.
        let multi = self.netns("benchmulti")?;
        let peers = self.netns("benchpeers")?;
        let mut have = 1;
        for n in self.args.ifaces.clone() {
            pod::container_ifaces(&multi, &peers, have, n)?;
            have = have.max(n);
            log(&format!("  scaling: sbr with {n} interfaces in the container"));
            let m = self.add_medians("sbr", &multi)?;
            self.results.scaling.push((("sbr".into(), n), m));
        }
        Ok(())
    }

    /// One iperf3 run container -> host (reverse: host -> container);
    /// goodput in bit/s as the receiver counted it, without the first
    /// second (slow start and the bucket's initial burst).
    fn iperf(&self, reverse: bool) -> f64 {
        let server = Command::new("iperf3")
            .args(["-s", "-1", "-J", "-B", HOST_IP, "-p", "5299"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        let Ok(mut server) = server else {
            return f64::NAN;
        };
        wait_listening(&format!("{HOST_IP}:5299"));
        let secs = (self.args.seconds + 1).to_string();
        let mut argv = vec![
            "iperf3",
            "-c",
            HOST_IP,
            "-B",
            CTR_IP,
            "-p",
            "5299",
            "-J",
            "--get-server-output",
            "-t",
            &secs,
        ];
        if reverse {
            argv.push("-R");
        }
        let out = pod::output(&argv, Some(&self.ctr));
        let _ = server.kill();
        let _ = server.wait();
        serde_json::from_str::<Value>(&out)
            .ok()
            .and_then(|r| goodput::receiver_goodput(&r, reverse, 1.0))
            .unwrap_or(f64::NAN)
    }

    fn accuracy(&mut self) -> Result<(), String> {
        let ctr = self.ctr.clone();
        for rate_mbit in self.args.rates.clone() {
            let rate = rate_mbit * 1_000_000;
            // 10 ms of the rate, at least 64 KiB: above the MTU and timer granularity.
            let burst = (rate / 100).max(64 * 1024 * 8);
            let extra =
                json!({"ingressRate": rate, "ingressBurst": burst, "egressRate": rate, "egressBurst": burst});
            let mut samples: HashMap<(String, String), Vec<f64>> = HashMap::new();
            for i in 0..self.args.accuracy_repeats {
                let order = if i % 2 == 0 { [OURS, REF] } else { [REF, OURS] };
                for imp in order {
                    let prev = match pod::up(&ctr) {
                        Ok(p) => p,
                        Err(e) => {
                            pod::down();
                            return Err(e);
                        }
                    };
                    let add = self.call_conf(
                        imp,
                        "bandwidth",
                        "ADD",
                        &ctr,
                        &Self::conf("bandwidth", &prev, Some(&extra)),
                        false,
                    );
                    if add.ok() {
                        for (direction, reverse) in [("egress", false), ("ingress", true)] {
                            let bps = self.iperf(reverse);
                            samples
                                .entry((imp.to_string(), direction.to_string()))
                                .or_default()
                                .push(bps / rate as f64);
                        }
                        let result: Value = serde_json::from_str(&add.out).unwrap_or(prev);
                        self.call_conf(
                            imp,
                            "bandwidth",
                            "DEL",
                            &ctr,
                            &Self::conf("bandwidth", &result, Some(&extra)),
                            false,
                        );
                    }
                    pod::down();
                }
            }
            for ((imp, direction), v) in samples {
                self.results
                    .accuracy
                    .insert((rate_mbit, direction, imp), median(&v));
            }
            log(&format!("  accuracy: {rate_mbit} Mbit/s done"));
        }
        Ok(())
    }

    fn sizes(&mut self) {
        for (imp, dir) in self.impls.clone() {
            for plugin in crate::report::PLUGINS {
                let size = std::fs::metadata(format!("{dir}/{plugin}")).map_or(0, |m| m.len());
                self.results.size.insert((imp.clone(), plugin.to_string()), size);
            }
            self.results.kind.insert(imp, binary_kind(&format!("{dir}/sbr")));
        }
    }
}

/// Waits (up to 2.5 s) until something listens on TCP `addr` here.
pub fn wait_listening(addr: &str) {
    for _ in 0..50 {
        if pod::sh(&["ss", "-ltn"], None).is_ok_and(|s| s.contains(addr)) {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `file`'s words for how a binary is linked, and with which C library.
fn binary_kind(path: &str) -> String {
    let out = pod::sh(&["file", "-L", path], None).unwrap_or_default();
    let link = if out.contains("static-pie") {
        "static-pie"
    } else if out.contains("statically linked") {
        "static"
    } else {
        return "dynamically linked".into();
    };
    let glibc = std::fs::read(path).is_ok_and(|b| b.windows(14).any(|w| w == b"GLIBC_TUNABLES"));
    format!("{link}, {}", if glibc { "glibc" } else { "no glibc" })
}

/// The 1-minute load average: a busy machine moves every figure.
pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|t| t.split_whitespace().next().map(String::from))
        .unwrap_or_else(|| "unknown".into())
}
