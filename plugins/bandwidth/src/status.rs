//! STATUS: does the kernel offer what ADD needs? Module lists lie (built-in
//! features leave no trace there), so the features are tried for real in a
//! throwaway network namespace that vanishes with its thread.

use cni_core::{CniError, CniResult, Code};
use nl_ops::qdisc::Tbf;
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
/// can. Its module's directory answers for free; else (built in, or not
/// loaded yet) one root fq_codel on the loopback of a throwaway namespace,
/// which also loads the module. Once per process.
pub fn has_fq_codel() -> bool {
    static HAS: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *HAS.get_or_init(|| {
        if std::path::Path::new("/sys/module/sch_fq_codel").exists() {
            return true;
        }
        let tried = try_fq_codel();
        if let Err(e) = &tried {
            log::debug!("no fq_codel: {e}");
        }
        tried.is_ok()
    })
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
                sock.add_redirect_filter(LO, REDIRECT_PRIORITY, LO),
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
