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
pub fn scratch() -> std::io::Result<File> {
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

/// All of `f` from its start.
pub fn read_back(mut f: File) -> std::io::Result<String> {
    let mut out = Vec::new();
    f.rewind()?;
    f.read_to_end(&mut out)?;
    Ok(String::from_utf8_lossy(&out).into_owned())
}

/// Runs `argv` with exactly `env`. With `rss`, under GNU time for its peak
/// RSS: wait4's own figure would count this process's memory, which a child
/// shares until exec.
pub fn spawn(argv: &[&str], env: &[(&str, &str)], stdin: &[u8], rss: bool) -> Run {
    try_spawn(argv, env, stdin, rss).unwrap_or_else(|e| Run {
        ns: f64::NAN,
        rss_kb: -1,
        status: 127,
        out: format!("cannot run {}: {e}", argv.first().copied().unwrap_or_default()),
    })
}

fn try_spawn(argv: &[&str], env: &[(&str, &str)], stdin: &[u8], rss: bool) -> std::io::Result<Run> {
    let time: &[&str] = if rss { &["/usr/bin/time", "-f", "%M"] } else { &[] };
    let full: Vec<&str> = time.iter().chain(argv).copied().collect();
    let (prog, args) = full.split_first().ok_or(std::io::ErrorKind::InvalidInput)?;
    let mut fin = scratch()?;
    fin.write_all(stdin)?;
    fin.rewind()?;
    let (fout, ferr) = (scratch()?, scratch()?);
    let mut cmd = Command::new(prog);
    cmd.args(args)
        .env_clear()
        .envs(env.iter().copied())
        .stdin(Stdio::from(fin))
        .stdout(Stdio::from(fout.try_clone()?))
        // GNU time writes the figure last on stderr.
        .stderr(if rss {
            Stdio::from(ferr.try_clone()?)
        } else {
            Stdio::null()
        });
    let t0 = Instant::now();
    let status = cmd.spawn()?.wait()?;
    let ns = t0.elapsed().as_secs_f64() * 1e9;
    drop(cmd);
    let code = status.code().unwrap_or_else(|| {
        use std::os::unix::process::ExitStatusExt;
        -status.signal().unwrap_or(0)
    });
    let rss_kb = if rss {
        read_back(ferr)?
            .split_whitespace()
            .last()
            .and_then(|w| w.parse().ok())
    } else {
        None
    };
    Ok(Run {
        ns,
        rss_kb: rss_kb.unwrap_or(-1),
        status: code,
        out: read_back(fout)?,
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
