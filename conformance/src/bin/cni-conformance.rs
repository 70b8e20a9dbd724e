//! cni-conformance: the black-box suite. Runs every case against each
//! `--plugins DIR` and prints a table of cases by directory; exits non-zero
//! when a case fails for the first directory (the project's own).

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cni_testkit::{ns, skip};
use conformance::suite::{cases, Case, Ctx, Failure, RefStates};

const USAGE: &str = "usage: cni-conformance --plugins DIR [--plugins DIR ...] [options]

Runs the conformance cases against the plugins in each DIR (as root; every
case makes its own network namespaces). The first DIR must pass them all.

options:
  --plugins DIR       a directory with sbr and bandwidth binaries (repeat to compare)
  --reference DIR     reference plugins for differential cases and ptp/host-local
                      (default /usr/lib/cni when it exists)
  --no-reference      no reference: differential cases skip (nothing to compare)
  --filter TEXT       only cases whose group or name contains TEXT (repeat: any)
  --needs-any         also (or, without --filter, only) the cases that need a
                      kernel feature (see --list)
  --exclude GROUP     leave out the cases of GROUP, e.g. podman (repeat)
  --cni-run PATH      the cni-run binary (default: next to this one)
  --timeout SECONDS   per plugin call (default 30)
  --list              list the cases and exit
  --require-features  a case whose kernel features are missing fails (default:
                      shown as n/a; scripts/test-vm boots a kernel with them)
  -v, --verbose       print every failure's details, also for later dirs";

struct Opts {
    dirs: Vec<PathBuf>,
    reference: Option<PathBuf>,
    filters: Vec<String>,
    needs_any: bool,
    excludes: Vec<String>,
    cni_run: Option<PathBuf>,
    timeout: Duration,
    list: bool,
    verbose: bool,
    require_features: bool,
}

fn parse(args: &[String]) -> Result<Opts, String> {
    let mut o = Opts {
        dirs: Vec::new(),
        reference: Some(PathBuf::from("/usr/lib/cni")).filter(|p| p.join("sbr").exists()),
        filters: Vec::new(),
        needs_any: false,
        excludes: Vec::new(),
        cni_run: None,
        timeout: Duration::from_secs(30),
        list: false,
        verbose: false,
        require_features: false,
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut val = || it.next().cloned().ok_or_else(|| format!("{a} needs a value"));
        match a.as_str() {
            "--plugins" => o.dirs.push(val()?.into()),
            "--reference" => o.reference = Some(val()?.into()),
            "--no-reference" => o.reference = None,
            "--filter" => o.filters.push(val()?),
            "--needs-any" => o.needs_any = true,
            "--exclude" => o.excludes.push(val()?),
            "--cni-run" => o.cni_run = Some(val()?.into()),
            "--timeout" => {
                let v = val()?;
                o.timeout = Duration::from_secs(v.parse().map_err(|_| format!("bad --timeout {v}"))?);
            }
            "--list" => o.list = true,
            "--require-features" => o.require_features = true,
            "-v" | "--verbose" => o.verbose = true,
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument {other}")),
        }
    }
    if o.dirs.is_empty() && !o.list {
        return Err("give at least one --plugins DIR".into());
    }
    Ok(o)
}

/// At most 30 lines of a failure's story (a Go panic trace is long).
fn clip(s: &str) -> String {
    let lines: Vec<&str> = s.lines().collect();
    if lines.len() <= 30 {
        return s.to_string();
    }
    format!("{}\n... {} more lines", lines[..30].join("\n"), lines.len() - 30)
}

fn cell(r: &Result<(), Failure>) -> &'static str {
    match r {
        Ok(()) => "pass",
        Err(Failure::Fail(_)) => "FAIL",
        Err(Failure::Skip(_)) => "—",
        Err(Failure::NotHere(_)) => "n/a",
    }
}

