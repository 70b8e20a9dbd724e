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

use cni_testkit::ping::received;
pub use cni_testkit::ping::{percentile, ping_rtts};
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
