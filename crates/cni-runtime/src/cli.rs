//! cni-run's command line, a drop-in for cnitool with libcni's list
//! semantics; the binary (conformance/src/bin/cni-run.rs) only calls [`run`].
//!
//! `cni-run [-i IFNAME] [--container-id ID] add|check|del|gc|status NETWORK [NETNS]`

use std::path::{Component, Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use crate::conflist::NetworkList;
use crate::runtime::{parse_cni_args, RunError, Runtime, RuntimeConf};
use crate::{cache, exec::ExecError};
use serde_json::{Map, Value};
use sha2::{Digest, Sha512};

const USAGE: &str = "usage: cni-run [options] add|check|del|gc|status NETWORK [NETNS]

Runs the network list NETWORK (found in $NETCONFPATH, default /etc/cni/net.d)
for the network namespace NETNS, with plugins from $CNI_PATH.

options:
  -i, --ifname NAME      interface name (default $CNI_IFNAME or eth0)
  --container-id ID      container ID (default cnitool-<sha512 of the netns path>)
  --cache-dir DIR        result cache root (default $CNI_CACHE_DIR or /var/lib/cni)
  --timeout SECONDS      kill a plugin after this long (default $CNI_RUN_TIMEOUT or 60)
  --valid ID:IFNAME      gc: an attachment to keep (repeat); default: every cached one
environment: CNI_ARGS (K=V;K2=V2, V may be empty), CAP_ARGS (JSON capability arguments)
exit status: 0 ok; a plugin's error code (capped at 255); 124 on timeout; 1 otherwise";

struct Cli {
    command: String,
    network: String,
    netns: Option<String>,
    ifname: Option<String>,
    container_id: Option<String>,
    cache_dir: Option<PathBuf>,
    timeout: Option<f64>,
    valid: Option<Vec<(String, String)>>,
}

fn parse_cli(args: &[String]) -> Result<Cli, String> {
    let mut pos = Vec::new();
    let mut cli = Cli {
        command: String::new(),
        network: String::new(),
        netns: None,
        ifname: None,
        container_id: None,
        cache_dir: None,
        timeout: None,
        valid: None,
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = |name: &str| it.next().cloned().ok_or_else(|| format!("{name} needs a value"));
        match a.as_str() {
            "-h" | "--help" => return Err(String::new()),
            "-i" | "--ifname" => cli.ifname = Some(value(a)?),
            "--container-id" => cli.container_id = Some(value(a)?),
            "--cache-dir" => cli.cache_dir = Some(value(a)?.into()),
            "--timeout" => {
                let v = value(a)?;
                cli.timeout = Some(v.parse().map_err(|_| format!("bad --timeout {v:?}"))?);
            }
            "--valid" => {
                let v = value(a)?;
                let (c, i) = v
                    .split_once(':')
                    .ok_or_else(|| format!("--valid wants ID:IFNAME, got {v:?}"))?;
                cli.valid
                    .get_or_insert_with(Vec::new)
                    .push((c.to_string(), i.to_string()));
            }
            s if s.starts_with('-') && s.len() > 1 => return Err(format!("unknown option {s}")),
            _ => pos.push(a.clone()),
        }
    }
    let mut pos = pos.into_iter();
    cli.command = pos.next().ok_or("missing command")?;
    if !["add", "check", "del", "gc", "status"].contains(&cli.command.as_str()) {
        return Err(format!("unknown command {:?}", cli.command));
    }
    cli.network = pos.next().ok_or("missing network name")?;
    cli.netns = pos.next();
    if pos.next().is_some() {
        return Err("too many arguments".into());
    }
    if cli.netns.is_none() && !["gc", "status"].contains(&cli.command.as_str()) {
        return Err(format!("{} needs NETNS", cli.command));
    }
    Ok(cli)
}

/// Go's filepath.Abs: joined to the working directory and cleaned
/// lexically, symlinks left alone (the container ID depends on it).
fn absolute(p: &str) -> Result<String, String> {
    let joined = if Path::new(p).is_absolute() {
        PathBuf::from(p)
    } else {
        std::env::current_dir()
            .map_err(|e| format!("no working directory: {e}"))?
            .join(p)
    };
    let mut parts: Vec<String> = Vec::new();
    for c in joined.components() {
        match c {
            Component::Normal(s) => parts.push(s.to_string_lossy().into_owned()),
            Component::ParentDir => {
                parts.pop();
            }
            _ => {}
        }
    }
    Ok(format!("/{}", parts.join("/")))
}

/// cnitool's container ID: "cnitool-" and the first 10 bytes of SHA-512 of
/// the absolute netns path, in hex.
fn container_id_for(netns: &str) -> String {
    let digest = Sha512::digest(netns.as_bytes());
    let hex: String = digest.iter().take(10).map(|b| format!("{b:02x}")).collect();
    format!("cnitool-{hex}")
}

fn env_nonempty(k: &str) -> Option<String> {
    std::env::var(k).ok().filter(|v| !v.is_empty())
}

fn fail(msg: impl std::fmt::Display, status: u8) -> ExitCode {
    eprintln!("cni-run: {msg}");
    ExitCode::from(status)
}

fn status_of(e: &RunError) -> u8 {
    if e.timed_out() {
        return 124;
    }
    match e.code() {
        Some(c) => u8::try_from(c.clamp(1, 255)).unwrap_or(255),
        None => 1,
    }
}

/// Runs cni-run with `args` (the program name left out); the exit status is
/// cnitool's, or a plugin's error code.
pub async fn run(args: &[String]) -> ExitCode {
    let cli = match parse_cli(args) {
        Ok(c) => c,
        Err(e) if e.is_empty() => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => return fail(format!("{e}\n{USAGE}"), 1),
    };
    let netdir = env_nonempty("NETCONFPATH").unwrap_or_else(|| "/etc/cni/net.d".into());
    let list = match NetworkList::load(Path::new(&netdir), &cli.network) {
        Ok(l) => l,
        Err(e) => return fail(e, 1),
    };
    let timeout = cli
        .timeout
        .or_else(|| env_nonempty("CNI_RUN_TIMEOUT").and_then(|v| v.parse().ok()))
        .filter(|t: &f64| t.is_finite() && *t > 0.0)
        .unwrap_or(60.0);
    let runtime = Runtime {
        cni_path: std::env::var_os("CNI_PATH")
            .map(|p| std::env::split_paths(&p).collect())
            .unwrap_or_default(),
        cache_dir: cli
            .cache_dir
            .clone()
            .or_else(|| env_nonempty("CNI_CACHE_DIR").map(PathBuf::from))
            .unwrap_or_else(|| cache::DEFAULT_DIR.into()),
        timeout: Duration::from_secs_f64(timeout),
        wrapper: Vec::new(),
        clear_env: false,
        inherit_stderr: true,
    };

    let netns = match cli.netns.as_deref().map(absolute).transpose() {
        Ok(n) => n.unwrap_or_default(),
        Err(e) => return fail(e, 1),
    };
    let ifname = cli
        .ifname
        .clone()
        .or_else(|| env_nonempty("CNI_IFNAME"))
        .unwrap_or_else(|| "eth0".into());
    let container_id = cli
        .container_id
        .clone()
        .unwrap_or_else(|| container_id_for(&netns));
    let args = match parse_cni_args(&std::env::var("CNI_ARGS").unwrap_or_default()) {
        Ok(a) => a,
        Err(e) => return fail(e, 1),
    };
    let caps: Option<Map<String, Value>> = match env_nonempty("CAP_ARGS") {
        None => None,
        Some(s) => match serde_json::from_str(&s) {
            Ok(m) => Some(m),
            Err(e) => return fail(format!("CAP_ARGS is not a json object: {e}"), 1),
        },
    };
    let mut rt = RuntimeConf {
        container_id,
        netns,
        ifname,
        args,
        capability_args: caps.clone().unwrap_or_default(),
    };

    let res = match cli.command.as_str() {
        "add" => runtime.add(&list, &rt).await.map(|r| {
            println!("{}", serde_json::to_string_pretty(&r).unwrap_or_default());
        }),
        "check" | "del" => {
            // As runtimes do: args not given now come from the cached attachment.
            if let Ok(Some(cache::Cached::V1(e))) = runtime.cached(&list, &rt) {
                if caps.is_none() {
                    rt.capability_args = e.capability_args;
                }
                if rt.args.is_empty() {
                    rt.args = e.cni_args;
                }
            }
            if cli.command == "check" {
                runtime.check(&list, &rt).await
            } else {
                runtime.del(&list, &rt).await
            }
        }
        "gc" => runtime.gc(&list, cli.valid.clone()).await,
        _ => runtime.status(&list).await,
    };
    match res {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let status = status_of(&e);
            if let RunError::Exec {
                err: ExecError::Timeout(..),
                ..
            } = &e
            {
                return fail(format!("{e} (see --timeout)"), status);
            }
            fail(e, status)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn container_id_matches_cnitool() {
        // printf %s PATH | sha512sum | cut -c1-20
        assert_eq!(
            container_id_for("/var/run/netns/x"),
            "cnitool-4acf487154af9777be71"
        );
        assert_eq!(
            container_id_for("/run/netns/test"),
            "cnitool-8ae22670664f2caaa6b3"
        );
    }

    #[test]
    fn cleans_paths_like_go() {
        assert_eq!(absolute("/run//netns/../netns/x/").unwrap(), "/run/netns/x");
    }

    #[test]
    fn parses_options_anywhere() {
        let a: Vec<String> = ["add", "-i", "net1", "n", "/run/netns/x", "--container-id", "c"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let c = parse_cli(&a).unwrap();
        assert_eq!((c.command.as_str(), c.network.as_str()), ("add", "n"));
        assert_eq!(c.ifname.as_deref(), Some("net1"));
        assert_eq!(c.container_id.as_deref(), Some("c"));
        assert!(parse_cli(&["del".into(), "n".into()]).is_err());
        assert!(parse_cli(&["gc".into(), "n".into()]).is_ok());
    }
}
