//! The kernel side of a plan: how each change is made through nl-ops. The
//! engine that runs plans (rollback, best effort) is cni-core's.

use cni_core::error::FromConfig;
use cni_core::netns::NetNs;
use cni_core::{CniError, CniResult, Code};
use nl_ops::error::errno_text;
use nl_ops::Socket;

use crate::plan::{Change, Port, L3MDEV_SYSCTLS, VRF_ALIAS};

/// Where plans apply: the namespace's netlink socket, and the namespace
/// itself for its sysctls.
pub struct Kernel {
    pub sock: Socket,
    pub ns: NetNs,
}

impl cni_core::plan::Change for Change {
    type Target = Kernel;
    /// The interface's name: routes know it by index.
    type Names = str;

    fn apply(&self, k: &mut Kernel, _ifname: &str) -> CniResult<()> {
        let sock = &mut k.sock;
        let done = match self {
            Change::AddRule(r) => sock.add_rule(r),
            // Gone already is what we wanted.
            Change::DelRule(r) => sock.delete_rule(r).map(drop),
            Change::AddRoute(r) => sock.add_route(r),
            Change::AppendRoute(r) => sock.append_route(r),
            Change::DelRoute(r) => sock.delete_route(r).map(drop),
            Change::AddVrf(v) => sock.add_vrf(&v.name, v.table, Some(VRF_ALIAS)).map(drop),
            // Only sbr's: the plan was made under the lock, this is a guard.
            Change::DelVrf(v) => match sock.link_by_name(&v.name) {
                Ok(Some(l)) if l.alias.as_deref() == Some(VRF_ALIAS) => sock.delete_link(l.index).map(drop),
                Ok(_) => Ok(()),
                Err(e) => Err(e),
            },
            Change::Enslave(p) => match sock.link_by_name(&p.vrf) {
                Ok(Some(v)) => sock.set_link_master(p.link, v.index).and_then(|()| keep(sock, p)),
                Ok(None) => Err(nl_ops::Error::no_device(format!("get link {}", p.vrf))),
                Err(e) => Err(e),
            },
            Change::Release(p) => sock.set_link_master(p.link, 0).and_then(|()| keep(sock, p)),
            Change::Sysctl(s) => return sysctl(&k.ns, s.key, s.on),
        };
        done.map_err(|e| error(self, e))
    }

    fn describe(&self, ifname: &str) -> String {
        self.text(ifname)
    }
}

/// The addresses the link dropped as it went down and up, back without
/// DAD: the link had them already.
fn keep(sock: &mut Socket, p: &Port) -> nl_ops::Result<()> {
    for a in &p.keep {
        match sock.add_address(p.link, *a, true) {
            Err(e) if !e.is_exists() => return Err(e),
            _ => {}
        }
    }
    Ok(())
}

/// Writes `/proc/sys/net/ipv4/KEY` inside the namespace.
fn sysctl(ns: &NetNs, key: &str, on: bool) -> CniResult<()> {
    debug_assert!(L3MDEV_SYSCTLS.contains(&key));
    let path = format!("/proc/sys/net/ipv4/{key}");
    let value = if on { "1" } else { "0" };
    ns.run(|| std::fs::write(&path, value))?
        .map_err(|e| CniError::from(e).context(format!("failed to write {value} to {path}")))
}

/// Reads both l3mdev sysctls inside the namespace.
pub fn l3mdev_accept(ns: &NetNs) -> CniResult<[bool; 2]> {
    let read = |key: &str| -> CniResult<bool> {
        let path = format!("/proc/sys/net/ipv4/{key}");
        let text = ns
            .run(|| std::fs::read_to_string(&path))?
            .map_err(|e| CniError::from(e).context(format!("failed to read {path}")))?;
        Ok(text.trim() != "0")
    };
    Ok([read(L3MDEV_SYSCTLS[0])?, read(L3MDEV_SYSCTLS[1])?])
}

/// The errno's text with its spec code. An unreachable gateway (IPv4 says
/// "network is unreachable", IPv6 "no route to host") or a source the link
/// does not have comes from the config or the prevResult: code 7.
fn error(change: &Change, e: nl_ops::Error) -> CniError {
    let errno = e.errno();
    let text = match errno {
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
    // EOPNOTSUPP: the kernel knows no link kind "vrf": the config asks for
    // what this node cannot do, and no retry helps.
    if matches!(change, Change::AddVrf(_)) && errno == Some(libc::EOPNOTSUPP) {
        return CniError::new(
            Code::InvalidConfig,
            format!("{text}: this kernel has no vrf devices (CONFIG_NET_VRF, module vrf)"),
        );
    }
    CniError::new(e.code(from_config), text)
}
