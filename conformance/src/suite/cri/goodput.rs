//! TCP goodput into and out of a pod with iperf3, measured where the data
//! arrives, and the rule that separates the token bucket's initial burst
//! from the shaped rate.
//!
//! Runtimes ask for huge buckets (containerd: 2^32-1 bits, 512 MiB), which
//! a veth empties at line rate in a fraction of a second; only then does the
//! rate show. So the receiver's half-second intervals are read, the leading
//! ones above 1.25x the rate are the burst, and the rest (at least
//! [`MIN_WINDOW`] seconds) must average the rate.

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::suite::block_on;
use cni_runtime::exec::Invocation;
use cni_testkit::Ns;

/// Intervals above this factor of the rate are the bucket's burst.
pub const BURST_FACTOR: f64 = 1.25;
/// Shortest steady part that counts as a measurement.
pub const MIN_WINDOW: f64 = 1.5;
const PORT: &str = "5201";

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Interval {
    pub start: f64,
    pub secs: f64,
    pub bytes: u64,
}

/// The shaped part of a transfer.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Steady {
    /// Seconds of burst before it.
    pub burst_secs: f64,
    pub secs: f64,
    /// Bytes per second.
    pub rate: f64,
}

/// `intervals[].sum` of an iperf3 JSON report.
pub fn intervals(report: &Value) -> Vec<Interval> {
    report
        .get("intervals")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|i| {
                    let s = i.get("sum")?;
                    Some(Interval {
                        start: s.get("start")?.as_f64()?,
                        secs: s.get("seconds")?.as_f64()?,
                        bytes: s.get("bytes")?.as_u64()?,
                    })
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Why a transfer gave no shaped measurement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unsteady {
    /// Every interval was above [`BURST_FACTOR`] of the rate.
    NeverShaped(String),
    /// The burst left less than [`MIN_WINDOW`] seconds.
    TooShort(String),
}

impl std::fmt::Display for Unsteady {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Unsteady::NeverShaped(s) | Unsteady::TooShort(s) => f.write_str(s),
        }
    }
}

/// Receiver intervals as percent of the rate, for messages.
pub fn percents(iv: &[Interval], rate: f64) -> String {
    iv.iter()
        .map(|i| format!("{:.0}", per_sec(i) / rate * 100.0))
        .collect::<Vec<_>>()
        .join(" ")
}

fn per_sec(i: &Interval) -> f64 {
    if i.secs > 0.0 {
        i.bytes as f64 / i.secs
    } else {
        0.0
    }
}

/// Splits the burst off and returns the rest's average.
pub fn steady(iv: &[Interval], rate: f64) -> Result<Steady, Unsteady> {
    let first = iv
        .iter()
        .position(|i| per_sec(i) <= BURST_FACTOR * rate)
        .ok_or_else(|| {
            Unsteady::NeverShaped(format!(
                "never shaped: every interval above {BURST_FACTOR}x the rate (% of rate: {})",
                percents(iv, rate)
            ))
        })?;
    let rest = &iv[first..];
    let secs: f64 = rest.iter().map(|i| i.secs).sum();
    let bytes: u64 = rest.iter().map(|i| i.bytes).sum();
    if secs < MIN_WINDOW {
        return Err(Unsteady::TooShort(format!(
            "the burst lasted until {:.1} s, leaving {secs:.1} s of shaped transfer (% of rate: {})",
            iv[first].start,
            percents(iv, rate)
        )));
    }
    Ok(Steady {
        burst_secs: iv[first].start,
        secs,
        rate: bytes as f64 / secs,
    })
}

/// An iperf3 server inside a pod's network namespace, killed on drop.
pub struct PodServer {
    child: Child,
}

