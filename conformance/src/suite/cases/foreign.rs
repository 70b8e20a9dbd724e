//! Issue 12: state that is not this attachment's. Other tools' rules,
//! tables, qdiscs and filters, present before ADD or added between ADD and
//! DEL, stay; what the reference plugin made is deleted by the plugin under
//! test (a node upgraded in place). The reference runs these too: its
//! failures are its known bugs.

use serde_json::Value;

use super::{call, conf_for, ip, pod, unchanged};
use crate::suite::pod::{bw_conf, ifb_name, limits, sbr_conf, Pod, BOTH};
use crate::suite::{ensure, error_code, ok, Case, CaseResult, Ctx, Failure};
use cni_testkit::state::{json_list, State};

pub fn cases() -> Vec<Case> {
    vec![
        Case::new(
            "foreign",
            "sbr: others' rules and tables survive ADD and DEL",
            sbr_foreign,
        ),
        Case::new(
            "foreign",
            "sbr: DEL without ADD changes nothing",
            sbr_del_without_add,
        ),
        Case::new("foreign", "sbr: the reference's ADD, then this DEL", |c| {
            after_reference(c, "sbr")
        }),
        // Issue 20 items 3 and 4 (sbr ownership): one block.
        Case::new(
            "foreign",
            "sbr: net1 and net2 with one address keep their own state",
            sbr_one_address_two_links,
        ),
        Case::new(
            "foreign",
            "sbr: a subnet shared with eth0 or net2: ADD, DEL, ADD",
            sbr_shared_subnet,
        ),
        Case::new(
            "foreign",
            "bandwidth: a foreign root qdisc is refused (7), kept",
            bw_foreign_root,
        ),
        Case::new(
            "foreign",
            "bandwidth: others' filters survive ADD and DEL",
            bw_foreign_filters,
        ),
        Case::new(
            "foreign",
            "bandwidth: DEL without ADD keeps others' tbf",
            bw_del_without_add,
        ),
        Case::new("foreign", "bandwidth: the reference's ADD, then this DEL", |c| {
            after_reference(c, "bandwidth")
        }),
        // Issue 20 items 1, 2 and 12: the veth's ingress shared.
        Case::new(
            "foreign",
            "bandwidth: an eBPF agent's clsact takes the redirect after its filters, kept",
            bw_clsact,
        ),
        Case::new(
            "foreign",
            "bandwidth: someone's filter at priority 1: a free one for ours",
            bw_priority_1_taken,
        ),
        Case::new(
            "foreign",
            "bandwidth: egress-only DEL keeps an empty ingress qdisc and a root tbf 1:",
            bw_egress_only_keeps_qdiscs,
        ),
        Case::new(
            "foreign",
            "bandwidth: egress-only DEL keeps a partial redirect to a deleted link",
            bw_egress_only_keeps_a_dead_redirect,
        ),
        Case::new(
            "foreign",
            "bandwidth: an ingress qdisc on a shared block is refused (7), kept",
            bw_shared_block,
        ),
        Case::new(
            "foreign",
            "bandwidth: the reference's ADD, then this CHECK, ADD (converged), DEL",
            bw_converge_reference,
        ),
    ]
}

/// `tc` in the host namespace with the words of `cmd`.
fn host_tc(p: &Pod, cmd: &str) -> Result<(), Failure> {
    p.host.try_tc_line(cmd).map(drop).map_err(Failure::Fail)
}

