//! The measurements: start-up floors, latency of each command, peak RSS,
//! scaling, shaping accuracy (latency under load is in `load`).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Instant;

use cni_testkit::ns::sh;
use cni_testkit::pod::Pod;
use cni_testkit::Ns;
use serde_json::{json, Value};

use crate::pod;
use crate::spawn::{median, median_ok, spawn, Run};
use crate::{floor, goodput, load, log, Args};

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

/// Under GNU time for peak RSS (not timed then), and a tag for failures.
pub type Mode = (bool, &'static str);
pub const TIMED: Mode = (false, "");
const RSS: Mode = (true, "");
pub const LOAD: Mode = (false, " (load)");

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
    /// The namespace this thread enters, where the plugins run.
    pub host: Arc<Ns>,
    /// The pods' container namespace.
    pub ctr: Arc<Ns>,
    pub load_start: String,
    /// (implementation, what, detail)
    pub failures: Vec<(String, String, String)>,
    pub results: Results,
}

/// A plugin's config as the bench passes it, before its prevResult;
/// bandwidth's with `limits` (rate and burst in bits, none for 0) both ways.
pub fn conf(plugin: &str, (rate, burst): (u64, u64)) -> Value {
    let mut c = json!({"cniVersion": "1.0.0", "name": "bench", "type": plugin});
    if plugin == "bandwidth" && rate > 0 {
        for k in ["ingress", "egress"] {
            c[format!("{k}Rate")] = json!(rate);
            c[format!("{k}Burst")] = json!(burst);
        }
    }
    c
}

impl Bench {
    pub fn new(args: Args) -> Result<Bench, String> {
        let mut impls = vec![
            (OURS.to_string(), args.ours.clone()),
            (REF.to_string(), args.reference.clone()),
        ];
        impls.extend(args.also.iter().cloned());
        Ok(Bench {
            args,
            impls,
            host: Arc::new(Ns::try_new("benchhost")?),
            ctr: Arc::new(Ns::try_new("benchctr")?),
            load_start: loadavg(),
            failures: Vec::new(),
            results: Results::default(),
        })
    }

    pub fn names(&self) -> Vec<String> {
        self.impls.iter().map(|(n, _)| n.clone()).collect()
    }

