//! Upstream's own unit tests (containernetworking/plugins HEAD,
//! `plugins/meta/sbr/sbr_linux_test.go` and
//! `plugins/meta/bandwidth/bandwidth_linux_test.go`), their expectations
//! ported to black-box calls: the same configs, the same refusal words in
//! `msg`, the same kernel objects read back. Written anew from what the
//! specs expect, not from their code.
//!
//! The specs that expect a bucket smaller than one frame (bursts of 8 or 80
//! bits: tbf `limit` 1 or 35 bytes) are upstream's numbers for the
//! reference only: such a bucket drops every full-size packet, and ours
//! holds a frame instead, which these cases check for ours
//! (docs/conformance.md, "upstream's unit tests"). HEAD's sbr options
//! (`gateways`, `addSourceHints`) are newer than the reference binaries
//! (v1.1.1), whose column fails those specs.

use serde_json::{json, Value};

use super::{call, pod};
use crate::suite::pod::{bw_conf, bytes, ifb_name, limits, Pod};
use crate::suite::{ensure, ok, Case, CaseResult, Ctx, Failure};
use cni_runtime::exec::Outcome;
use cni_testkit::state::{text, State};
use cni_testkit::Ns;

/// The versions every bandwidth spec runs in, as upstream loops them.
const BW_VERSIONS: &[&str] = &["0.3.0", "0.3.1", "0.4.0", "1.0.0"];
/// Upstream's host veth MTU, which the ifb must take.
const HOST_MTU: &str = "1024";

pub fn cases() -> Vec<Case> {
    let g = "upstream";
    vec![
        Case::new(
            g,
            "sbr: a 0.2.0 config without prevResult: \"This plugin must be called as chained plugin\"",
            sbr_not_chained,
        ),
        Case::new(
            g,
            "sbr: works with a 0.3.0 config (table 100, rule, DEL restores)",
            sbr_works,
        ),
        Case::new(
            g,
            "sbr: works with multiple IPs (tables 100 and 101)",
            sbr_multiple_ips,
        ),
        Case::new(g, "sbr: works with Table ID (rules only)", sbr_table_id),
        Case::new(
            g,
            "sbr: static IPv4 gateway (HEAD's gateways)",
            sbr_static_gateway,
        ),
        Case::new(
            g,
            "sbr: static IPv6 gateway (HEAD's gateways)",
            sbr_static_gateway_v6,
        ),
        Case::new(
            g,
            "sbr: dual-stack static gateways (HEAD's gateways)",
            sbr_static_gateways_dual,
        ),
        Case::new(g, "sbr: rejects multiple IPv4 gateways", sbr_two_v4_gateways),
        Case::new(g, "sbr: addSourceHints (HEAD)", sbr_source_hints),
        Case::new(
            g,
            "bandwidth: works with a veth pair (sub-frame bucket: ours holds a frame)",
            bw_veth_pair,
        ),
        Case::new(
            g,
            "bandwidth: does not apply ingress when disabled",
            bw_no_ingress,
        ),
        Case::new(
            g,
            "bandwidth: does not apply egress when disabled (sub-frame bucket: ours holds a frame)",
            bw_no_egress,
        ),
        Case::new(
            g,
            "bandwidth: fails an invalid ingress config: \"if burst is set, rate must also be set\"",
            bw_invalid_ingress,
        ),
        Case::new(
            g,
            "bandwidth: works with runtime config (sub-frame bucket: ours holds a frame)",
            bw_runtime_config,
        ),
        Case::new(
            g,
            "bandwidth: static config wins over runtime config: \"if burst is set, rate must also be set\"",
            bw_static_wins,
        ),
        Case::new(g, "bandwidth: DEL after ADD removes the ifb", bw_del),
        Case::new(
            g,
            "bandwidth: several host veths in prevResult (sub-frame bucket: ours holds a frame)",
            bw_several_host_veths,
        ),
        Case::new(
            g,
            "bandwidth: host veth errors (no veth peer, no interfaces, no match)",
            bw_host_errors,
        ),
        Case::new(
            g,
            "bandwidth: only bursts below 4GB, rate and burst together",
            bw_validation,
        ),
    ]
}