/// Someone's policy for the pod address (one rule with a selector, one
/// plain into a table of theirs) and for a second address of the link: ADD
/// neither adopts nor fills their tables, DEL keeps them and a rule added
/// between ADD and DEL. With `table: 500`, a rule into 500 made before stays.
fn sbr_foreign(ctx: &Ctx) -> CaseResult {
    let p = pod("fr-sbr")?;
    ip(
        &p.ctr,
        &[
            "addr add 10.250.0.77/24 dev eth0",
            "rule add from 10.250.0.2 to 198.51.100.0/24 lookup 200 pref 90",
            "route add 198.51.100.0/24 via 10.250.0.1 dev eth0 table 200",
            "rule add from 10.250.0.77 lookup 201 pref 91",
            "route add 203.0.113.0/24 via 10.250.0.1 dev eth0 table 201",
            "rule add from 10.250.0.2 lookup 203 pref 1000",
            "route add 192.0.2.0/24 via 10.250.0.1 dev eth0 table 203",
        ],
    )?;
    let before = p.states()?;
    let conf = sbr_conf("1.0.0", Some(p.prev_result("1.0.0")));
    ok("ADD", &call(ctx, "sbr", &p, "ADD", &conf)?)?;
    let t203 = ip(&p.ctr, &["route show table 203"])?;
    ensure(t203.trim() == "192.0.2.0/24 via 10.250.0.1 dev eth0", || {
        format!("ADD changed someone's table 203:\n{t203}")
    })?;
    // Added between ADD and DEL, and removed again by its owner after.
    ip(&p.ctr, &["rule add from 10.250.0.2 iif lo lookup 202 pref 92"])?;
    ok("DEL", &call(ctx, "sbr", &p, "DEL", &conf)?)?;
    let rules = ip(&p.ctr, &["rule"])?;
    ensure(rules.contains("92:\tfrom 10.250.0.2 iif lo lookup 202"), || {
        format!("DEL removed a rule added between ADD and DEL:\n{rules}")
    })?;
    ip(&p.ctr, &["rule del pref 92"])?;
    unchanged(
        &p.states()?,
        &before,
        "ADD and DEL changed others' rules or tables",
    )?;

    let p = pod("fr-sbr500")?;
    ip(&p.ctr, &["rule add from 10.250.0.2 lookup 500 pref 1000"])?;
    let before = p.states()?;
    let mut conf = sbr_conf("1.0.0", Some(p.prev_result("1.0.0")));
    conf["table"] = 500.into();
    ok("ADD with table 500", &call(ctx, "sbr", &p, "ADD", &conf)?)?;
    ok("DEL with table 500", &call(ctx, "sbr", &p, "DEL", &conf)?)?;
    unchanged(
        &p.states()?,
        &before,
        "DEL took a rule into table 500 made before ADD",
    )
}

fn sbr_del_without_add(ctx: &Ctx) -> CaseResult {
    let p = pod("fr-sbrdel")?;
    ip(
        &p.ctr,
        &[
            "rule add from 10.250.0.2 to 198.51.100.0/24 lookup 200 pref 90",
            "route add 198.51.100.0/24 via 10.250.0.1 dev eth0 table 200",
        ],
    )?;
    let before = p.states()?;
    let conf = sbr_conf("1.0.0", Some(p.prev_result("1.0.0")));
    ok("DEL", &call(ctx, "sbr", &p, "DEL", &conf)?)?;
    unchanged(&p.states()?, &before, "DEL without ADD changed the namespace")
}

// Issue 20 items 3 and 4 (sbr ownership): from here to the end of the block.

/// A second (and third) attachment in the pod's namespaces: `ifname` on
/// 10.250.`subnet`.0/24 with `addr` (the host side is `.1`), and its
/// prevResult.
pub(super) fn sbr_link(
    p: &Pod,
    ifname: &str,
    veth: &str,
    subnet: u8,
    addr: &str,
) -> Result<(Pod, Value), Failure> {
    let l = Pod::attach(
        p.host.clone(),
        p.ctr.clone(),
        &p.container_id,
        ifname,
        veth,
        subnet,
    )?;
    if addr != l.addr() {
        ip(&l.ctr, &[&format!("addr del {} dev {ifname}", l.cidr())])?;
        ip(&l.ctr, &[&format!("addr add {addr}/24 dev {ifname}")])?;
    }
    let prev = serde_json::json!({
        "cniVersion": "1.0.0",
        "interfaces": [{"name": veth}, {"name": ifname, "sandbox": l.netns()}],
        "ips": [{"address": format!("{addr}/24"), "gateway": l.gateway(), "interface": 1}]
    });
    Ok((l, sbr_conf("1.0.0", Some(prev))))
}

