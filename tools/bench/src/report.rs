//! The page: figures and tables from code, the prose from
//! `benchmarks.template.md` beside this crate, and the charts.

use std::collections::HashMap;
use std::path::Path;

use crate::goodput::SHAPED;
use crate::load;
use crate::measure::{key, Bench, COMMANDS, OURS, REF};
use crate::svg::{self, Series};

pub const PLUGINS: [&str; 2] = ["sbr", "bandwidth"];
const TEMPLATE: &str = include_str!("../benchmarks.template.md");
const GREEN: &str = "#2b8a3e";
const GREY: &str = "#868e96";
const BLUE: &str = "#1c7ed6";
const LIGHT: &str = "#b2f2bb";

/// Targets of issue 14 for this machine class: ours / reference, whole process.
fn target(plugin: &str, cmd: &str) -> f64 {
    match (plugin, cmd) {
        ("bandwidth", "ADD") => 0.40,
        ("bandwidth", "DEL") => 1.05,
        _ => 0.30,
    }
}

/// How far ours' goodput / rate may be from the reference's at one point
/// of the accuracy table (iperf3's own spread between runs).
const ACCURACY_TO_REFERENCE: f64 = 0.02;

/// Peak RSS may not grow: the glibc static-pie build's figures before musl
/// (docs/benchmarks.md at commit fdf55eb), MiB.
fn rss_before_mib(plugin: &str) -> f64 {
    if plugin == "sbr" {
        1.9
    } else {
        2.0
    }
}

fn ms(ns: f64) -> f64 {
    ns / 1e6
}

pub fn fmt_ms(ns: f64) -> String {
    if ns.is_nan() {
        "n/a".into()
    } else {
        format!("{:.2}", ms(ns))
    }
}

pub fn ratio(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() || b == 0.0 {
        f64::NAN
    } else {
        a / b
    }
}

pub fn fmt_ratio(x: f64) -> String {
    if x.is_nan() {
        "n/a".into()
    } else {
        format!("{x:.2}")
    }
}

pub fn met(ok: bool) -> &'static str {
    if ok {
        "yes"
    } else {
        "**no**"
    }
}

/// A Markdown table; `align` is one of 'l'/'r' per column.
pub fn table(header: &[&str], rows: &[Vec<String>], align: &str) -> String {
    let mut out = vec![
        format!("| {} |", header.join(" | ")),
        format!(
            "|{}|",
            align
                .chars()
                .map(|a| if a == 'r' { "---:" } else { "---" })
                .collect::<Vec<_>>()
                .join("|")
        ),
    ];
    out.extend(rows.iter().map(|r| format!("| {} |", r.join(" | "))));
    out.join("\n")
}

pub struct Machine {
    pub load: String,
    pub kernel: String,
    pub cpu: String,
    pub cores: usize,
    pub commit: String,
    pub date: String,
}

pub fn machine(root: &Path) -> Machine {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into());
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .arg("-C")
            .arg(root)
            .args(args)
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_default()
    };
    let commit = git(&["rev-parse", "--short", "HEAD"]);
    let dirty = !git(&["status", "--porcelain", "--untracked-files=no"]).is_empty();
    let date = cni_testkit::ns::sh(&["date", "-u", "+%Y-%m-%d %H:%M UTC"]).unwrap_or_default();
    Machine {
        load: crate::measure::loadavg(),
        kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map_or_else(|_| "unknown".into(), |s| s.trim().to_string()),
        cpu,
        cores: std::thread::available_parallelism().map_or(0, usize::from),
        commit: format!(
            "{}{}",
            if commit.is_empty() { "unknown" } else { &commit },
            if dirty { " (with uncommitted changes)" } else { "" }
        ),
        date: date.trim().to_string(),
    }
}

/// A path inside the repository relative to it (the page must not record
/// where this machine keeps its checkout); any other path as given.
fn repo_path(root: &Path, path: &str) -> String {
    Path::new(path)
        .strip_prefix(root)
        .map_or_else(|_| path.to_string(), |p| p.to_string_lossy().into_owned())
}

