//! STATUS: does the kernel offer what ADD needs? Module lists lie (built-in
//! features leave no trace there), so the features are tried for real in a
//! throwaway network namespace that vanishes with its thread.

use cni_core::{CniError, CniResult, Code};
use nl_ops::qdisc::{Tbf, INGRESS_HANDLE};
use nl_ops::Socket;

use nl_ops::qdisc::{ChildQueue, TC_H_ROOT};

use crate::plan::{FQ_CODEL, REDIRECT_PRIORITY};
use crate::tbf::TBF_HANDLE;

/// One kernel feature and whether trying it worked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe {
    pub feature: &'static str,
    pub error: Option<String>,
}

/// Success, or code 50 naming every missing feature.
pub fn verdict(probes: &[Probe]) -> CniResult<()> {
    let missing: Vec<String> = probes
        .iter()
        .filter_map(|p| p.error.as_ref().map(|e| format!("{} ({e})", p.feature)))
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(CniError::new(
            Code::PluginNotAvailable,
            format!(
                "the kernel lacks what bandwidth shaping needs: {}",
                missing.join(", ")
            ),
        ))
    }
}

const LO: u32 = 1;

/// Whether the kernel has fq_codel, which ADD puts under each TBF where it
/// can. The files in [`fq_codel_signs`] answer for free in every case but
/// one: a module on disk that is not loaded yet, where one root fq_codel on
/// the loopback of a throwaway namespace (a few milliseconds) loads it, so
/// the next run finds it loaded. Once per process.
pub fn has_fq_codel() -> bool {
    static HAS: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *HAS.get_or_init(|| {
        let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
        let release = release.trim();
        if let Some(known) = fq_codel_signs(std::path::Path::new("/"), release) {
            if !known {
                log::debug!("no fq_codel: not loaded, not built in, no module for {release}");
            }
            return known;
        }
        let tried = try_fq_codel();
        if let Err(e) = &tried {
            log::debug!("no fq_codel: {e}");
        }
        tried.is_ok()
    })
}

/// What the node's files say about fq_codel, under `root`, for kernel
/// `release`: loaded, the default qdisc or listed as built in is yes; a
/// kernel that cannot load modules (no `/proc/modules`) or whose module
/// tree has no file for it is no; `None` when only a try would tell (a
/// module on disk not loaded yet, or no module tree to read).
/// Probing by making a namespace costs more than a whole ADD, and every
/// ADD and CHECK asks, so the files come first.
pub fn fq_codel_signs(root: &std::path::Path, release: &str) -> Option<bool> {
    if root.join("sys/module/sch_fq_codel").exists() {
        return Some(true);
    }
    let default = std::fs::read_to_string(root.join("proc/sys/net/core/default_qdisc")).unwrap_or_default();
    if default.trim() == "fq_codel" {
        return Some(true);
    }
    let tree = root.join("lib/modules").join(release);
    let builtin = std::fs::read_to_string(tree.join("modules.builtin")).unwrap_or_default();
    if builtin.lines().any(|l| l.ends_with("/sch_fq_codel.ko")) {
        return Some(true);
    }
    if !root.join("proc/modules").exists() {
        return Some(false);
    }
    if !tree.exists() {
        // Modules load, but no module tree says which: a built-in one
        // (Debian's fq_codel) shows nowhere else outside the initial
        // namespace, whose `default_qdisc` is the only one to read.
        return None;
    }
    let on_disk = ["", ".xz", ".zst", ".gz"].iter().any(|ext| {
        tree.join(format!("kernel/net/sched/sch_fq_codel.ko{ext}"))
            .exists()
    });
    if on_disk {
        None
    } else {
        Some(false)
    }
}

fn try_fq_codel() -> Result<(), String> {
    cni_core::netns::in_throwaway(|| -> nl_ops::Result<()> {
        let mut sock = Socket::new()?;
        sock.graft_queue(LO, TC_H_ROOT, 0, &ChildQueue::FqCodel(FQ_CODEL))
    })
    .map_err(|e| e.to_string())?
    .map_err(|e| e.to_string())
}

