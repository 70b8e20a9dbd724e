//! The page: figures and tables from code, the prose from
//! `benchmarks.template.md` beside this crate, and the charts.

use std::collections::HashMap;
use std::path::Path;

use cni_testkit::ns::sh;

use crate::goodput::SHAPED;
use crate::load;
use crate::measure::{key, Bench, COMMANDS, OURS, REF};
use crate::svg::{self, Series};

pub use cni_testkit::PLUGINS;
const TEMPLATE: &str = include_str!("../benchmarks.template.md");
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

fn or_nan(v: Option<&f64>) -> f64 {
    v.copied().unwrap_or(f64::NAN)
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
    let rule: Vec<&str> = align
        .chars()
        .map(|a| if a == 'r' { "---:" } else { "---" })
        .collect();
    let mut out = vec![
        format!("| {} |", header.join(" | ")),
        format!("|{}|", rule.join("|")),
    ];
    out.extend(rows.iter().map(|r| format!("| {} |", r.join(" | "))));
    out.join("\n")
}

/// A column of [`columns`]: its header, its alignment and its cell per row.
pub type Column<'a, R> = (String, char, Box<dyn Fn(&R) -> String + 'a>);

pub fn col<'a, R>(header: impl Into<String>, align: char, cell: impl Fn(&R) -> String + 'a) -> Column<'a, R> {
    (header.into(), align, Box::new(cell))
}

