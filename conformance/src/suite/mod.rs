//! The black-box conformance suite: namespaces per case, plugins run as
//! processes with the CNI environment, kernel state read back and compared.

pub mod cases;
pub mod cri;
pub mod pod;
pub mod probe;

use std::collections::HashMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use serde_json::Value;

use cni_runtime::exec::{Invocation, Outcome};
use cni_testkit::kernel;
use cni_testkit::state::State;
use cni_testkit::Ns;

/// Why a case did not pass.
#[derive(Debug, Clone)]
pub enum Failure {
    Fail(String),
    /// Not applicable here (a tool or plugin is missing).
    Skip(String),
    /// Not run: this kernel lacks a feature the case needs ([`kernel`]);
    /// `scripts/test-vm` runs it on a kernel that has them.
    NotHere(String),
}

impl From<String> for Failure {
    fn from(s: String) -> Self {
        Failure::Fail(s)
    }
}

impl From<&str> for Failure {
    fn from(s: &str) -> Self {
        Failure::Fail(s.to_string())
    }
}

pub type CaseResult = Result<(), Failure>;

/// Fails with `msg` unless `cond`.
pub fn ensure(cond: bool, msg: impl FnOnce() -> String) -> CaseResult {
    if cond {
        Ok(())
    } else {
        Err(Failure::Fail(msg()))
    }
}

pub struct Case {
    pub group: &'static str,
    pub name: String,
    /// Kernel features the case needs beyond the baseline ([`kernel`]).
    pub needs: &'static [&'static str],
    pub run: Box<dyn Fn(&Ctx) -> CaseResult>,
}

impl Case {
    pub fn new(
        group: &'static str,
        name: impl Into<String>,
        run: impl Fn(&Ctx) -> CaseResult + 'static,
    ) -> Case {
        Case {
            group,
            name: name.into(),
            needs: &[],
            run: Box::new(run),
        }
    }

    /// The case runs only on a kernel with every one of `features`.
    pub fn needs(mut self, features: &'static [&'static str]) -> Case {
        self.needs = features;
        self
    }

    /// Runs the case when the kernel has what it needs.
    pub fn run(&self, ctx: &Ctx) -> CaseResult {
        let missing = kernel::missing(self.needs)?;
        if !missing.is_empty() {
            return Err(Failure::NotHere(format!(
                "this kernel lacks {} (scripts/test-vm runs it)",
                missing.join(", ")
            )));
        }
        (self.run)(ctx)
    }
}

/// Reference snapshots, computed once per scenario and shared by all dirs.
pub type RefStates = Arc<Mutex<HashMap<String, Result<Vec<State>, String>>>>;

/// One plugin directory under test.
pub struct Ctx {
    pub dir: PathBuf,
    /// The reference plugins: differential comparisons, and `ptp` /
    /// `host-local` for chains when `dir` has none.
    pub reference: Option<PathBuf>,
    /// Scratch space of this run (cache dirs, host-local data, conflists).
    pub tmp: PathBuf,
    pub cni_run: PathBuf,
    pub timeout: Duration,
    pub ref_states: RefStates,
}

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(4)
            .enable_all()
            .build()
            .unwrap_or_else(|e| {
                eprintln!("cannot start the tokio runtime: {e}");
                std::process::exit(2)
            })
    })
}

/// Runs a future to completion from the suite's synchronous cases.
pub fn block_on<F: Future>(f: F) -> F::Output {
    runtime().block_on(f)
}

impl Ctx {
    pub fn is_reference(&self) -> bool {
        self.reference.as_deref().is_some_and(|r| same_dir(r, &self.dir))
    }

