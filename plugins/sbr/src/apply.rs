//! Runs a plan through nl-ops. ADD is all or nothing: on the first failed
//! step the applied prefix is undone, last step first. DEL is best effort.

use cni_core::{CniError, Code};
use nl_ops::error::errno_text;
use nl_ops::Socket;

use crate::plan::{Op, Plan};

fn run(sock: &mut Socket, op: &Op) -> nl_ops::Result<()> {
    match op {
        Op::AddRule(r) => sock.add_rule(r),
        // Gone already is what we wanted.
        Op::DelRule(r) => sock.delete_rule(r).map(|_| ()),
        Op::AddRoute(r) => sock.add_route(r),
        Op::DelRoute(r) => sock.delete_route(r).map(|_| ()),
    }
}

/// "failed to add route default via 10.9.0.1 dev net1 to table 100:
/// network is unreachable", with the errno's spec code. An unreachable
/// gateway or a source the link does not have comes from the config or the
/// prevResult: code 7.
pub fn step_error(op: &Op, ifname: &str, e: nl_ops::Error) -> CniError {
    let what = op.describe(ifname);
    let errno = e.errno();
    let text = match errno {
        Some(n) => errno_text(n),
        None => e.to_string(),
    };
    let code = match (op, errno) {
        (Op::AddRoute(_), Some(libc::ENETUNREACH)) => Code::InvalidConfig,
        (Op::AddRoute(r), Some(libc::EINVAL)) if r.prefsrc.is_some() => Code::InvalidConfig,
        _ => CniError::from(e).code,
    };
    CniError::new(code, format!("failed to {what}: {text}"))
}

/// Applies every op; on failure undoes the applied ones and says so in the
/// error's details.
pub fn apply(sock: &mut Socket, plan: &Plan, ifname: &str) -> Result<(), CniError> {
    for (i, op) in plan.ops.iter().enumerate() {
        log::debug!("{}", op.describe(ifname));
        if let Err(e) = run(sock, op) {
            let err = step_error(op, ifname, e);
            let done = Plan {
                ops: plan.ops[..i].to_vec(),
            };
            let failures = best_effort(sock, &done.inverse(), ifname);
            let details = if failures.is_empty() {
                format!("rolled back {i} earlier change(s)")
            } else {
                let msgs: Vec<&str> = failures.iter().map(|f| f.msg.as_str()).collect();
                format!("rollback of {i} change(s) incomplete: {}", msgs.join("; "))
            };
            log::error!("{}; {details}", err.msg);
            return Err(err.with_details(details));
        }
    }
    Ok(())
}

/// Runs every op, going on after failures. Ops that failed are retried
/// while a pass makes progress: one may need another (a gateway's route)
/// that came later. Returns the failures of the last pass.
pub fn best_effort(sock: &mut Socket, plan: &Plan, ifname: &str) -> Vec<CniError> {
    let mut pending: Vec<&Op> = plan.ops.iter().collect();
    loop {
        let mut failed = Vec::new();
        let mut errors = Vec::new();
        for op in &pending {
            log::debug!("{}", op.describe(ifname));
            if let Err(e) = run(sock, op) {
                failed.push(*op);
                errors.push(step_error(op, ifname, e));
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
