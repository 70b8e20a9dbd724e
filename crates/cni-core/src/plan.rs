//! The step engine both plugins run their plans on.
//!
//! A plan is plain data: an ordered list of kernel changes, each with the
//! change that takes it back. ADD applies a plan all or nothing: when a step
//! fails, the steps already applied are undone newest first and the error
//! says what failed and what the rollback did. DEL applies a plan best
//! effort: every step runs, failures are collected, and steps that failed
//! are tried again while a pass makes progress (one may need another that
//! came later, such as the route to a gateway).

use std::fmt;

use crate::error::{CniError, CniResult};

/// One kernel change a plugin knows how to make.
pub trait Change {
    /// What the change acts on: a netlink socket and what the plugin learns
    /// while applying (an ifb's index once it exists).
    type Target;
    /// What a description needs beyond the change itself (the names of the
    /// links that changes know by index). Plans are described without a
    /// kernel, in tests and logs.
    type Names: ?Sized;

    /// Makes the change. Deleting what is already gone succeeds. The error
    /// says why; the engine prefixes what was being done.
    fn apply(&self, target: &mut Self::Target, names: &Self::Names) -> CniResult<()>;

    /// "add rule from 10.0.0.2/32 to table 100", for logs and errors.
    fn describe(&self, names: &Self::Names) -> String;
}

/// A change and the change that takes it back; `None` when there is nothing
/// to take back (or a later step's undo covers it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step<C> {
    pub change: C,
    pub undo: Option<C>,
}

impl<C> Step<C> {
    pub fn new(change: C, undo: Option<C>) -> Step<C> {
        Step { change, undo }
    }

    /// A step nothing needs to take back (DEL's steps, mostly).
    pub fn once(change: C) -> Step<C> {
        Step { change, undo: None }
    }
}

/// Ordered steps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan<C> {
    pub steps: Vec<Step<C>>,
}

impl<C> Default for Plan<C> {
    fn default() -> Self {
        Plan { steps: Vec::new() }
    }
}

impl<C> FromIterator<Step<C>> for Plan<C> {
    fn from_iter<I: IntoIterator<Item = Step<C>>>(iter: I) -> Self {
        Plan {
            steps: iter.into_iter().collect(),
        }
    }
}

impl<C> Plan<C> {
    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }

    pub fn len(&self) -> usize {
        self.steps.len()
    }

    pub fn push(&mut self, change: C, undo: Option<C>) {
        self.steps.push(Step::new(change, undo));
    }

    pub fn changes(&self) -> impl Iterator<Item = &C> {
        self.steps.iter().map(|s| &s.change)
    }
}

impl<C: Change> Plan<C> {
    /// One line per change, for logs and golden tests.
    pub fn lines(&self, names: &C::Names) -> Vec<String> {
        self.changes().map(|c| c.describe(names)).collect()
    }

    /// All or nothing: on the first failure the applied steps are undone,
    /// newest first, and the error carries what the rollback did in its
    /// details.
    pub fn apply(&self, target: &mut C::Target, names: &C::Names) -> CniResult<()> {
        for (done, step) in self.steps.iter().enumerate() {
            let Err(err) = run(&step.change, target, names) else {
                continue;
            };
            let undo: Vec<&C> = self.steps[..done]
                .iter()
                .rev()
                .filter_map(|s| s.undo.as_ref())
                .collect();
            let failures = best_effort(&undo, target, names);
            let details = if failures.is_empty() {
                format!("rolled back {} earlier change(s)", undo.len())
            } else {
                format!(
                    "rollback of {} change(s) incomplete: {}",
                    undo.len(),
                    Messages(&failures)
                )
            };
            log::error!("{}; {details}", err.msg);
            return Err(err.with_details(details));
        }
        Ok(())
    }

    /// Best effort: every step runs; the first failure is returned with every
    /// failure's message in its details.
    pub fn apply_best_effort(&self, target: &mut C::Target, names: &C::Names) -> CniResult<()> {
        let changes: Vec<&C> = self.changes().collect();
        let failures = best_effort(&changes, target, names);
        match failures.first() {
            None => Ok(()),
            Some(first) => Err(first.clone().with_details(Messages(&failures).to_string())),
        }
    }
}

fn run<C: Change>(change: &C, target: &mut C::Target, names: &C::Names) -> CniResult<()> {
    log::debug!("{}", change.describe(names));
    change
        .apply(target, names)
        .map_err(|e| e.context(format_args!("failed to {}", change.describe(names))))
}

/// Runs every change, then again those that failed while a pass makes
/// progress. Returns the failures of the last pass.
fn best_effort<C: Change>(changes: &[&C], target: &mut C::Target, names: &C::Names) -> Vec<CniError> {
    let mut pending: Vec<&C> = changes.to_vec();
    loop {
        let mut failed = Vec::new();
        let mut errors = Vec::new();
        for change in &pending {
            if let Err(e) = run(*change, target, names) {
                failed.push(*change);
                errors.push(e);
            }
        }
        if failed.is_empty() || failed.len() == pending.len() {
            for e in &errors {
                log::warn!("{}", e.msg);
            }
            return errors;
        }
        pending = failed;
    }
}

struct Messages<'a>(&'a [CniError]);