    pub fn plugin(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    pub fn has_plugin(&self, name: &str) -> bool {
        self.plugin(name).is_file()
    }

    /// `CNI_PATH` for chains: the dir under test first, then the reference.
    pub fn cni_path(&self) -> String {
        let mut v = vec![self.dir.display().to_string()];
        if let Some(r) = &self.reference {
            if !self.is_reference() {
                v.push(r.display().to_string());
            }
        }
        v.join(":")
    }

    /// The same context for another plugin directory (the reference, for a
    /// differential run or to make the reference's state).
    pub fn with_dir(&self, dir: &Path) -> Ctx {
        Ctx {
            dir: dir.to_path_buf(),
            reference: self.reference.clone(),
            tmp: self.tmp.clone(),
            cni_run: self.cni_run.clone(),
            timeout: self.timeout,
            ref_states: self.ref_states.clone(),
        }
    }

    /// A fresh scratch directory for one case.
    pub fn scratch(&self, what: &str) -> Result<PathBuf, String> {
        let p = self.tmp.join(what);
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).map_err(|e| format!("failed to create {}: {e}", p.display()))?;
        Ok(p)
    }

    /// Runs `plugin` of the dir under test inside `host` with exactly `env`
    /// (plus PATH) and `stdin`.
    pub fn invoke(
        &self,
        plugin: &str,
        host: &Ns,
        env: &[(String, String)],
        stdin: &[u8],
    ) -> Result<Outcome, String> {
        let inv = self.invocation(&self.plugin(plugin), host, env, stdin);
        block_on(inv.run()).map_err(|e| e.to_string())
    }

    pub fn invocation(
        &self,
        program: &Path,
        host: &Ns,
        env: &[(String, String)],
        stdin: &[u8],
    ) -> Invocation {
        let mut inv = Invocation::new(program);
        inv.wrapper = vec![
            "ip".into(),
            "netns".into(),
            "exec".into(),
            host.name.clone().into(),
        ];
        inv.clear_env = true;
        inv.env = env.to_vec();
        inv.stdin = stdin.to_vec();
        inv.timeout = self.timeout;
        inv
    }

    /// Differential check: the states `scenario` leaves with this dir equal
    /// the reference's for the same input. The reference side runs once per
    /// `key`. Without a reference, or when its side failed, nothing was
    /// compared: a skip with the reason, never a pass.
    pub fn differential(
        &self,
        key: &str,
        own: &[State],
        scenario: impl Fn(&Ctx) -> Result<Vec<State>, Failure>,
    ) -> CaseResult {
        let Some(reference) = self.reference.clone() else {
            return Err(Failure::Skip(
                "no reference plugins: nothing to compare with".into(),
            ));
        };
        if self.is_reference() {
            return Ok(());
        }
        let cached = self.ref_states.lock().ok().and_then(|m| m.get(key).cloned());
        let theirs = match cached {
            Some(r) => r,
            None => {
                let r = scenario(&self.with_dir(&reference)).map_err(|f| match f {
                    Failure::Fail(s) | Failure::Skip(s) | Failure::NotHere(s) => s,
                });
                if let Ok(mut m) = self.ref_states.lock() {
                    m.insert(key.to_string(), r.clone());
                }
                r
            }
        };
        let theirs = theirs.map_err(|e| {
            Failure::Skip(format!(
                "the reference's side of {key} failed, nothing compared: {e}"
            ))
        })?;
        ensure(own.len() == theirs.len(), || {
            format!(
                "{} namespaces read, the reference's scenario {} (the scenario differs)",
                own.len(),
                theirs.len()
            )
        })?;
        let mut diff = String::new();
        for (i, (a, b)) in own.iter().zip(theirs.iter()).enumerate() {
            let d = a.without_marks().diff(&b.without_marks(), "ours", "reference");
            if !d.is_empty() {
                diff.push_str(&format!("namespace {i}:\n{d}"));
            }
        }
        ensure(diff.is_empty(), || {
            format!("kernel state differs from the reference:\n{diff}")
        })
    }
}

fn same_dir(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(x), Ok(y)) => x == y,
        _ => a == b,
    }
}

/// The code of a failed call, or a description of why there is none.
pub fn error_code(out: &Outcome) -> Result<u64, String> {
    match out.error() {
        None => Err(format!(
            "succeeded (stdout {})",
            String::from_utf8_lossy(&out.stdout).trim()
        )),
        Some(e) => e
            .code
            .ok_or_else(|| format!("failed without an error object: {e}")),
    }
}

