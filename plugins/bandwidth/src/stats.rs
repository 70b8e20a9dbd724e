//! `bandwidth stats`: what the shapers of this node do, for an operator
//! (a table), a script (`--json`) or node-exporter's textfile collector
//! (`--prometheus`). Read-only: two dumps of the namespace's qdiscs a
//! moment apart, one of its links and of the veths' ingress filters.
//!
//! Attachments are found as DEL and GC find them: an ifb with our alias
//! names network, container and interface; its host veth is the one whose
//! ingress redirects to it. Two shapes carry no names and are listed as
//! unknown attachments: an ifb the reference made (no alias, named `bwp`
//! and 12 hex digits), and a veth with a root TBF of our handle and no
//! redirect to an ifb (an ingress-only attachment, of ours or the
//! reference's: neither makes an ifb for it).

use std::fmt::Write as _;
use std::io::Write;
use std::time::{Duration, Instant};

use nl_ops::gen_stats::{Counters, QdiscStats};
use nl_ops::link::Link;
use nl_ops::qdisc::{Psched, INGRESS_HANDLE, TC_H_INGRESS, TC_H_ROOT};
use nl_ops::Socket;
use serde_json::{json, Value};

use crate::ifb::Owner;
use crate::tbf::{bytes_of, TBF_HANDLE};

/// The prefix of every metric in `--prometheus` output.
pub const METRIC_PREFIX: &str = "cni_bandwidth_";

/// One direction's shaper: the root TBF of a device, and its counters.
#[derive(Debug, Clone, PartialEq)]
pub struct Direction {
    /// The device the TBF is on: the host veth (ingress) or the ifb (egress).
    pub device: String,
    pub index: u32,
    pub rate_bits: u64,
    /// What the bucket holds at the rate, in bytes.
    pub burst_bytes: u64,
    /// The queue behind an empty bucket, in bytes.
    pub limit_bytes: u32,
    /// The kind of a qdisc under the TBF (e.g. an AQM); `None` for the
    /// kernel's default byte FIFO, which dumps do not show.
    pub child: Option<String>,
    pub counters: Counters,
    /// Bits per second sent over the sampling interval; `None` with one sample.
    pub current_bits: Option<f64>,
}

/// One attachment: names from the ifb's alias (`None`: unknown).
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub network: Option<String>,
    pub container_id: Option<String>,
    pub ifname: Option<String>,
    pub host_veth: Option<String>,
    pub ifb: Option<String>,
    /// Into the container: the TBF on the host veth.
    pub ingress: Option<Direction>,
    /// Out of the container: the TBF on the ifb.
    pub egress: Option<Direction>,
}

impl Row {
    pub fn known(&self) -> bool {
        self.network.is_some()
    }

    fn directions(&self) -> impl Iterator<Item = (&'static str, &Direction)> {
        [("ingress", &self.ingress), ("egress", &self.egress)]
            .into_iter()
            .filter_map(|(n, d)| Some((n, d.as_ref()?)))
    }
}

/// What one look at the namespace found.
#[derive(Debug, Clone, Default)]
pub struct Sample {
    pub links: Vec<Link>,
    pub qdiscs: Vec<QdiscStats>,
    /// `(veth, target)`: a u32 filter on the veth's ingress that only
    /// redirects, to the link `target`.
    pub redirects: Vec<(u32, u32)>,
}

/// The name the reference gives an ifb: `bwp` and 12 hex digits.
fn reference_ifb_name(name: &str) -> bool {
    name.len() == 15
        && name.starts_with("bwp")
        && name[3..]
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
}

fn direction(link: &Link, qdiscs: &[QdiscStats], psched: Psched) -> Option<Direction> {
    let q = qdiscs.iter().find(|q| {
        q.qdisc.index == link.index && q.qdisc.parent == TC_H_ROOT && q.qdisc.handle == TBF_HANDLE
    })?;
    let tbf = q.qdisc.tbf?;
    let child = qdiscs
        .iter()
        .find(|c| {
            c.qdisc.index == link.index
                && c.qdisc.parent & 0xffff_0000 == TBF_HANDLE
                && c.qdisc.parent != TC_H_ROOT
        })
        .map(|c| c.qdisc.kind.clone());
    Some(Direction {
        device: link.name.clone(),
        index: link.index,
        rate_bits: tbf.rate.saturating_mul(8),
        burst_bytes: bytes_of(tbf.rate, u64::from(tbf.buffer), psched),
        limit_bytes: tbf.limit,
        child,
        counters: q.counters,
        current_bits: None,
    })
}

