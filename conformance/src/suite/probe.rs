//! Packets instead of kernel state: pings, a TCP exchange between two
//! namespaces, the route the kernel would pick, and the namespace's SNMP
//! counters (where a lost packet died).

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use cni_netns::NetNs;
use serde_json::Value;

use cni_testkit::state::{json_list, text};
use cni_testkit::Ns;

/// Echo requests per ping; a lost one costs about one second in all.
pub const PINGS: u32 = 3;

/// Whether iputils' ping is installed (the traffic cases need it).
pub fn have_ping() -> bool {
    Command::new("ping")
        .arg("-V")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Replies received for [`PINGS`] echo requests from `ns` to `dst`,
/// sent from `src` when given (an application bound to that address).
pub fn ping(ns: &Ns, dst: &str, src: Option<&str>) -> Result<u32, String> {
    let count = PINGS.to_string();
    let mut args = vec![
        "netns", "exec", &ns.name, "ping", "-n", "-q", "-c", &count, "-i", "0.05", "-W", "1",
    ];
    if let Some(s) = src {
        args.extend(["-I", s]);
    }
    args.push(dst);
    let out = Command::new("ip")
        .args(&args)
        .output()
        .map_err(|e| format!("failed to run ping: {e}"))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    received(&stdout).ok_or_else(|| {
        format!(
            "ping {dst} in {} printed no summary: {} {}",
            ns.name,
            stdout.trim(),
            String::from_utf8_lossy(&out.stderr).trim()
        )
    })
}

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
    let out = Command::new("ip")
        .args([
            "netns",
            "exec",
            &ns.name,
            "ping",
            "-n",
            "-c",
            &count_s,
            "-i",
            &interval_s,
            "-w",
            &deadline_s,
            dst,
        ])
        .output()
        .map_err(|e| format!("failed to run ping: {e}"))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if received(&stdout).is_none() {
        return Err(format!(
            "ping {dst} in {} printed no summary: {} {}",
            ns.name,
            stdout.trim(),
            String::from_utf8_lossy(&out.stderr).trim()
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
fn received(summary: &str) -> Option<u32> {
    summary
        .lines()
        .find(|l| l.contains("packets transmitted"))
        .and_then(|l| l.split(", ").nth(1))
        .and_then(|r| r.split_whitespace().next())
        .and_then(|n| n.parse().ok())
}

/// Runs `f` inside the namespace at `ns_path` and returns to this thread's
/// own: a socket made there stays in that namespace.
fn in_ns<T>(ns_path: &str, f: impl FnOnce() -> T) -> Result<T, String> {
    NetNs::open(Path::new(ns_path))
        .and_then(|ns| ns.run(f))
        .map_err(|e| e.to_string())
}

const GREETING: &[u8] = b"sbr\n";

/// A TCP connection from `client` to `addr:port`, served in `server`: true
/// when the handshake completes within `wait` and the server's greeting
/// arrives, false when the connection never forms.
pub fn tcp(server: &Ns, client: &Ns, addr: IpAddr, port: u16, wait: Duration) -> Result<bool, String> {
    tcp_listening_on(server, client, addr, addr, port, wait)
}

/// [`tcp`] with the server listening on `listen` (the unspecified address:
/// a socket bound to no address and no device).
pub fn tcp_listening_on(
    server: &Ns,
    client: &Ns,
    listen: IpAddr,
    addr: IpAddr,
    port: u16,
    wait: Duration,
) -> Result<bool, String> {
    let sa = SocketAddr::new(addr, port);
    let la = SocketAddr::new(listen, port);
    let (server_path, client_path) = (server.path_str(), client.path_str());
    let stop = Arc::new(AtomicBool::new(false));
    let (ready_tx, ready_rx) = mpsc::channel::<Result<(), String>>();
    let stop_server = Arc::clone(&stop);
    let srv = std::thread::spawn(move || -> Result<bool, String> {
        let listener = in_ns(&server_path, || TcpListener::bind(la))
            .and_then(|l| l.map_err(|e| format!("failed to listen on {la}: {e}")))
            .and_then(|l| {
                l.set_nonblocking(true)
                    .map(|()| l)
                    .map_err(|e| format!("failed to make the listener non-blocking: {e}"))
            });
        let listener = match listener {
            Ok(l) => {
                let _ = ready_tx.send(Ok(()));
                l
            }
            Err(e) => {
                let _ = ready_tx.send(Err(e.clone()));
                return Err(e);
            }
        };
        let deadline = Instant::now() + wait * 2;
        loop {
            match listener.accept() {
                Ok((mut s, _)) => {
                    s.set_nonblocking(false)
                        .and_then(|()| s.write_all(GREETING))
                        .map_err(|e| format!("failed to greet on {sa}: {e}"))?;
                    return Ok(true);
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    if stop_server.load(Ordering::Relaxed) || Instant::now() > deadline {
                        return Ok(false);
                    }
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(e) => return Err(format!("accept on {sa}: {e}")),
            }
        }
    });
    ready_rx
        .recv_timeout(Duration::from_secs(5))
        .map_err(|_| format!("the listener on {sa} did not start"))??;
    let cli = std::thread::spawn(move || -> Result<bool, String> {
        let Ok(mut s) = in_ns(&client_path, || TcpStream::connect_timeout(&sa, wait))? else {
            return Ok(false);
        };
        s.set_read_timeout(Some(wait))
            .map_err(|e| format!("read timeout: {e}"))?;
        let mut buf = [0u8; GREETING.len()];
        Ok(s.read_exact(&mut buf).is_ok() && buf == GREETING)
    });
    let connected = cli.join().map_err(|_| "the TCP client panicked".to_string())?;
    stop.store(true, Ordering::Relaxed);
    let accepted = srv.join().map_err(|_| "the TCP server panicked".to_string())?;
    Ok(connected? && accepted?)
}

/// The route `ip route get DST [from SRC]` picks in `ns`, as JSON.
pub fn route_get(ns: &Ns, dst: &str, src: Option<&str>) -> Result<Value, String> {
    let mut args = vec!["-j", "route", "get", dst];
    if let Some(s) = src {
        args.extend(["from", s]);
    }
    let out = ns.try_ip(&args)?;
    let v: Value = serde_json::from_str(&out).map_err(|e| format!("bad ip route get output {out}: {e}"))?;
    Ok(v.get(0).cloned().unwrap_or(Value::Null))
}

/// The outgoing device of [`route_get`].
pub fn route_dev(ns: &Ns, dst: &str, src: Option<&str>) -> Result<String, String> {
    route_get(ns, dst, src).map(|r| text(&r, "dev"))
}

/// How often the root TBF of `dev` in `ns` held a packet back for want of
/// tokens (`tc -s`'s overlimits): it grows only while the bucket is empty.
pub fn tbf_overlimits(ns: &Ns, dev: &str) -> Result<u64, String> {
    let out = ns.try_tc(&["-s", "-j", "qdisc", "show", "dev", dev])?;
    let qs = json_list(&out)?;
    qs.iter()
        .find(|q| text(q, "kind") == "tbf" && q.get("root") == Some(&Value::Bool(true)))
        .ok_or_else(|| format!("no root tbf on {dev}: {out}"))?
        .get("overlimits")
        .and_then(Value::as_u64)
        .ok_or_else(|| format!("no overlimits counter on the tbf of {dev}: {out}"))
}

/// Every SNMP and netstat counter of `ns` (`nstat -asz`: absolute, zeros
/// too, history untouched).
pub fn counters(ns: &Ns) -> Result<HashMap<String, u64>, String> {
    ns.try_exec(&["nstat", "-asz"]).map(|out| parse_nstat(&out))
}

/// `NAME VALUE RATE` lines; the header ("#kernel") and anything else skipped.
fn parse_nstat(out: &str) -> HashMap<String, u64> {
    out.lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            let name = w.next()?;
            let value = w.next()?.parse().ok()?;
            Some((name.to_string(), value))
        })
        .collect()
}

/// How much `name` grew between two [`counters`] readings.
pub fn grew(before: &HashMap<String, u64>, after: &HashMap<String, u64>, name: &str) -> u64 {
    let get = |m: &HashMap<String, u64>| m.get(name).copied().unwrap_or(0);
    get(after).saturating_sub(get(before))
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

    #[test]
    fn reads_nstat_and_growth() {
        let before = parse_nstat(
            "#kernel\nIpExtInNoRoutes                 0                  0.0\nIp6InNoRoutes 7 0.0\n",
        );
        let after = parse_nstat(
            "#kernel\nIpExtInNoRoutes                 3                  0.0\nIp6InNoRoutes 7 0.0\n",
        );
        assert_eq!(before.get("Ip6InNoRoutes"), Some(&7));
        assert!(!before.contains_key("#kernel"));
        assert_eq!(grew(&before, &after, "IpExtInNoRoutes"), 3);
        assert_eq!(grew(&before, &after, "Ip6InNoRoutes"), 0);
        assert_eq!(grew(&after, &before, "IpExtInNoRoutes"), 0);
        assert_eq!(grew(&before, &after, "NoSuchCounter"), 0);
    }
}