/// The least this command can take here: a static musl no-op's spawn
/// (exec and musl's start-up), plus the kernel's own work where the bench
/// measures it.
fn floor_ns(b: &Bench, plugin: &str, cmd: &str) -> f64 {
    let f = b.results.floor_ns.get("musl").copied().unwrap_or(f64::NAN);
    match b.results.kernel_ns.get(cmd) {
        Some(k) if plugin == "bandwidth" => f + k,
        _ => f,
    }
}

/// Every figure of one plugin and command that the tables need.
struct Row {
    plugin: &'static str,
    cmd: &'static str,
    ns: HashMap<String, f64>,
    ratio: f64,
    target: f64,
    floor: f64,
    floor_ratio: f64,
    /// Implementation -> "ok/n" where some failed.
    failed: Vec<(String, String)>,
}

fn latency_rows(b: &Bench) -> Vec<Row> {
    let mut rows = Vec::new();
    for plugin in PLUGINS {
        for cmd in COMMANDS {
            let mut ns = HashMap::new();
            let mut failed = Vec::new();
            for imp in b.names() {
                let lat = b.results.latency.get(&key(plugin, cmd, &imp));
                ns.insert(imp.clone(), lat.map_or(f64::NAN, |l| l.median_ns));
                if let Some(l) = lat.filter(|l| l.ok < l.n) {
                    failed.push((imp.clone(), format!("{}/{}", l.ok, l.n)));
                }
            }
            let (o, r) = (ns[OURS], ns[REF]);
            let floor = floor_ns(b, plugin, cmd);
            rows.push(Row {
                plugin,
                cmd,
                ratio: ratio(o, r),
                target: target(plugin, cmd),
                floor,
                floor_ratio: ratio(floor, r),
                ns,
                failed,
            });
        }
    }
    rows
}

fn also(b: &Bench) -> Vec<String> {
    b.names().into_iter().skip(2).collect()
}

fn latency_table(b: &Bench, rows: &[Row]) -> String {
    let also = also(b);
    let mut header: Vec<String> = [
        "plugin",
        "command",
        "ours (ms)",
        "reference (ms)",
        "ours / reference",
        "target",
        "met",
        "floor (ms)",
        "floor / reference",
    ]
    .map(String::from)
    .to_vec();
    for label in &also {
        header.push(format!("{label} build (ms)"));
        header.push(format!("ours / {label}"));
    }
    let out: Vec<Vec<String>> = rows
        .iter()
        .map(|x| {
            let note = if x.failed.is_empty() {
                String::new()
            } else {
                let f: Vec<String> = x.failed.iter().map(|(k, v)| format!("{k} {v}")).collect();
                format!(" (succeeded: {})", f.join(", "))
            };
            let mut row = vec![
                x.plugin.to_string(),
                format!("{}{note}", x.cmd),
                fmt_ms(x.ns[OURS]),
                fmt_ms(x.ns[REF]),
                fmt_ratio(x.ratio),
                format!("<= {:.2}", x.target),
                met(x.ratio <= x.target).to_string(),
                fmt_ms(x.floor),
                fmt_ratio(x.floor_ratio),
            ];
            for label in &also {
                row.push(fmt_ms(x.ns[label]));
                row.push(fmt_ratio(ratio(x.ns[OURS], x.ns[label])));
            }
            row
        })
        .collect();
    let header: Vec<&str> = header.iter().map(String::as_str).collect();
    table(&header, &out, &format!("llrrrrlrr{}", "rr".repeat(also.len())))
}