/// Every attachment of the sample, sorted by network, container, interface;
/// unknown ones last.
pub fn attachments(s: &Sample, psched: Psched) -> Vec<Row> {
    let by_index = |i: u32| s.links.iter().find(|l| l.index == i);
    let mut rows = Vec::new();
    let mut claimed_veths = Vec::new();
    for ifb in s.links.iter().filter(|l| l.kind.as_deref() == Some("ifb")) {
        let alias = ifb.alias.as_deref().filter(|a| !a.is_empty());
        let tags = match alias {
            Some(a) => match Owner::parse_alias(a) {
                Some(t) => Some(t),
                None => continue,
            },
            None if reference_ifb_name(&ifb.name) => None,
            None => continue,
        };
        let veth = s
            .redirects
            .iter()
            .find(|(_, t)| *t == ifb.index)
            .and_then(|(v, _)| by_index(*v));
        if let Some(v) = veth {
            claimed_veths.push(v.index);
        }
        rows.push(Row {
            network: tags.as_ref().map(|t| t.network.clone()),
            container_id: tags.as_ref().map(|t| t.container_id.clone()),
            ifname: tags.map(|t| t.ifname),
            host_veth: veth.map(|v| v.name.clone()),
            ifb: Some(ifb.name.clone()),
            ingress: veth.and_then(|v| direction(v, &s.qdiscs, psched)),
            egress: direction(ifb, &s.qdiscs, psched),
        });
    }
    for veth in s
        .links
        .iter()
        .filter(|l| l.kind.as_deref() == Some("veth") && !claimed_veths.contains(&l.index))
    {
        if let Some(d) = direction(veth, &s.qdiscs, psched) {
            rows.push(Row {
                network: None,
                container_id: None,
                ifname: None,
                host_veth: Some(veth.name.clone()),
                ifb: None,
                ingress: Some(d),
                egress: None,
            });
        }
    }
    rows.sort_by(|a, b| {
        let key = |r: &Row| {
            (
                !r.known(),
                r.network.clone(),
                r.container_id.clone(),
                r.ifname.clone(),
                r.host_veth.clone(),
                r.ifb.clone(),
            )
        };
        key(a).cmp(&key(b))
    });
    rows
}

/// Sets each direction's current rate from the same TBF's bytes in an
/// earlier dump `secs` before. A TBF made or replaced in between (its
/// counters restarted) gets none.
pub fn with_rates(rows: &mut [Row], earlier: &[QdiscStats], secs: f64) {
    if secs <= 0.0 {
        return;
    }
    for d in rows
        .iter_mut()
        .flat_map(|r| [r.ingress.as_mut(), r.egress.as_mut()])
        .flatten()
    {
        let before = earlier.iter().find(|q| {
            q.qdisc.index == d.index && q.qdisc.parent == TC_H_ROOT && q.qdisc.handle == TBF_HANDLE
        });
        d.current_bits = before
            .and_then(|b| d.counters.bytes.checked_sub(b.counters.bytes))
            .map(|sent| sent as f64 * 8.0 / secs);
    }
}

/// The links, qdiscs and redirects of the namespace `sock` is in.
pub fn sample(sock: &mut Socket) -> nl_ops::Result<Sample> {
    let links = sock.links()?;
    let qdiscs = sock.all_qdiscs()?;
    let mut redirects = Vec::new();
    for veth in links.iter().filter(|l| l.kind.as_deref() == Some("veth")) {
        let has_ingress = qdiscs
            .iter()
            .any(|q| q.qdisc.index == veth.index && q.qdisc.parent == TC_H_INGRESS);
        if !has_ingress {
            continue;
        }
        // A pod going away between the dumps is no error of ours.
        let filters = match sock.filters(veth.index, INGRESS_HANDLE) {
            Ok(f) => f,
            Err(e) => {
                log::debug!("skipping the filters of {}: {e}", veth.name);
                continue;
            }
        };
        for f in filters.iter().filter(|f| f.kind == "u32" && f.only_redirects()) {
            redirects.extend(f.mirred_targets.iter().map(|t| (veth.index, *t)));
        }
    }
    Ok(Sample {
        links,
        qdiscs,
        redirects,
    })
}

