//! The one entry point of a plugin binary.
//!
//! Codes: unknown `CNI_COMMAND`, a missing or malformed `CNI_*` variable: 4;
//! stdin unreadable: 5; config not JSON: 6; config fields wrong, or a network
//! name the spec forbids (not on DEL): 7; a version
//! the plugin does not speak, CHECK below 0.4.0, GC or STATUS below 1.1.0: 1.

use std::io::{IsTerminal, Read, Write};
use std::os::fd::{AsFd, AsRawFd, IntoRawFd, RawFd};
use std::path::PathBuf;

use nix::fcntl::OFlag;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::stat::Mode;

use crate::conf::NetConf;
use crate::error::{CniError, CniResult, Code};
use crate::types::NetResult;
use crate::{logging, version};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    Add,
    Del,
    Check,
    Version,
    Gc,
    Status,
}

impl Command {
    /// The `CNI_COMMAND` value; unknown: code 4.
    pub fn parse(s: &str) -> CniResult<Command> {
        Ok(match s {
            "ADD" => Command::Add,
            "DEL" => Command::Del,
            "CHECK" => Command::Check,
            "VERSION" => Command::Version,
            "GC" => Command::Gc,
            "STATUS" => Command::Status,
            other => return Err(CniError::env(format!("unknown CNI_COMMAND {other:?}"))),
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Command::Add => "ADD",
            Command::Del => "DEL",
            Command::Check => "CHECK",
            Command::Version => "VERSION",
            Command::Gc => "GC",
            Command::Status => "STATUS",
        }
    }
}

/// Everything a plugin is asked, validated per command as the spec requires.
#[derive(Debug, Clone)]
pub struct Request {
    pub command: Command,
    /// Empty for GC and STATUS.
    pub container_id: String,
    /// `None` when not given (allowed for DEL, GC, STATUS).
    pub netns: Option<PathBuf>,
    /// Empty for GC and STATUS.
    pub ifname: String,
    /// `CNI_ARGS` split into key/value pairs.
    pub args: Vec<(String, String)>,
    pub cni_path: Vec<PathBuf>,
    /// The config with `cni_version` already negotiated.
    pub conf: NetConf,
}

impl Request {
    /// The value of one `CNI_ARGS` key.
    pub fn arg(&self, key: &str) -> Option<&str> {
        self.args.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }
}

pub trait Plugin {
    /// Shown with no `CNI_COMMAND`: "CNI sbr plugin v0.1.0".
    fn about(&self) -> String;
    /// Versions this plugin speaks, oldest first.
    fn supported_versions(&self) -> &'static [&'static str];
    /// Returns the result to print (usually prevResult passed on).
    fn add(&self, req: &Request) -> CniResult<NetResult>;
    fn del(&self, req: &Request) -> CniResult<()>;
    fn check(&self, req: &Request) -> CniResult<()>;
    fn gc(&self, _req: &Request) -> CniResult<()> {
        Ok(())
    }
    fn status(&self, _req: &Request) -> CniResult<()> {
        Ok(())
    }
    /// A command-line tool of the plugin's own, run when the binary has
    /// arguments and no `CNI_COMMAND` (no runtime calls a plugin so): its
    /// exit status, or `None` when `args` (without the program name) name
    /// no subcommand, and the about line is shown as without arguments.
    fn subcommand(&self, _args: &[String], _stdout: &mut dyn Write, _stderr: &mut dyn Write) -> Option<i32> {
        None
    }
}

/// Reads the process environment and streams, and exits with the status.
/// A terminal on stdin reads as empty, so a human trying `VERSION` is not
/// left waiting.
/// `args` are the command line without the program name.
pub fn run<P: Plugin>(plugin: &P, args: &[String]) -> ! {
    let env = |k: &str| std::env::var(k).ok();
    let stdin = std::io::stdin();
    let code = if stdin.is_terminal() {
        run_with_args(
            plugin,
            args,
            &env,
            &mut std::io::empty(),
            &mut std::io::stdout(),
            &mut std::io::stderr(),
        )
    } else {
        run_with_args(
            plugin,
            args,
            &env,
            &mut stdin.lock(),
            &mut std::io::stdout(),
            &mut std::io::stderr(),
        )
    };
    std::process::exit(code)
}

