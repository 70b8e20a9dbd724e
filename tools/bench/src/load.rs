//! Latency under load (issue 19): a TCP bulk flow through one shaped
//! direction and a ping beside it: what the queue behind the TBF adds to
//! every other packet of the pod, and the goodput the flow keeps.
//! `measure` fills `results.load`, `section` renders it; `--only load` runs
//! this alone and rewrites only this section of an existing page.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::time::Duration;

use cni_testkit::ping::{percentile, ping_rtts};
use cni_testkit::pod::Pod;
use serde_json::{json, Value};

use crate::measure::{Bench, LOAD, OURS, REF};
use crate::report::{col, columns, fmt_ratio, met, render};
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
/// Issue 19's goals for ours with the bounded queue: p90 RTT (ms) and
/// goodput kept under load (a goal on the queue, not the shaping verdict,
/// which is `goodput::SHAPED`).
pub const GOAL_P90_MS: f64 = 30.0;
pub const GOAL_GOODPUT: f64 = 0.93;
/// The section's prose.
const TEMPLATE: &str = include_str!("../load.template.md");
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

/// runtimeConfig as containerd writes it for one annotation.
fn conf(direction: &str, rate: u64, burst: u64) -> Value {
    let mut c = crate::measure::conf("bandwidth", (0, 0));
    c["capabilities"] = json!({"bandwidth": true});
    c["runtimeConfig"] =
        json!({"bandwidth": {format!("{direction}Rate"): rate, format!("{direction}Burst"): burst}});
    c
}

/// One bulk flow (pod to host for egress, back for ingress) of SKIP +
/// `window` seconds, and pings from the pod to the host during its last
/// `window` seconds: (RTTs in ms, goodput in bit/s as the receiver counted
/// it after SKIP).
fn flow(pod: &Pod, direction: &str, cc: &str, window: f64) -> (Vec<f64>, f64) {
    let count: u32 = format!("{}", (window / PING_INTERVAL).round())
        .parse()
        .unwrap_or(0);
    let [every, linger] = [PING_INTERVAL, window + PING_LINGER].map(Duration::from_secs_f64);
    let pings = || {
        std::thread::sleep(Duration::from_secs_f64(SKIP));
        ping_rtts(&pod.ctr, &pod.gateway(), count, every, linger)
            .unwrap_or_else(|_| vec![f64::INFINITY; count as usize])
    };
    goodput::flow(
        pod,
        direction == "ingress",
        SKIP + window + 1.0,
        SKIP,
        &["-C", cc],
        pings,
    )
}

/// (rate in Mbit/s, burst label, direction, congestion control): a row of the table.
type Row = (u64, String, String, String);

fn key((rate, burst, direction, cc): &Row, imp: &str) -> Key {
    (
        *rate,
        burst.clone(),
        direction.clone(),
        cc.clone(),
        imp.to_string(),
    )
}