/// Fails unless the call was refused with exactly `msg`, as upstream's
/// `MatchError` wants it, and, for ours, code 7 (the reference answers 999
/// for every error; upstream's tests look at the words only).
fn refused_with(ctx: &Ctx, what: &str, out: &Outcome, msg: &str) -> CaseResult {
    let code_ok = |c: Option<u64>| ctx.is_reference() || c == Some(7);
    match out.error() {
        None => Err(Failure::Fail(format!("{what}: succeeded, want \"{msg}\""))),
        Some(e) => ensure(code_ok(e.code) && e.msg == msg, || {
            format!("{what}: want [code 7] \"{msg}\", got {e}")
        }),
    }
}

// ---- sbr ----

/// upstream's `createDefaultStatus`: links eth0 10.0.0.2/24 (10.2.0.0/24
/// via 10.0.0.5, default via 10.0.0.1) and net1 192.168.1.209/24
/// (192.168.2.0/24 via 192.168.1.2), inside a container namespace; sbr runs
/// in a host namespace of its own.
struct SbrPod {
    host: Ns,
    ctr: Ns,
}

impl SbrPod {
    /// IPv4 only, net1 with 192.168.1.209/24 and `extra_net1`.
    fn new(extra_net1: &[&str]) -> Result<SbrPod, String> {
        SbrPod::with(false, true, extra_net1)
    }

    /// `v6`: IPv6 on (addresses added without DAD); `v4_net1`: net1 has
    /// 192.168.1.209/24 and its route, as in `createDefaultStatus`, else
    /// only `extra_net1` (upstream's IPv6-only spec replaces them).
    fn with(v6: bool, v4_net1: bool, extra_net1: &[&str]) -> Result<SbrPod, String> {
        let (host, ctr) = (Ns::try_new("cnf")?, Ns::try_new("cnf")?);
        let off = if v6 { "0" } else { "1" };
        for key in ["all", "default"] {
            ctr.try_exec(&[
                "sysctl",
                "-qw",
                &format!("net.ipv6.conf.{key}.disable_ipv6={off}"),
            ])?;
        }
        // upstream makes dummies; not every kernel has the module, and a
        // veth whose peer stays in the namespace is as good a link for sbr.
        for dev in ["eth0", "net1"] {
            ctr.try_ip_line(&format!("link add {dev} type veth peer name {dev}p"))?;
            ctr.try_ip_line(&format!("link set {dev}p up"))?;
            ctr.try_ip_line(&format!("link set {dev} up"))?;
        }
        ctr.try_ip_line("addr add 10.0.0.2/24 dev eth0")?;
        ctr.try_ip_line("route add 10.2.0.0/24 via 10.0.0.5 dev eth0")?;
        ctr.try_ip_line("route add default via 10.0.0.1 dev eth0")?;
        for a in extra_net1 {
            let dad = if a.contains(':') { "nodad" } else { "" };
            ctr.try_ip_line(&format!("addr add {a} dev net1 {dad}"))?;
        }
        if v4_net1 {
            ctr.try_ip_line("addr add 192.168.1.209/24 dev net1")?;
            ctr.try_ip_line("route add 192.168.2.0/24 via 192.168.1.2 dev net1")?;
        }
        Ok(SbrPod { host, ctr })
    }

    fn run(&self, ctx: &Ctx, cmd: &str, conf: &Value) -> Result<Outcome, String> {
        let dir = ctx.dir.display().to_string();
        let env = vec![
            ("CNI_COMMAND".to_string(), cmd.to_string()),
            ("CNI_CONTAINERID".to_string(), "dummy".to_string()),
            ("CNI_NETNS".to_string(), self.ctr.path_str()),
            ("CNI_IFNAME".to_string(), "net1".to_string()),
            ("CNI_PATH".to_string(), dir),
        ];
        ctx.invoke("sbr", &self.host, &env, &bytes(conf))
    }

    /// ADD with upstream's 0.3.0 config of `ips` and `extra`.
    fn add(&self, ctx: &Ctx, ips: &[(&str, &str, usize)], extra: Value) -> CaseResult {
        ok("ADD", &self.run(ctx, "ADD", &sbr_conf("0.3.0", ips, extra))?).map(drop)
    }