fn floors_table(b: &Bench) -> String {
    let r = &b.results;
    let fl = |k: &str| r.floor_ns.get(k).copied().unwrap_or(f64::NAN);
    let kernel = |k: &str| r.kernel_ns.get(k).copied().unwrap_or(f64::NAN);
    let mut rows = vec![
        vec![
            "spawn of `/bin/true` (dynamically linked, Debian's coreutils)".to_string(),
            fmt_ms(r.spawn_ns),
        ],
        vec![
            "static program without a C library (exec and exit only)".into(),
            fmt_ms(fl("none")),
        ],
        vec![
            "static C program returning 0, musl (**the process floor of our binaries**)".into(),
            fmt_ms(fl("musl")),
        ],
        vec!["static C program returning 0, glibc".into(), fmt_ms(fl("glibc"))],
    ];
    for imp in b.names() {
        let v = r.version_ns.get(&imp).copied().unwrap_or(f64::NAN);
        rows.push(vec![format!("sbr VERSION (no kernel work), {imp}"), fmt_ms(v)]);
    }
    rows.push(vec![
        "kernel's work of bandwidth ADD, from this process".into(),
        fmt_ms(kernel("ADD")),
    ]);
    rows.push(vec![
        "kernel's work of bandwidth DEL, from this process".into(),
        fmt_ms(kernel("DEL")),
    ]);
    table(&["what", "median (ms)"], &rows, "lr")
}

/// Peak RSS of `plugin` over its commands, MiB.
fn rss_mib(b: &Bench, plugin: &str, imp: &str) -> f64 {
    let kb = COMMANDS
        .iter()
        .filter_map(|c| b.results.rss_kb.get(&key(plugin, c, imp)))
        .copied()
        .max()
        .unwrap_or(-1);
    kb as f64 / 1024.0
}

/// Rounded to one decimal, as the page shows it.
fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

fn memory_table(b: &Bench) -> String {
    let also = also(b);
    let mut header: Vec<String> = [
        "plugin",
        "peak RSS ours (MiB)",
        "before musl (target)",
        "met",
        "peak RSS reference (MiB)",
    ]
    .map(String::from)
    .to_vec();
    header.extend(also.iter().map(|l| format!("peak RSS {l} (MiB)")));
    header.push("binary ours (MiB)".into());
    header.push("binary reference (MiB)".into());
    header.extend(also.iter().map(|l| format!("binary {l} (MiB)")));
    let size = |imp: &str, plugin: &str| {
        b.results
            .size
            .get(&(imp.to_string(), plugin.to_string()))
            .map_or(f64::NAN, |s| *s as f64 / f64::from(1u32 << 20))
    };
    let rows: Vec<Vec<String>> = PLUGINS
        .iter()
        .map(|&p| {
            let ours = round1(rss_mib(b, p, OURS));
            let mut row = vec![
                p.to_string(),
                format!("{ours:.1}"),
                format!("<= {:.1}", rss_before_mib(p)),
                met(ours <= rss_before_mib(p)).to_string(),
                format!("{:.1}", rss_mib(b, p, REF)),
            ];
            row.extend(also.iter().map(|l| format!("{:.1}", rss_mib(b, p, l))));
            row.push(format!("{:.2}", size(OURS, p)));
            row.push(format!("{:.2}", size(REF, p)));
            row.extend(also.iter().map(|l| format!("{:.2}", size(l, p))));
            row
        })
        .collect();
    let header: Vec<&str> = header.iter().map(String::as_str).collect();
    let n = also.len();
    table(
        &header,
        &rows,
        &format!("lrrlr{}rr{}", "r".repeat(n), "r".repeat(n)),
    )
}

fn scaling_value(v: &HashMap<String, f64>, imp: &str) -> f64 {
    v.get(imp).copied().unwrap_or(f64::NAN)
}

fn scaling_table(b: &Bench) -> String {
    let rows: Vec<Vec<String>> = b
        .results
        .scaling
        .iter()
        .map(|((plugin, n), v)| {
            let what = if plugin == "bandwidth" {
                format!("bandwidth ADD, {n} other veths in the host namespace")
            } else {
                format!(
                    "sbr ADD, {n} interface{} in the container",
                    if *n > 1 { "s" } else { "" }
                )
            };
            let (o, r) = (scaling_value(v, OURS), scaling_value(v, REF));
            vec![what, fmt_ms(o), fmt_ms(r), fmt_ratio(ratio(o, r))]
        })
        .collect();
    table(
        &["scenario", "ours (ms)", "reference (ms)", "ours / reference"],
        &rows,
        "lrrr",
    )
}