fn rows(rates: &[u64], ccs: &[String]) -> Vec<Row> {
    let mut out = Vec::new();
    for &r in rates {
        for (burst, _) in BURSTS {
            for d in DIRECTIONS {
                out.extend(
                    ccs.iter()
                        .map(|cc| (r, burst.to_string(), d.to_string(), cc.clone())),
                );
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
    let window = b.args.load_window;
    for (i, row) in rows(&b.args.load_rates, &b.args.load_cc).into_iter().enumerate() {
        let (rate, burst, direction, cc) = &row;
        let bits = BURSTS.iter().find(|(l, _)| l == burst).map_or(0, |(_, v)| *v);
        let conf = conf(direction, rate * 1_000_000, bits);
        for imp in if i % 2 == 0 { [OURS, REF] } else { [REF, OURS] } {
            let (_, got) = b.cycle(imp, &conf, &["ADD", "DEL"], LOAD, |pod| {
                flow(pod, direction, cc, window)
            })?;
            let Some((rtts, bps)) = got else { continue };
            let lost = rtts.iter().filter(|r| r.is_infinite()).count() as f64 / rtts.len() as f64;
            let p = Point {
                p50_ms: percentile(&rtts, 50),
                p90_ms: percentile(&rtts, 90),
                lost: if rtts.is_empty() { f64::NAN } else { lost },
                goodput: bps / (rate * 1_000_000) as f64,
                run: run.clone(),
            };
            log(&format!(
                "  load: {rate} Mbit/s, {burst} burst, {direction}, {cc}, {imp}: p50 {}, p90 {} ms, lost {:.0}%, goodput {}",
                fmt_rtt(p.p50_ms),
                fmt_rtt(p.p90_ms),
                p.lost * 100.0,
                fmt_ratio(p.goodput)
            ));
            b.results.load.insert(key(&row, imp), p);
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
    // The measured rows in the order of a full run, any others after them.
    let mut measured: Vec<Row> = points
        .keys()
        .map(|(r, b, d, c, _)| (*r, b.clone(), d.clone(), c.clone()))
        .collect();
    measured.dedup();
    let order = rows(&RATES, &CCS.map(String::from));
    measured.sort_by_key(|k| order.iter().position(|o| o == k).unwrap_or(order.len()));
    let get = |row: &Row, imp: &str| points.get(&key(row, imp));
    let ratio = |p: Option<&Point>| p.map_or_else(|| "n/a".into(), |p| fmt_ratio(p.goodput));
    let burst = |r: &Row| {
        if r.1 == "containerd" {
            "containerd's (2^32-1 bits)".into()
        } else {
            r.1.clone()
        }
    };
    let cols = [
        col("rate (Mbit/s)", 'r', |r: &Row| r.0.to_string()),
        col("burst", 'l', burst),
        col("direction", 'l', |r: &Row| r.2.clone()),
        col("TCP", 'l', |r: &Row| r.3.clone()),
        col("ours p50 / p90 (ms)", 'r', |r: &Row| cell(get(r, OURS))),
        col("reference p50 / p90 (ms)", 'r', |r: &Row| cell(get(r, REF))),
        col("ours goodput / rate", 'r', |r: &Row| ratio(get(r, OURS))),
        col("reference goodput / rate", 'r', |r: &Row| ratio(get(r, REF))),
        col("ours: goal met", 'l', |r: &Row| {
            met(get(r, OURS).is_some_and(Point::meets_goal)).into()
        }),
    ];
    columns(&cols, &measured)
}

/// The section, between its markers.
pub fn section(b: &Bench) -> Result<String, String> {
    let mut runs: Vec<&str> = b.results.load.values().map(|p| p.run.as_str()).collect();
    runs.sort_unstable();
    runs.dedup();
    let runs = if runs.is_empty() {
        "no run".to_string()
    } else {
        format!("{} run(s): {}", runs.len(), runs.join("; "))
    };
    let v = HashMap::from([
        ("runs", runs),
        ("ping_interval", PING_INTERVAL.to_string()),
        ("window", b.args.load_window.to_string()),
        ("skip", format!("{SKIP:.0}")),
        ("goal_p90", format!("{GOAL_P90_MS:.0}")),
        ("goal_goodput", GOAL_GOODPUT.to_string()),
        ("table", load_table(&b.results.load)),
    ]);
    Ok(format!("{BEGIN}\n{}{END}\n", render(TEMPLATE, &v, &[])?))
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
    let text = std::fs::read_to_string(path)
        .unwrap_or_default()
        .replace("-Infinity", "\"-inf\"")
        .replace("Infinity", "\"inf\"")
        .replace("NaN", "\"NaN\"");
    let Ok(Value::Object(m)) = serde_json::from_str::<Value>(&text) else {
        return Points::new();
    };
    m.into_iter()
        .filter_map(|(k, v)| {
            let [rate, burst, d, cc, imp] = k.split('|').collect::<Vec<_>>()[..] else {
                return None;
            };
            let key = (rate.parse().ok()?, burst.into(), d.into(), cc.into(), imp.into());
            let f = |name: &str| unnum(&v[name]);
            let run = v["run"].as_str().unwrap_or("an earlier run").to_string();
            let (p50_ms, p90_ms, lost, goodput) = (f("p50_ms"), f("p90_ms"), f("lost"), f("goodput"));
            Some((
                key,
                Point {
                    p50_ms,
                    p90_ms,
                    lost,
                    goodput,
                    run,
                },
            ))
        })
        .collect()
}

/// Rows of rates not measured in this run come from the last run's figures
/// (re-running only the noisy rates keeps the rest); the merged figures
/// are saved for the next run.
pub fn merge_saved(b: &mut Bench) -> Result<(), String> {
    let path = b.args.charts.join("load.json");
    let mut merged: Points = read_saved(&path)
        .into_iter()
        .filter(|(k, _)| !b.args.load_rates.contains(&k.0) || !b.args.load_cc.contains(&k.3))
        .collect();
    merged.extend(std::mem::take(&mut b.results.load));
    // Sorted as text, as the file has always been written.
    let file: BTreeMap<String, Value> = merged
        .iter()
        .map(|((rate, burst, d, cc, imp), p)| {
            let (g, l, p50, p90) = (num(p.goodput), num(p.lost), num(p.p50_ms), num(p.p90_ms));
            let v = json!({"goodput": g, "lost": l, "p50_ms": p50, "p90_ms": p90, "run": p.run});
            (format!("{rate}|{burst}|{d}|{cc}|{imp}"), v)
        })
        .collect();
    b.results.load = merged;
    // One space of indent, as the file has always been written.
    let mut text = Vec::new();
    let fmt = serde_json::ser::PrettyFormatter::with_indent(b" ");
    let mut ser = serde_json::Serializer::with_formatter(&mut text, fmt);
    serde::Serialize::serialize(&file, &mut ser).map_err(|e| e.to_string())?;
    text.push(b'\n');
    std::fs::write(&path, text).map_err(|e| format!("write {}: {e}", path.display()))
}

/// Replaces the section in an existing page (inserted before "## Targets"
/// when it has none) or writes a page of its own.
pub fn write_only(b: &mut Bench) -> Result<(), String> {
    merge_saved(b)?;
    let section = section(b)?;
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