/// Issue 20 item 3: net1 and net2 both carry 10.250.1.2/24 beside eth0,
/// which owns main's default. Each keeps its own state, or the second ADD
/// is refused (7) with nothing changed; DEL of either leaves the other
/// whole, and both DELs restore the pod.
fn sbr_one_address_two_links(ctx: &Ctx) -> CaseResult {
    for (cid, net1_first) in [("fr-sbr2", false), ("fr-sbr2b", true)] {
        let p = pod(cid)?;
        let (net1, c1) = sbr_link(&p, "net1", "vh1", 1, "10.250.1.2")?;
        let (net2, c2) = sbr_link(&p, "net2", "vh2", 1, "10.250.1.2")?;
        let before = p.states()?;
        ok("ADD net1", &call(ctx, "sbr", &net1, "ADD", &c1)?)?;
        let after1 = p.states()?;
        let add2 = call(ctx, "sbr", &net2, "ADD", &c2)?;
        let mut order = vec![(&net2, &c2), (&net1, &c1)];
        if add2.error().is_some() {
            let code = error_code(&add2)?;
            ensure(code == 7, || format!("ADD net2 refused with code {code}, want 7"))?;
            unchanged(&p.states()?, &after1, "the refused ADD of net2 changed the pod")?;
            order.remove(0);
        } else if net1_first {
            order.reverse();
        }
        for (l, c) in &order {
            ok("CHECK", &call(ctx, "sbr", l, "CHECK", c)?)?;
        }
        for (i, (l, c)) in order.iter().enumerate() {
            ok(&format!("DEL {}", l.ifname), &call(ctx, "sbr", l, "DEL", c)?)?;
            if let Some((other, oc)) = order.get(i + 1) {
                let what = format!("CHECK {} after DEL of {}", other.ifname, l.ifname);
                ok(&what, &call(ctx, "sbr", other, "CHECK", oc)?)?;
            }
        }
        unchanged(&p.states()?, &before, "DEL of both did not restore the pod")?;
    }
    Ok(())
}

/// Issue 20 item 4: eth0 10.250.0.2/24 and net1 10.250.0.5/24 share a
/// subnet: DEL gives back net1's own subnet route, so ADD, DEL, ADD works.
/// Then net1 10.250.1.2 and net2 10.250.1.3 share one, deleted in Multus
/// order (net1 first).
fn sbr_shared_subnet(ctx: &Ctx) -> CaseResult {
    let p = pod("fr-sbrsh")?;
    let (net1, c1) = sbr_link(&p, "net1", "vh1", 0, "10.250.0.5")?;
    let before = p.states()?;
    ok("ADD", &call(ctx, "sbr", &net1, "ADD", &c1)?)?;
    ok("DEL", &call(ctx, "sbr", &net1, "DEL", &c1)?)?;
    unchanged(&p.states()?, &before, "DEL did not give back what ADD moved")?;
    ok("ADD after DEL", &call(ctx, "sbr", &net1, "ADD", &c1)?)?;
    ok("CHECK", &call(ctx, "sbr", &net1, "CHECK", &c1)?)?;
    ok("DEL", &call(ctx, "sbr", &net1, "DEL", &c1)?)?;
    unchanged(&p.states()?, &before, "the second DEL did not restore the pod")?;

    let p = pod("fr-sbrmu")?;
    let (net1, c1) = sbr_link(&p, "net1", "vh1", 1, "10.250.1.2")?;
    let (net2, c2) = sbr_link(&p, "net2", "vh2", 1, "10.250.1.3")?;
    let before = p.states()?;
    ok("ADD net1", &call(ctx, "sbr", &net1, "ADD", &c1)?)?;
    ok("ADD net2", &call(ctx, "sbr", &net2, "ADD", &c2)?)?;
    ok("DEL net1", &call(ctx, "sbr", &net1, "DEL", &c1)?)?;
    ok("DEL net2", &call(ctx, "sbr", &net2, "DEL", &c2)?)?;
    unchanged(
        &p.states()?,
        &before,
        "DEL in Multus order did not restore the pod",
    )
}

// End of the issue 20 sbr block.

fn bw_foreign_root(ctx: &Ctx) -> CaseResult {
    let p = pod("fr-root")?;
    host_tc(&p, "qdisc add dev vh0 root handle 1: htb")?;
    let before = p.states()?;
    let conf = bw_conf("1.0.0", BOTH, Some(p.prev_result("1.0.0")));
    let code = error_code(&call(ctx, "bandwidth", &p, "ADD", &conf)?)?;
    ensure(code == 7, || {
        format!("ADD over someone's root qdisc: code {code}, want 7")
    })?;
    unchanged(&p.states()?, &before, "a refused ADD changed the host")?;
    ok("DEL", &call(ctx, "bandwidth", &p, "DEL", &conf)?)?;
    unchanged(&p.states()?, &before, "DEL changed someone's root qdisc")
}