/// Fails unless the call succeeded.
pub fn ok(what: &str, out: &Outcome) -> Result<Option<Value>, Failure> {
    match out.error() {
        None => Ok(out.stdout_json()),
        Some(e) => Err(Failure::Fail(format!("{what} failed: {e}"))),
    }
}

/// Fails unless a cni-run call succeeded (it prints no error object: its
/// stderr says what failed).
pub fn ran(what: &str, out: &Outcome) -> Result<Option<Value>, Failure> {
    if out.success() {
        return Ok(out.stdout_json());
    }
    let status = out
        .code
        .map_or_else(|| "a signal".to_string(), |c| format!("status {c}"));
    Err(Failure::Fail(format!(
        "{what} failed with {status}: {}",
        out.stderr_text()
    )))
}

/// A tiny xorshift for random kill moments; seeded from the clock.
pub struct Rng(u64);

impl Rng {
    pub fn new() -> Rng {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
            .unwrap_or(0x9e37_79b9_7f4a_7c15);
        Rng(seed | 1)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        if n == 0 {
            0
        } else {
            self.0 % n
        }
    }
}

impl Default for Rng {
    fn default() -> Self {
        Rng::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx(dir: &str, reference: Option<&str>) -> Ctx {
        Ctx {
            dir: dir.into(),
            reference: reference.map(PathBuf::from),
            tmp: "/nonexistent-tmp".into(),
            cni_run: "/nonexistent-cni-run".into(),
            timeout: Duration::from_secs(1),
            ref_states: RefStates::default(),
        }
    }

    fn state(rule: &str) -> State {
        let mut s = State::default();
        s.rules.insert(rule.to_string());
        s
    }

    #[test]
    fn differential_without_reference_skips() {
        let r = ctx("/ours", None).differential("k", &[state("a")], |_| Ok(vec![state("a")]));
        assert!(
            matches!(r, Err(Failure::Skip(ref s)) if s.contains("no reference")),
            "{r:?}"
        );
    }

    #[test]
    fn differential_skips_when_the_reference_side_failed() {
        let c = ctx("/ours", Some("/theirs"));
        let r = c.differential("k", &[state("a")], |_| Err(Failure::Fail("boom".into())));
        assert!(
            matches!(r, Err(Failure::Skip(ref s)) if s.contains("boom")),
            "{r:?}"
        );
        // Cached: a later directory skips too, without running the scenario.
        let r = c.differential("k", &[state("a")], |_| panic!("ran twice"));
        assert!(matches!(r, Err(Failure::Skip(_))), "{r:?}");
    }

    #[test]
    fn differential_compares_with_the_reference_dir() {
        let c = ctx("/ours", Some("/theirs"));
        let seen = Mutex::new(PathBuf::new());
        let same = c.differential("same", &[state("a")], |r| {
            *seen.lock().unwrap() = r.dir.clone();
            Ok(vec![state("a")])
        });
        assert!(same.is_ok(), "{same:?}");
        assert_eq!(*seen.lock().unwrap(), Path::new("/theirs"));
        let differs = c.differential("differs", &[state("a")], |_| Ok(vec![state("b")]));
        assert!(
            matches!(differs, Err(Failure::Fail(ref s)) if s.contains("only in ours")),
            "{differs:?}"
        );
        let fewer = c.differential("fewer", &[state("a"), state("a")], |_| Ok(vec![state("a")]));
        assert!(
            matches!(fewer, Err(Failure::Fail(ref s)) if s.contains("2 namespaces")),
            "{fewer:?}"
        );
    }

    #[test]
    fn the_reference_column_is_not_compared_with_itself() {
        let c = ctx("/theirs", Some("/theirs"));
        assert!(c
            .differential("k", &[state("a")], |_| panic!("compared with itself"))
            .is_ok());
    }
}
