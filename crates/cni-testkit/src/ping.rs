//! Pings from a namespace, read per request: the suite's load cases and
//! the bench's latency under load take their RTTs and percentiles here.

use std::time::Duration;

use crate::ns::Ns;

/// RTTs in ms of `count` echo requests sent every `interval` from `ns` to
/// `dst`, in sequence order; a request unanswered when `deadline` ends (from
/// the first request) is infinitely late, so a lost reply never makes a
/// queue look shorter.
pub fn ping_rtts(
    ns: &Ns,
    dst: &str,
    count: u32,
    interval: Duration,
    deadline: Duration,
) -> Result<Vec<f64>, String> {
    let (count_s, interval_s, deadline_s) = (
        count.to_string(),
        format!("{:.3}", interval.as_secs_f64()),
        deadline.as_secs().max(1).to_string(),
    );
    let args = [
        "ping",
        "-n",
        "-c",
        &count_s,
        "-i",
        &interval_s,
        "-w",
        &deadline_s,
        dst,
    ];
    let (_, stdout, stderr) = ns.exec_unchecked(&args);
    if received(&stdout).is_none() {
        return Err(format!(
            "ping {dst} in {} printed no summary: {} {}",
            ns.name,
            stdout.trim(),
            stderr.trim()
        ));
    }
    Ok(rtts(&stdout, count))
}

/// Per sequence number 1..=count, the first reply's `time=` in ms
/// ("64 bytes from 10.0.0.1: icmp_seq=3 ttl=64 time=0.045 ms"), infinite
/// where none came; duplicates are ignored.
fn rtts(out: &str, count: u32) -> Vec<f64> {
    let mut v = vec![f64::INFINITY; usize::try_from(count).unwrap_or(0)];
    for line in out.lines() {
        let field = |key: &str| {
            line.split_whitespace()
                .find_map(|w| w.strip_prefix(key))
                .map(str::to_string)
        };
        let (Some(seq), Some(time)) = (field("icmp_seq="), field("time=")) else {
            continue;
        };
        let (Ok(seq), Ok(ms)) = (seq.parse::<usize>(), time.parse::<f64>()) else {
            continue;
        };
        if let Some(slot) = seq.checked_sub(1).and_then(|i| v.get_mut(i)) {
            if slot.is_infinite() {
                *slot = ms;
            }
        }
    }
    v
}

/// The `p`th percentile (nearest rank) of `xs`; NaN when empty.
pub fn percentile(xs: &[f64], p: u32) -> f64 {
    if xs.is_empty() {
        return f64::NAN;
    }
    let mut ys = xs.to_vec();
    ys.sort_by(f64::total_cmp);
    let rank = (ys.len() * usize::try_from(p.min(100)).unwrap_or(100)).div_ceil(100);
    ys[rank.saturating_sub(1).min(ys.len() - 1)]
}

/// The replies counted in ping's summary line
/// ("3 packets transmitted, 0 received, 100% packet loss, time 104ms").
pub fn received(summary: &str) -> Option<u32> {
    summary
        .lines()
        .find(|l| l.contains("packets transmitted"))
        .and_then(|l| l.split(", ").nth(1))
        .and_then(|r| r.split_whitespace().next())
        .and_then(|n| n.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_ping_summaries() {
        let lost = "PING 10.0.0.2 (10.0.0.2) 56(84) bytes of data.\n\n--- 10.0.0.2 ping statistics ---\n3 packets transmitted, 0 received, 100% packet loss, time 104ms\n";
        assert_eq!(received(lost), Some(0));
        let errors = "3 packets transmitted, 2 received, +1 errors, 33.3333% packet loss, time 2003ms\n";
        assert_eq!(received(errors), Some(2));
        assert_eq!(received("ping: connect: Network is unreachable\n"), None);
    }

    #[test]
    fn reads_rtts_by_sequence() {
        let out = "PING 10.0.0.1 (10.0.0.1) 56(84) bytes of data.\n\
            64 bytes from 10.0.0.1: icmp_seq=1 ttl=64 time=0.045 ms\n\
            64 bytes from 10.0.0.1: icmp_seq=3 ttl=64 time=1520 ms\n\
            64 bytes from 10.0.0.1: icmp_seq=3 ttl=64 time=1600 ms (DUP!)\n\
            64 bytes from 10.0.0.1: icmp_seq=9 ttl=64 time=2 ms\n\n\
            --- 10.0.0.1 ping statistics ---\n\
            4 packets transmitted, 2 received, 50% packet loss, time 3004ms\n";
        let v = rtts(out, 4);
        assert_eq!(v[0], 0.045);
        assert!(v[1].is_infinite());
        assert_eq!(v[2], 1520.0);
        assert!(v[3].is_infinite());
    }

    #[test]
    fn percentiles_by_nearest_rank() {
        let xs: Vec<f64> = (1..=10).map(f64::from).collect();
        assert_eq!(percentile(&xs, 50), 5.0);
        assert_eq!(percentile(&xs, 90), 9.0);
        assert_eq!(percentile(&xs, 100), 10.0);
        assert_eq!(percentile(&[3.0], 90), 3.0);
        assert!(percentile(&[], 50).is_nan());
        // Lost replies are the latest of all.
        let lost = [1.0, f64::INFINITY, 2.0, f64::INFINITY];
        assert_eq!(percentile(&lost, 50), 2.0);
        assert!(percentile(&lost, 90).is_infinite());
    }
}