/// Whether `--filter`, `--needs-any` and `--exclude` select the case.
fn selected(opts: &Opts, c: &Case) -> bool {
    let has = |t: &String| c.group.contains(t.as_str()) || c.name.contains(t.as_str());
    let chosen = (opts.filters.is_empty() && !opts.needs_any)
        || opts.filters.iter().any(has)
        || (opts.needs_any && !c.needs.is_empty());
    chosen && !opts.excludes.iter().any(|g| c.group == g.as_str())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let opts = match parse(&args) {
        Ok(o) => o,
        Err(e) if e.is_empty() => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("cni-conformance: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let all: Vec<_> = cases::all().into_iter().filter(|c| selected(&opts, c)).collect();
    if opts.list {
        for c in &all {
            let needs = if c.needs.is_empty() {
                String::new()
            } else {
                format!(" (needs {})", c.needs.join(", "))
            };
            println!("{:<10} {}{needs}", c.group, c.name);
        }
        return ExitCode::SUCCESS;
    }
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("cni-conformance: needs root (it creates network namespaces)");
        return ExitCode::from(2);
    }
    let cni_run = opts.cni_run.clone().unwrap_or_else(|| {
        std::env::current_exe()
            .ok()
            .and_then(|p| p.parent().map(|d| d.join("cni-run")))
            .unwrap_or_default()
    });
    if !cni_run.is_file() {
        eprintln!(
            "cni-conformance: no cni-run at {} (see --cni-run)",
            cni_run.display()
        );
        return ExitCode::from(2);
    }
    for d in &opts.dirs {
        if !d.join("sbr").is_file() || !d.join("bandwidth").is_file() {
            eprintln!(
                "cni-conformance: {} has no sbr and bandwidth binaries",
                d.display()
            );
            return ExitCode::from(2);
        }
    }
    ns::sweep_stale();
    let tmp_root = std::env::temp_dir().join(format!("cni-conformance-{}", std::process::id()));
    let ref_states: RefStates = Arc::default();
    let started = Instant::now();
    // results[case][dir]
    let mut results: Vec<Vec<Result<(), Failure>>> = vec![Vec::new(); all.len()];
    for (di, dir) in opts.dirs.iter().enumerate() {
        let ctx = Ctx {
            dir: std::path::absolute(dir).unwrap_or_else(|_| dir.clone()),
            reference: opts.reference.clone(),
            tmp: tmp_root.join(di.to_string()),
            cni_run: cni_run.clone(),
            timeout: opts.timeout,
            ref_states: ref_states.clone(),
        };
        for (ci, case) in all.iter().enumerate() {
            let t = Instant::now();
            let r = case.run(&ctx);
            eprintln!(
                "[{:>6.2}s] {} | {:<9} {} | {}",
                t.elapsed().as_secs_f64(),
                cell(&r),
                case.group,
                case.name,
                dir.display()
            );
            results[ci].push(r);
        }
    }
    let _ = std::fs::remove_dir_all(&tmp_root);

    let width = all
        .iter()
        .map(|c| c.group.len() + c.name.len() + 3)
        .max()
        .unwrap_or(10);
    let mut header = format!("| {:<width$} |", "case");
    let mut rule = format!("|{}|", "-".repeat(width + 2));
    for d in &opts.dirs {
        let name = d.display().to_string();
        header.push_str(&format!(" {name} |"));
        rule.push_str(&format!("{}|", "-".repeat(name.len() + 2)));
    }
    println!("{header}\n{rule}");
    for (ci, case) in all.iter().enumerate() {
        let mut line = format!("| {:<width$} |", format!("{}: {}", case.group, case.name));
        for (di, d) in opts.dirs.iter().enumerate() {
            let w = d.display().to_string().len();
            line.push_str(&format!(" {:<w$} |", cell(&results[ci][di])));
        }
        println!("{line}");
    }
    let mut first_failed = 0;
    // scripts/test sets it (as for cargo test): where every case must run, a
    // skipped case of the first column fails the run.
    let no_skip = skip::no_skip();
    for (di, d) in opts.dirs.iter().enumerate() {
        let (mut pass, mut fail, mut skip, mut not_here) = (0, 0, 0, 0);
        for (ci, case) in all.iter().enumerate() {
            match &results[ci][di] {
                Ok(()) => pass += 1,
                Err(Failure::Skip(why)) => {
                    skip += 1;
                    if di == 0 || opts.verbose {
                        println!(
                            "\n-- skipped for {}: {}: {}\n{why}",
                            d.display(),
                            case.group,
                            case.name
                        );
                    }
                }
                Err(Failure::NotHere(why)) => {
                    not_here += 1;
                    if di == 0 || opts.verbose {
                        println!(
                            "\n-- not run for {}: {}: {}\n{why}",
                            d.display(),
                            case.group,
                            case.name
                        );
                    }
                }
                Err(Failure::Fail(why)) => {
                    fail += 1;
                    if di == 0 || opts.verbose {
                        println!(
                            "\n-- FAILED for {}: {}: {}\n{}",
                            d.display(),
                            case.group,
                            case.name,
                            clip(why)
                        );
                    }
                }
            }
        }
        // Worded unlike a test runner's closing line: the reference column
        // is expected to fail and must not read as this run's verdict.
        let total = pass + fail + skip + not_here;
        println!(
            "\n{}: {pass} of {total} cases pass ({fail} fail, {skip} skipped)",
            d.display()
        );
        if not_here > 0 {
            println!("{not_here} case(s) need kernel features this kernel lacks (n/a)");
        }
        if di == 0 {
            first_failed = fail;
            if not_here > 0 && opts.require_features {
                println!("{not_here} case(s) not run and --require-features is given: a failure here");
                first_failed += not_here;
            }
            if skip > 0 && no_skip {
                println!(
                    "{skip} case(s) skipped and {} is set: a skip is a failure here",
                    skip::NO_SKIP_ENV
                );
                first_failed += skip;
            }
        }
    }
    println!("total time {:.1}s", started.elapsed().as_secs_f64());
    if first_failed > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Opts {
        let v: Vec<String> = a.iter().map(|s| s.to_string()).collect();
        parse(&v).expect("parses")
    }

    #[test]
    fn needs_any_adds_the_cases_that_need_a_feature() {
        let plain = Case::new("sbr", "single IPv4 address", |_| Ok(()));
        let other = Case::new("sbr", "two addresses", |_| Ok(()));
        let vrf = Case::new("sbr", "vrf mode", |_| Ok(())).needs(&["vrf"]);
        let group = args(&["--plugins", "d", "--filter", "single", "--needs-any"]);
        assert!(selected(&group, &plain));
        assert!(!selected(&group, &other));
        assert!(selected(&group, &vrf));
        let only = args(&["--plugins", "d", "--needs-any"]);
        assert!(!selected(&only, &plain));
        assert!(selected(&only, &vrf));
        // A group, not a word of a name: "containerd's burst" stays.
        let burst = Case::new("acceptance", "containerd's burst", |_| Ok(()));
        let ctrd = Case::new("containerd", "pod with 1M", |_| Ok(()));
        let all = args(&["--plugins", "d", "--exclude", "containerd"]);
        assert!(selected(&all, &plain) && selected(&all, &vrf) && selected(&all, &burst));
        assert!(!selected(&all, &ctrd));
    }
}