    pub fn run(&mut self) -> Result<(), String> {
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

    /// Runs `conf`'s plugin of `imp` for `command` on `pod` with `prev` as
    /// its prevResult, under GNU time with `mode.0`; a failure is recorded
    /// under the plugin, the command and `mode.1`.
    fn call(&mut self, imp: &str, command: &str, pod: &Pod, conf: &Value, prev: &Value, mode: Mode) -> Run {
        let plugin = conf["type"].as_str().unwrap_or_default();
        let path = self
            .impls
            .iter()
            .find(|(n, _)| n == imp)
            .map_or("", |(_, d)| d.as_str());
        let path = format!("{path}/{plugin}");
        let mut env = pod.env(command, &self.args.reference);
        env.push(("PATH".into(), "/usr/sbin:/usr/bin:/sbin:/bin".into()));
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let mut conf = conf.clone();
        conf["prevResult"] = prev.clone();
        let r = spawn(&[&path], &env, conf.to_string().as_bytes(), mode.0);
        if !r.ok() {
            let detail: String = r.out.trim().replace('\n', " ").chars().take(300).collect();
            let what = format!("{plugin} {command}{}", mode.1);
            self.failures
                .push((imp.to_string(), what, format!("exit {}: {detail}", r.status)));
        }
        r
    }

    /// A fresh pod, ADD with `conf`, `beside` while the plugin is attached
    /// (when ADD succeeded), then the other `commands` with ADD's result as
    /// their prevResult; the pod removed.
    pub fn cycle<T>(
        &mut self,
        imp: &str,
        conf: &Value,
        commands: &[&str],
        mode: Mode,
        beside: impl FnOnce(&Pod) -> T,
    ) -> Result<(Vec<Run>, Option<T>), String> {
        let pod = pod::up(&self.host, &self.ctr)?;
        let prev = pod.0.prev_result("1.0.0");
        let add = self.call(imp, "ADD", &pod.0, conf, &prev, mode);
        let (result, got) = if add.ok() {
            (
                serde_json::from_str(&add.out).unwrap_or(prev),
                Some(beside(&pod.0)),
            )
        } else {
            (prev, None)
        };
        let mut runs = vec![add];
        for cmd in &commands[1..] {
            runs.push(self.call(imp, cmd, &pod.0, conf, &result, mode));
        }
        Ok((runs, got))
    }

    // ---- benchmarks -----------------------------------------------------

    fn spawn_cost(&mut self) {
        let n = self.args.repeats;
        let median_of = |n, argv: &[&str], env| {
            let ns: Vec<f64> = (0..n).map(|_| spawn(argv, env, b"", false).ns).collect();
            median(&ns)
        };
        self.results.spawn_ns = median_of(n * 3, &["/bin/true"], &[]);
        // VERSION does no kernel work: it shows each binary's start-up cost.
        for (imp, dir) in &self.impls {
            let v = median_of(n, &[&format!("{dir}/sbr")], &[("CNI_COMMAND", "VERSION")]);
            self.results.version_ns.insert(imp.clone(), v);
        }
        self.results.floor_ns = floor::libc_floor(n * 3);
    }

    /// bandwidth ADD's and DEL's requests from this process, on a fresh pod.
    fn kernel_cycle(&mut self) -> Option<(f64, f64)> {
        pod::up(&self.host, &self.ctr)
            .and_then(|pod| floor::kernel_cycle(&pod.0.host_veth, RATE, BURST))
            .map_err(|e| log(&format!("  kernel work: {e}")))
            .ok()
    }

    /// A cycle of every command per plugin and implementation, in `order`.
    fn round(&mut self, order: &[String], mode: Mode) -> Result<Vec<(Key, Run)>, String> {
        let mut out = Vec::new();
        for plugin in crate::report::PLUGINS {
            for imp in order {
                let (runs, _) = self.cycle(imp, &conf(plugin, (RATE, BURST)), &COMMANDS, mode, |_| ())?;
                out.extend(COMMANDS.map(|cmd| key(plugin, cmd, imp)).into_iter().zip(runs));
            }
        }
        Ok(out)
    }

    fn latency(&mut self) -> Result<(), String> {
        let mut data: HashMap<Key, Vec<Run>> = HashMap::new();
        let mut kernel = (Vec::new(), Vec::new());
        let names = self.names();
        for i in 0..self.args.repeats {
            let mut order = names.clone();
            order.rotate_left(i % names.len());
            for (k, run) in self.round(&order, TIMED)? {
                data.entry(k).or_default().push(run);
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
            for (k, run) in self.round(&names, RSS)? {
                let e = self.results.rss_kb.entry(k).or_insert(0);
                *e = (*e).max(run.rss_kb);
            }
        }
        self.results.rss_true_kb = (0..3)
            .map(|_| spawn(&["/bin/true"], &[], b"", true).rss_kb)
            .max()
            .unwrap_or(-1);
        Ok(())
    }

    /// ADD's median per implementation over `scale_repeats` cycles,
    /// alternating which goes first.
    fn add_medians(&mut self, plugin: &str) -> Result<HashMap<String, f64>, String> {
        let mut data: HashMap<String, Vec<Run>> = HashMap::new();
        for i in 0..self.args.scale_repeats {
            for imp in if i % 2 == 0 { [OURS, REF] } else { [REF, OURS] } {
                let (runs, _) =
                    self.cycle(imp, &conf(plugin, (RATE, BURST)), &["ADD", "DEL"], TIMED, |_| ())?;
                data.entry(imp.to_string())
                    .or_default()
                    .extend(runs.into_iter().take(1));
            }
        }
        Ok(data.into_iter().map(|(k, v)| (k, median_ok(&v))).collect())
    }

    fn scaling(&mut self) -> Result<(), String> {
        let others = Ns::try_new("benchothers")?;
        let mut have = 0;
        for n in self.args.veths.clone() {
            let t0 = Instant::now();
            pod::host_veths(&self.host, &others, have, n)?;
            have = have.max(n);
            log(&format!(
                "  scaling: {n} other veths in the host namespace ({:.1}s to create)",
                t0.elapsed().as_secs_f64()
            ));
            let m = self.add_medians("bandwidth")?;
            self.results.scaling.push((("bandwidth".into(), n), m));
        }
        drop(others);
        // The sbr rows' pods go into a container of their own.
        let ctr = std::mem::replace(&mut self.ctr, Arc::new(Ns::try_new("benchmulti")?));
        let scaled = self.container_scaling();
        self.ctr = ctr;
        scaled
    }

    /// Extra container interfaces: veths with an address each, their peers
    /// up in another namespace.
    fn container_scaling(&mut self) -> Result<(), String> {
        let peers = Ns::try_new("benchpeers")?;
        let mut have = 1;
        for n in self.args.ifaces.clone() {
            pod::container_ifaces(&self.ctr, &peers, have, n)?;
            have = have.max(n);
            log(&format!("  scaling: sbr with {n} interfaces in the container"));
            let m = self.add_medians("sbr")?;
            self.results.scaling.push((("sbr".into(), n), m));
        }
        Ok(())
    }

    fn accuracy(&mut self) -> Result<(), String> {
        let secs = self.args.seconds as f64;
        for rate_mbit in self.args.rates.clone() {
            let rate = rate_mbit * 1_000_000;
            // 10 ms of the rate, at least 64 KiB: above the MTU and timer granularity.
            let burst = (rate / 100).max(64 * 1024 * 8);
            let conf = conf("bandwidth", (rate, burst));
            let mut samples: HashMap<(String, String), Vec<f64>> = HashMap::new();
            for i in 0..self.args.accuracy_repeats {
                for imp in if i % 2 == 0 { [OURS, REF] } else { [REF, OURS] } {
                    let iperf = |pod: &Pod| {
                        [false, true].map(|r| goodput::flow(pod, r, secs + 1.0, 1.0, &[], || ()).1)
                    };
                    if let (_, Some(bps)) = self.cycle(imp, &conf, &["ADD", "DEL"], TIMED, iperf)? {
                        for (direction, bps) in ["egress", "ingress"].into_iter().zip(bps) {
                            let v = samples
                                .entry((imp.to_string(), direction.to_string()))
                                .or_default();
                            v.push(bps / rate as f64);
                        }
                    }
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

/// `file`'s words for how a binary is linked, and with which C library.
fn binary_kind(path: &str) -> String {
    let out = sh(&["file", "-L", path]).unwrap_or_default();
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