    /// `ip rule` lines of both families other than the kernel's three.
    fn rules(&self) -> Result<Vec<String>, String> {
        let both = self.ctr.try_ip_line("-4 rule show")? + &self.ctr.try_ip_line("-6 rule show")?;
        Ok(both
            .lines()
            .filter(|l| {
                !l.contains("lookup local") && !l.contains("lookup main") && !l.contains("lookup default")
            })
            .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
            .collect())
    }

    /// Fails unless there are as many rules as `want` and each of `want`
    /// is in one of them.
    fn want_rules(&self, want: &[&str]) -> CaseResult {
        let rules = self.rules()?;
        ensure(
            rules.len() == want.len() && want.iter().all(|w| rules.iter().any(|r| r.contains(w))),
            || format!("want rules {want:?}, got {rules:?}"),
        )
    }

    /// Both families' routes of table `t` (a family without the table
    /// has none: ip says so as an error).
    fn table(&self, t: &str) -> String {
        let read = |f: &str| {
            self.ctr
                .try_ip_line(&format!("{f} route show table {t}"))
                .unwrap_or_default()
        };
        read("-4") + &read("-6")
    }

    /// Fails unless each of `lines` is part of a route of table `t`
    /// (`*`: of any table a rule looks up).
    fn want_routes(&self, t: &str, lines: &[&str]) -> CaseResult {
        let routes = if t == "*" {
            let rules = self.rules()?;
            let looked_up = rules
                .iter()
                .filter_map(|r| r.split_whitespace().skip_while(|w| *w != "lookup").nth(1));
            looked_up.map(|t| self.table(t)).collect()
        } else {
            self.table(t)
        };
        let missing: Vec<_> = lines
            .iter()
            .filter(|n| !routes.lines().any(|l| l.contains(*n)))
            .collect();
        ensure(missing.is_empty(), || {
            format!("table {t}: no line with {missing:?} in:\n{routes}")
        })
    }
}

/// upstream's sbr config in `version` with net1's addresses as IPs.
fn sbr_conf(version: &str, ips: &[(&str, &str, usize)], extra: Value) -> Value {
    let ips: Vec<Value> = ips
        .iter()
        .map(|(a, gw, i)| {
            let v = if a.contains(':') { "6" } else { "4" };
            json!({"version": v, "address": a, "gateway": gw, "interface": i})
        })
        .collect();
    let mut c = json!({
        "cniVersion": version, "name": "cni-plugin-sbr-test", "type": "sbr",
        "prevResult": {"cniVersion": version,
            "interfaces": [{"name": "net1", "sandbox": "/ns"}, {"name": "net1", "sandbox": "/ns"}],
            "ips": ips, "routes": []}
    });
    if let (Some(o), Value::Object(x)) = (c.as_object_mut(), extra) {
        o.extend(x);
    }
    c
}

/// net1's address of `createDefaultStatus` and a second one, as
/// upstream's multiple-IPs specs list them.
const TWO_IPS: [(&str, &str, usize); 2] = [
    ("192.168.1.209/24", "192.168.1.1", 0),
    ("192.168.101.209/24", "192.168.101.1", 1),
];
const NET1_IP: [(&str, &str, usize); 1] = [("192.168.1.209/24", "192.168.1.1", 0)];

fn sbr_not_chained(ctx: &Ctx) -> CaseResult {
    let p = SbrPod::new(&[])?;
    let conf = json!({"cniVersion": "0.2.0", "name": "cni-plugin-sbr-test", "type": "sbr",
                      "anotherAwesomeArg": "foo"});
    refused_with(
        ctx,
        "ADD",
        &p.run(ctx, "ADD", &conf)?,
        "This plugin must be called as chained plugin",
    )
}

fn sbr_works(ctx: &Ctx) -> CaseResult {
    let p = SbrPod::new(&[])?;
    p.add(ctx, &NET1_IP, json!({}))?;
    p.want_rules(&["from 192.168.1.209 lookup 100"])?;
    p.want_routes(
        "100",
        &[
            "default via 192.168.1.1 dev net1",
            "192.168.2.0/24 via 192.168.1.2 dev net1",
            "192.168.1.0/24 dev net1",
        ],
    )?;
    // eth0's routes stay in main.
    p.want_routes(
        "main",
        &[
            "default via 10.0.0.1 dev eth0",
            "10.2.0.0/24 via 10.0.0.5 dev eth0",
        ],
    )?;
    let del = json!({"cniVersion": "0.3.0", "name": "cni-plugin-sbr-test", "type": "sbr"});
    ok("DEL", &p.run(ctx, "DEL", &del)?)?;
    p.want_rules(&[])
}