/// What std's runtime start-up would have done that a plugin needs, for
/// binaries that enter through [`plugin_main!`](crate::plugin_main): standard
/// streams that exist (a closed fd 1 would otherwise be reused by the first
/// file or socket we open, and the result written into it) and SIGPIPE
/// ignored, so a reader that went away is a write error instead of a kill
/// in the middle of a change. `args`: the command line without the
/// program name.
pub fn start<P: Plugin>(plugin: &P, args: &[String]) -> ! {
    // One poll(2) asks for all three: a closed one answers POLLNVAL.
    let (stdin, stdout, stderr) = (std::io::stdin(), std::io::stdout(), std::io::stderr());
    let mut fds =
        [stdin.as_fd(), stdout.as_fd(), stderr.as_fd()].map(|fd| PollFd::new(fd, PollFlags::empty()));
    let closed: Vec<RawFd> = match poll(&mut fds, PollTimeout::ZERO) {
        Ok(n) if n > 0 => fds
            .iter()
            .filter(|p| p.revents().is_some_and(|r| r.contains(PollFlags::POLLNVAL)))
            .map(|p| p.as_fd().as_raw_fd())
            .collect(),
        _ => Vec::new(),
    };
    for fd in closed {
        // The new fd takes the lowest free number, the closed one, as std
        // does it; it stays open for the whole run.
        match nix::fcntl::open("/dev/null", OFlag::O_RDWR, Mode::empty()) {
            Ok(null) if null.as_raw_fd() == fd => drop(null.into_raw_fd()),
            _ => std::process::abort(),
        }
    }
    // SAFETY: a standard disposition, no handler of ours runs; nix has the
    // call only as an unsafe fn (signal(2) is unsafe for a handler).
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
    run(plugin, args)
}

/// The command line C `main` was given, without the program name; an
/// argument that is no UTF-8 is taken lossily.
///
/// # Safety
/// `argv` holds `argc` valid NUL-terminated strings, as C `main` gets them.
pub unsafe fn args_of(argc: std::os::raw::c_int, argv: *const *const std::os::raw::c_char) -> Vec<String> {
    let n = usize::try_from(argc).unwrap_or(0);
    if argv.is_null() {
        return Vec::new();
    }
    (1..n)
        .filter_map(|i| {
            // SAFETY: i < argc, per the caller's promise.
            let p = unsafe { *argv.add(i) };
            // SAFETY: a non-null argv entry is a C string.
            (!p.is_null()).then(|| {
                unsafe { std::ffi::CStr::from_ptr(p) }
                    .to_string_lossy()
                    .into_owned()
            })
        })
        .collect()
}