/// Tries ifb, tbf, the ingress qdisc and a u32 filter with a mirred redirect
/// inside a new network namespace entered by a thread of its own.
pub fn probe() -> CniResult<Vec<Probe>> {
    let probes = cni_core::netns::in_throwaway(|| -> CniResult<Vec<Probe>> {
        let mut sock = Socket::new()?;
        let try_ = |feature: &'static str, r: nl_ops::Result<()>| Probe {
            feature,
            error: r.err().map(|e| e.to_string()),
        };
        let tbf = Tbf {
            rate: 125_000,
            buffer: 1_250_000,
            limit: 13_125,
            burst: None,
            peak: None,
        };
        let ifb = sock.add_ifb("bwprobe", 1500, 0, None).map(drop);
        Ok(vec![
            try_("ifb", ifb),
            try_("tbf qdisc", sock.add_root_tbf(LO, TBF_HANDLE, &tbf)),
            try_("ingress qdisc", sock.add_ingress_qdisc(LO).map(drop)),
            try_(
                "u32 filter with mirred redirect",
                sock.add_redirect_filter(LO, INGRESS_HANDLE, REDIRECT_PRIORITY, LO, None),
            ),
        ])
    });
    probes.map_err(|e| {
        CniError::new(
            Code::PluginNotAvailable,
            format!("cannot probe the kernel: failed to create a network namespace: {e}"),
        )
    })?
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A node's files under a scratch root: each `(path, content)`.
    fn node(files: &[(&str, &str)]) -> std::path::PathBuf {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let root = std::env::temp_dir().join(format!("bw-fqc-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        for (path, content) in files {
            let p = root.join(path);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, content).unwrap();
        }
        std::fs::create_dir_all(&root).unwrap();
        root
    }

    #[test]
    fn fq_codel_signs_read_the_files_first() {
        let r = "6.1.0-28-cloud-amd64";
        let sched = "lib/modules/6.1.0-28-cloud-amd64/kernel/net/sched";
        type Files<'a> = &'a [(&'a str, &'a str)];
        let cases: [(Files, Option<bool>); 8] = [
            (&[("sys/module/sch_fq_codel/refcnt", "1")], Some(true)),
            (&[("proc/sys/net/core/default_qdisc", "fq_codel\n")], Some(true)),
            (
                &[(
                    "lib/modules/6.1.0-28-cloud-amd64/modules.builtin",
                    "kernel/net/sched/sch_fq_codel.ko\n",
                )],
                Some(true),
            ),
            // No module support (this machine): what is not built in is not there.
            (
                &[("proc/sys/net/core/default_qdisc", "pfifo_fast\n")],
                Some(false),
            ),
            (
                &[("proc/modules", ""), (&format!("{sched}/sch_tbf.ko.xz"), "")],
                Some(false),
            ),
            // On disk, not loaded: only loading it tells.
            (
                &[("proc/modules", ""), (&format!("{sched}/sch_fq_codel.ko.xz"), "")],
                None,
            ),
            (
                &[("proc/modules", ""), (&format!("{sched}/sch_fq_codel.ko"), "")],
                None,
            ),
            // Modules load, no tree to read (a guest's initramfs): try.
            (&[("proc/modules", "")], None),
        ];
        for (files, want) in cases {
            let root = node(files);
            assert_eq!(fq_codel_signs(&root, r), want, "{files:?}");
            std::fs::remove_dir_all(root).unwrap();
        }
    }

    #[test]
    fn all_present_is_ok() {
        let p = vec![
            Probe {
                feature: "ifb",
                error: None,
            },
            Probe {
                feature: "tbf qdisc",
                error: None,
            },
        ];
        assert!(verdict(&p).is_ok());
    }

    #[test]
    fn missing_features_are_code_50_and_named() {
        let p = vec![
            Probe {
                feature: "ifb",
                error: Some("add ifb bwprobe: operation not supported".into()),
            },
            Probe {
                feature: "tbf qdisc",
                error: None,
            },
            Probe {
                feature: "u32 filter with mirred redirect",
                error: Some("no such file or directory".into()),
            },
        ];
        let e = verdict(&p).unwrap_err();
        assert_eq!(e.code, Code::PluginNotAvailable);
        assert!(
            e.msg.contains("ifb (add ifb bwprobe: operation not supported)"),
            "{}",
            e.msg
        );
        assert!(e.msg.contains("u32 filter with mirred redirect"), "{}", e.msg);
        assert!(!e.msg.contains("tbf"), "{}", e.msg);
    }
}
