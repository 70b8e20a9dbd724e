//! The floors beside each figure: what starting a static process costs
//! before any of our code runs, and the kernel's own share of bandwidth ADD
//! and DEL, timed inside this process.

use std::collections::BTreeMap;
use std::time::Instant;

use bandwidth::ifb::Owner;
use bandwidth::plan::{Mark, FQ_CODEL, FQ_CODEL_HANDLE, QUEUE_CLASS, REDIRECT_PRIORITY};
use bandwidth::tbf::{Discipline, Limit, Psched, ETH_HLEN, TBF_HANDLE};
use cni_testkit::ns::sh;
use nl_ops::qdisc::{ChildQueue, Tbf};
use nl_ops::Socket;

use crate::spawn::{median, spawn};

/// A static program without a C library: its entry point only exits, so
/// timing it times exec and exit alone.
const NO_LIBC_PROGRAM: &str = r#"
void _start(void) {
#if defined(__x86_64__)
  __asm__ volatile("mov $231, %eax\n xor %edi, %edi\n syscall");
#elif defined(__aarch64__)
  __asm__ volatile("mov x8, #94\n mov x0, #0\n svc #0");
#endif
  for (;;) {}
}
"#;

/// Median ns of a static program with no C library ("none"), and of a C
/// program returning 0 built static with musl and with glibc; timed
/// interleaved, `rounds` times each.
pub fn libc_floor(rounds: usize) -> BTreeMap<String, f64> {
    let dir = std::env::temp_dir().join(format!("cnibench-floor-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    let [noop, bare] = ["noop.c", "bare.c"].map(|f| dir.join(f).to_string_lossy().into_owned());
    let _ = std::fs::write(&noop, "int main(void) { return 0; }\n");
    let _ = std::fs::write(&bare, NO_LIBC_PROGRAM);
    let compilers: [(&str, &[&str], &str); 3] = [
        ("none", &["gcc", "-static", "-nostdlib", "-ffreestanding"], &bare),
        ("musl", &["musl-gcc", "-static"], &noop),
        ("glibc", &["gcc", "-static-pie"], &noop),
    ];
    let mut bins = Vec::new();
    for (libc, cc, src) in compilers {
        let out = dir.join(libc).to_string_lossy().into_owned();
        let argv: Vec<&str> = cc.iter().copied().chain(["-O2", "-o", &out, src]).collect();
        match sh(&argv) {
            Ok(_) => bins.push((libc, out)),
            Err(_) => crate::log(&format!(
                "  cannot build a static program with C library {libc} ({}); its floor is not shown",
                cc[0]
            )),
        }
    }
    let mut times: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for _ in 0..rounds {
        for (libc, path) in &bins {
            let ns = spawn(&[path], &[], b"", false).ns;
            times.entry(libc.to_string()).or_default().push(ns);
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    times.into_iter().map(|(k, v)| (k, median(&v))).collect()
}

/// The kernel's work of one bandwidth ADD and DEL on the host veth `veth`
/// of a fresh pod, in ns: the requests the plugin's own plan makes there
/// (its reads before planning left out), sent through nl-ops as the plugin
/// sends them, each from a fresh socket, as a plugin has.
pub fn kernel_cycle(veth: &str, rate_bits: u64, burst_bits: u64) -> Result<(f64, f64), String> {
    let mut sock = Socket::new().map_err(|e| e.to_string())?;
    let host = sock
        .link_by_name(veth)
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("no link {veth}"))?;
    let owner = Owner {
        network: "bench".into(),
        container_id: "bench-kernel-floor".into(),
        ifname: "eth0".into(),
    };
    let ifb = bandwidth::ifb::name(&owner.network, &owner.container_id);
    let fq = bandwidth::status::has_fq_codel();
    let frame = host.mtu + ETH_HLEN;
    let discipline = if fq {
        Discipline::FqCodel
    } else {
        Discipline::Bounded
    };
    let limit = Limit {
        rate_bits,
        burst_bits,
    };
    let tbf = bandwidth::tbf::bucket("ingress", limit, frame, Psched::read(), None)
        .map_err(|e| e.to_string())?
        .queued(discipline, frame)
        .tbf;
    drop(sock);

    let mut sock = Socket::new().map_err(|e| e.to_string())?;
    let t0 = Instant::now();
    let added = add(&mut sock, host.index, host.mtu, &ifb, &owner.alias(), &tbf, fq);
    let add_ns = t0.elapsed().as_secs_f64() * 1e9;
    drop(sock);
    let result = added.and_then(|ifb_index| {
        let mut sock = Socket::new()?;
        let t0 = Instant::now();
        del(&mut sock, host.index, ifb_index)?;
        Ok(t0.elapsed().as_secs_f64() * 1e9)
    });
    if let Ok(mut s) = Socket::new() {
        if let Ok(Some(l)) = s.link_by_name(&ifb) {
            let _ = s.delete_link(l.index);
        }
    }
    result.map(|del_ns| (add_ns, del_ns)).map_err(|e| e.to_string())
}

/// ADD's changes on a fresh pod, in the plan's order: the veth's TBF (and
/// its fq_codel where the kernel has one), the ifb (up, MTU, queue length,
/// alias) and its TBF, then the veth's ingress qdisc with the redirect.
fn add(
    s: &mut Socket,
    veth: u32,
    mtu: u32,
    ifb: &str,
    alias: &str,
    tbf: &Tbf,
    fq: bool,
) -> nl_ops::Result<u32> {
    let queue = ChildQueue::FqCodel(FQ_CODEL);
    s.add_root_tbf(veth, TBF_HANDLE, tbf)?;
    if fq {
        s.graft_queue(veth, QUEUE_CLASS, FQ_CODEL_HANDLE, &queue)?;
    }
    let link = s.add_ifb(ifb, mtu, 0, Some(alias))?;
    s.add_root_tbf(link.index, TBF_HANDLE, tbf)?;
    if fq {
        s.graft_queue(link.index, QUEUE_CLASS, FQ_CODEL_HANDLE, &queue)?;
    }
    let (q, f) = s.add_ingress_qdisc_with_redirect(
        veth,
        REDIRECT_PRIORITY,
        link.index,
        Some(Mark::FilterAndQdisc.bytes()),
    )?;
    q?;
    f?;
    Ok(link.index)
}

/// DEL's changes: the ifb (whose unregistration waits for RCU grace
/// periods), then, as ours does and the reference does not, the veth's
/// ingress qdisc (its redirect with it) and root TBF.
fn del(s: &mut Socket, veth: u32, ifb: u32) -> nl_ops::Result<()> {
    s.delete_link(ifb)?;
    s.delete_ingress_qdisc(veth)?;
    s.delete_root_qdisc(veth, TBF_HANDLE)?;
    Ok(())
}