fn sbr_multiple_ips(ctx: &Ctx) -> CaseResult {
    let p = SbrPod::new(&["192.168.101.209/24"])?;
    p.add(ctx, &TWO_IPS, json!({}))?;
    p.want_rules(&["from 192.168.101.209 lookup 101", "from 192.168.1.209 lookup 100"])?;
    p.want_routes("100", &["default via 192.168.1.1 dev net1"])?;
    p.want_routes("101", &["default via 192.168.101.1 dev net1"])
}

fn sbr_table_id(ctx: &Ctx) -> CaseResult {
    let p = SbrPod::new(&["192.168.101.209/24"])?;
    let before = State::read(&p.ctr)?;
    p.add(ctx, &TWO_IPS, json!({"table": 5000}))?;
    p.want_rules(&[
        "from 192.168.101.209 lookup 5000",
        "from 192.168.1.209 lookup 5000",
    ])?;
    // No route moved.
    let after = State::read(&p.ctr)?;
    ensure(before.route_values() == after.route_values(), || {
        format!("routes changed: {}", before.diff(&after, "before", "after"))
    })
}

fn sbr_static_gateway(ctx: &Ctx) -> CaseResult {
    let p = SbrPod::new(&[])?;
    p.add(ctx, &NET1_IP, json!({"gateways": ["192.168.1.254"]}))?;
    p.want_rules(&["from 192.168.1.209 lookup 100"])?;
    p.want_routes("100", &["default via 192.168.1.254 dev net1"])
}

fn sbr_static_gateway_v6(ctx: &Ctx) -> CaseResult {
    let p = SbrPod::with(true, false, &["fd00::10/64"])?;
    let ips = [("fd00::10/64", "fd00::ffff", 0)];
    p.add(ctx, &ips, json!({"gateways": ["fd00::1"]}))?;
    p.want_rules(&["from fd00::10 lookup 100"])?;
    p.want_routes("100", &["default via fd00::1 dev net1"])
}

fn sbr_static_gateways_dual(ctx: &Ctx) -> CaseResult {
    let p = SbrPod::with(true, true, &["fd00::10/64"])?;
    let ips = [NET1_IP[0], ("fd00::10/64", "fd00::ffff", 0)];
    p.add(ctx, &ips, json!({"gateways": ["192.168.1.254", "fd00::1"]}))?;
    p.want_rules(&["from 192.168.1.209", "from fd00::10"])?;
    p.want_routes(
        "*",
        &[
            "default via 192.168.1.254 dev net1",
            "default via fd00::1 dev net1",
        ],
    )
}

fn sbr_two_v4_gateways(ctx: &Ctx) -> CaseResult {
    let p = SbrPod::new(&[])?;
    let extra = json!({"gateways": ["192.168.1.1", "192.168.1.254"]});
    refused_with(
        ctx,
        "ADD",
        &p.run(ctx, "ADD", &sbr_conf("0.3.0", &NET1_IP, extra))?,
        "gateways list contains multiple IPv4 addresses: 192.168.1.1 and 192.168.1.254",
    )
}

fn sbr_source_hints(ctx: &Ctx) -> CaseResult {
    let p = SbrPod::new(&[])?;
    p.add(ctx, &NET1_IP, json!({"addSourceHints": true}))?;
    p.want_rules(&["from 192.168.1.209 lookup 100"])?;
    // The subnet route stays in main, scope link, with the source hint.
    let main = p.table("main");
    ensure(
        main.lines()
            .any(|l| l.starts_with("192.168.1.0/24 dev net1") && l.contains("scope link src 192.168.1.209")),
        || format!("main: no 192.168.1.0/24 dev net1 scope link src 192.168.1.209 in:\n{main}"),
    )?;
    p.want_routes(
        "100",
        &["192.168.1.0/24 dev net1", "default via 192.168.1.1 dev net1"],
    )
}