fn accuracy(b: &Bench, rate: u64, d: &str, imp: &str) -> f64 {
    b.results
        .accuracy
        .get(&(rate, d.to_string(), imp.to_string()))
        .copied()
        .unwrap_or(f64::NAN)
}

fn accuracy_table(b: &Bench) -> String {
    let mut rows = Vec::new();
    for &rate in &b.args.rates {
        for d in ["egress", "ingress"] {
            rows.push(vec![
                rate.to_string(),
                d.to_string(),
                fmt_ratio(accuracy(b, rate, d, OURS)),
                fmt_ratio(accuracy(b, rate, d, REF)),
            ]);
        }
    }
    table(
        &["rate (Mbit/s)", "direction", "ours", "reference"],
        &rows,
        "rlrr",
    )
}

/// (text, met) per target, for the page's list and the log.
fn targets(b: &Bench, rows: &[Row]) -> Vec<(String, bool)> {
    let mut out: Vec<(String, bool)> = rows
        .iter()
        .map(|x| {
            (
                format!(
                    "{} {} at most {:.2} of the reference's time: {} (floor {})",
                    x.plugin,
                    x.cmd,
                    x.target,
                    fmt_ratio(x.ratio),
                    fmt_ratio(x.floor_ratio)
                ),
                x.ratio <= x.target,
            )
        })
        .collect();
    let rss: Vec<(&str, f64)> = PLUGINS
        .iter()
        .map(|&p| (p, round1(rss_mib(b, p, OURS))))
        .collect();
    let parts: Vec<String> = rss
        .iter()
        .map(|(p, r)| format!("{p} {r:.1} <= {:.1} MiB", rss_before_mib(p)))
        .collect();
    out.push((
        format!(
            "peak RSS not above the glibc build's before musl ({})",
            parts.join(", ")
        ),
        rss.iter().all(|(p, r)| *r <= rss_before_mib(p)),
    ));
    let points: Vec<(f64, f64)> = b
        .args
        .rates
        .iter()
        .flat_map(|&rate| {
            ["egress", "ingress"].map(|d| (accuracy(b, rate, d, OURS), accuracy(b, rate, d, REF)))
        })
        .collect();
    out.push((
        format!(
            "accuracy: ours shaped correctly (goodput / rate {:.2} to {:.2}, the workspace's one verdict) \
             and within {ACCURACY_TO_REFERENCE} of the reference's at every point",
            SHAPED.start(),
            SHAPED.end()
        ),
        points
            .iter()
            .all(|(o, r)| SHAPED.contains(o) && (o - r).abs() <= ACCURACY_TO_REFERENCE),
    ));
    let ours: Vec<&load::Point> = b
        .results
        .load
        .iter()
        .filter(|(k, _)| k.4 == OURS)
        .map(|(_, v)| v)
        .collect();
    out.push((
        format!(
            "latency under load: ours p90 at most {:.0} ms and goodput at least {} of the rate at every point (issue 19)",
            load::GOAL_P90_MS,
            load::GOAL_GOODPUT
        ),
        !ours.is_empty() && ours.iter().all(|p| p.meets_goal()),
    ));
    out
}

fn failures_list(b: &Bench) -> String {
    let mut seen: Vec<(&str, &str)> = Vec::new();
    let mut out = Vec::new();
    for (imp, what, detail) in &b.failures {
        if seen.contains(&(imp.as_str(), what.as_str())) {
            continue;
        }
        seen.push((imp, what));
        let n = b.failures.iter().filter(|f| &f.0 == imp && &f.1 == what).count();
        out.push(format!("- {imp}, {what} ({n}x): `{detail}`"));
    }
    out.join("\n")
}