impl fmt::Display for Messages<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            f.write_str(&e.msg)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Code;

    /// A toy kernel: a set of names; adding one that exists or deleting one
    /// that is listed in `broken` fails.
    #[derive(Default)]
    struct Kernel {
        objects: Vec<String>,
        broken: Vec<String>,
        /// Objects that can only be added once `needs` is there.
        needs: Vec<(String, String)>,
        log: Vec<String>,
    }

    #[derive(Debug, Clone, PartialEq, Eq)]
    enum Toy {
        Add(&'static str),
        Del(&'static str),
    }

    impl Change for Toy {
        type Target = Kernel;
        type Names = ();

        fn apply(&self, k: &mut Kernel, _: &()) -> CniResult<()> {
            match self {
                Toy::Add(n) => {
                    let n = n.to_string();
                    if k.broken.contains(&n) || k.objects.contains(&n) {
                        return Err(CniError::new(Code::Internal, "file exists"));
                    }
                    if let Some((_, dep)) = k.needs.iter().find(|(o, _)| *o == n) {
                        if !k.objects.contains(dep) {
                            return Err(CniError::new(Code::InvalidConfig, "network is unreachable"));
                        }
                    }
                    k.log.push(format!("+{n}"));
                    k.objects.push(n);
                }
                Toy::Del(n) => {
                    if k.broken.contains(&n.to_string()) {
                        return Err(CniError::new(Code::TryAgainLater, "device or resource busy"));
                    }
                    k.log.push(format!("-{n}"));
                    k.objects.retain(|o| o != n);
                }
            }
            Ok(())
        }

        fn describe(&self, _: &()) -> String {
            match self {
                Toy::Add(n) => format!("add {n}"),
                Toy::Del(n) => format!("delete {n}"),
            }
        }
    }

    fn add(n: &'static str) -> Step<Toy> {
        Step::new(Toy::Add(n), Some(Toy::Del(n)))
    }

    #[test]
    fn all_or_nothing_undoes_the_applied_prefix_newest_first() {
        let plan: Plan<Toy> = [add("a"), add("b"), add("c")].into_iter().collect();
        let mut k = Kernel {
            objects: vec!["c".into()],
            ..Kernel::default()
        };
        let e = plan.apply(&mut k, &()).unwrap_err();
        assert_eq!(e.msg, "failed to add c: file exists");
        assert_eq!(e.code, Code::Internal);
        assert_eq!(e.details, "rolled back 2 earlier change(s)");
        assert_eq!(k.log, ["+a", "+b", "-b", "-a"]);
        assert_eq!(k.objects, ["c"]);
    }

    #[test]
    fn a_first_step_failure_has_nothing_to_undo() {
        let plan: Plan<Toy> = [add("a"), add("b")].into_iter().collect();
        let mut k = Kernel {
            objects: vec!["a".into()],
            ..Kernel::default()
        };
        let e = plan.apply(&mut k, &()).unwrap_err();
        assert_eq!(e.msg, "failed to add a: file exists");
        assert_eq!(e.details, "rolled back 0 earlier change(s)");
        assert!(k.log.is_empty());
    }

    #[test]
    fn rollback_failure_lands_in_details() {
        // "a" applied, "b" fails; undoing "a" fails too.
        struct Flaky;
        #[derive(Debug)]
        enum F {
            Ok,
            Fail,
            Undo,
        }
        impl Change for F {
            type Target = Flaky;
            type Names = ();
            fn apply(&self, _: &mut Flaky, _: &()) -> CniResult<()> {
                match self {
                    F::Ok => Ok(()),
                    F::Fail => Err(CniError::internal("no")),
                    F::Undo => Err(CniError::internal("stuck")),
                }
            }
            fn describe(&self, _: &()) -> String {
                format!("{self:?}").to_lowercase()
            }
        }
        let plan = Plan {
            steps: vec![Step::new(F::Ok, Some(F::Undo)), Step::once(F::Fail)],
        };
        let e = plan.apply(&mut Flaky, &()).unwrap_err();
        assert_eq!(e.msg, "failed to fail: no");
        assert_eq!(
            e.details,
            "rollback of 1 change(s) incomplete: failed to undo: stuck"
        );
    }

    #[test]
    fn best_effort_runs_everything_and_retries_while_progressing() {
        // "route" needs "gateway", which comes later in the plan.
        let plan: Plan<Toy> = [Step::once(Toy::Add("route")), Step::once(Toy::Add("gateway"))]
            .into_iter()
            .collect();
        let mut k = Kernel {
            needs: vec![("route".into(), "gateway".into())],
            ..Kernel::default()
        };
        plan.apply_best_effort(&mut k, &()).unwrap();
        assert_eq!(k.log, ["+gateway", "+route"]);

        let plan: Plan<Toy> = [
            Step::once(Toy::Del("a")),
            Step::once(Toy::Del("b")),
            Step::once(Toy::Del("c")),
        ]
        .into_iter()
        .collect();
        let mut k = Kernel {
            objects: vec!["a".into(), "b".into(), "c".into()],
            broken: vec!["a".into(), "c".into()],
            ..Kernel::default()
        };
        let e = plan.apply_best_effort(&mut k, &()).unwrap_err();
        assert_eq!(e.msg, "failed to delete a: device or resource busy");
        assert_eq!(
            e.details,
            "failed to delete a: device or resource busy; failed to delete c: device or resource busy"
        );
        assert_eq!(k.objects, ["a", "c"]);
    }
}
