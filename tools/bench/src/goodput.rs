//! iperf3 flows through a pod, TCP goodput as their receiver counts it,
//! and the one verdict on it: `cni_testkit::SHAPED`. `bench goodput` and
//! `bench shaped` give scripts/demo the same formula and the same verdict.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use cni_testkit::pod::Pod;
use serde_json::Value;

pub use cni_testkit::SHAPED;

const PORT: &str = "5299";

/// One iperf3 TCP flow of `secs` from the pod to its host end (`reverse`:
/// back) with `extra` client arguments, and `beside` run while it flows:
/// `beside`'s value and the receiver's goodput in bit/s from `skip` s on
/// (NaN for a failed run, or one still going a minute after `beside`).
pub fn flow<T>(
    pod: &Pod,
    reverse: bool,
    secs: f64,
    skip: f64,
    extra: &[&str],
    beside: impl FnOnce() -> T,
) -> (T, f64) {
    let (gw, addr, secs) = (pod.gateway(), pod.addr(), secs.trunc().to_string());
    let Ok(mut server) = Command::new("iperf3")
        .args(["-s", "-1", "-J", "-B", &gw, "-p", PORT])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
    else {
        return (beside(), f64::NAN);
    };
    let (listening, ss) = (format!("{gw}:{PORT}"), || pod.host.try_exec(&["ss", "-ltn"]));
    for _ in 0..50 {
        if ss().unwrap_or_default().contains(&listening) {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", &pod.ctr.name, "iperf3", "-c", &gw, "-B", &addr])
        .args(["-p", PORT, "-J", "--get-server-output", "-t", &secs])
        .args(extra)
        .args(reverse.then_some("-R"));
    let report = crate::spawn::scratch().and_then(|f| {
        let client = cmd.stdout(f.try_clone()?).stderr(Stdio::null()).spawn()?;
        Ok((f, client))
    });
    let got = beside();
    let bps = report.ok().and_then(|(f, mut client)| {
        let deadline = Instant::now() + Duration::from_secs_f64(secs.parse::<f64>().ok()? + 60.0);
        while !matches!(client.try_wait(), Ok(Some(_))) {
            if Instant::now() > deadline {
                let _ = client.kill();
                let _ = client.wait();
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let report = serde_json::from_str(&crate::spawn::read_back(f).ok()?).ok()?;
        receiver_goodput(&report, reverse, skip)
    });
    let _ = server.kill();
    let _ = server.wait();
    (got, bps.unwrap_or(f64::NAN))
}

/// Bits per second in the receiver's intervals from `skip` seconds on (TCP
/// slow start and the bucket's initial burst left out). The receiver is the
/// server unless the run is reversed (-R). `None` for a failed run.
pub fn receiver_goodput(report: &Value, reverse: bool, skip: f64) -> Option<f64> {
    let intervals = if reverse {
        report.get("intervals")?
    } else {
        report.get("server_output_json")?.get("intervals")?
    };
    let (mut bytes, mut secs) = (0.0, 0.0);
    for i in intervals.as_array()? {
        let sum = i.get("sum")?;
        if sum.get("start")?.as_f64()? >= skip - 1e-6 {
            bytes += sum.get("bytes")?.as_f64()?;
            secs += sum.get("seconds")?.as_f64()?;
        }
    }
    (secs > 0.0).then(|| bytes * 8.0 / secs)
}

const GOODPUT_USAGE: &str = "usage: bench goodput REPORT.json [-R]
  prints the receiver's Mbit/s of an iperf3 JSON report with two decimals,
  the first second left out, \"0\" when the run failed; -R: the run was
  reversed (the client received)";

const SHAPED_USAGE: &str = "usage: bench shaped RATIO | --range
  exits 0 when goodput / configured rate RATIO is shaped correctly (the
  workspace's one verdict, cni_testkit::SHAPED), 1 otherwise;
  --range prints the verdict's bounds";

/// `bench goodput REPORT.json [-R]`.
pub fn goodput_main(args: &[String]) -> i32 {
    let reverse = match args {
        [_] => false,
        [_, r] if r == "-R" => true,
        _ => {
            eprintln!("{GOODPUT_USAGE}");
            return 2;
        }
    };
    let bps = std::fs::read_to_string(&args[0])
        .ok()
        .and_then(|t| serde_json::from_str::<Value>(&t).ok())
        .and_then(|r| receiver_goodput(&r, reverse, 1.0));
    println!("{}", bps.map_or("0".into(), |b| format!("{:.2}", b / 1e6)));
    0
}

/// `bench shaped RATIO`.
pub fn shaped_main(args: &[String]) -> i32 {
    match args {
        [r] if r == "--range" => println!("{:.2} to {:.2}", SHAPED.start(), SHAPED.end()),
        [r] if r.parse::<f64>().is_ok_and(|r| SHAPED.contains(&r)) => {}
        [r] if r.parse::<f64>().is_ok() => return 1,
        _ => {
            eprintln!("{SHAPED_USAGE}");
            return 2;
        }
    }
    0
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn interval(start: f64, bytes: f64) -> Value {
        json!({"sum": {"start": start, "seconds": 1.0, "bytes": bytes}})
    }

    #[test]
    fn counts_the_receiver_after_the_skip() {
        let server = vec![interval(0.0, 9e6), interval(1.0, 1.25e6), interval(2.0, 1.25e6)];
        let client = vec![interval(0.0, 5e6), interval(1.0, 2.5e6)];
        let r = json!({"intervals": client, "server_output_json": {"intervals": server}});
        assert_eq!(receiver_goodput(&r, false, 1.0), Some(10e6));
        assert_eq!(receiver_goodput(&r, true, 1.0), Some(20e6));
        assert_eq!(receiver_goodput(&json!({"error": "x"}), false, 1.0), None);
    }
}
