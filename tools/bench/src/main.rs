//! Benchmark of this project's sbr and bandwidth against the reference
//! plugins, run through scripts/bench (as root). Everything happens in
//! throwaway network namespaces: a "host" namespace this process's one
//! thread enters, a container namespace per scenario, and one for the peers
//! of the scaling veths. Both implementations run interleaved on the same
//! namespaces and the same inputs; every number is a median over repeats.
//! Writes a Markdown page and SVG charts.
//!
//! Subcommands for scripts/demo: `goodput` (an iperf3 report's goodput) and
//! `shaped` (the workspace's one verdict on it).

mod floor;
mod goodput;
mod load;
mod measure;
mod pod;
mod report;
mod spawn;
mod svg;

use std::path::PathBuf;
use std::time::Instant;

/// One line of progress on stderr.
pub fn log(msg: &str) {
    eprintln!("{msg}");
}

const USAGE: &str = "usage: bench --ours DIR [--reference DIR] [--also LABEL=DIR]... --out FILE --charts DIR
             [--quick] [--only load] [--load-rates MBIT,...] [--load-cc CC,...] [--root DIR]
       bench goodput REPORT.json [-R]
       bench shaped RATIO
Run through scripts/bench, as root (see its --help).";

/// The run's settings: the command line and what --quick sets.
#[derive(Debug, Clone)]
pub struct Args {
    pub ours: String,
    pub reference: String,
    /// Other builds of ours, timed A/B in the same latency rounds.
    pub also: Vec<(String, String)>,
    pub out: PathBuf,
    pub charts: PathBuf,
    pub quick: bool,
    pub only_load: bool,
    pub load_rates: Vec<u64>,
    pub load_cc: Vec<String>,
    pub load_window: f64,
    pub repeats: usize,
    pub scale_repeats: usize,
    pub accuracy_repeats: usize,
    pub seconds: u64,
    pub veths: Vec<usize>,
    pub ifaces: Vec<usize>,
    pub rates: Vec<u64>,
    /// The repository: paths on the page are relative to it, its commit is named.
    pub root: PathBuf,
}

fn parse(argv: &[String]) -> Result<Args, String> {
    let mut ours = None;
    let mut reference = "/usr/lib/cni".to_string();
    let mut also = Vec::new();
    let (mut out, mut charts) = (None, None);
    let (mut quick, mut only_load) = (false, false);
    let mut load_rates = None;
    let mut load_cc = None;
    let mut root = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."));
    let mut it = argv.iter();
    while let Some(a) = it.next() {
        let mut value = || it.next().cloned().ok_or_else(|| format!("{a} needs a value"));
        match a.as_str() {
            "--ours" => ours = Some(value()?),
            "--reference" => reference = value()?,
            "--also" => {
                let v = value()?;
                match v.split_once('=') {
                    Some((l, d)) if !l.is_empty() && !d.is_empty() => {
                        also.push((l.to_string(), d.to_string()))
                    }
                    _ => return Err(format!("--also: expected LABEL=DIR, got {v:?}")),
                }
            }
            "--out" => out = Some(PathBuf::from(value()?)),
            "--charts" => charts = Some(PathBuf::from(value()?)),
            "--quick" => quick = true,
            "--only" => match value()?.as_str() {
                "load" => only_load = true,
                other => return Err(format!("--only takes: load (not {other:?})")),
            },
            "--load-rates" => {
                let v = value()?;
                let rates: Result<Vec<u64>, _> =
                    v.split(',').filter(|x| !x.is_empty()).map(str::parse).collect();
                load_rates = Some(rates.map_err(|e| format!("--load-rates {v:?}: {e}"))?);
            }
            "--load-cc" => load_cc = Some(value()?.split(',').map(String::from).collect()),
            "--root" => root = PathBuf::from(value()?),
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument {other}")),
        }
    }
    let ours = ours.ok_or("--ours is required")?;
    let out = out.ok_or("--out is required")?;
    let charts = charts.ok_or("--charts is required")?;
    let root = std::fs::canonicalize(&root).unwrap_or(root);
    let mut a = Args {
        ours: absolute(&ours),
        reference: absolute(&reference),
        also: also.into_iter().map(|(l, d)| (l, absolute(&d))).collect(),
        out,
        charts,
        quick,
        only_load,
        load_rates: load_rates.unwrap_or_else(|| load::RATES.to_vec()),
        load_cc: load_cc.unwrap_or_else(|| {
            if quick {
                vec!["cubic".into()]
            } else {
                load::CCS.iter().map(|s| s.to_string()).collect()
            }
        }),
        load_window: if quick { 3.0 } else { 6.0 },
        repeats: 31,
        scale_repeats: 11,
        accuracy_repeats: 5,
        seconds: 3,
        veths: vec![10, 1000, 4000],
        ifaces: vec![1, 50],
        rates: vec![10, 100, 1000],
        root,
    };
    if quick {
        (a.repeats, a.scale_repeats, a.accuracy_repeats, a.seconds) = (5, 3, 1, 2);
        (a.veths, a.ifaces) = (vec![10, 200], vec![1, 10]);
    }
    Ok(a)
}

