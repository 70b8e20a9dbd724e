//! The kernel side of a plan: how each change is made through nl-ops. The
//! engine that runs plans (rollback, best effort) is cni-core's.

use cni_core::error::FromConfig;
use cni_core::{CniError, CniResult};
use nl_ops::error::errno_text;
use nl_ops::Socket;

use crate::plan::Change;

impl cni_core::plan::Change for Change {
    type Target = Socket;
    /// The interface's name: routes know it by index.
    type Names = str;

    fn apply(&self, sock: &mut Socket, _ifname: &str) -> CniResult<()> {
        let done = match self {
            Change::AddRule(r) => sock.add_rule(r),
            // Gone already is what we wanted.
            Change::DelRule(r) => sock.delete_rule(r).map(drop),
            Change::AddRoute(r) => sock.add_route(r),
            Change::AppendRoute(r) => sock.append_route(r),
            Change::DelRoute(r) => sock.delete_route(r).map(drop),
        };
        done.map_err(|e| error(self, e))
    }

    fn describe(&self, ifname: &str) -> String {
        self.text(ifname)
    }
}

/// The errno's text with its spec code. An unreachable gateway (IPv4 says
/// "network is unreachable", IPv6 "no route to host") or a source the link
/// does not have comes from the config or the prevResult: code 7.
fn error(change: &Change, e: nl_ops::Error) -> CniError {
    let text = match e.errno() {
        Some(n) => errno_text(n),
        None => e.to_string(),
    };
    let from_config = match change {
        Change::AddRoute(r) => FromConfig {
            values: r.prefsrc.is_some(),
            gateway: true,
        },
        Change::AppendRoute(_) => FromConfig {
            values: false,
            gateway: true,
        },
        _ => FromConfig::NOTHING,
    };
    CniError::new(e.code(from_config), text)
}