/// Filters of someone else on the veth's ingress, one at the redirect's own
/// priority: kept by ADD, which adds its redirect beside them, and by DEL
/// with the ingress qdisc they sit on.
fn bw_foreign_filters(ctx: &Ctx) -> CaseResult {
    let p = pod("fr-filters")?;
    p.host
        .try_ip_line("link add theirs0 type ifb")
        .map_err(Failure::Fail)?;
    host_tc(&p, "qdisc add dev vh0 ingress")?;
    for prio in ["1", "7"] {
        let mirror = "u32 match u32 0 0 action mirred egress mirror dev theirs0";
        host_tc(
            &p,
            &format!("filter add dev vh0 parent ffff: protocol all prio {prio} {mirror}"),
        )?;
    }
    let before = p.states()?;
    let conf = bw_conf("1.0.0", BOTH, Some(p.prev_result("1.0.0")));
    ok("ADD", &call(ctx, "bandwidth", &p, "ADD", &conf)?)?;
    let theirs = |st: &State| st.filters.iter().filter(|f| f.contains("theirs0")).count();
    let after_add = State::read(&p.host)?;
    ensure(theirs(&after_add) == 2, || {
        format!("ADD removed someone's filters: {:?}", after_add.filters)
    })?;
    // And the redirect of this attachment sits beside them (the reference's
    // at pref 1, ours after theirs).
    let ours = format!("\"to_dev\":\"{}\"", ifb_name("bwnet", "fr-filters"));
    ensure(
        after_add
            .filters
            .iter()
            .any(|f| f.contains("dev=vh0") && f.contains(&ours)),
        || {
            format!(
                "ADD made no redirect to its ifb beside someone's filters: {:?}",
                after_add.filters
            )
        },
    )?;
    // One more of theirs between ADD and DEL, removed by them after.
    host_tc(
        &p,
        &format!("filter add dev vh0 parent ffff: protocol all prio 9 u32 {MATCH_ALL} mirror dev theirs0"),
    )?;
    ok("DEL", &call(ctx, "bandwidth", &p, "DEL", &conf)?)?;
    let left = theirs(&State::read(&p.host)?);
    ensure(left == 3, || format!("{left} of their 3 filters left after DEL"))?;
    host_tc(&p, "filter del dev vh0 parent ffff: prio 9")?;
    unchanged(&p.states()?, &before, "DEL changed someone's filters or qdisc")
}

/// A u32 matching every packet, with a mirred action to complete.
const MATCH_ALL: &str = "match u32 0 0 action mirred egress";

/// Someone's root tbf and empty ingress qdisc: DEL without ADD keeps both,
/// as do an egress-only ADD (which CHECK accepts) and its DEL.
fn bw_del_without_add(ctx: &Ctx) -> CaseResult {
    let p = pod("fr-bwdel")?;
    host_tc(&p, "qdisc add dev vh0 ingress")?;
    host_tc(
        &p,
        "qdisc add dev vh0 root tbf rate 1mbit burst 32kbit latency 400ms",
    )?;
    let before = p.states()?;
    let conf = bw_conf("1.0.0", BOTH, Some(p.prev_result("1.0.0")));
    ok("DEL", &call(ctx, "bandwidth", &p, "DEL", &conf)?)?;
    unchanged(&p.states()?, &before, "DEL without ADD deleted someone's qdiscs")?;
    // An egress-only ADD leaves it too.
    let egress = bw_conf("1.0.0", &BOTH[2..], Some(p.prev_result("1.0.0")));
    ok("ADD", &call(ctx, "bandwidth", &p, "ADD", &egress)?)?;
    let root: Vec<Value> = State::read(&p.host)?
        .qdiscs_of("vh0")
        .into_iter()
        .filter(|q| q.get("root") == Some(&Value::Bool(true)))
        .collect();
    ensure(root.len() == 1 && root[0]["handle"] != "1:", || {
        format!("an egress-only ADD replaced someone's root tbf: {root:?}")
    })?;
    ok("CHECK", &call(ctx, "bandwidth", &p, "CHECK", &egress)?)?;
    ok("DEL", &call(ctx, "bandwidth", &p, "DEL", &egress)?)?;
    unchanged(&p.states()?, &before, "DEL changed someone's tbf")
}

