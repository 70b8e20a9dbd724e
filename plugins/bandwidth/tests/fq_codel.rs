//! The queue under each TBF follows the kernel: fq_codel `10:` where it has
//! fq_codel, else the TBF's own FIFO, said in the log either way. This
//! machine's kernel has none, so here it is the fallback (and the probe
//! saying absent); scripts/test-vm runs the fq_codel side in Debian's 6.1.

#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use serde_json::{json, Value};

const NET: &str = "bwnet";

/// An oracle of our own, not the plugin's probe: tc making one.
fn kernel_has_fq_codel() -> bool {
    let ns = Ns::new("fqprobe");
    let st = std::process::Command::new("ip")
        .args([
            "netns", "exec", &ns.name, "tc", "qdisc", "add", "dev", "lo", "root", "fq_codel",
        ])
        .output()
        .unwrap();
    st.status.success()
}

/// The qdisc under the TBF's class `1:1` of `dev`, as tc shows it.
fn child(host: &Ns, dev: &str) -> Option<Value> {
    qdiscs(host, dev).into_iter().find(|q| q["parent"] == "1:1")
}

#[test]
fn the_queue_under_each_tbf_follows_the_kernel() {
    let Some((host, a)) = setup("fqcodel") else { return };
    let has = kernel_has_fq_codel();
    let mut extra = both();
    extra["logLevel"] = json!("info");
    let conf = a.conf(NET, extra);
    let out = a.run(&host, "ADD", &conf);
    out.assert_ok();
    let ifb = ifb_name(NET, &a.cid);
    for dev in [a.veth.as_str(), ifb.as_str()] {
        let c = child(&host, dev);
        if has {
            let c = c.unwrap_or_else(|| panic!("no queue under the tbf of {dev}"));
            assert_eq!(
                (c["kind"].as_str(), c["handle"].as_str()),
                (Some("fq_codel"), Some("10:")),
                "{c}"
            );
            assert!(
                out.stderr.contains(&format!("{dev}: fq_codel under the tbf")),
                "{}",
                out.stderr
            );
        } else {
            assert_eq!(c, None, "{dev}: the tbf's own fifo is no qdisc of its own");
            assert!(
                out.stderr.contains(&format!("{dev}: the tbf's own fifo of"))
                    && out.stderr.contains("no fq_codel in this kernel"),
                "{}",
                out.stderr
            );
        }
    }
    a.run(&host, "CHECK", &conf).assert_ok();
    // queue: reference keeps the FIFO whatever the kernel has.
    let mut reference = conf.clone();
    reference["queue"] = json!("reference");
    a.run(&host, "ADD", &reference).assert_ok();
    assert_eq!(
        child(&host, &ifb).map(|c| c["kind"].clone()),
        has.then(|| json!("bfifo"))
    );
    a.run(&host, "CHECK", &reference).assert_ok();
    a.run(&host, "DEL", &reference).assert_ok();
    assert!(qdiscs(&host, &a.veth)
        .iter()
        .all(|q| q["kind"] != "tbf" && q["kind"] != "fq_codel"));

    // STATUS names fq_codel as optional: there or not, it succeeds.
    let status = json!({"cniVersion": "1.1.0", "name": NET, "type": "bandwidth", "logLevel": "info"});
    let out = cni(BIN, &host, "STATUS", "", None, "", &status);
    out.assert_ok();
    let said = if has {
        "fq_codel present (optional)"
    } else {
        "fq_codel absent (optional)"
    };
    assert!(out.stderr.contains(said), "{}", out.stderr);
}