// ---- bandwidth ----

/// A pod as upstream's `createVeth` makes it: host veth at MTU 1024.
fn bw_pod(cid: &str) -> Result<Pod, String> {
    let p = pod(cid)?;
    p.host.try_ip(&["link", "set", &p.host_veth, "mtu", HOST_MTU])?;
    p.ctr.try_ip(&["link", "set", &p.ifname, "mtu", HOST_MTU])?;
    Ok(p)
}

fn bw(version: &str, p: &Pod, limits: &[(&str, u64)]) -> Value {
    bw_conf(version, limits, Some(p.prev_result(version)))
}

/// ADD of upstream's config with `limits` in `version`.
fn add(ctx: &Ctx, version: &str, p: &Pod, limits: &[(&str, u64)]) -> Result<Outcome, String> {
    call(ctx, "bandwidth", p, "ADD", &bw(version, p, limits))
}

/// The root tbf of `dev`: (rate, limit) in bytes, as upstream reads them.
fn tbf_of(st: &State, dev: &str) -> Result<(u64, u64), String> {
    let qs = st.qdiscs_of(dev);
    let q = qs
        .iter()
        .find(|q| text(q, "kind") == "tbf")
        .ok_or_else(|| format!("no tbf on {dev}: {qs:?}"))?;
    let o = q.get("options").cloned().unwrap_or(Value::Null);
    match (o["rate"].as_u64(), o["limit"].as_u64()) {
        (Some(r), Some(l)) => Ok((r, l)),
        _ => Err(format!("tbf on {dev} without rate or limit: {q}")),
    }
}

/// upstream's numbers exactly for the reference. For ours, where upstream
/// wants a bucket below one frame (every full-size packet dropped), the
/// bug fix: the same rate, the bucket raised to one full frame (MTU + 14
/// bytes), behind the bounded queue of that bucket (see
/// [`super::bandwidth::bounded_fifo`]).
fn want_tbf(ctx: &Ctx, st: &State, dev: &str, rate: u64, limit: u64) -> CaseResult {
    let got = tbf_of(st, dev)?;
    let frame = HOST_MTU.parse::<u64>().unwrap_or(0) + 14;
    let want = if ctx.is_reference() || limit >= frame {
        (rate, limit)
    } else {
        (rate, super::bandwidth::bounded_fifo(rate, frame, frame))
    };
    ensure(got == want, || {
        format!("tbf on {dev}: (rate, limit) {got:?} B, want {want:?} (upstream: ({rate}, {limit}))")
    })
}

/// ADD's result lists the ifb last, host side, and it takes the veth's MTU.
fn ifb_listed(out: &Outcome, ifb: &str, count: usize, st: &State) -> CaseResult {
    let r = out.stdout_json().ok_or("ADD printed no json")?;
    let list = r["interfaces"].as_array().cloned().unwrap_or_default();
    ensure(
        list.len() == count
            && list.last().is_some_and(|i| {
                i["name"] == json!(ifb) && i.get("sandbox").and_then(Value::as_str).unwrap_or("").is_empty()
            }),
        || format!("want {count} interfaces ending with {ifb}, got {r}"),
    )?;
    let mtu = st.link(ifb).and_then(|l| l["mtu"].as_u64());
    ensure(mtu == Some(1024), || {
        format!("ifb {ifb} mtu {mtu:?}, want {HOST_MTU}")
    })
}

fn each_version(f: impl Fn(&str) -> CaseResult) -> CaseResult {
    let bad: Vec<String> = BW_VERSIONS
        .iter()
        .filter_map(|v| match f(v) {
            Ok(()) => None,
            Err(Failure::Fail(e)) => Some(format!("[{v}] {e}")),
            Err(e) => Some(format!("[{v}] {e:?}")),
        })
        .collect();
    ensure(bad.is_empty(), || bad.join("\n"))
}

fn bw_veth_pair(ctx: &Ctx) -> CaseResult {
    each_version(|v| {
        let p = bw_pod("up-bw-pair")?;
        let out = add(ctx, v, &p, &limits((8, 8), (16, 8)))?;
        upstream_pair_shaped(ctx, &p, &out, 3)
    })
}