/// The reference's ADD, then the plugin under test's DEL: the pod as before.
fn after_reference(ctx: &Ctx, plugin: &str) -> CaseResult {
    let Some(reference) = ctx.reference.clone() else {
        return Err(Failure::Skip("no reference plugins to make the state".into()));
    };
    let cid = format!("fr-ref-{plugin}");
    let p = pod(&cid)?;
    let before = p.states()?;
    let conf = conf_for(plugin, "1.0.0", Some(p.prev_result("1.0.0")));
    ok(
        "reference ADD",
        &call(&ctx.with_dir(&reference), plugin, &p, "ADD", &conf)?,
    )?;
    if plugin == "bandwidth" {
        let ifb = ifb_name("bwnet", &cid);
        ensure(State::read(&p.host)?.has_link(&ifb), || {
            format!("the reference made no ifb {ifb}")
        })?;
    }
    if plugin == "sbr" {
        // Its state passes CHECK, and ADD takes its table as this one's.
        let theirs = p.states()?;
        ok("CHECK", &call(ctx, plugin, &p, "CHECK", &conf)?)?;
        ok("ADD", &call(ctx, plugin, &p, "ADD", &conf)?)?;
        unchanged(&p.states()?, &theirs, "ADD over the reference's state changed it")?;
    }
    ok("DEL", &call(ctx, plugin, &p, "DEL", &conf)?)?;
    unchanged(&p.states()?, &before, "DEL left the reference's state behind")?;
    if plugin == "sbr" {
        let reference = ctx.with_dir(&reference);
        ok("reference ADD", &call(&reference, plugin, &p, "ADD", &conf)?)?;
        let bare = conf_for(plugin, "1.0.0", None);
        ok("DEL without prevResult", &call(ctx, plugin, &p, "DEL", &bare)?)?;
        unchanged(
            &p.states()?,
            &before,
            "DEL without prevResult left the reference's state",
        )?;
    }
    Ok(())
}

/// The filters on vh0's ingress hook as tc prints them (for an ingress or a
/// clsact qdisc alike; `State` reads them for ingress qdiscs only).
fn vh0_ingress_filters(p: &Pod) -> Result<Vec<Value>, Failure> {
    let out = p
        .host
        .try_tc_line("-j filter show dev vh0 ingress")
        .map_err(Failure::Fail)?;
    json_list(&out).map_err(Failure::Fail)
}

/// The priorities of the filters redirecting to `dev`.
fn prefs_to(filters: &[Value], dev: &str) -> Vec<u64> {
    filters
        .iter()
        .filter(|f| {
            f.pointer("/options/actions")
                .and_then(Value::as_array)
                .is_some_and(|a| a.iter().any(|x| x["to_dev"] == dev))
        })
        .filter_map(|f| f["pref"].as_u64())
        .collect()
}

/// Issue 20 item 1: the clsact of an eBPF agent (AWS network policy agent,
/// Calico, netobserv) with its cls_bpf and u32 filters. ADD puts the
/// redirect on clsact's ingress hook after theirs; DEL takes only it.
fn bw_clsact(ctx: &Ctx) -> CaseResult {
    let p = pod("fr-clsact")?;
    host_tc(&p, "qdisc add dev vh0 clsact")?;
    // One argument with spaces: the program (return 0) as tc's bytecode.
    let bpf = [
        "filter", "add", "dev", "vh0", "ingress", "prio", "1", "protocol", "all", "bpf", "bytecode",
    ];
    p.host
        .try_tc(&[&bpf[..], &["1,6 0 0 0,"]].concat())
        .map_err(Failure::Fail)?;
    host_tc(
        &p,
        "filter add dev vh0 ingress prio 3 protocol all u32 match ip dst 192.0.2.0/24 flowid 1:1",
    )?;
    let before = p.states()?;
    let theirs = vh0_ingress_filters(&p)?;
    let conf = bw_conf("1.0.0", BOTH, Some(p.prev_result("1.0.0")));
    ok("ADD", &call(ctx, "bandwidth", &p, "ADD", &conf)?)?;
    let now = vh0_ingress_filters(&p)?;
    let prefs = prefs_to(&now, &ifb_name("bwnet", "fr-clsact"));
    ensure(prefs.len() == 1 && prefs[0] > 3, || {
        format!("want one redirect to the ifb after priority 3: {now:?}")
    })?;
    ensure(theirs.iter().all(|f| now.contains(f)), || {
        format!("ADD changed the agent's filters: {now:?}, before {theirs:?}")
    })?;
    ok("CHECK", &call(ctx, "bandwidth", &p, "CHECK", &conf)?)?;
    ok("DEL", &call(ctx, "bandwidth", &p, "DEL", &conf)?)?;
    let after = vh0_ingress_filters(&p)?;
    ensure(after == theirs, || {
        format!("DEL left or took filters: {after:?}, before {theirs:?}")
    })?;
    unchanged(&p.states()?, &before, "DEL changed the agent's clsact")
}