/// A Markdown table of `rows`, a cell of each column per row.
pub fn columns<R>(cols: &[Column<R>], rows: &[R]) -> String {
    let header: Vec<&str> = cols.iter().map(|c| c.0.as_str()).collect();
    let align: String = cols.iter().map(|c| c.1).collect();
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| cols.iter().map(|c| (c.2)(r)).collect())
        .collect();
    table(&header, &cells, &align)
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
    let cpu = std::fs::read_to_string("/proc/cpuinfo").ok().and_then(|t| {
        let line = t.lines().find(|l| l.starts_with("model name"))?;
        line.split_once(':').map(|(_, v)| v.trim().to_string())
    });
    let root = root.to_string_lossy();
    let git = |args: &[&str]| {
        let argv: Vec<&str> = ["git", "-C", &root].iter().chain(args).copied().collect();
        sh(&argv).unwrap_or_default().trim().to_string()
    };
    let commit = git(&["rev-parse", "--short", "HEAD"]);
    let dirty = !git(&["status", "--porcelain", "--untracked-files=no"]).is_empty();
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease");
    Machine {
        load: crate::measure::loadavg(),
        kernel: kernel.map_or_else(|_| "unknown".into(), |s| s.trim().to_string()),
        cpu: cpu.unwrap_or_else(|| "unknown".into()),
        cores: std::thread::available_parallelism().map_or(0, usize::from),
        commit: format!(
            "{}{}",
            if commit.is_empty() { "unknown" } else { &commit },
            if dirty { " (with uncommitted changes)" } else { "" }
        ),
        date: sh(&["date", "-u", "+%Y-%m-%d %H:%M UTC"])
            .unwrap_or_default()
            .trim()
            .to_string(),
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
    let f = or_nan(b.results.floor_ns.get("musl"));
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

/// The other builds of ours (`--also`).
fn also(b: &Bench) -> Vec<String> {
    b.names().into_iter().skip(2).collect()
}

fn latency_table(b: &Bench, rows: &[Row]) -> String {
    let note = |x: &Row| {
        let f: Vec<String> = x.failed.iter().map(|(k, v)| format!("{k} {v}")).collect();
        if f.is_empty() {
            String::new()
        } else {
            format!(" (succeeded: {})", f.join(", "))
        }
    };
    let mut cols = vec![
        col("plugin", 'l', |x: &Row| x.plugin.to_string()),
        col("command", 'l', |x: &Row| format!("{}{}", x.cmd, note(x))),
        col("ours (ms)", 'r', |x: &Row| fmt_ms(x.ns[OURS])),
        col("reference (ms)", 'r', |x: &Row| fmt_ms(x.ns[REF])),
        col("ours / reference", 'r', |x: &Row| fmt_ratio(x.ratio)),
        col("target", 'r', |x: &Row| format!("<= {:.2}", x.target)),
        col("met", 'l', |x: &Row| met(x.ratio <= x.target).to_string()),
        col("floor (ms)", 'r', |x: &Row| fmt_ms(x.floor)),
        col("floor / reference", 'r', |x: &Row| fmt_ratio(x.floor_ratio)),
    ];
    for label in also(b) {
        let (time, by) = (format!("{label} build (ms)"), format!("ours / {label}"));
        let l = label.clone();
        cols.push(col(time, 'r', move |x: &Row| fmt_ms(x.ns[&l])));
        cols.push(col(by, 'r', move |x: &Row| {
            fmt_ratio(ratio(x.ns[OURS], x.ns[&label]))
        }));
    }
    columns(&cols, rows)
}

fn floors_table(b: &Bench) -> String {
    let r = &b.results;
    let mut rows = vec![
        (
            "spawn of `/bin/true` (dynamically linked, Debian's coreutils)".into(),
            r.spawn_ns,
        ),
        (
            "static program without a C library (exec and exit only)".into(),
            or_nan(r.floor_ns.get("none")),
        ),
        (
            "static C program returning 0, musl (**the process floor of our binaries**)".into(),
            or_nan(r.floor_ns.get("musl")),
        ),
        (
            "static C program returning 0, glibc".into(),
            or_nan(r.floor_ns.get("glibc")),
        ),
    ];
    for imp in b.names() {
        rows.push((
            format!("sbr VERSION (no kernel work), {imp}"),
            or_nan(r.version_ns.get(&imp)),
        ));
    }
    for cmd in ["ADD", "DEL"] {
        let what = format!("kernel's work of bandwidth {cmd}, from this process");
        rows.push((what, or_nan(r.kernel_ns.get(cmd))));
    }
    let rows: Vec<Vec<String>> = rows
        .into_iter()
        .map(|(what, ns)| vec![what, fmt_ms(ns)])
        .collect();
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
    let rss = |imp: String| move |p: &&str| format!("{:.1}", rss_mib(b, p, &imp));
    let size = |imp: String| {
        move |p: &&str| {
            let bytes = b.results.size.get(&(imp.clone(), p.to_string()));
            format!(
                "{:.2}",
                bytes.map_or(f64::NAN, |s| *s as f64 / f64::from(1u32 << 20))
            )
        }
    };
    let ours = |p: &str| round1(rss_mib(b, p, OURS));
    let mut cols = vec![
        col("plugin", 'l', |p: &&str| p.to_string()),
        col("peak RSS ours (MiB)", 'r', move |p: &&str| {
            format!("{:.1}", ours(p))
        }),
        col("before musl (target)", 'r', |p: &&str| {
            format!("<= {:.1}", rss_before_mib(p))
        }),
        col("met", 'l', move |p: &&str| {
            met(ours(p) <= rss_before_mib(p)).to_string()
        }),
        col("peak RSS reference (MiB)", 'r', rss(REF.into())),
    ];
    let also = also(b);
    cols.extend(
        also.iter()
            .map(|l| col(format!("peak RSS {l} (MiB)"), 'r', rss(l.clone()))),
    );
    cols.push(col("binary ours (MiB)", 'r', size(OURS.into())));
    cols.push(col("binary reference (MiB)", 'r', size(REF.into())));
    cols.extend(
        also.iter()
            .map(|l| col(format!("binary {l} (MiB)"), 'r', size(l.clone()))),
    );
    columns(&cols, &PLUGINS)
}

fn scaling_table(b: &Bench) -> String {
    type Point = ((String, usize), HashMap<String, f64>);
    let what = |((plugin, n), _): &Point| match plugin.as_str() {
        "bandwidth" => format!("bandwidth ADD, {n} other veths in the host namespace"),
        _ => format!(
            "sbr ADD, {n} interface{} in the container",
            if *n > 1 { "s" } else { "" }
        ),
    };
    let ms = |imp: &'static str| move |(_, v): &Point| fmt_ms(or_nan(v.get(imp)));
    let cols = [
        col("scenario", 'l', what),
        col("ours (ms)", 'r', ms(OURS)),
        col("reference (ms)", 'r', ms(REF)),
        col("ours / reference", 'r', |(_, v): &Point| {
            fmt_ratio(ratio(or_nan(v.get(OURS)), or_nan(v.get(REF))))
        }),
    ];
    columns(&cols, &b.results.scaling)
}

/// The accuracy table's points: (rate in Mbit/s, direction).
fn accuracy_points(b: &Bench) -> Vec<(u64, &'static str)> {
    b.args
        .rates
        .iter()
        .flat_map(|&rate| ["egress", "ingress"].map(|d| (rate, d)))
        .collect()
}

fn accuracy(b: &Bench, (rate, d): (u64, &str), imp: &str) -> f64 {
    or_nan(b.results.accuracy.get(&(rate, d.to_string(), imp.to_string())))
}

fn accuracy_table(b: &Bench) -> String {
    let cols = [
        col("rate (Mbit/s)", 'r', |x: &(u64, &str)| x.0.to_string()),
        col("direction", 'l', |x: &(u64, &str)| x.1.to_string()),
        col("ours", 'r', |&x: &(u64, &str)| fmt_ratio(accuracy(b, x, OURS))),
        col("reference", 'r', |&x: &(u64, &str)| {
            fmt_ratio(accuracy(b, x, REF))
        }),
    ];
    columns(&cols, &accuracy_points(b))
}

/// (text, met) per target, for the page's list and the log.
fn targets(b: &Bench, rows: &[Row]) -> Vec<(String, bool)> {
    let mut out: Vec<(String, bool)> = rows
        .iter()
        .map(|x| {
            let (r, f) = (fmt_ratio(x.ratio), fmt_ratio(x.floor_ratio));
            let text = format!(
                "{} {} at most {:.2} of the reference's time: {r} (floor {f})",
                x.plugin, x.cmd, x.target
            );
            (text, x.ratio <= x.target)
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
    let shaped = accuracy_points(b).into_iter().all(|x| {
        let (o, r) = (accuracy(b, x, OURS), accuracy(b, x, REF));
        SHAPED.contains(&o) && (o - r).abs() <= ACCURACY_TO_REFERENCE
    });
    out.push((
        format!(
            "accuracy: ours shaped correctly (goodput / rate {:.2} to {:.2}, the workspace's one verdict) \
             and within {ACCURACY_TO_REFERENCE} of the reference's at every point",
            SHAPED.start(),
            SHAPED.end()
        ),
        shaped,
    ));
    let mut ours = b.results.load.iter().filter(|(k, _)| k.4 == OURS).peekable();
    out.push((
        format!(
            "latency under load: ours p90 at most {:.0} ms and goodput at least {} of the rate at every point (issue 19)",
            load::GOAL_P90_MS,
            load::GOAL_GOODPUT
        ),
        ours.peek().is_some() && ours.all(|(_, p)| p.meets_goal()),
    ));
    out
}

/// Each failure once, with how often it happened.
fn failures_list(b: &Bench) -> String {
    let mut out = Vec::new();
    for (i, (imp, what, detail)) in b.failures.iter().enumerate() {
        let same = |f: &&(String, String, String)| &f.0 == imp && &f.1 == what;
        if !b.failures[..i].iter().any(|f| same(&f)) {
            let n = b.failures.iter().filter(same).count();
            out.push(format!("- {imp}, {what} ({n}x): `{detail}`"));
        }
    }
    out.join("\n")
}

fn write_file(path: &Path, text: &str) -> Result<(), String> {
    std::fs::write(path, text).map_err(|e| format!("write {}: {e}", path.display()))
}

/// A series per implementation of `imps`, in its colour.
fn series(imps: &[String], values: impl Fn(&str) -> Vec<f64>) -> Vec<Series> {
    let colour = |imp: &str| match imp {
        OURS => "#2b8a3e",
        REF => "#868e96",
        _ => "#1c7ed6",
    };
    imps.iter()
        .map(|imp| Series {
            name: imp.clone(),
            colour: colour(imp),
            values: values(imp),
        })
        .collect()
}

fn write_charts(b: &Bench, rows: &[Row]) -> Result<(), String> {
    let r = &b.results;
    let chart = |file: &str, svg: String| write_file(&b.args.charts.join(file), &svg);
    let mut cats: Vec<String> = rows.iter().map(|x| format!("{} {}", x.plugin, x.cmd)).collect();
    cats.push("sbr VERSION".into());
    let mut bars = series(&b.names(), |imp| {
        let version = ms(or_nan(r.version_ns.get(imp)));
        rows.iter().map(|x| ms(x.ns[imp])).chain([version]).collect()
    });
    let musl = ms(or_nan(r.floor_ns.get("musl")));
    let floors = rows.iter().map(|x| ms(x.floor)).chain([musl]).collect();
    bars.push(Series {
        name: "floor".into(),
        colour: LIGHT,
        values: floors,
    });
    let title = "Median whole-process time per command (ms, lower is better)";
    chart("latency.svg", svg::bars(title, &cats, &bars, 2, None, 0.0))?;
    let pair = [OURS, REF].map(String::from);
    let labels: Vec<String> = r
        .scaling
        .iter()
        .map(|((p, n), _)| match p.as_str() {
            "bandwidth" => format!("bandwidth, {n} veths"),
            _ => format!("sbr, {n} ifaces"),
        })
        .collect();
    let bars = series(&pair, |imp| {
        r.scaling.iter().map(|(_, v)| ms(or_nan(v.get(imp)))).collect()
    });
    let title = "Median ADD time as the namespaces grow (ms, lower is better)";
    chart("scaling.svg", svg::bars(title, &labels, &bars, 2, None, 0.0))?;
    let points = accuracy_points(b);
    let bars = series(&pair, |imp| points.iter().map(|&x| accuracy(b, x, imp)).collect());
    let cats: Vec<String> = points
        .iter()
        .map(|(rate, d)| format!("{rate} Mbit/s {d}"))
        .collect();
    let title = "Goodput / configured rate (axis from 0.8; dashed: the configured rate)";
    chart("accuracy.svg", svg::bars(title, &cats, &bars, 3, Some(1.0), 0.8))
}

/// The template with `${name}` filled in, blocks between `<!-- if NAME -->`
/// and `<!-- end NAME -->` kept only when `flags` has NAME, and the
/// `<!--# ... -->` notes to the template's editors dropped.
pub fn render(text: &str, values: &HashMap<&str, String>, flags: &[&str]) -> Result<String, String> {
    let notes = expand(text, "<!--#", |rest| {
        let end = rest.find("-->\n").ok_or("template: an unclosed <!--# note")?;
        Ok((String::new(), &rest[end + 4..]))
    })?;
    let blocks = expand(&notes, "<!-- if ", |rest| {
        let (name, body) = rest
            .split_once(" -->\n")
            .ok_or("template: a malformed <!-- if --> line")?;
        let (inner, tail) = (body.split_once(&format!("<!-- end {name} -->\n")))
            .ok_or_else(|| format!("template: no end of block {name}"))?;
        Ok((
            if flags.contains(&name) {
                inner.to_string()
            } else {
                String::new()
            },
            tail,
        ))
    })?;
    expand(&blocks, "${", |rest| {
        let (name, tail) = rest.split_once('}').ok_or("template: an unclosed ${")?;
        let v = values
            .get(name)
            .ok_or_else(|| format!("template: no value for ${{{name}}}"))?;
        Ok((v.clone(), tail))
    })
}

/// `text` with every span that starts at `open` replaced: `span` gets what
/// follows `open` and returns the replacement and what follows the span.
fn expand<'t>(
    text: &'t str,
    open: &str,
    mut span: impl FnMut(&'t str) -> Result<(String, &'t str), String>,
) -> Result<String, String> {
    let (mut out, mut rest) = (String::new(), text);
    while let Some(i) = rest.find(open) {
        out.push_str(&rest[..i]);
        let (put, tail) = span(&rest[i + open.len()..])?;
        out.push_str(&put);
        rest = tail;
    }
    out.push_str(rest);
    Ok(out)
}

/// Writes the page and its charts; (text, met) per target.
pub fn write(b: &mut Bench) -> Result<Vec<(String, bool)>, String> {
    let a = b.args.clone();
    let m = machine(&a.root);
    let rows = latency_rows(b);
    write_charts(b, &rows)?;
    load::merge_saved(b)?;
    let r = &b.results;
    let fl = |k: &str| or_nan(r.floor_ns.get(k));
    let kernel = |k: &str| fmt_ms(or_nan(r.kernel_ns.get(k)));
    let floor_ratio = |c: &str| {
        let row = rows.iter().find(|x| x.plugin == "bandwidth" && x.cmd == c);
        fmt_ratio(row.map_or(f64::NAN, |x| x.floor_ratio))
    };
    let bw: Vec<&HashMap<String, f64>> = r
        .scaling
        .iter()
        .filter(|((p, _), _)| p == "bandwidth")
        .map(|(_, v)| v)
        .collect();
    let growth = |imp: &str| match (bw.first(), bw.last()) {
        (Some(f), Some(l)) if bw.len() >= 2 => fmt_ratio(ratio(or_nan(l.get(imp)), or_nan(f.get(imp)))),
        _ => fmt_ratio(f64::NAN),
    };
    let goals = targets(b, &rows);
    let kind = |imp: &str| r.kind.get(imp).cloned().unwrap_or_default();
    let ref_check = r
        .latency
        .get(&key("sbr", "CHECK", REF))
        .map_or(f64::NAN, |l| l.median_ns);
    let also: Vec<String> = a
        .also
        .iter()
        .map(|(l, d)| format!("{l}: `{}` ({})", repo_path(&a.root, d), kind(l)))
        .collect();
    let goals_list: Vec<String> = goals
        .iter()
        .map(|(t, ok)| format!("- {t}: {}", if *ok { "met" } else { "**not met**" }))
        .collect();
    let veth = |n: Option<&usize>| n.map(ToString::to_string).unwrap_or_default();
    let v: HashMap<&str, String> = HashMap::from([
        (
            "quick_flag",
            if a.quick { " --quick".into() } else { String::new() },
        ),
        ("date", m.date.clone()),
        ("cpu", m.cpu.clone()),
        ("cores", m.cores.to_string()),
        ("kernel", m.kernel.clone()),
        ("commit", m.commit.clone()),
        ("load_start", b.load_start.clone()),
        ("load_end", m.load.clone()),
        ("ours_dir", repo_path(&a.root, &a.ours)),
        ("ours_kind", kind(OURS)),
        ("ref_dir", repo_path(&a.root, &a.reference)),
        ("ref_kind", kind(REF)),
        ("also_list", also.join(", ")),
        ("repeats", a.repeats.to_string()),
        ("scale_repeats", a.scale_repeats.to_string()),
        ("accuracy_repeats", a.accuracy_repeats.to_string()),
        ("seconds", a.seconds.to_string()),
        (
            "charts",
            pathdiff(&a.charts, a.out.parent().unwrap_or(Path::new("."))),
        ),
        ("latency_table", latency_table(b, &rows)),
        ("floors_table", floors_table(b)),
        ("spawn_ms", fmt_ms(r.spawn_ns)),
        ("none_ms", fmt_ms(fl("none"))),
        ("musl_ms", fmt_ms(fl("musl"))),
        ("glibc_ms", fmt_ms(fl("glibc"))),
        ("musl_start_ms", fmt_ms(fl("musl") - fl("none"))),
        ("glibc_start_ms", fmt_ms(fl("glibc") - fl("none"))),
        (
            "libc_gap_of_ref_check",
            fmt_ratio(ratio(fl("glibc") - fl("musl"), ref_check)),
        ),
        ("kernel_add_ms", kernel("ADD")),
        ("kernel_del_ms", kernel("DEL")),
        ("bw_add_floor_ratio", floor_ratio("ADD")),
        ("bw_del_floor_ratio", floor_ratio("DEL")),
        ("memory_table", memory_table(b)),
        ("rss_true_mib", format!("{:.1}", r.rss_true_kb as f64 / 1024.0)),
        ("scaling_table", scaling_table(b)),
        ("veths_first", veth(a.veths.first())),
        ("veths_last", veth(a.veths.last())),
        ("growth_ours", growth(OURS)),
        ("growth_ref", growth(REF)),
        ("accuracy_table", accuracy_table(b)),
        ("shaped_low", format!("{:.2}", SHAPED.start())),
        ("shaped_high", format!("{:.2}", SHAPED.end())),
        ("accuracy_tolerance", ACCURACY_TO_REFERENCE.to_string()),
        ("targets_list", goals_list.join("\n")),
        ("failures_list", failures_list(b)),
        ("load_section", load::section(b)?),
    ]);
    let flags = [
        ("quick", a.quick),
        ("also", !a.also.is_empty()),
        ("failures", !b.failures.is_empty()),
    ];
    let flags: Vec<&str> = flags.iter().filter(|f| f.1).map(|f| f.0).collect();
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
