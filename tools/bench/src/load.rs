//! Latency under load (issue 19): a TCP bulk flow through one shaped
//! direction and a ping beside it: what the queue behind the TBF adds to
//! every other packet of the pod, and the goodput the flow keeps.
//! `measure` fills `results.load`, `section` renders it; `--only load` runs
//! this alone and rewrites only this section of an existing page.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Map, Value};

use crate::measure::{wait_listening, Bench, OURS, REF};
use crate::pod::{self, CTR_IP, HOST_IP};
use crate::report::{fmt_ratio, met, table};
use crate::spawn::spawn;
use crate::{goodput, log};

pub const RATES: [u64; 3] = [1, 10, 100];
/// containerd passes 2^32 - 1 bits for every kubernetes.io/*-bandwidth annotation.
const BURSTS: [(&str, u64); 2] = [("containerd", (1 << 32) - 1), ("512 kbit", 512_000)];
/// The pod uploads (the ifb's TBF), the pod downloads (the veth's TBF).
const DIRECTIONS: [&str; 2] = ["egress", "ingress"];
/// The flow's TCP congestion control: cubic (Linux's default) and bbr (this
/// machine's); they fill an unbounded queue very differently (see the page).
pub const CCS: [&str; 2] = ["cubic", "bbr"];
/// Seconds of the flow before pings count: slow start, the bucket's burst.
const SKIP: f64 = 5.0;
const PING_INTERVAL: f64 = 0.1;
/// Seconds a ping may wait for late replies once all are sent.
const PING_LINGER: f64 = 45.0;
const PORT: &str = "5298";
/// Issue 19's goals for ours with the bounded queue: p90 RTT (ms) and
/// goodput kept under load (a goal on the queue, not the shaping verdict,
/// which is `goodput::SHAPED`).
pub const GOAL_P90_MS: f64 = 30.0;
pub const GOAL_GOODPUT: f64 = 0.93;
const BEGIN: &str = "<!-- load-under-latency: begin -->";
const END: &str = "<!-- load-under-latency: end -->";

/// (rate in Mbit/s, burst label, direction, congestion control, implementation)
pub type Key = (u64, String, String, String, String);

#[derive(Debug, Clone)]
pub struct Point {
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub lost: f64,
    pub goodput: f64,
    pub run: String,
}

pub type Points = BTreeMap<Key, Point>;

impl Point {
    pub fn meets_goal(&self) -> bool {
        self.p90_ms <= GOAL_P90_MS && self.goodput >= GOAL_GOODPUT
    }
}

/// Nearest-rank percentile; lost replies are infinite (a lost ping waited
/// forever, it cannot make a queue look shorter).
fn percentile(xs: &[f64], p: usize) -> f64 {
    if xs.is_empty() {
        return f64::NAN;
    }
    let mut ys = xs.to_vec();
    ys.sort_by(f64::total_cmp);
    let k = (ys.len() * p).div_ceil(100).saturating_sub(1).min(ys.len() - 1);
    ys[k]
}

/// RTTs in ms by sequence from ping's reply lines; the unanswered ones infinite.
fn ping_rtts(out: &str, sent: usize) -> Vec<f64> {
    let mut got: BTreeMap<usize, f64> = BTreeMap::new();
    for line in out.lines() {
        let Some((_, rest)) = line.split_once("icmp_seq=") else {
            continue;
        };
        let Some((seq, rest)) = rest.split_once(' ') else {
            continue;
        };
        let Some((_, time)) = rest.split_once("time=") else {
            continue;
        };
        let Some((ms, _)) = time.split_once(" ms") else {
            continue;
        };
        if let (Ok(seq), Ok(ms)) = (seq.parse(), ms.parse()) {
            got.entry(seq).or_insert(ms);
        }
    }
    (1..=sent)
        .map(|s| got.get(&s).copied().unwrap_or(f64::INFINITY))
        .collect()
}