/// The binary's entry point for a crate with
/// `#![cfg_attr(not(test), no_main)]`: C `main` calling [`start`]. std's own
/// start-up asks glibc for the main thread's stack bounds, which parses
/// /proc/self/maps, and sets up a signal stack for overflow reports: about
/// 0.1 ms of a plugin's whole run on a VM, for nothing a one-shot plugin
/// uses. [`run`] exits through `std::process::exit`, which flushes stdout.
/// Under `cfg(test)` the crate keeps the test harness's `main`: a plain
/// `no_main` would make its unit-test binary run the plugin instead of the
/// tests, and pass. The test put in its place dispatches through the plugin.
#[macro_export]
macro_rules! plugin_main {
    ($plugin:expr) => {
        /// One-shot process: memory from a bump arena, never given back
        /// (see `cni_core::alloc`).
        #[cfg(not(test))]
        #[global_allocator]
        static PLUGIN_ALLOCATOR: $crate::alloc::Arena = $crate::alloc::Arena::new();

        #[cfg(not(test))]
        #[no_mangle]
        // C calls it with its own argv, valid for the whole run.
        #[allow(clippy::not_unsafe_ptr_arg_deref)]
        pub extern "C" fn main(
            argc: ::std::os::raw::c_int,
            argv: *const *const ::std::os::raw::c_char,
        ) -> ::std::os::raw::c_int {
            // SAFETY: C main's own arguments.
            let args = unsafe { $crate::dispatch::args_of(argc, argv) };
            $crate::dispatch::start(&$plugin, &args)
        }

        #[cfg(test)]
        #[test]
        fn plugin_main_dispatches_to_the_plugin() {
            let env = |k: &str| (k == "CNI_COMMAND").then(|| "VERSION".to_string());
            let mut out = Vec::new();
            let code = $crate::dispatch::run_with(
                &$plugin,
                &env,
                &mut &br#"{"cniVersion": "1.0.0"}"#[..],
                &mut out,
                &mut ::std::io::sink(),
            );
            assert_eq!(code, 0);
            let text = String::from_utf8_lossy(&out);
            assert!(text.contains("supportedVersions"), "{text}");
        }
    };
}

/// The dispatcher with injected environment and streams, for a command
/// line without arguments; returns the exit status.
pub fn run_with<P: Plugin>(
    plugin: &P,
    env: &dyn Fn(&str) -> Option<String>,
    stdin: &mut dyn Read,
    stdout: &mut dyn Write,
    stderr: &mut dyn Write,
) -> i32 {
    run_with_args(plugin, &[], env, stdin, stdout, stderr)
}

/// [`run_with`] with the command line (without the program name). A CNI
/// call ignores it, as the reference plugins do.
pub fn run_with_args<P: Plugin>(
    plugin: &P,
    args: &[String],
    env: &dyn Fn(&str) -> Option<String>,
    stdin: &mut dyn Read,
    stdout: &mut dyn Write,
    stderr: &mut dyn Write,
) -> i32 {
    let Some(cmd) = env("CNI_COMMAND").filter(|c| !c.is_empty()) else {
        if !args.is_empty() {
            if let Some(code) = plugin.subcommand(args, stdout, stderr) {
                return code;
            }
        }
        // Nothing useful can be done if stderr is gone.
        let _ = writeln!(stderr, "{}", plugin.about());
        return 0;
    };
    // Sized for a typical config so it is read in one or two syscalls.
    let mut input = Vec::with_capacity(16 * 1024);
    // The version errors are printed in: the config's when it has one.
    let mut err_version = latest(plugin);
    let outcome = match stdin.read_to_end(&mut input) {
        Err(e) => Err(CniError::new(
            Code::Io,
            format!(
                "failed to read network config from stdin: {}",
                crate::error::io_text(&e)
            ),
        )),
        Ok(_) => {
            if let Some(v) = peek_version(&input, plugin) {
                err_version = v;
            }
            dispatch(plugin, &cmd, env, &input, &mut err_version)
        }
    };
    match outcome {
        Ok(Some(out)) => match write_json(stdout, &out) {
            Ok(()) => 0,
            Err(e) => {
                log::error!("failed to write result: {e}");
                let _ = writeln!(stderr, "failed to write result: {e}");
                1
            }
        },
        Ok(None) => 0,
        Err(e) => {
            // The reference's words may be all of `msg`; ours are in `details`.
            if e.details.is_empty() {
                log::error!("{} failed: {} (code {})", cmd, e.msg, e.code.number());
            } else {
                log::error!(
                    "{} failed: {}: {} (code {})",
                    cmd,
                    e.msg,
                    e.details,
                    e.code.number()
                );
            }
            if write_json(stdout, &e.to_json(&err_version)).is_err() {
                let _ = writeln!(stderr, "{}", e.msg);
            }
            1
        }
    }
}

fn latest<P: Plugin>(plugin: &P) -> String {
    plugin
        .supported_versions()
        .iter()
        .max_by(|a, b| version::compare(a, b).unwrap_or(std::cmp::Ordering::Equal))
        .map_or_else(|| version::LATEST.to_string(), |v| (*v).to_string())
}