/// Issue 20 item 2: someone's u32 for IPv4 at priority 1 (the kernel takes
/// no u32 for all protocols there): ADD picks a free priority.
fn bw_priority_1_taken(ctx: &Ctx) -> CaseResult {
    let p = pod("fr-prio1")?;
    p.host
        .try_ip_line("link add theirs0 type ifb")
        .map_err(Failure::Fail)?;
    host_tc(&p, "qdisc add dev vh0 ingress")?;
    host_tc(&p, "filter add dev vh0 parent ffff: protocol ip prio 1 u32 match ip dst 192.0.2.0/24 action mirred egress mirror dev theirs0")?;
    let before = p.states()?;
    let conf = bw_conf("1.0.0", BOTH, Some(p.prev_result("1.0.0")));
    ok("ADD", &call(ctx, "bandwidth", &p, "ADD", &conf)?)?;
    let now = vh0_ingress_filters(&p)?;
    let ours = prefs_to(&now, &ifb_name("bwnet", "fr-prio1"));
    ensure(ours.len() == 1 && ours[0] != 1, || {
        format!("want one redirect to the ifb off priority 1: {now:?}")
    })?;
    ensure(prefs_to(&now, "theirs0") == [1], || {
        format!("ADD changed someone's filter: {now:?}")
    })?;
    ok("CHECK", &call(ctx, "bandwidth", &p, "CHECK", &conf)?)?;
    ok("DEL", &call(ctx, "bandwidth", &p, "DEL", &conf)?)?;
    unchanged(&p.states()?, &before, "DEL changed someone's filter or qdisc")
}

/// Issue 20 item 12: an egress-only attachment finds an empty ingress qdisc
/// and an operator's root `tbf 1:` on the veth; its DEL keeps both.
fn bw_egress_only_keeps_qdiscs(ctx: &Ctx) -> CaseResult {
    let p = pod("fr-egqd")?;
    host_tc(&p, "qdisc add dev vh0 ingress")?;
    host_tc(
        &p,
        "qdisc add dev vh0 root handle 1: tbf rate 1mbit burst 32kbit latency 400ms",
    )?;
    let before = p.states()?;
    let egress = bw_conf("1.0.0", &BOTH[2..], Some(p.prev_result("1.0.0")));
    ok("ADD", &call(ctx, "bandwidth", &p, "ADD", &egress)?)?;
    ok("DEL", &call(ctx, "bandwidth", &p, "DEL", &egress)?)?;
    unchanged(&p.states()?, &before, "egress-only ADD and DEL changed the veth")
}

/// Issue 20 item 12: someone's u32 for all protocols at priority 3 that
/// redirects 192.0.2.0/24 to a link since deleted (as ours does once our
/// ifb is gone). Not the plugin's: it and its qdisc stay.
fn bw_egress_only_keeps_a_dead_redirect(ctx: &Ctx) -> CaseResult {
    let p = pod("fr-egdead")?;
    p.host
        .try_ip_line("link add gone0 type ifb")
        .map_err(Failure::Fail)?;
    host_tc(&p, "qdisc add dev vh0 ingress")?;
    host_tc(&p, "filter add dev vh0 parent ffff: protocol all prio 3 u32 match ip dst 192.0.2.0/24 action mirred egress redirect dev gone0")?;
    p.host.try_ip(&["link", "del", "gone0"]).map_err(Failure::Fail)?;
    let before = p.states()?;
    let egress = bw_conf("1.0.0", &BOTH[2..], Some(p.prev_result("1.0.0")));
    ok("ADD", &call(ctx, "bandwidth", &p, "ADD", &egress)?)?;
    ok("DEL", &call(ctx, "bandwidth", &p, "DEL", &egress)?)?;
    unchanged(&p.states()?, &before, "egress-only ADD and DEL changed the veth")
}