impl PodServer {
    pub fn start(pod_netns: &Path) -> Result<PodServer, String> {
        // nsenter execs iperf3 in place: the child's pid is the server's.
        let mut cmd = Command::new("nsenter");
        cmd.arg(format!("--net={}", pod_netns.display()))
            .args([
                "iperf3",
                "--server",
                "--json",
                "--interval",
                "0.5",
                "--port",
                PORT,
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        // It dies with the suite, like the daemon.
        // SAFETY: prctl in the child between fork and exec is async-signal-safe.
        unsafe {
            cmd.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd
            .spawn()
            .map_err(|e| format!("failed to start iperf3 in the pod: {e}"))?;
        Ok(PodServer { child })
    }
}

impl Drop for PodServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Which way the data flows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Node to pod: the host veth's TBF (the pod's ingress).
    IntoPod,
    /// Pod to node: the ifb's TBF (the pod's egress).
    FromPod,
}

/// TCP window for a rate: small enough that the data TCP queues in the
/// bucket's (huge) queue drains in a fraction of a second, so iperf3's end
/// of test, sent on the same path, is not stuck behind it.
pub fn window_bytes(rate_bytes: u64) -> u64 {
    (rate_bytes / 4).clamp(32 * 1024, 128 * 1024)
}

/// Runs one transfer of `secs` from the node namespace `node` to the pod
/// (or back) and returns the receiver's intervals. `rate_bytes` sizes the
/// TCP window (0: iperf3's default).
pub fn transfer(
    node: &Ns,
    pod_ip: &str,
    dir: Direction,
    secs: u32,
    rate_bytes: u64,
) -> Result<Vec<Interval>, String> {
    transfer_with(node, pod_ip, dir, secs, rate_bytes, &[])
}

/// [`transfer`] with more iperf3 client arguments (`--congestion bbr`).
pub fn transfer_with(
    node: &Ns,
    pod_ip: &str,
    dir: Direction,
    secs: u32,
    rate_bytes: u64,
    extra: &[&str],
) -> Result<Vec<Interval>, String> {
    let mut args: Vec<String> = [
        "--client",
        pod_ip,
        "--port",
        PORT,
        "--time",
        &secs.to_string(),
        "--interval",
        "0.5",
        "--connect-timeout",
        "3000",
        "--json",
    ]
    .iter()
    .map(|s| (*s).to_string())
    .collect();
    if rate_bytes > 0 {
        args.extend(["--window".into(), window_bytes(rate_bytes).to_string()]);
    }
    args.extend(extra.iter().map(|s| (*s).to_string()));
    args.push(
        match dir {
            // The receiver is the server: its report comes back with the client's.
            Direction::IntoPod => "--get-server-output",
            Direction::FromPod => "--reverse",
        }
        .into(),
    );
    let mut inv = Invocation::new("iperf3");
    inv.wrapper = vec![
        "ip".into(),
        "netns".into(),
        "exec".into(),
        node.name.clone().into(),
    ];
    inv.args = args.iter().map(Into::into).collect();
    inv.timeout = Duration::from_secs(u64::from(secs) + 30);
    // A transfer that fails before it could run its time failed while
    // setting up: the server still starting, or still closing the previous
    // test ("the server is busy"). Those are retried for up to 8 s; a
    // failure after the data flowed is reported at once.
    let started = Instant::now();
    let mut errors: Vec<String> = Vec::new();
    loop {
        let t = Instant::now();
        let out = block_on(inv.run()).map_err(|e| e.to_string())?;
        let failure = match serde_json::from_slice::<Value>(&out.stdout) {
            Err(e) => format!("iperf3 printed no JSON ({e}): {}", out.stderr_text()),
            Ok(report) => match report.get("error").and_then(Value::as_str) {
                Some(err) => format!("iperf3 failed: {err}"),
                None => {
                    let receiver = match dir {
                        Direction::IntoPod => report
                            .get("server_output_json")
                            .cloned()
                            .ok_or("iperf3 returned no server report")?,
                        Direction::FromPod => report,
                    };
                    // Refused while the server starts is expected; anything else is worth a line.
                    if errors.iter().any(|e| !e.contains("unable to connect")) {
                        eprintln!("           (iperf3 retried after: {})", errors.join("; "));
                    }
                    return Ok(intervals(&receiver));
                }
            },
        };
        let early = t.elapsed() < Duration::from_secs(u64::from(secs));
        if !early || started.elapsed() > Duration::from_secs(8) {
            errors.push(failure);
            return Err(errors.join("; then "));
        }
        if errors.last() != Some(&failure) {
            errors.push(failure);
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[allow(clippy::cast_possible_truncation)] // small test figures
    fn iv(rates: &[f64]) -> Vec<Interval> {
        rates
            .iter()
            .enumerate()
            .map(|(i, r)| Interval {
                start: i as f64 * 0.5,
                secs: 0.5,
                bytes: (r * 0.5) as u64,
            })
            .collect()
    }

    #[test]
    fn burst_is_split_off() {
        let s = steady(&iv(&[900.0, 300.0, 100.0, 100.0, 98.0, 102.0]), 100.0).unwrap();
        assert_eq!(s.burst_secs, 1.0);
        assert_eq!(s.secs, 2.0);
        assert!((s.rate - 100.0).abs() < 1.0, "{s:?}");
    }

    #[test]
    fn unshaped_transfer_fails() {
        let e = steady(&iv(&[900.0; 8]), 100.0).unwrap_err();
        assert!(matches!(e, Unsteady::NeverShaped(_)), "{e}");
    }

    #[test]
    fn a_long_burst_leaves_too_little() {
        let e = steady(&iv(&[900.0, 900.0, 900.0, 900.0, 900.0, 100.0, 100.0]), 100.0).unwrap_err();
        assert!(
            matches!(&e, Unsteady::TooShort(m) if m.contains("leaving 1.0 s")),
            "{e}"
        );
    }

    #[test]
    fn slow_transfer_is_reported_as_is() {
        // Below the rate is not the burst: it is measured (and judged by the caller).
        let s = steady(&iv(&[50.0, 50.0, 50.0, 50.0]), 100.0).unwrap();
        assert_eq!(s.burst_secs, 0.0);
        assert!((s.rate - 50.0).abs() < 1.0);
    }

    #[test]
    fn reads_iperf3_intervals() {
        let r = json!({"intervals": [
            {"streams": [], "sum": {"start": 0, "end": 0.5, "seconds": 0.5, "bytes": 1000}},
            {"streams": [], "sum": {"start": 0.5, "end": 1.0, "seconds": 0.5, "bytes": 2000}}
        ]});
        assert_eq!(
            intervals(&r),
            vec![
                Interval {
                    start: 0.0,
                    secs: 0.5,
                    bytes: 1000
                },
                Interval {
                    start: 0.5,
                    secs: 0.5,
                    bytes: 2000
                }
            ]
        );
    }

    #[test]
    fn window_is_bounded() {
        assert_eq!(window_bytes(125_000), 32 * 1024);
        assert_eq!(window_bytes(1_250_000), 128 * 1024);
        assert_eq!(window_bytes(125_000_000), 128 * 1024);
    }
}
