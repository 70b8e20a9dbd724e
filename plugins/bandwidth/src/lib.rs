//! CNI bandwidth plugin: shapes a container's traffic with TBF on the host
//! end of its veth (ingress) and on an ifb its traffic is redirected to
//! (egress), as the reference plugin does, with convergent ADD, rollback,
//! a real CHECK, GC and STATUS.

mod apply;
pub mod config;
pub mod ifb;
pub mod plan;
mod snapshot;
pub mod stats;
pub mod status;
pub mod tbf;

use std::path::Path;

use cni_core::lock::Lock;
use cni_core::{CniError, CniResult, Interface, NetResult, Plugin, Request};
use nl_ops::Socket;

use crate::apply::Kernel;
use crate::config::{Limits, Queue};
use crate::ifb::Owner;
use crate::tbf::Psched;

/// The plugin, for `cni_core::plugin_main!`.
pub struct Bandwidth;

/// The plugin's name (its binary, its lock files), from Cargo.toml only.
pub const NAME: &str = env!("CARGO_PKG_NAME");

const VERSIONS: &[&str] = &["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"];

fn owner(req: &Request) -> Owner {
    Owner {
        network: req.conf.name.clone(),
        container_id: req.container_id.clone(),
        ifname: req.ifname.clone(),
    }
}

/// No prevResult: the reference's words, which differ between ADD ("as
/// chained plugin") and CHECK ("as a chained plugin").
fn prev_result<'a>(req: &'a Request, words: &str) -> CniResult<&'a NetResult> {
    req.conf.prev_result.as_ref().ok_or_else(|| {
        CniError::invalid_config(words)
            .with_details("no prevResult: bandwidth runs after an interface plugin, in a chain")
    })
}

fn netns(req: &Request) -> CniResult<&Path> {
    req.netns
        .as_deref()
        .ok_or_else(|| CniError::env("missing CNI_NETNS"))
}

/// ADD and DEL of one attachment exclude each other through one of this
/// many lock files (`Lock::slot`): its state is on the host, so there is no
/// namespace to lock, and a file per attachment would pile up. Two
/// attachments rarely share a slot.
pub const LOCK_SLOTS: u32 = 64;

/// The key is the ifb name, itself a hash of network and container.
fn lock(ifb_name: &str) -> CniResult<Lock> {
    Lock::slot(NAME, ifb_name, LOCK_SLOTS)
}

/// One attachment as ADD and CHECK see it: its names, its lock held, and
/// the host side the kernel holds for it.
struct Attachment {
    owner: Owner,
    ifb_name: String,
    _lock: Lock,
    sock: Socket,
    snap: plan::Snapshot,
}

impl Attachment {
    /// Under the attachment's lock: ADD and CHECK never see a half-done
    /// ADD or DEL (CHECK would read it as drift).
    fn observe(req: &Request, prev: &NetResult, limits: &Limits) -> CniResult<Attachment> {
        // The ifb's alias names the network: the dispatcher has refused a
        // name outside the spec's rule (no space), so the alias parses back.
        let owner = owner(req);
        let ifb_name = ifb::name(&owner.network, &owner.container_id);
        let lock = lock(&ifb_name)?;
        let mut sock = Socket::new()?;
        let veth = snapshot::host_veth(&mut sock, netns(req)?, &req.ifname, prev)?;
        // An fq_codel of ours can only be where the kernel has it: only
        // there the queues under the TBFs are read (and replaced by the
        // FIFO when `queue` no longer asks for fq_codel).
        let kernel_fq_codel = status::has_fq_codel();
        let mut snap = snapshot::observe(&mut sock, Some(veth), &ifb_name, kernel_fq_codel)?;
        snap.fq_codel = limits.queue == Queue::Auto && kernel_fq_codel;
        Ok(Attachment {
            owner,
            ifb_name,
            _lock: lock,
            sock,
            snap,
        })
    }
}

impl Plugin for Bandwidth {
    fn about(&self) -> String {
        format!("CNI {NAME} plugin v{}", env!("CARGO_PKG_VERSION"))
    }