/// The version the config asks for (see [`version::negotiate`]) if the
/// plugin speaks it, read leniently for error output and VERSION.
fn peek_version<P: Plugin>(input: &[u8], plugin: &P) -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(input).ok()?;
    let v = v.as_object()?;
    let own = match v.get("cniVersion") {
        None | Some(serde_json::Value::Null) => "",
        Some(x) => x.as_str()?,
    };
    let offered: Vec<String> = v
        .get("cniVersions")
        .and_then(|l| l.as_array())
        .map(|l| l.iter().filter_map(|x| x.as_str().map(str::to_string)).collect())
        .unwrap_or_default();
    version::negotiate(own, &offered, plugin.supported_versions()).ok()
}

/// One write for the whole document: stdout is line buffered, and a result
/// should reach the runtime whole or not at all.
fn write_json(out: &mut dyn Write, v: &serde_json::Value) -> std::io::Result<()> {
    let mut buf = serde_json::to_vec_pretty(v)?;
    buf.push(b'\n');
    out.write_all(&buf)?;
    out.flush()
}

pub use cni_spec::names::{valid_container_id, valid_network_name};

/// Interface names the kernel accepts: 1 to 15 bytes, not `.` or `..`, no
/// `/`, `:` or whitespace. The error says which rule broke (code 4).
pub fn validate_ifname(name: &str) -> CniResult<()> {
    let why = if name.is_empty() {
        Some("is empty")
    } else if name.len() > 15 {
        Some("is longer than 15 bytes")
    } else if name == "." || name == ".." {
        Some("is . or ..")
    } else if name.contains('/') {
        Some("contains /")
    } else if name.contains(':') {
        Some("contains :")
    } else if name.chars().any(char::is_whitespace) {
        Some("contains whitespace")
    } else {
        None
    };
    match why {
        Some(w) => Err(CniError::env(format!("invalid CNI_IFNAME {name:?}: {w}"))),
        None => Ok(()),
    }
}

/// `CNI_ARGS` as `K=V;K2=V2`, as a runtime checks what it sends: the value
/// may be empty (libcni's LoadArgs reads `K=`, and a libcni runtime sends
/// the pairs it is given); empty segments are skipped; a pair without
/// exactly one `=` or with an empty key is code 4. Plugins read the same
/// pairs but leave malformed ones out instead (see `plugin_args`).
pub fn parse_args(args: &str) -> CniResult<Vec<(String, String)>> {
    let mut out = Vec::new();
    for pair in args.split(';').filter(|p| !p.is_empty()) {
        match split_arg(pair) {
            Some(kv) => out.push(kv),
            None => {
                return Err(CniError::env(format!(
                    "invalid CNI_ARGS pair {pair:?}: want KEY=VALUE"
                )))
            }
        }
    }
    Ok(out)
}

fn split_arg(pair: &str) -> Option<(String, String)> {
    match pair.split_once('=') {
        Some((k, v)) if !k.is_empty() && !v.contains('=') => Some((k.to_string(), v.to_string())),
        _ => None,
    }
}

/// What a plugin reads of CNI_ARGS: the well-formed pairs. The reference
/// plugins never read CNI_ARGS, so a malformed pair refuses nothing; it is
/// left out, with a warning.
fn plugin_args(args: &str) -> Vec<(String, String)> {
    args.split(';')
        .filter(|p| !p.is_empty())
        .filter_map(|pair| {
            let kv = split_arg(pair);
            if kv.is_none() {
                log::warn!("ignoring CNI_ARGS pair {pair:?}: want KEY=VALUE");
            }
            kv
        })
        .collect()
}