fn write_file(path: &Path, text: &str) -> Result<(), String> {
    std::fs::write(path, text).map_err(|e| format!("write {}: {e}", path.display()))
}

fn write_charts(b: &Bench, rows: &[Row]) -> Result<(), String> {
    let r = &b.results;
    let dir = &b.args.charts;
    let colour = |imp: &str| match imp {
        OURS => GREEN,
        REF => GREY,
        _ => BLUE,
    };
    let mut cats: Vec<String> = rows.iter().map(|x| format!("{} {}", x.plugin, x.cmd)).collect();
    cats.push("sbr VERSION".into());
    let mut series: Vec<Series> = b
        .names()
        .into_iter()
        .map(|imp| {
            let mut values: Vec<f64> = rows.iter().map(|x| ms(x.ns[&imp])).collect();
            values.push(ms(r.version_ns.get(&imp).copied().unwrap_or(f64::NAN)));
            Series {
                colour: colour(&imp),
                name: imp,
                values,
            }
        })
        .collect();
    let mut floors: Vec<f64> = rows.iter().map(|x| ms(x.floor)).collect();
    floors.push(ms(r.floor_ns.get("musl").copied().unwrap_or(f64::NAN)));
    series.push(Series {
        name: "floor".into(),
        colour: LIGHT,
        values: floors,
    });
    write_file(
        &dir.join("latency.svg"),
        &svg::bars(
            "Median whole-process time per command (ms, lower is better)",
            &cats,
            &series,
            2,
            None,
            0.0,
        ),
    )?;
    let labels: Vec<String> = r
        .scaling
        .iter()
        .map(|((p, n), _)| {
            if p == "bandwidth" {
                format!("bandwidth, {n} veths")
            } else {
                format!("sbr, {n} ifaces")
            }
        })
        .collect();
    let series: Vec<Series> = [OURS, REF]
        .iter()
        .map(|&imp| Series {
            name: imp.into(),
            colour: colour(imp),
            values: r.scaling.iter().map(|(_, v)| ms(scaling_value(v, imp))).collect(),
        })
        .collect();
    write_file(
        &dir.join("scaling.svg"),
        &svg::bars(
            "Median ADD time as the namespaces grow (ms, lower is better)",
            &labels,
            &series,
            2,
            None,
            0.0,
        ),
    )?;
    let points: Vec<(u64, &str)> = b
        .args
        .rates
        .iter()
        .flat_map(|&rate| ["egress", "ingress"].map(|d| (rate, d)))
        .collect();
    let series: Vec<Series> = [OURS, REF]
        .iter()
        .map(|&imp| Series {
            name: imp.into(),
            colour: colour(imp),
            values: points
                .iter()
                .map(|&(rate, d)| accuracy(b, rate, d, imp))
                .collect(),
        })
        .collect();
    let cats: Vec<String> = points
        .iter()
        .map(|(rate, d)| format!("{rate} Mbit/s {d}"))
        .collect();
    write_file(
        &dir.join("accuracy.svg"),
        &svg::bars(
            "Goodput / configured rate (axis from 0.8; dashed: the configured rate)",
            &cats,
            &series,
            3,
            Some(1.0),
            0.8,
        ),
    )
}