    fn supported_versions(&self) -> &'static [&'static str] {
        VERSIONS
    }

    fn add(&self, req: &Request) -> CniResult<NetResult> {
        let limits = Limits::from_conf(&req.conf)?;
        let prev = prev_result(req, "must be called as chained plugin")?;
        let mut result = prev.clone();
        if limits.is_empty() {
            return Ok(result);
        }
        let Attachment {
            owner,
            ifb_name,
            _lock,
            sock,
            snap,
        } = Attachment::observe(req, prev, &limits)?;
        let plan = plan::plan_add(&limits, &owner, &ifb_name, &snap, Psched::read())?;
        let mut kernel = Kernel::new(sock);
        kernel.apply(&plan)?;
        let created = kernel.created;
        if limits.egress.is_some() {
            // The MAC of the ifb made now, or of the one that was there.
            let mac = match created {
                Some(link) => link.mac,
                None => snap.ifb.and_then(|i| i.link.mac),
            };
            // Updated in place when already listed: `ips` point at positions.
            match result
                .interfaces
                .iter_mut()
                .find(|i| i.name == ifb_name && snapshot::no_sandbox(i))
            {
                Some(i) => i.mac = mac,
                None => result.interfaces.push(Interface {
                    name: ifb_name,
                    mac,
                    ..Interface::default()
                }),
            }
        }
        Ok(result)
    }

    fn del(&self, req: &Request) -> CniResult<()> {
        // Teardown needs only the names: limits do not matter here, and a
        // config whose limits no longer validate must still be removable.
        let owner = owner(req);
        let ifb_name = ifb::name(&owner.network, &owner.container_id);
        let _lock = lock(&ifb_name)?;
        let mut sock = Socket::new()?;
        let veth = snapshot::host_veth_for_del(
            &mut sock,
            req.netns.as_deref(),
            &req.ifname,
            req.conf.prev_result.as_ref(),
        )?;
        // The queues under the TBFs go with them.
        let snap = snapshot::observe(&mut sock, veth, &ifb_name, false)?;
        let shapes_ingress = config::may_shape_ingress(&req.conf);
        let plan = plan::plan_del(&owner, &ifb_name, &snap, shapes_ingress);
        Kernel::new(sock).apply_best_effort(&plan)
    }

    fn check(&self, req: &Request) -> CniResult<()> {
        let limits = Limits::from_conf(&req.conf)?;
        let prev = prev_result(req, "must be called as a chained plugin")?;
        if limits.is_empty() {
            return Ok(());
        }
        let a = Attachment::observe(req, prev, &limits)?;
        plan::check(&limits, &a.owner, &a.ifb_name, &a.snap, Psched::read())
    }

    fn gc(&self, req: &Request) -> CniResult<()> {
        let Some(valid) = &req.conf.valid_attachments else {
            log::warn!("GC without cni.dev/valid-attachments: keeping everything");
            return Ok(());
        };
        let network = &req.conf.name;
        let mut kernel = Kernel::new(Socket::new()?);
        // The candidates are read without a lock; each is then planned
        // again and deleted under its attachment's lock, the one ADD and
        // DEL take, so GC never acts on a half-done ADD or DEL.
        let links = kernel.sock.links()?;
        let stale: Vec<_> = plan::plan_gc(&links, network, valid)
            .into_iter()
            .map(|(link, tags)| (link.name.clone(), tags))
            .collect();
        let mut first: Option<CniError> = None;
        for (name, tags) in stale {
            let mut collect = || -> CniResult<()> {
                let _lock = lock(&name)?;
                let link = kernel.sock.link_by_name(&name)?;
                let plan = plan::plan_gc_ifb(&name, link.as_ref(), network, valid);
                if !plan.is_empty() {
                    log::info!(
                        "gc: deleting ifb {name} of container {} interface {}",
                        tags.container_id,
                        tags.ifname
                    );
                }
                kernel.apply_best_effort(&plan)
            };
            if let Err(e) = collect() {
                let e = e.context("gc");
                log::warn!("{}", e.msg);
                first.get_or_insert(e);
            }
        }
        first.map_or(Ok(()), Err)
    }

    fn status(&self, _req: &Request) -> CniResult<()> {
        let verdict = status::verdict(&status::probe()?);
        // Optional: without it each TBF keeps its own bounded FIFO.
        if status::has_fq_codel() {
            log::info!("status: fq_codel present (optional): each tbf gets an fq_codel queue");
        } else {
            log::info!("status: fq_codel absent (optional): each tbf keeps its own bounded fifo");
        }
        verdict
    }

    fn subcommand(
        &self,
        args: &[String],
        stdout: &mut dyn std::io::Write,
        stderr: &mut dyn std::io::Write,
    ) -> Option<i32> {
        match args {
            [first, rest @ ..] if first == "stats" => Some(stats::run(rest, stdout, stderr)),
            _ => None,
        }
    }
}
