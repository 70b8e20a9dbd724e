//! Benchmark of this project's sbr and bandwidth against the reference
//! plugins, run through scripts/bench (as root). Everything happens in
//! throwaway network namespaces of the test kit: a "host" namespace this
//! process's one thread enters, the container namespaces of its pods, and
//! the peers of the scaling veths. Both implementations run interleaved on
//! the same namespaces and the same inputs; every number is a median over repeats.
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
    let mut a = Args {
        ours: String::new(),
        reference: "/usr/lib/cni".into(),
        also: Vec::new(),
        out: PathBuf::new(),
        charts: PathBuf::new(),
        quick: argv.iter().any(|a| a == "--quick"),
        only_load: false,
        load_rates: load::RATES.to_vec(),
        load_cc: load::CCS.map(String::from).to_vec(),
        load_window: 6.0,
        repeats: 31,
        scale_repeats: 11,
        accuracy_repeats: 5,
        seconds: 3,
        veths: vec![10, 1000, 4000],
        ifaces: vec![1, 50],
        rates: vec![10, 100, 1000],
        root: PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../..")),
    };
    if a.quick {
        (a.repeats, a.scale_repeats, a.accuracy_repeats, a.seconds) = (5, 3, 1, 2);
        (a.veths, a.ifaces, a.load_cc, a.load_window) =
            (vec![10, 200], vec![1, 10], vec!["cubic".into()], 3.0);
    }
    let mut it = argv.iter();
    while let Some(arg) = it.next() {
        let mut value = || it.next().cloned().ok_or_else(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--ours" => a.ours = absolute(&value()?),
            "--reference" => a.reference = absolute(&value()?),
            "--also" => {
                let v = value()?;
                let (l, d) = (v.split_once('='))
                    .filter(|(l, d)| !l.is_empty() && !d.is_empty())
                    .ok_or_else(|| format!("--also: expected LABEL=DIR, got {v:?}"))?;
                a.also.push((l.to_string(), absolute(d)));
            }
            "--out" => a.out = PathBuf::from(value()?),
            "--charts" => a.charts = PathBuf::from(value()?),
            "--quick" => {}
            "--only" => match value()?.as_str() {
                "load" => a.only_load = true,
                other => return Err(format!("--only takes: load (not {other:?})")),
            },
            "--load-rates" => {
                let v = value()?;
                let rates: Result<Vec<u64>, _> =
                    v.split(',').filter(|x| !x.is_empty()).map(str::parse).collect();
                a.load_rates = rates.map_err(|e| format!("--load-rates {v:?}: {e}"))?;
            }
            "--load-cc" => a.load_cc = value()?.split(',').map(String::from).collect(),
            "--root" => a.root = PathBuf::from(value()?),
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument {other}")),
        }
    }
    let (out, charts) = (a.out.as_os_str().is_empty(), a.charts.as_os_str().is_empty());
    if let Some((flag, _)) = [
        ("--ours", a.ours.is_empty()),
        ("--out", out),
        ("--charts", charts),
    ]
    .iter()
    .find(|r| r.1)
    {
        return Err(format!("{flag} is required"));
    }
    a.root = std::fs::canonicalize(&a.root).unwrap_or(a.root);
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