/// runtimeConfig as containerd writes it for one annotation.
fn conf(prev: &Value, direction: &str, rate: u64, burst: u64) -> Value {
    json!({
        "cniVersion": "1.0.0",
        "name": "bench",
        "type": "bandwidth",
        "capabilities": {"bandwidth": true},
        "runtimeConfig": {"bandwidth": {format!("{direction}Rate"): rate, format!("{direction}Burst"): burst}},
        "prevResult": prev,
    })
}

/// Waits for `child` until `deadline`, then kills it.
fn wait_until(child: &mut std::process::Child, deadline: Instant) {
    while Instant::now() < deadline {
        if matches!(child.try_wait(), Ok(Some(_))) {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// One bulk flow (container to host for egress, host to container for
/// ingress) of SKIP + window seconds, and pings from the container to the
/// host during its last `window` seconds: (RTTs in ms, goodput in bit/s as
/// the receiver counted it after SKIP).
fn flow(ctr: &str, direction: &str, cc: &str, window: f64) -> (Vec<f64>, f64) {
    let reverse = direction == "ingress";
    let Ok(mut server) = Command::new("iperf3")
        .args(["-s", "-1", "-J", "-B", HOST_IP, "-p", PORT])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
    else {
        return (Vec::new(), f64::NAN);
    };
    wait_listening(&format!("{HOST_IP}:{PORT}"));
    let report = std::env::temp_dir().join(format!("cnibench-load-{}.json", std::process::id()));
    let secs = format!("{}", (SKIP + window + 1.0).trunc());
    let mut client = std::fs::File::create(&report).ok().and_then(|f| {
        let mut c = Command::new("ip");
        c.args([
            "netns", "exec", ctr, "iperf3", "-c", HOST_IP, "-B", CTR_IP, "-p", PORT,
        ])
        .args(["-J", "--get-server-output", "-C", cc, "-t", secs.as_str()]);
        if reverse {
            c.arg("-R");
        }
        c.stdout(Stdio::from(f)).stderr(Stdio::null()).spawn().ok()
    });
    std::thread::sleep(Duration::from_secs_f64(SKIP));
    let sent = (window / PING_INTERVAL).round();
    let (count, deadline) = (format!("{sent}"), format!("{}", (window + PING_LINGER).trunc()));
    let ping = pod::output(
        &[
            "ping",
            "-n",
            "-i",
            &PING_INTERVAL.to_string(),
            "-c",
            &count,
            "-w",
            &deadline,
            HOST_IP,
        ],
        Some(ctr),
    );
    let rtts = ping_rtts(&ping, count.parse().unwrap_or(0));
    let bps = match client.as_mut() {
        Some(c) => {
            wait_until(
                c,
                Instant::now() + Duration::from_secs_f64(SKIP + window + PING_LINGER + 30.0),
            );
            std::fs::read_to_string(&report)
                .ok()
                .and_then(|t| serde_json::from_str::<Value>(&t).ok())
                .and_then(|r| goodput::receiver_goodput(&r, reverse, SKIP))
                .unwrap_or(f64::NAN)
        }
        None => f64::NAN,
    };
    let _ = std::fs::remove_file(&report);
    let _ = server.kill();
    let _ = server.wait();
    (rtts, bps)
}

/// ADD one direction as containerd would, the flow and pings, DEL.
fn point(
    b: &mut Bench,
    imp: &str,
    direction: &str,
    rate: u64,
    burst: u64,
    cc: &str,
) -> Result<Option<Point>, String> {
    let ctr = b.ctr.clone();
    let prev = match pod::up(&ctr) {
        Ok(p) => p,
        Err(e) => {
            pod::down();
            return Err(e);
        }
    };
    let path = format!("{}/bandwidth", b.dir(imp));
    let env = |cmd: &str| b.env(cmd, &ctr);
    let pairs = |e: &[(String, String)]| e.iter().map(|(k, v)| (k.clone(), v.clone())).collect::<Vec<_>>();
    let add_env = pairs(&env("ADD"));
    let add_env: Vec<(&str, &str)> = add_env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let add = spawn(
        &[&path],
        &add_env,
        conf(&prev, direction, rate, burst).to_string().as_bytes(),
        false,
    );
    if !add.ok() {
        let detail: String = add.out.trim().chars().take(300).collect();
        b.failures.push((
            imp.to_string(),
            "bandwidth ADD (load)".into(),
            format!("exit {}: {detail}", add.status),
        ));
        pod::down();
        return Ok(None);
    }
    let (rtts, bps) = flow(&ctr, direction, cc, b.args.load_window);
    let result: Value = serde_json::from_str(&add.out).unwrap_or(prev);
    let del_env = pairs(&env("DEL"));
    let del_env: Vec<(&str, &str)> = del_env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    spawn(
        &[&path],
        &del_env,
        conf(&result, direction, rate, burst).to_string().as_bytes(),
        false,
    );
    pod::down();
    let lost = if rtts.is_empty() {
        f64::NAN
    } else {
        rtts.iter().filter(|r| r.is_infinite()).count() as f64 / rtts.len() as f64
    };
    Ok(Some(Point {
        p50_ms: percentile(&rtts, 50),
        p90_ms: percentile(&rtts, 90),
        lost,
        goodput: bps / rate as f64,
        run: String::new(),
    }))
}

fn keys(rates: &[u64], ccs: &[String]) -> Vec<(u64, String, String, String)> {
    let mut out = Vec::new();
    for &r in rates {
        for (burst, _) in BURSTS {
            for d in DIRECTIONS {
                for cc in ccs {
                    out.push((r, burst.to_string(), d.to_string(), cc.clone()));
                }
            }
        }
    }
    out
}

pub fn measure(b: &mut Bench) -> Result<(), String> {
    let m = crate::report::machine(&b.args.root);
    let run = format!(
        "{}, commit {}, load average {} at its start",
        m.date, m.commit, m.load
    );
    let todo = keys(&b.args.load_rates, &b.args.load_cc);
    for (i, (rate, burst, direction, cc)) in todo.into_iter().enumerate() {
        let bits = BURSTS.iter().find(|(l, _)| *l == burst).map_or(0, |(_, v)| *v);
        let order = if i % 2 == 0 { [OURS, REF] } else { [REF, OURS] };
        for imp in order {
            if let Some(mut p) = point(b, imp, &direction, rate * 1_000_000, bits, &cc)? {
                p.run = run.clone();
                log(&format!(
                    "  load: {rate} Mbit/s, {burst} burst, {direction}, {cc}, {imp}: p50 {}, p90 {} ms, lost {:.0}%, goodput {}",
                    fmt_rtt(p.p50_ms),
                    fmt_rtt(p.p90_ms),
                    p.lost * 100.0,
                    fmt_ratio(p.goodput)
                ));
                b.results.load.insert(
                    (
                        rate,
                        burst.clone(),
                        direction.clone(),
                        cc.clone(),
                        imp.to_string(),
                    ),
                    p,
                );
            }
        }
    }
    Ok(())
}

fn fmt_rtt(x: f64) -> String {
    if x.is_nan() {
        "n/a".into()
    } else if x.is_infinite() {
        "lost".into()
    } else if x < 100.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.0}")
    }
}

fn cell(p: Option<&Point>) -> String {
    let Some(p) = p else { return "failed".into() };
    let c = format!("{} / {}", fmt_rtt(p.p50_ms), fmt_rtt(p.p90_ms));
    if p.lost > 0.0 {
        format!("{c} ({:.0}% lost)", p.lost * 100.0)
    } else {
        c
    }
}

fn load_table(points: &Points) -> String {
    let header = [
        "rate (Mbit/s)",
        "burst",
        "direction",
        "TCP",
        "ours p50 / p90 (ms)",
        "reference p50 / p90 (ms)",
        "ours goodput / rate",
        "reference goodput / rate",
        "ours: goal met",
    ];
    let order = keys(&RATES, &CCS.map(String::from));
    let mut rows_keys: Vec<(u64, String, String, String)> = Vec::new();
    for (r, b, d, c, _) in points.keys() {
        let k = (*r, b.clone(), d.clone(), c.clone());
        if !rows_keys.contains(&k) {
            rows_keys.push(k);
        }
    }
    rows_keys.sort_by_key(|k| order.iter().position(|o| o == k).unwrap_or(order.len()));
    let rows: Vec<Vec<String>> = rows_keys
        .into_iter()
        .map(|(rate, burst, direction, cc)| {
            let get = |imp: &str| {
                points.get(&(
                    rate,
                    burst.clone(),
                    direction.clone(),
                    cc.clone(),
                    imp.to_string(),
                ))
            };
            let (o, r) = (get(OURS), get(REF));
            let burst = if burst == "containerd" {
                "containerd's (2^32-1 bits)".to_string()
            } else {
                burst
            };
            let ratio = |p: Option<&Point>| p.map_or_else(|| "n/a".into(), |p| fmt_ratio(p.goodput));
            vec![
                rate.to_string(),
                burst,
                direction,
                cc,
                cell(o),
                cell(r),
                ratio(o),
                ratio(r),
                met(o.is_some_and(Point::meets_goal)).to_string(),
            ]
        })
        .collect();
    table(&header, &rows, "rlllrrrrl")
}

/// The section, between its markers.
pub fn section(b: &Bench) -> String {
    let mut runs: Vec<&str> = b.results.load.values().map(|p| p.run.as_str()).collect();
    runs.sort_unstable();
    runs.dedup();
    let runs = if runs.is_empty() {
        "no run".to_string()
    } else {
        format!("{} run(s): {}", runs.len(), runs.join("; "))
    };
    let table = load_table(&b.results.load);
    let window = b.args.load_window;
    format!(
        "{BEGIN}
## Latency under load

Measured in {runs} (`scripts/bench --only load` rewrites this section alone; `--load-rates`
re-measures some rates and keeps the other rows, `--load-rates ''` only rewrites the text).

One direction shaped as containerd asks for a `kubernetes.io/egress-bandwidth` or
`ingress-bandwidth` annotation (`runtimeConfig`, its burst of 2^32 - 1 bits), or with a static
burst of 512 kbit. One iperf3 TCP flow at full speed through it (egress: the pod uploads, through
the ifb's TBF; ingress: the pod downloads, through the host veth's TBF) and, beside it, pings from
the pod to the host every {PING_INTERVAL} s during the flow's last {window} s (after its first {SKIP:.0} s:
slow start and the bucket's burst are over). The ping's RTT is the time a DNS query, a health check
or an RPC of that pod waits behind the flow. A ping lost counts as infinitely late. Goodput is the
flow's, as the receiver counts it over the same seconds, divided by the rate (about 0.96 is an exact
shaper; above 1, the bucket refilled while the flow stalled and then passed a burst). Goals
(issue 19): p90 at most {GOAL_P90_MS:.0} ms and goodput at least {GOAL_GOODPUT} with the bounded queue.
One run per point on a shared 2-core machine: single figures move with its load.

The TCP column is the flow's congestion control: cubic (Linux's default) or bbr (this
machine's). Behind the reference's queue (25 ms of rate plus the whole bucket) the flow's own
window is the bound, and it differs between runs of the same setup: at 10 Mbit/s with
containerd's burst the reference's p90 read about 0.1 s with cubic, and with bbr either about
25 ms or 1 to 2.3 s. Four parallel cubic flows queued 0.4 to 8 s behind it in every run seen (the
conformance case \"ping p90 under 100 ms beside TCP flows\" uses those).

{table}
{END}
"
    )
}

fn saved_file(charts: &Path) -> PathBuf {
    charts.join("load.json")
}

/// A figure as load.json holds it: a number, or "inf"/"nan" (which JSON
/// has no numbers for). Earlier files wrote them as bare Infinity and NaN.
fn num(v: f64) -> Value {
    if v.is_finite() {
        json!(v)
    } else {
        json!(format!("{v}"))
    }
}

fn unnum(v: &Value) -> f64 {
    v.as_f64()
        .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
        .unwrap_or(f64::NAN)
}

fn read_saved(path: &Path) -> Points {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Points::new();
    };
    let text = text
        .replace("-Infinity", "\"-inf\"")
        .replace("Infinity", "\"inf\"")
        .replace("NaN", "\"NaN\"");
    let Ok(Value::Object(m)) = serde_json::from_str::<Value>(&text) else {
        return Points::new();
    };
    let mut out = Points::new();
    for (k, v) in m {
        let parts: Vec<&str> = k.split('|').collect();
        let [rate, burst, d, cc, imp] = parts[..] else {
            continue;
        };
        let Ok(rate) = rate.parse() else { continue };
        out.insert(
            (rate, burst.into(), d.into(), cc.into(), imp.into()),
            Point {
                p50_ms: unnum(&v["p50_ms"]),
                p90_ms: unnum(&v["p90_ms"]),
                lost: unnum(&v["lost"]),
                goodput: unnum(&v["goodput"]),
                run: v["run"].as_str().unwrap_or("an earlier run").to_string(),
            },
        );
    }
    out
}