/// ADD made what upstream's veth-pair specs want: a result of `count`
/// interfaces, the ifb last, a tbf of 2 B/s on it and of 1 B/s on the host
/// veth (upstream's sub-frame buckets, see [`want_tbf`]).
fn upstream_pair_shaped(ctx: &Ctx, p: &Pod, out: &Outcome, count: usize) -> CaseResult {
    ok("ADD", out)?;
    let st = State::read(&p.host)?;
    let ifb = ifb_name("bwnet", &p.container_id);
    ifb_listed(out, &ifb, count, &st)?;
    want_tbf(ctx, &st, &ifb, 2, 1)?;
    want_tbf(ctx, &st, &p.host_veth, 1, 1)
}

fn bw_no_ingress(ctx: &Ctx) -> CaseResult {
    each_version(|v| {
        let p = bw_pod("up-bw-noin")?;
        ok("ADD", &add(ctx, v, &p, &limits((0, 0), (8000, 80)))?)?;
        let st = State::read(&p.host)?;
        ensure(st.has_link(&ifb_name("bwnet", &p.container_id)), || {
            "no ifb".into()
        })?;
        let qs = st.qdiscs_of(&p.host_veth);
        ensure(!qs.iter().any(|q| text(q, "kind") == "tbf"), || {
            format!("a tbf on {} with ingress disabled: {qs:?}", p.host_veth)
        })
    })
}

fn bw_no_egress(ctx: &Ctx) -> CaseResult {
    each_version(|v| {
        let p = bw_pod("up-bw-noeg")?;
        ok("ADD", &add(ctx, v, &p, &limits((8000, 80), (0, 0)))?)?;
        let st = State::read(&p.host)?;
        let ifb = ifb_name("bwnet", &p.container_id);
        ensure(!st.has_link(&ifb), || {
            format!("ifb {ifb} made with egress disabled")
        })?;
        want_tbf(ctx, &st, &p.host_veth, 1000, 35)
    })
}

fn bw_invalid_ingress(ctx: &Ctx) -> CaseResult {
    each_version(|v| {
        let p = bw_pod("up-bw-inval")?;
        let out = add(ctx, v, &p, &limits((0, 123), (123, 123)))?;
        refused_with(ctx, "ADD", &out, "if burst is set, rate must also be set")
    })
}

fn bw_runtime_config(ctx: &Ctx) -> CaseResult {
    each_version(|v| {
        let p = bw_pod("up-bw-rt")?;
        let mut conf = bw(v, &p, &[]);
        conf["runtimeConfig"] =
            json!({"bandWidth": {"ingressRate": 8, "ingressBurst": 8, "egressRate": 16, "egressBurst": 9}});
        let out = call(ctx, "bandwidth", &p, "ADD", &conf)?;
        upstream_pair_shaped(ctx, &p, &out, 3)
    })
}

fn bw_static_wins(ctx: &Ctx) -> CaseResult {
    each_version(|v| {
        let p = bw_pod("up-bw-static")?;
        let mut conf = bw(v, &p, &limits((0, 123), (123, 123)));
        conf["runtimeConfig"] =
            json!({"bandWidth": {"ingressRate": 8, "ingressBurst": 8, "egressRate": 16, "egressBurst": 9}});
        let out = call(ctx, "bandwidth", &p, "ADD", &conf)?;
        refused_with(ctx, "ADD", &out, "if burst is set, rate must also be set")
    })
}

fn bw_del(ctx: &Ctx) -> CaseResult {
    each_version(|v| {
        let p = bw_pod("up-bw-del")?;
        let conf = bw(v, &p, &limits((8, 8), (9, 9)));
        ok("ADD", &call(ctx, "bandwidth", &p, "ADD", &conf)?)?;
        ok("DEL", &call(ctx, "bandwidth", &p, "DEL", &conf)?)?;
        let ifb = ifb_name("bwnet", &p.container_id);
        ensure(!State::read(&p.host)?.has_link(&ifb), || {
            format!("ifb {ifb} left after DEL")
        })
    })
}