/// An ingress qdisc on a shared filter block takes no filter of the veth's
/// own: ADD is refused (7) before anything changes, naming the device and
/// the block; DEL keeps it; ingress shaping alone does not need it.
fn bw_shared_block(ctx: &Ctx) -> CaseResult {
    let p = pod("fr-block")?;
    host_tc(&p, "qdisc add dev vh0 ingress_block 7 ingress")?;
    let before = p.states()?;
    let conf = bw_conf("1.0.0", BOTH, Some(p.prev_result("1.0.0")));
    let e = call(ctx, "bandwidth", &p, "ADD", &conf)?.error();
    ensure(
        e.as_ref().is_some_and(|e| {
            e.code == Some(7) && e.msg.contains("vh0 has an ingress qdisc on shared block 7")
        }),
        || format!("ADD beside a shared block: {e:?}, want code 7 naming vh0 and block 7"),
    )?;
    unchanged(&p.states()?, &before, "the refused ADD changed the veth")?;
    ok("DEL", &call(ctx, "bandwidth", &p, "DEL", &conf)?)?;
    unchanged(&p.states()?, &before, "DEL changed the shared block's qdisc")?;
    let ingress = bw_conf("1.0.0", &BOTH[..2], Some(p.prev_result("1.0.0")));
    for cmd in ["ADD", "CHECK", "DEL"] {
        ok(
            &format!("ingress-only {cmd}"),
            &call(ctx, "bandwidth", &p, cmd, &ingress)?,
        )?;
    }
    unchanged(&p.states()?, &before, "ingress-only ADD and DEL changed the veth")
}

/// The actions of each filter entry, and the queue limits of the TBFs.
fn shape(st: &State, ifb: &str) -> (Vec<usize>, Vec<Value>) {
    let actions = st
        .raw_filters
        .iter()
        .filter_map(|f| f.pointer("/options/actions").and_then(Value::as_array))
        .map(Vec::len)
        .collect();
    let limits = ["vh0", ifb]
        .iter()
        .flat_map(|dev| st.qdiscs_of(dev))
        .filter(|q| q["kind"] == "tbf")
        .map(|q| q["options"]["limit"].clone())
        .collect();
    (actions, limits)
}

/// A node upgraded in place: the reference's ADD, then this CHECK, which
/// accepts the reference's shape (no alias, a double mirred, its TBF
/// numbers, also with containerd's burst: issue 20 item 11), ADD (one
/// mirred, the queue bounded), CHECK and DEL.
fn bw_converge_reference(ctx: &Ctx) -> CaseResult {
    let Some(reference) = ctx.reference.clone() else {
        return Err(Failure::Skip("no reference plugins to make the state".into()));
    };
    let p = pod("fr-converge")?;
    let before = p.states()?;
    let ifb = ifb_name("bwnet", "fr-converge");
    let burst = u64::from(u32::MAX);
    let containerd = limits((10_000_000, burst), (10_000_000, burst));
    for limits in [BOTH, &containerd] {
        let conf = bw_conf("1.0.0", limits, Some(p.prev_result("1.0.0")));
        let theirs = call(&ctx.with_dir(&reference), "bandwidth", &p, "ADD", &conf)?;
        ok("reference ADD", &theirs)?;
        let theirs = shape(&State::read(&p.host)?, &ifb);
        ensure(theirs.0 == [2], || {
            format!("not the reference's double mirred: {theirs:?}")
        })?;
        for cmd in ["CHECK", "ADD", "CHECK"] {
            ok(cmd, &call(ctx, "bandwidth", &p, cmd, &conf)?)?;
        }
        let ours = shape(&State::read(&p.host)?, &ifb);
        ensure(ours.0 == [1] && ours.1.len() == 2 && ours.1 != theirs.1, || {
            format!("ADD did not converge the reference's {theirs:?} (mirreds, limits): {ours:?}")
        })?;
        ok("DEL", &call(ctx, "bandwidth", &p, "DEL", &conf)?)?;
        unchanged(&p.states()?, &before, "DEL left the converged state behind")?;
    }
    Ok(())
}