/// Rows of rates not measured in this run come from the last run's figures
/// (re-running only the noisy rates keeps the rest); the merged figures
/// are saved for the next run.
pub fn merge_saved(b: &mut Bench) -> Result<(), String> {
    let path = saved_file(&b.args.charts);
    let mut merged: Points = read_saved(&path)
        .into_iter()
        .filter(|(k, _)| !b.args.load_rates.contains(&k.0) || !b.args.load_cc.contains(&k.3))
        .collect();
    merged.extend(std::mem::take(&mut b.results.load));
    // Sorted as text, as the file has always been written.
    let mut entries: Vec<(String, Value)> = merged
        .iter()
        .map(|((rate, burst, d, cc, imp), p)| {
            (
                format!("{rate}|{burst}|{d}|{cc}|{imp}"),
                json!({"goodput": num(p.goodput), "lost": num(p.lost), "p50_ms": num(p.p50_ms), "p90_ms": num(p.p90_ms), "run": p.run}),
            )
        })
        .collect();
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    let m: Map<String, Value> = entries.into_iter().collect();
    b.results.load = merged;
    // One space of indent, as the file has always been written.
    let mut text = Vec::new();
    let fmt = serde_json::ser::PrettyFormatter::with_indent(b" ");
    let mut ser = serde_json::Serializer::with_formatter(&mut text, fmt);
    serde::Serialize::serialize(&Value::Object(m), &mut ser).map_err(|e| e.to_string())?;
    text.push(b'\n');
    std::fs::write(&path, text).map_err(|e| format!("write {}: {e}", path.display()))
}

