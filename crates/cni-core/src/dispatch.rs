//! The one entry point of a plugin binary.

use std::io::{Read, Write};
use std::path::PathBuf;

use crate::conf::NetConf;
use crate::error::CniResult;
use crate::types::NetResult;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    Add,
    Del,
    Check,
    Version,
    Gc,
    Status,
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
    pub path: Vec<PathBuf>,
    /// The config with `cni_version` already negotiated.
    pub conf: NetConf,
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
}

/// Reads the process environment and streams, and exits with the status.
pub fn run<P: Plugin>(plugin: &P) -> ! {
    let env = |k: &str| std::env::var(k).ok();
    let code = run_with(plugin, &env, &mut std::io::stdin(), &mut std::io::stdout(), &mut std::io::stderr());
    std::process::exit(code)
}

/// The dispatcher with injected environment and streams; returns the exit status.
pub fn run_with<P: Plugin>(
    plugin: &P,
    env: &dyn Fn(&str) -> Option<String>,
    stdin: &mut dyn Read,
    stdout: &mut dyn Write,
    stderr: &mut dyn Write,
) -> i32 {
    let _ = (plugin, env, stdin, stdout, stderr);
    todo!("cni-core helper")
}
