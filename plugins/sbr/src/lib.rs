//! CNI sbr plugin: source based routing for one interface of a container,
//! as a chained plugin. config -> pure plan from one snapshot -> apply.

mod apply;
pub mod config;
pub mod plan;
mod snapshot;

use std::path::Path;

use cni_core::lock::Lock;
use cni_core::netns::{Found, NetNs};
use cni_core::{CniError, CniResult, NetResult, Plugin, Request};
use nl_ops::Socket;

use crate::apply::Kernel;
use crate::config::{Config, Mode};
use crate::plan::{Address, Snapshot};

/// The plugin, for `cni_core::plugin_main!`.
pub struct Sbr;

/// Opens a socket inside the namespace and reads the snapshot (with the
/// link's address prefixes when `prefixes`; the VRFs in vrf mode; the
/// l3mdev sysctls when `l3mdevAccept` asks for them).
fn observe(ns: NetNs, ifname: &str, prefixes: bool, config: &Config) -> CniResult<(Kernel, Snapshot)> {
    let where_ = ns.path().display();
    let mut sock = Socket::in_netns(&ns)
        .map_err(|e| CniError::from(e).context(format!("failed to open netlink in {where_}")))?;
    let mut observed = snapshot::read(&mut sock, ifname, prefixes, config.mode == Mode::Vrf)
        .map_err(|e| CniError::from(e).context(format!("failed to read routing state of {where_}")))?;
    if config.mode == Mode::Vrf && config.l3mdev_accept {
        observed.l3mdev_accept = Some(apply::l3mdev_accept(&ns)?);
    }
    Ok((Kernel { sock, ns }, observed))
}

/// No prevResult: the reference's words exactly, ours in `details`.
fn not_chained() -> CniError {
    CniError::invalid_config("This plugin must be called as chained plugin")
        .with_details("no prevResult: sbr runs after the plugin that made the interface, in a chain")
}

/// The prevResult's addresses of the interface. No addresses at all is
/// code 7, as with the reference; addresses only of other interfaces is an
/// empty list: the reference goes on there (and strips main of the link's
/// routes with no rule to replace them), sbr changes nothing.
fn prev_addresses(req: &Request) -> CniResult<Vec<Address>> {
    let prev = req.conf.prev_result.as_ref().ok_or_else(not_chained)?;
    if prev.ips.is_empty() {
        return Err(CniError::invalid_config(format!(
            "No IP addresses supplied on interface: {}",
            req.ifname
        ))
        .with_details("the prevResult has no ip address, for this or any interface"));
    }
    let addresses = plan::addresses_from_result(prev, &req.ifname);
    if addresses.is_empty() {
        log::warn!(
            "no ip address for {} in prevResult (only for other interfaces): nothing to route by source",
            req.ifname
        );
    }
    Ok(addresses)
}

fn netns_path(req: &Request) -> CniResult<&Path> {
    req.netns
        .as_deref()
        .ok_or_else(|| CniError::env("CNI_NETNS is required"))
}

/// The plugin's name (its binary), from Cargo.toml only.
pub const NAME: &str = env!("CARGO_PKG_NAME");

impl Plugin for Sbr {
    fn about(&self) -> String {
        format!("CNI {NAME} plugin v{}", env!("CARGO_PKG_VERSION"))
    }

    fn supported_versions(&self) -> &'static [&'static str] {
        cni_core::version::ALL
    }

    fn add(&self, req: &Request) -> CniResult<NetResult> {
        let config = Config::from_netconf(&req.conf)?;
        let addresses = prev_addresses(req)?;
        if !addresses.is_empty() {
            let path = netns_path(req)?;
            let ns = NetNs::open(path)?;
            let _lock = Lock::netns(&ns)?;
            // vrf mode: every address of the link, tentative IPv6 ones too: the
            // kernel drops them as the link joins, and ADD adds them back.
            let vrf = config.mode == Mode::Vrf;
            let (mut kernel, observed) = observe(ns, &req.ifname, vrf, &config)?;
            let plan = plan::plan_add(&config, &addresses, &observed)?;
            log::info!("add {}: {} step(s)", req.ifname, plan.len());
            plan.apply(&mut kernel, &req.ifname)?;
        }
        // Passed through unchanged: the dispatcher prints it in the config's version.
        req.conf.prev_result.clone().ok_or_else(not_chained)
    }

    fn del(&self, req: &Request) -> CniResult<()> {
        let config = Config::for_del(&req.conf);
        let Some(path) = req.netns.as_deref() else {
            log::info!("del {}: no network namespace given, nothing to do", req.ifname);
            return Ok(());
        };
        // Only a namespace that is gone is nothing to do: a path that cannot
        // be opened (EACCES, EMFILE) fails, so the runtime tries again.
        let ns = match NetNs::find(path)? {
            Found::NetNs(ns) => ns,
            Found::Nothing => {
                log::info!("del {}: {} is gone, nothing to do", req.ifname, path.display());
                return Ok(());
            }
            // A stale file where a namespace was: nothing left to clean.
            Found::NotNetNs(e) => {
                log::info!("del {}: {}, nothing to do", req.ifname, e.msg);
                return Ok(());
            }
        };
        let _lock = Lock::netns(&ns)?;
        let (mut kernel, observed) = observe(
            ns,
            &req.ifname,
            req.conf.prev_result.is_none() || config.mode == Mode::Vrf,
            &config,
        )?;
        let addresses = req
            .conf
            .prev_result
            .as_ref()
            .map(|p| plan::addresses_from_result(p, &req.ifname));
        let plan = plan::plan_del(&config, addresses.as_deref(), &observed);
        log::info!("del {}: {} step(s)", req.ifname, plan.len());
        plan.apply_best_effort(&mut kernel, &req.ifname)
    }

    fn check(&self, req: &Request) -> CniResult<()> {
        let config = Config::from_netconf(&req.conf)?;
        let addresses = prev_addresses(req)?;
        if addresses.is_empty() {
            // ADD made nothing: nothing to check.
            return Ok(());
        }
        let path = netns_path(req)?;
        let ns = NetNs::open(path)?;
        // Not in the middle of an ADD or DEL: that would read as drift.
        let _lock = Lock::netns(&ns)?;
        let (_kernel, observed) = observe(ns, &req.ifname, false, &config)?;
        plan::check(&config, &addresses, &observed)
    }
}