fn bw_several_host_veths(ctx: &Ctx) -> CaseResult {
    each_version(|v| {
        let p = bw_pod("up-bw-many")?;
        p.host.try_ip_line("link add vx0 type veth peer name vx1")?;
        let mut conf = bw(v, &p, &limits((8, 8), (16, 8)));
        let prev = &mut conf["prevResult"];
        let mut list = vec![
            json!({"name": "vx0", "sandbox": ""}),
            json!({"name": "vx1", "sandbox": ""}),
        ];
        list.extend(prev["interfaces"].as_array().cloned().unwrap_or_default());
        prev["interfaces"] = json!(list);
        prev["ips"][0]["interface"] = json!(3);
        let out = call(ctx, "bandwidth", &p, "ADD", &conf)?;
        upstream_pair_shaped(ctx, &p, &out, 5)
    })
}

fn bw_host_errors(ctx: &Ctx) -> CaseResult {
    let limits = limits((8, 8), (16, 8));
    each_version(|v| {
        // The container interface a macvlan on top of the veth: no veth peer.
        let p = bw_pod("up-bw-macv")?;
        p.ctr.try_ip(&[
            "link", "add", "link", &p.ifname, "name", "macv0", "type", "macvlan",
        ])?;
        let mut conf = bw(v, &p, &limits);
        conf["prevResult"]["interfaces"][1]["name"] = json!("macv0");
        let mut env = p.env("ADD", &ctx.dir.display().to_string());
        env.retain(|(k, _)| k != "CNI_IFNAME");
        env.push(("CNI_IFNAME".into(), "macv0".into()));
        let out = ctx.invoke("bandwidth", &p.host, &env, &bytes(&conf))?;
        ensure(!out.success(), || "ADD on a macvlan succeeded".into())?;
        // No interfaces in prevResult.
        let mut conf = bw(v, &p, &limits);
        conf["prevResult"]["interfaces"] = json!([]);
        let out = call(ctx, "bandwidth", &p, "ADD", &conf)?;
        ensure(!out.success(), || "ADD without interfaces succeeded".into())?;
        // The host veth named wrong in prevResult.
        let mut conf = bw(v, &p, &limits);
        conf["prevResult"]["interfaces"][0]["name"] = json!(format!("{}-fake", p.host_veth));
        let out = call(ctx, "bandwidth", &p, "ADD", &conf)?;
        ensure(!out.success(), || {
            "ADD with no matching host veth succeeded".into()
        })?;
        ensure(
            !State::read(&p.host)?.has_link(&ifb_name("bwnet", &p.container_id)),
            || "an ifb was left by a refused ADD".into(),
        )
    })
}

/// upstream's `validateRateAndBurst` cases through ADD: the refusals with
/// the reference's words, the accepted ones not refused by validation.
fn bw_validation(ctx: &Ctx) -> CaseResult {
    const WORDS: [&str; 3] = [
        "if rate is set, burst must also be set",
        "if burst is set, rate must also be set",
        "burst cannot be more than 4GB",
    ];
    let gib4: u64 = 4 * 1024 * 1024 * 1024 * 8;
    let cases: [(u64, u64, Option<&str>); 5] = [
        (5000, gib4 - 16, None),
        (5000, gib4, Some(WORDS[2])),
        (0, 1, Some(WORDS[1])),
        (1, 0, Some(WORDS[0])),
        (0, 0, None),
    ];
    let mut bad = Vec::new();
    for (rate, burst, want) in cases {
        let p = bw_pod("up-bw-valid")?;
        let limits = [("egressRate", rate), ("egressBurst", burst)];
        let out = call(ctx, "bandwidth", &p, "ADD", &bw("1.0.0", &p, &limits))?;
        let tag = format!("egressRate {rate} egressBurst {burst}");
        match (want, out.error()) {
            (Some(w), _) => {
                if let Err(Failure::Fail(e)) = refused_with(ctx, &tag, &out, w) {
                    bad.push(e);
                }
            }
            (None, Some(e)) if e.code == Some(7) && WORDS.contains(&e.msg.as_str()) => {
                bad.push(format!("{tag}: refused by validation: {e}"));
            }
            (None, _) => {}
        }
    }
    ensure(bad.is_empty(), || bad.join("\n"))
}