/// Replaces the section in an existing page (inserted before "## Targets"
/// when it has none) or writes a page of its own.
pub fn write_only(b: &mut Bench) -> Result<(), String> {
    merge_saved(b)?;
    let section = section(b);
    let out = &b.args.out;
    let page = std::fs::read_to_string(out)
        .unwrap_or_else(|_| "# Benchmarks: this project vs the reference plugins\n\n".to_string());
    let page = match (page.split_once(BEGIN), page.contains(END)) {
        (Some((head, rest)), true) => {
            let tail = rest.split_once(END).map_or("", |(_, t)| t);
            format!("{head}{}{tail}", section.trim_end_matches('\n'))
        }
        _ => match page.split_once("\n## Targets") {
            Some((head, rest)) => format!("{head}\n{section}\n## Targets{rest}"),
            None => format!("{}\n\n{section}", page.trim_end_matches('\n')),
        },
    };
    std::fs::write(out, page).map_err(|e| format!("write {}: {e}", out.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lost_pings_count_as_infinitely_late() {
        let out = "64 bytes from 10.200.0.1: icmp_seq=1 ttl=64 time=0.5 ms\n\
                   64 bytes from 10.200.0.1: icmp_seq=3 ttl=64 time=12 ms\n";
        let rtts = ping_rtts(out, 4);
        assert_eq!(rtts[0], 0.5);
        assert!(rtts[1].is_infinite() && rtts[3].is_infinite());
        assert_eq!(percentile(&rtts, 50), 12.0);
        assert!(percentile(&rtts, 90).is_infinite());
    }
}
