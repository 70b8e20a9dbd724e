//! TCP goodput of an iperf3 run as its receiver counts it, and the one
//! verdict on it: `cni_testkit::SHAPED`. `bench goodput` and `bench
//! shaped` give scripts/demo the same formula and the same verdict.

use serde_json::Value;

pub use cni_testkit::SHAPED;

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
    match bps {
        Some(b) => println!("{:.2}", b / 1e6),
        None => println!("0"),
    }
    0
}

/// `bench shaped RATIO`.
pub fn shaped_main(args: &[String]) -> i32 {
    let ratio = match args {
        [r] => r.parse::<f64>().ok(),
        _ => None,
    };
    if matches!(args, [r] if r == "--range") {
        println!("{:.2} to {:.2}", SHAPED.start(), SHAPED.end());
        return 0;
    }
    match ratio {
        Some(r) if SHAPED.contains(&r) => 0,
        Some(_) => 1,
        None => {
            eprintln!("{SHAPED_USAGE}");
            2
        }
    }
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