/// Plugins are started by absolute path (the spawned process has no PATH
/// of this one's to search).
fn absolute(dir: &str) -> String {
    std::fs::canonicalize(dir).map_or_else(|_| dir.to_string(), |p| p.to_string_lossy().into_owned())
}

fn main() {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let code = match argv.first().map(String::as_str) {
        Some("goodput") => goodput::goodput_main(&argv[1..]),
        Some("shaped") => goodput::shaped_main(&argv[1..]),
        _ => match parse(&argv) {
            Ok(a) => run(a),
            Err(e) if e.is_empty() => {
                println!("{USAGE}");
                0
            }
            Err(e) => {
                eprintln!("bench: {e}\n{USAGE}");
                2
            }
        },
    };
    std::process::exit(code);
}

fn run(a: Args) -> i32 {
    match measure_and_write(&a) {
        Ok(0) => 0,
        Ok(ours_failed) => {
            if !a.only_load {
                log(&format!(
                    "{ours_failed} invocation(s) of our plugins failed; see the page"
                ));
            }
            1
        }
        Err(e) => {
            eprintln!("bench: {e}");
            1
        }
    }
}

/// The run and its page; how many invocations of ours failed.
fn measure_and_write(a: &Args) -> Result<usize, String> {
    let dirs = [&a.ours, &a.reference]
        .into_iter()
        .chain(a.also.iter().map(|(_, d)| d));
    for d in dirs {
        for plugin in report::PLUGINS {
            let p = format!("{d}/{plugin}");
            if nix::unistd::access(p.as_str(), nix::unistd::AccessFlags::X_OK).is_err() {
                return Err(format!("no executable {p}"));
            }
        }
    }
    std::fs::create_dir_all(&a.charts)
        .and_then(|()| match a.out.parent().filter(|p| !p.as_os_str().is_empty()) {
            Some(parent) => std::fs::create_dir_all(parent),
            None => Ok(()),
        })
        .map_err(|e| format!("cannot make the output directories: {e}"))?;
    pod::unwind_on_signals()?;
    let t0 = Instant::now();
    let mut b = measure::Bench::new(a.clone())?;
    b.run()?;
    let secs = t0.elapsed().as_secs();
    if a.only_load {
        load::write_only(&mut b)?;
        log(&format!(
            "wrote the latency-under-load section of {} ({secs}s)",
            a.out.display()
        ));
    } else {
        for (text, ok) in report::write(&mut b)? {
            log(&format!("{text}: {}", if ok { "met" } else { "not met" }));
        }
        log(&format!(
            "wrote {} and charts in {} ({secs}s)",
            a.out.display(),
            a.charts.display()
        ));
    }
    Ok(b.failures.iter().filter(|f| f.0 == measure::OURS).count())
}
