//! One measured process: whole-process wall time from spawn to wait, peak
//! RSS, exit status and stdout. Stdin and stdout are files prepared outside
//! the timed region.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Instant;

#[derive(Debug, Clone)]
pub struct Run {
    /// Wall time in nanoseconds.
    pub ns: f64,
    /// Peak RSS in KiB (from GNU time; -1 when unknown).
    pub rss_kb: i64,
    pub status: i32,
    pub out: String,
}

impl Run {
    pub fn ok(&self) -> bool {
        self.status == 0
    }
}

static SEQ: AtomicU32 = AtomicU32::new(0);

/// A file of this process's own in the temporary directory, already unlinked.
fn scratch() -> std::io::Result<File> {
    let n = SEQ.fetch_add(1, Ordering::Relaxed);
    let path = std::env::temp_dir().join(format!("cnibench-{}-{n}", std::process::id()));
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&path)?;
    std::fs::remove_file(&path)?;
    Ok(f)
}

fn scratch_path(tag: &str) -> std::path::PathBuf {
    let n = SEQ.fetch_add(1, Ordering::Relaxed);
    std::env::temp_dir().join(format!("cnibench-{tag}-{}-{n}", std::process::id()))
}

/// Runs `argv` with exactly `env`. With `rss`, under GNU time for its peak
/// RSS: wait4's own figure would count this process's memory, which a child
/// shares until exec.
pub fn spawn(argv: &[&str], env: &[(&str, &str)], stdin: &[u8], rss: bool) -> Run {
    match try_spawn(argv, env, stdin, rss) {
        Ok(r) => r,
        Err(e) => Run {
            ns: f64::NAN,
            rss_kb: -1,
            status: 127,
            out: format!("cannot run {}: {e}", argv.first().copied().unwrap_or_default()),
        },
    }
}

fn try_spawn(argv: &[&str], env: &[(&str, &str)], stdin: &[u8], rss: bool) -> std::io::Result<Run> {
    let rss_file = rss.then(|| scratch_path("rss"));
    let mut full: Vec<String> = Vec::new();
    if let Some(f) = &rss_file {
        full.extend(["/usr/bin/time", "-f", "%M", "-o"].map(String::from));
        full.push(f.to_string_lossy().into_owned());
    }
    full.extend(argv.iter().map(|s| s.to_string()));
    let mut fin = scratch()?;
    fin.write_all(stdin)?;
    fin.rewind()?;
    let mut fout = scratch()?;
    let mut cmd = Command::new(&full[0]);
    cmd.args(&full[1..])
        .env_clear()
        .envs(env.iter().copied())
        .stdin(Stdio::from(fin))
        .stdout(Stdio::from(fout.try_clone()?))
        .stderr(Stdio::null());
    let t0 = Instant::now();
    let mut child = cmd.spawn()?;
    let status = child.wait()?;
    let ns = t0.elapsed().as_secs_f64() * 1e9;
    drop(cmd);
    fout.rewind()?;
    let mut out = Vec::new();
    fout.read_to_end(&mut out)?;
    let code = status.code().unwrap_or_else(|| {
        use std::os::unix::process::ExitStatusExt;
        -status.signal().unwrap_or(0)
    });
    let rss_kb = match &rss_file {
        Some(f) => {
            let kb = std::fs::read_to_string(f)
                .ok()
                .and_then(|t| t.split_whitespace().last().and_then(|w| w.parse().ok()))
                .unwrap_or(-1);
            let _ = std::fs::remove_file(f);
            kb
        }
        None => -1,
    };
    Ok(Run {
        ns,
        rss_kb,
        status: code,
        out: String::from_utf8_lossy(&out).into_owned(),
    })
}

/// The median; NaN for none.
pub fn median(xs: &[f64]) -> f64 {
    let mut v: Vec<f64> = xs.iter().copied().filter(|x| !x.is_nan()).collect();
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// Median time of the runs that succeeded.
pub fn median_ok(runs: &[Run]) -> f64 {
    let ns: Vec<f64> = runs.iter().filter(|r| r.ok()).map(|r| r.ns).collect();
    median(&ns)
}