/// Bits per second as tc writes them, three significant digits at most.
pub fn bits_text(bits: f64) -> String {
    scaled(bits, "bit")
}

/// Bytes in powers of 1000: `125kB`, `1.5MB`.
pub fn bytes_text(bytes: f64) -> String {
    scaled(bytes, "B")
}

fn scaled(v: f64, unit: &str) -> String {
    let (v, prefix) = [(1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")]
        .iter()
        .find(|(f, _)| v >= *f)
        .map_or((v, ""), |(f, p)| (v / f, *p));
    let digits = if v >= 100.0 || v.fract() == 0.0 {
        0
    } else if v >= 10.0 {
        1
    } else {
        2
    };
    let s = format!("{v:.digits$}");
    // "1.50" reads as "1.5".
    let s = if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    };
    format!("{s}{prefix}{unit}")
}

/// The table: one line per direction. Container IDs are cut to 12
/// characters, as container runtimes print them.
pub fn table(rows: &[Row]) -> String {
    let header = [
        "NETWORK",
        "CONTAINER",
        "IF",
        "DEVICE",
        "DIR",
        "QDISC",
        "RATE",
        "BUCKET",
        "QUEUE",
        "SENT",
        "PACKETS",
        "DROPS",
        "OVERLIMITS",
        "BACKLOG",
        "LAST",
    ];
    let mut lines: Vec<Vec<String>> = vec![header.iter().map(|s| (*s).to_string()).collect()];
    let unknown = |v: &Option<String>| v.clone().unwrap_or_else(|| "?".into());
    for r in rows {
        let names = [
            unknown(&r.network),
            unknown(&r.container_id).chars().take(12).collect(),
            unknown(&r.ifname),
        ];
        let mut any = false;
        for (dir, d) in r.directions() {
            any = true;
            let c = &d.counters;
            lines.push(
                names
                    .iter()
                    .cloned()
                    .chain([
                        d.device.clone(),
                        dir.to_string(),
                        d.child
                            .as_ref()
                            .map_or_else(|| "tbf".into(), |c| format!("tbf+{c}")),
                        bits_text(d.rate_bits as f64),
                        bytes_text(d.burst_bytes as f64),
                        bytes_text(f64::from(d.limit_bytes)),
                        bytes_text(c.bytes as f64),
                        c.packets.to_string(),
                        c.drops.to_string(),
                        c.overlimits.to_string(),
                        format!("{}/{}p", bytes_text(f64::from(c.backlog)), c.qlen),
                        d.current_bits.map_or_else(|| "-".into(), bits_text),
                    ])
                    .collect(),
            );
        }
        if !any {
            // An ifb of ours whose TBF is gone: listed, so it is not missed.
            let dev = r.ifb.clone().or_else(|| r.host_veth.clone()).unwrap_or_default();
            let mut l: Vec<String> = names.to_vec();
            l.push(dev);
            l.push("none".into());
            l.extend(std::iter::repeat_n("-".to_string(), header.len() - 5));
            lines.push(l);
        }
    }
    let widths: Vec<usize> = (0..header.len())
        .map(|i| lines.iter().map(|l| l[i].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for l in &lines {
        let mut line = String::new();
        for (i, cell) in l.iter().enumerate() {
            let _ = write!(line, "{cell:<w$}  ", w = widths[i]);
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    if rows.is_empty() {
        out.push_str("(no bandwidth attachments on this node)\n");
    }
    out
}

fn direction_json(d: &Direction) -> Value {
    let c = &d.counters;
    json!({
        "device": d.device,
        "childQdisc": d.child,
        "rateBitsPerSecond": d.rate_bits,
        "burstBytes": d.burst_bytes,
        "queueLimitBytes": d.limit_bytes,
        "bytes": c.bytes,
        "packets": c.packets,
        "drops": c.drops,
        "overlimits": c.overlimits,
        "requeues": c.requeues,
        "backlogBytes": c.backlog,
        "backlogPackets": c.qlen,
        "lastIntervalBitsPerSecond": d.current_bits,
    })
}

/// The report for scripts: names `null` where unknown.
pub fn json_report(rows: &[Row], interval: Duration) -> Value {
    let list: Vec<Value> = rows
        .iter()
        .map(|r| {
            json!({
                "known": r.known(),
                "network": r.network,
                "containerID": r.container_id,
                "ifName": r.ifname,
                "hostVeth": r.host_veth,
                "ifb": r.ifb,
                "ingress": r.ingress.as_ref().map(direction_json),
                "egress": r.egress.as_ref().map(direction_json),
            })
        })
        .collect();
    json!({"intervalSeconds": interval.as_secs_f64(), "attachments": list})
}

/// A label value as the text exposition format wants it.
pub fn escape_label(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

type Metric = (
    &'static str,
    &'static str,
    &'static str,
    fn(&Direction) -> Option<f64>,
);

const METRICS: &[Metric] = &[
    (
        "rate_bits_per_second",
        "gauge",
        "Configured rate of the shaper.",
        |d| Some(d.rate_bits as f64),
    ),
    (
        "burst_bytes",
        "gauge",
        "What the token bucket holds, in bytes.",
        |d| Some(d.burst_bytes as f64),
    ),
    (
        "queue_limit_bytes",
        "gauge",
        "The queue behind an empty bucket, in bytes.",
        |d| Some(f64::from(d.limit_bytes)),
    ),
    ("sent_bytes_total", "counter", "Bytes the shaper sent.", |d| {
        Some(d.counters.bytes as f64)
    }),
    ("sent_packets_total", "counter", "Packets the shaper sent.", |d| {
        Some(d.counters.packets as f64)
    }),
    (
        "dropped_packets_total",
        "counter",
        "Packets the shaper dropped.",
        |d| Some(f64::from(d.counters.drops)),
    ),
    (
        "overlimits_total",
        "counter",
        "Times a packet waited for tokens.",
        |d| Some(f64::from(d.counters.overlimits)),
    ),
    ("backlog_bytes", "gauge", "Bytes queued now.", |d| {
        Some(f64::from(d.counters.backlog))
    }),
    ("backlog_packets", "gauge", "Packets queued now.", |d| {
        Some(f64::from(d.counters.qlen))
    }),
    (
        "last_interval_bits_per_second",
        "gauge",
        "Bits per second sent over the sampling interval.",
        |d| d.current_bits,
    ),
];

/// node-exporter textfile format: HELP and TYPE once per metric, samples
/// labelled with network, container_id, interface (the container's), device
/// (the one the TBF is on) and direction; unknown names are empty.
pub fn prometheus(rows: &[Row]) -> String {
    let mut out = String::new();
    let name = format!("{METRIC_PREFIX}attachments");
    let _ = writeln!(out, "# HELP {name} Attachments with a shaper on this node.");
    let _ = writeln!(out, "# TYPE {name} gauge");
    let known = rows.iter().filter(|r| r.known()).count();
    let _ = writeln!(out, "{name}{{known=\"true\"}} {known}");
    let _ = writeln!(out, "{name}{{known=\"false\"}} {}", rows.len() - known);
    for (suffix, kind, help, value) in METRICS {
        let name = format!("{METRIC_PREFIX}{suffix}");
        let samples: Vec<String> = rows
            .iter()
            .flat_map(|r| r.directions().map(move |(dir, d)| (r, dir, d)))
            .filter_map(|(r, dir, d)| {
                let v = value(d)?;
                let label = |v: &Option<String>| escape_label(v.as_deref().unwrap_or(""));
                Some(format!(
                    "{name}{{network=\"{}\",container_id=\"{}\",interface=\"{}\",device=\"{}\",direction=\"{dir}\"}} {v}",
                    label(&r.network),
                    label(&r.container_id),
                    label(&r.ifname),
                    escape_label(&d.device),
                ))
            })
            .collect();
        if samples.is_empty() {
            continue;
        }
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} {kind}");
        for s in samples {
            out.push_str(&s);
            out.push('\n');
        }
    }
    out
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Table,
    Json,
    Prometheus,
}

/// What `bandwidth stats` was asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    pub format: Format,
    /// Between the two samples; zero takes one and reports no current rate.
    pub interval: Duration,
    pub help: bool,
}

pub const USAGE: &str = "usage: bandwidth stats [--json | --prometheus] [--interval DURATION]

Lists every attachment this plugin shapes on the node (network, container,
interface, rate, bucket, queue limit, counters) and the rate over the last
interval (default 1s; 0 takes one sample). DURATION: 500ms, 1s, 2.5s, 3.
  --json        one JSON document, for scripts
  --prometheus  node-exporter textfile format (metrics cni_bandwidth_*)
";

/// `1s`, `500ms`, `2.5` (seconds); at most a minute.
pub fn parse_interval(s: &str) -> Result<Duration, String> {
    let (num, scale) = if let Some(n) = s.strip_suffix("ms") {
        (n, 1e-3)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1.0)
    } else {
        (s, 1.0)
    };
    let v: f64 = num
        .parse()
        .map_err(|_| format!("invalid interval {s:?}: want e.g. 1s or 500ms"))?;
    let secs = v * scale;
    if !(0.0..=60.0).contains(&secs) {
        return Err(format!("interval {s:?} out of range: 0 to 60s"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// The arguments after `stats`.
pub fn parse_options(args: &[String]) -> Result<Options, String> {
    let mut o = Options {
        format: Format::Table,
        interval: Duration::from_secs(1),
        help: false,
    };
    let mut format_given = None::<&str>;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut set_format = |f: Format, name: &'static str| match format_given {
            Some(other) if other != name => Err(format!("{other} and {name} exclude each other")),
            _ => {
                format_given = Some(name);
                o.format = f;
                Ok(())
            }
        };
        match a.as_str() {
            "--json" => set_format(Format::Json, "--json")?,
            "--prometheus" => set_format(Format::Prometheus, "--prometheus")?,
            "-h" | "--help" => o.help = true,
            "--interval" => {
                let v = it.next().ok_or("--interval needs a duration")?;
                o.interval = parse_interval(v)?;
            }
            other => match other.strip_prefix("--interval=") {
                Some(v) => o.interval = parse_interval(v)?,
                None => return Err(format!("unknown argument {other:?}")),
            },
        }
    }
    Ok(o)
}

/// Two samples `interval` apart (one when zero), as rows.
fn collect(interval: Duration) -> nl_ops::Result<Vec<Row>> {
    let mut sock = Socket::new()?;
    let first = sample(&mut sock)?;
    if interval.is_zero() {
        return Ok(attachments(&first, Psched::read()));
    }
    let t0 = Instant::now();
    std::thread::sleep(interval);
    let second = Sample {
        qdiscs: sock.all_qdiscs()?,
        ..first.clone()
    };
    let secs = t0.elapsed().as_secs_f64();
    let mut rows = attachments(&second, Psched::read());
    with_rates(&mut rows, &first.qdiscs, secs);
    Ok(rows)
}

/// `bandwidth stats ...`: the report on stdout; errors on stderr, exit 1
/// (2 for a wrong command line).
pub fn run(args: &[String], stdout: &mut dyn Write, stderr: &mut dyn Write) -> i32 {
    let o = match parse_options(args) {
        Ok(o) => o,
        Err(e) => {
            let _ = write!(stderr, "bandwidth stats: {e}\n{USAGE}");
            return 2;
        }
    };
    if o.help {
        return match stdout.write_all(USAGE.as_bytes()) {
            Ok(()) => 0,
            Err(_) => 1,
        };
    }
    let rows = match collect(o.interval) {
        Ok(r) => r,
        Err(e) => {
            let _ = writeln!(stderr, "bandwidth stats: {e}");
            return 1;
        }
    };
    let text = match o.format {
        Format::Table => table(&rows),
        Format::Json => match serde_json::to_string_pretty(&json_report(&rows, o.interval)) {
            Ok(s) => s + "\n",
            Err(e) => {
                let _ = writeln!(stderr, "bandwidth stats: {e}");
                return 1;
            }
        },
        Format::Prometheus => prometheus(&rows),
    };
    match stdout.write_all(text.as_bytes()).and_then(|()| stdout.flush()) {
        Ok(()) => 0,
        Err(e) => {
            let _ = writeln!(stderr, "bandwidth stats: failed to write the report: {e}");
            1
        }
    }
}

#[cfg(test)]
#[path = "stats_tests.rs"]
mod tests;