fn dispatch<P: Plugin>(
    plugin: &P,
    cmd: &str,
    env: &dyn Fn(&str) -> Option<String>,
    input: &[u8],
    err_version: &mut String,
) -> CniResult<Option<serde_json::Value>> {
    let command = Command::parse(cmd)?;
    if command == Command::Version {
        let supported = plugin.supported_versions();
        return Ok(Some(serde_json::json!({
            "cniVersion": err_version.as_str(),
            "supportedVersions": supported,
        })));
    }
    let mut conf = NetConf::parse(input)?;
    // Never fails: a bad logging setting is a warning (see `logging::init`).
    logging::init(
        &conf.plugin_type,
        conf.log_level.as_deref(),
        conf.log_file.as_deref(),
    );
    for w in &conf.warnings {
        log::warn!("{w}");
    }
    // The reference's skel refuses a missing or malformed network name for
    // every command but VERSION. DEL takes any name: an attachment made
    // before (by an earlier release, which did not check) must stay
    // removable, and being laxer than the reference on DEL breaks nothing.
    if command != Command::Del {
        conf.checked_name()?;
    }

    let var = |k: &str| env(k).filter(|v| !v.is_empty());
    let (need_id, need_netns, need_ifname, need_path) = match command {
        Command::Add | Command::Check => (true, true, true, true),
        Command::Del => (true, false, true, true),
        Command::Gc => (false, false, false, true),
        Command::Status | Command::Version => (false, false, false, false),
    };
    let missing: Vec<&str> = [
        ("CNI_CONTAINERID", need_id),
        ("CNI_NETNS", need_netns),
        ("CNI_IFNAME", need_ifname),
        ("CNI_PATH", need_path),
    ]
    .iter()
    .filter(|(k, need)| *need && var(k).is_none())
    .map(|(k, _)| *k)
    .collect();
    if !missing.is_empty() {
        return Err(CniError::env(format!(
            "required environment variables missing for {cmd}: {}",
            missing.join(", ")
        )));
    }
    let container_id = var("CNI_CONTAINERID").unwrap_or_default();
    if (need_id || !container_id.is_empty()) && !valid_container_id(&container_id) {
        return Err(CniError::env(format!(
            "invalid CNI_CONTAINERID {container_id:?}: must match [a-zA-Z0-9][a-zA-Z0-9_.-]*"
        )));
    }
    let ifname = var("CNI_IFNAME").unwrap_or_default();
    if need_ifname || !ifname.is_empty() {
        validate_ifname(&ifname)?;
    }
    let args = plugin_args(&var("CNI_ARGS").unwrap_or_default());
    let path = var("CNI_PATH")
        .unwrap_or_default()
        .split(':')
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .collect();

    let negotiated = version::negotiate(&conf.cni_version, &conf.cni_versions, plugin.supported_versions())?;
    *err_version = negotiated.clone();
    let floor = match command {
        Command::Check => Some("0.4.0"),
        Command::Gc | Command::Status => Some("1.1.0"),
        _ => None,
    };
    if let Some(floor) = floor {
        if !version::greater_or_equal(&negotiated, floor) {
            return Err(CniError::new(
                Code::IncompatibleVersion,
                format!("config version {negotiated} does not allow {cmd}: it needs {floor} or later"),
            ));
        }
    }
    if conf.cni_version != negotiated {
        conf.cni_version = negotiated.clone();
        conf.reparse_prev_result(&negotiated)?;
    }
    let req = Request {
        command,
        container_id,
        netns: var("CNI_NETNS").map(PathBuf::from),
        ifname,
        args,
        cni_path: path,
        conf,
    };
    log::debug!(
        "{cmd} container {:?} netns {:?} ifname {:?}",
        req.container_id,
        req.netns,
        req.ifname
    );
    match command {
        Command::Add => {
            let res = plugin.add(&req)?;
            Ok(Some(res.to_json(&negotiated)?))
        }
        Command::Del => plugin.del(&req).map(|()| None),
        Command::Check => plugin.check(&req).map(|()| None),
        Command::Gc => plugin.gc(&req).map(|()| None),
        Command::Status => plugin.status(&req).map(|()| None),
        Command::Version => Ok(None),
    }
}