/// The template with `${name}` filled in, blocks between `<!-- if NAME -->`
/// and `<!-- end NAME -->` kept only when `flags` has NAME, and the
/// `<!--# ... -->` notes to the template's editors dropped.
pub fn render(text: &str, values: &HashMap<&str, String>, flags: &[&str]) -> Result<String, String> {
    // Notes to editors.
    let mut t = String::new();
    let mut rest = text;
    while let Some(i) = rest.find("<!--#") {
        t.push_str(&rest[..i]);
        let end = rest[i..]
            .find("-->\n")
            .ok_or("template: an unclosed <!--# note")?;
        rest = &rest[i + end + 4..];
    }
    t.push_str(rest);
    // Conditional blocks.
    let mut out = String::new();
    let mut rest = t.as_str();
    while let Some(i) = rest.find("<!-- if ") {
        out.push_str(&rest[..i]);
        let after = &rest[i + 8..];
        let (name, body) = after
            .split_once(" -->\n")
            .ok_or("template: a malformed <!-- if --> line")?;
        let close = format!("<!-- end {name} -->\n");
        let (inner, tail) = body
            .split_once(&close)
            .ok_or_else(|| format!("template: no end of block {name}"))?;
        if flags.contains(&name) {
            out.push_str(inner);
        }
        rest = tail;
    }
    out.push_str(rest);
    // Values.
    let mut page = String::new();
    let mut rest = out.as_str();
    while let Some(i) = rest.find("${") {
        page.push_str(&rest[..i]);
        let (name, tail) = rest[i + 2..].split_once('}').ok_or("template: an unclosed ${")?;
        let v = values
            .get(name)
            .ok_or_else(|| format!("template: no value for ${{{name}}}"))?;
        page.push_str(v);
        rest = tail;
    }
    page.push_str(rest);
    Ok(page)
}

/// Writes the page and its charts; (text, met) per target.
pub fn write(b: &mut Bench) -> Result<Vec<(String, bool)>, String> {
    let a = b.args.clone();
    let m = machine(&a.root);
    let rows = latency_rows(b);
    write_charts(b, &rows)?;
    load::merge_saved(b)?;
    let r = &b.results;
    let fl = |k: &str| r.floor_ns.get(k).copied().unwrap_or(f64::NAN);
    let kernel = |k: &str| r.kernel_ns.get(k).copied().unwrap_or(f64::NAN);
    let find = |p: &str, c: &str| rows.iter().find(|x| x.plugin == p && x.cmd == c);
    let bw: Vec<&HashMap<String, f64>> = r
        .scaling
        .iter()
        .filter(|((p, _), _)| p == "bandwidth")
        .map(|(_, v)| v)
        .collect();
    let growth = |imp: &str| match (bw.first(), bw.last()) {
        (Some(f), Some(l)) if bw.len() >= 2 => ratio(scaling_value(l, imp), scaling_value(f, imp)),
        _ => f64::NAN,
    };
    let goals = targets(b, &rows);
    let kind = |imp: &str| r.kind.get(imp).cloned().unwrap_or_default();
    let ref_check = r
        .latency
        .get(&key("sbr", "CHECK", REF))
        .map_or(f64::NAN, |l| l.median_ns);
    let charts = pathdiff(&a.charts, a.out.parent().unwrap_or(Path::new(".")));
    let mut v: HashMap<&str, String> = HashMap::new();
    v.insert(
        "quick_flag",
        if a.quick { " --quick".into() } else { String::new() },
    );
    v.insert("date", m.date.clone());
    v.insert("cpu", m.cpu.clone());
    v.insert("cores", m.cores.to_string());
    v.insert("kernel", m.kernel.clone());
    v.insert("commit", m.commit.clone());
    v.insert("load_start", b.load_start.clone());
    v.insert("load_end", m.load.clone());
    v.insert("ours_dir", repo_path(&a.root, &a.ours));
    v.insert("ours_kind", kind(OURS));
    v.insert("ref_dir", repo_path(&a.root, &a.reference));
    v.insert("ref_kind", kind(REF));
    v.insert(
        "also_list",
        a.also
            .iter()
            .map(|(l, d)| format!("{l}: `{}` ({})", repo_path(&a.root, d), kind(l)))
            .collect::<Vec<_>>()
            .join(", "),
    );
    v.insert("repeats", a.repeats.to_string());
    v.insert("scale_repeats", a.scale_repeats.to_string());
    v.insert("accuracy_repeats", a.accuracy_repeats.to_string());
    v.insert("seconds", a.seconds.to_string());
    v.insert("charts", charts);
    v.insert("latency_table", latency_table(b, &rows));
    v.insert("floors_table", floors_table(b));
    v.insert("spawn_ms", fmt_ms(r.spawn_ns));
    v.insert("none_ms", fmt_ms(fl("none")));
    v.insert("musl_ms", fmt_ms(fl("musl")));
    v.insert("glibc_ms", fmt_ms(fl("glibc")));
    v.insert("musl_start_ms", fmt_ms(fl("musl") - fl("none")));
    v.insert("glibc_start_ms", fmt_ms(fl("glibc") - fl("none")));
    v.insert(
        "libc_gap_of_ref_check",
        fmt_ratio(ratio(fl("glibc") - fl("musl"), ref_check)),
    );
    v.insert("kernel_add_ms", fmt_ms(kernel("ADD")));
    v.insert("kernel_del_ms", fmt_ms(kernel("DEL")));
    v.insert(
        "bw_add_floor_ratio",
        fmt_ratio(find("bandwidth", "ADD").map_or(f64::NAN, |x| x.floor_ratio)),
    );
    v.insert(
        "bw_del_floor_ratio",
        fmt_ratio(find("bandwidth", "DEL").map_or(f64::NAN, |x| x.floor_ratio)),
    );
    v.insert("memory_table", memory_table(b));
    v.insert("rss_true_mib", format!("{:.1}", r.rss_true_kb as f64 / 1024.0));
    v.insert("scaling_table", scaling_table(b));
    v.insert(
        "veths_first",
        a.veths.first().map(ToString::to_string).unwrap_or_default(),
    );
    v.insert(
        "veths_last",
        a.veths.last().map(ToString::to_string).unwrap_or_default(),
    );
    v.insert("growth_ours", fmt_ratio(growth(OURS)));
    v.insert("growth_ref", fmt_ratio(growth(REF)));
    v.insert("accuracy_table", accuracy_table(b));
    v.insert("shaped_low", format!("{:.2}", SHAPED.start()));
    v.insert("shaped_high", format!("{:.2}", SHAPED.end()));
    v.insert("accuracy_tolerance", ACCURACY_TO_REFERENCE.to_string());
    v.insert(
        "targets_list",
        goals
            .iter()
            .map(|(t, ok)| format!("- {t}: {}", if *ok { "met" } else { "**not met**" }))
            .collect::<Vec<_>>()
            .join("\n"),
    );
    v.insert("failures_list", failures_list(b));
    v.insert("load_section", load::section(b));
    let mut flags = Vec::new();
    if a.quick {
        flags.push("quick");
    }
    if !a.also.is_empty() {
        flags.push("also");
    }
    if !b.failures.is_empty() {
        flags.push("failures");
    }
    let page = render(TEMPLATE, &v, &flags)?;
    write_file(&a.out, &page)?;
    Ok(goals)
}

/// `path` relative to `base` (both made absolute), as the page links charts.
fn pathdiff(path: &Path, base: &Path) -> String {
    let abs = |p: &Path| {
        let p = if p.as_os_str().is_empty() {
            Path::new(".")
        } else {
            p
        };
        std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf())
    };
    let (p, b) = (abs(path), abs(base));
    let pc: Vec<_> = p.components().collect();
    let bc: Vec<_> = b.components().collect();
    let common = pc.iter().zip(&bc).take_while(|(x, y)| x == y).count();
    let mut out = std::path::PathBuf::new();
    for _ in common..bc.len() {
        out.push("..");
    }
    for c in &pc[common..] {
        out.push(c);
    }
    out.to_string_lossy().into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_values_blocks_and_drops_notes() {
        let t = "<!--# a note\nover lines -->\nA ${x}\n<!-- if on -->\nkept\n<!-- end on -->\n<!-- if off -->\ngone\n<!-- end off -->\nB\n";
        let v = HashMap::from([("x", "1".to_string())]);
        assert_eq!(render(t, &v, &["on"]).ok().as_deref(), Some("A 1\nkept\nB\n"));
        assert!(render("${y}", &v, &[]).is_err());
    }
}
