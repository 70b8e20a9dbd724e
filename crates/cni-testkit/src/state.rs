//! Kernel state of one namespace read back as data (`ip -j`, `tc -j`) and
//! normalized so two runs of the same scenario compare equal: no ifindexes,
//! MACs, counters or kernel-chosen handles of our own making.

use std::collections::BTreeSet;
use std::fmt::Write;

use serde_json::{Map, Value};

use crate::ns::Ns;

/// A tbf without its queue limit (and the latency tc derives from it) and
/// its peak bucket: bandwidth's bounded queue differs from the reference's
/// by design (`queue` in docs/bandwidth.md; the peak bucket of one frame
/// makes the TBF split GSO packets for it); the cases check the limit
/// themselves.
fn without_queue_limit(q: &str) -> String {
    let Ok(mut v) = serde_json::from_str::<Value>(q) else {
        return q.to_string();
    };
    if v.get("kind").and_then(Value::as_str) != Some("tbf") {
        return q.to_string();
    }
    if let Some(o) = v.get_mut("options").and_then(Value::as_object_mut) {
        for key in ["limit", "lat", "peakrate", "minburst", "mtu", "mtu_raw"] {
            o.remove(key);
        }
    }
    v.to_string()
}

/// One namespace's rules, routes, links, qdiscs and ingress filters, each
/// rendered as a sorted set of compact JSON lines.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct State {
    pub rules: BTreeSet<String>,
    pub routes: BTreeSet<String>,
    pub links: BTreeSet<String>,
    pub qdiscs: BTreeSet<String>,
    pub filters: BTreeSet<String>,
    /// Raw link objects, for checks on fields left out above (alias).
    pub raw_links: Vec<Value>,
    /// Raw filter objects, for checks on fields left out above.
    pub raw_filters: Vec<Value>,
}

/// iproute2's `-j` output as a list (empty output: none); bad JSON is an error.
pub fn json_list(out: &str) -> Result<Vec<Value>, String> {
    if out.trim().is_empty() {
        return Ok(Vec::new());
    }
    match serde_json::from_str::<Value>(out) {
        Ok(Value::Array(a)) => Ok(a),
        Ok(other) => Err(format!("expected a json list, got {other}")),
        Err(e) => Err(format!("bad json from iproute2: {e}: {out}")),
    }
}

fn pick(v: &Value, keys: &[&str]) -> Value {
    let mut m = Map::new();
    for k in keys {
        if let Some(x) = v.get(*k) {
            m.insert((*k).to_string(), x.clone());
        }
    }
    Value::Object(m)
}

impl State {
    pub fn read(ns: &Ns) -> Result<State, String> {
        let mut st = State::default();
        for fam in ["-4", "-6"] {
            for r in json_list(&ns.try_ip(&["-j", fam, "rule", "show"])?)? {
                st.rules.insert(format!("{fam} {r}"));
            }
            for mut r in json_list(&ns.try_ip(&["-j", fam, "route", "show", "table", "all"])?)? {
                // The local table follows addresses (random IPv6 link-local ones).
                if r.get("table").and_then(Value::as_str) == Some("local") {
                    continue;
                }
                if r.get("dst")
                    .and_then(Value::as_str)
                    .is_some_and(|d| d.starts_with("ff00::"))
                {
                    continue;
                }
                if let Some(o) = r.as_object_mut() {
                    o.remove("expires");
                }
                st.routes.insert(format!("{fam} {r}"));
            }
        }
        for l in json_list(&ns.try_ip(&["-j", "-d", "link", "show"])?)? {
            let kind = l.pointer("/linkinfo/info_kind").cloned().unwrap_or(Value::Null);
            let up = l
                .get("flags")
                .and_then(Value::as_array)
                .is_some_and(|f| f.iter().any(|x| x == "UP"));
            let mut m = pick(&l, &["ifname", "mtu"]);
            if let Some(o) = m.as_object_mut() {
                o.insert("kind".into(), kind);
                o.insert("up".into(), up.into());
            }
            st.links.insert(m.to_string());
            st.raw_links.push(l);
        }
        for q in json_list(&ns.try_tc(&["-j", "-raw", "qdisc", "show"])?)? {
            let kind = q.get("kind").and_then(Value::as_str).unwrap_or_default();
            // Default qdiscs the kernel attaches by itself.
            if kind == "noqueue" || (kind == "pfifo_fast" && q.get("root").is_some()) {
                continue;
            }
            let mut q = pick(&q, &["dev", "kind", "handle", "parent", "root", "options"]);
            // A counter among htb's options.
            if let Some(o) = q.get_mut("options").and_then(Value::as_object_mut) {
                o.remove("direct_packets_stat");
            }
            st.qdiscs.insert(q.to_string());
        }
        let ingress_devs: Vec<String> = json_list(&ns.try_tc(&["-j", "qdisc", "show"])?)?
            .iter()
            .filter(|q| q.get("kind").and_then(Value::as_str) == Some("ingress"))
            .filter_map(|q| q.get("dev").and_then(Value::as_str).map(str::to_string))
            .collect();
        for dev in ingress_devs {
            // A device may vanish between the two dumps (its peer namespace went).
            let listed = match ns.try_tc(&["-j", "filter", "show", "dev", &dev, "ingress"]) {
                Ok(out) => out,
                Err(e) if e.contains("Cannot find device") => continue,
                Err(e) => return Err(e),
            };
            for f in json_list(&listed)? {
                // Only the entries that carry a match (u32 prints header lines too).
                let Some(actions) = f.pointer("/options/actions").and_then(Value::as_array) else {
                    continue;
                };
                let first = actions.first().map(|a| {
                    pick(a, &["kind", "mirred_action", "direction", "to_dev"]).to_string()
                        + &a.pointer("/control_action/type")
                            .map(|t| format!(" {t}"))
                            .unwrap_or_default()
                });
                st.filters.insert(format!(
                    "dev={dev} kind={} protocol={} pref={} first_action={}",
                    f.get("kind").unwrap_or(&Value::Null),
                    f.get("protocol").unwrap_or(&Value::Null),
                    f.get("pref").unwrap_or(&Value::Null),
                    first.unwrap_or_default()
                ));
                let mut f = f.clone();
                if let Some(o) = f.as_object_mut() {
                    o.insert("dev".into(), dev.clone().into());
                }
                st.raw_filters.push(f);
            }
        }
        Ok(st)
    }

    /// The state as the reference would leave it, without the differences
    /// that are meant: sbr marks the rules and routes it makes with
    /// protocol 83 (the reference's have none, or boot) and puts a marker (a
    /// throw route, protocol 83) beside each route it moves; bandwidth's tbf
    /// queues are bounded, and it puts fq_codel `10:` under its TBF where
    /// the kernel has it (issue 19).
    pub fn without_marks(&self) -> State {
        let strip = |set: &BTreeSet<String>| -> BTreeSet<String> {
            set.iter()
                .filter(|x| !(x.contains("\"type\":\"throw\"") && x.contains("\"protocol\":\"83\"")))
                .map(|x| x.replace(",\"protocol\":\"83\"", ""))
                .collect()
        };
        let aqm = |q: &String| {
            serde_json::from_str::<Value>(q)
                .is_ok_and(|v| v["kind"] == "fq_codel" && v["handle"] == "10:" && v["parent"] == "1:1")
        };
        State {
            rules: strip(&self.rules),
            routes: strip(&self.routes),
            qdiscs: self
                .qdiscs
                .iter()
                .filter(|q| !aqm(q))
                .map(|q| without_queue_limit(q))
                .collect(),
            ..self.clone()
        }
    }

    /// What differs from `other`, as readable lines (empty when equal).
    pub fn diff(&self, other: &State, this: &str, that: &str) -> String {
        let mut out = String::new();
        let parts = [
            ("rule", &self.rules, &other.rules),
            ("route", &self.routes, &other.routes),
            ("link", &self.links, &other.links),
            ("qdisc", &self.qdiscs, &other.qdiscs),
            ("filter", &self.filters, &other.filters),
        ];
        for (what, a, b) in parts {
            for x in a.difference(b) {
                let _ = writeln!(out, "{what} only in {this}: {x}");
            }
            for x in b.difference(a) {
                let _ = writeln!(out, "{what} only in {that}: {x}");
            }
        }
        out
    }

    pub fn has_link(&self, name: &str) -> bool {
        self.raw_links
            .iter()
            .any(|l| l.get("ifname").and_then(Value::as_str) == Some(name))
    }

    pub fn link(&self, name: &str) -> Option<&Value> {
        self.raw_links
            .iter()
            .find(|l| l.get("ifname").and_then(Value::as_str) == Some(name))
    }

    /// Links of a kind (`ifb`, `veth`).
    pub fn links_of_kind(&self, kind: &str) -> Vec<&Value> {
        self.raw_links
            .iter()
            .filter(|l| l.pointer("/linkinfo/info_kind").and_then(Value::as_str) == Some(kind))
            .collect()
    }

    /// The qdiscs of a device, as their JSON objects.
    pub fn qdiscs_of(&self, dev: &str) -> Vec<Value> {
        self.qdiscs
            .iter()
            .filter_map(|q| serde_json::from_str::<Value>(q).ok())
            .filter(|q| q.get("dev").and_then(Value::as_str) == Some(dev))
            .collect()
    }

    /// Links, qdiscs and routes other than `lo`'s (the local table is left
    /// out already): what a namespace made just for a runtime holds once its
    /// pods are gone, one line each.
    pub fn beyond_lo(&self) -> Vec<String> {
        let on_lo = |v: &Value| v.get("dev").and_then(Value::as_str) == Some("lo");
        let mut left = Vec::new();
        for l in &self.raw_links {
            let name = text(l, "ifname");
            if name != "lo" {
                left.push(format!("link {name}"));
            }
        }
        for q in &self.qdiscs {
            if serde_json::from_str::<Value>(q).map_or(true, |v| !on_lo(&v)) {
                left.push(format!("qdisc {q}"));
            }
        }
        for r in &self.routes {
            if parse_line(r).is_none_or(|v| !on_lo(&v)) {
                left.push(format!("route {r}"));
            }
        }
        left
    }

    pub fn rules_containing(&self, needle: &str) -> Vec<&String> {
        self.rules.iter().filter(|r| r.contains(needle)).collect()
    }

    pub fn routes_containing(&self, needle: &str) -> Vec<&String> {
        self.routes.iter().filter(|r| r.contains(needle)).collect()
    }
}

/// A rule or route line of [`State`] back as JSON, with "family" added.
fn parse_line(line: &str) -> Option<Value> {
    let (fam, json) = line.split_once(' ')?;
    let mut v: Value = serde_json::from_str(json).ok()?;
    v.as_object_mut()?
        .insert("family".into(), fam.trim_start_matches('-').into());
    Some(v)
}

impl State {
    pub fn rule_values(&self) -> Vec<Value> {
        self.rules.iter().filter_map(|l| parse_line(l)).collect()
    }

    pub fn route_values(&self) -> Vec<Value> {
        self.routes.iter().filter_map(|l| parse_line(l)).collect()
    }

    /// Rules other than the kernel's three defaults per family.
    pub fn extra_rules(&self) -> Vec<Value> {
        self.rule_values()
            .into_iter()
            .filter(|r| {
                let t = r.get("table").and_then(Value::as_str).unwrap_or_default();
                !(r.get("src").and_then(Value::as_str) == Some("all")
                    && ["local", "main", "default"].contains(&t)
                    && r.as_object().is_some_and(|o| o.len() == 4))
            })
            .collect()
    }

    /// Routes of `table` ("main" for the main table, which `ip` prints without a table key).
    pub fn routes_in(&self, table: &str) -> Vec<Value> {
        self.route_values()
            .into_iter()
            .filter(|r| r.get("table").and_then(Value::as_str).unwrap_or("main") == table)
            .collect()
    }
}

/// A field of a JSON value as text (numbers too), "" when absent.
pub fn text(v: &Value, key: &str) -> String {
    match v.get(key) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_tbfs_queue_limit_and_peak_bucket_are_left_out() {
        let tbf = r#"{"dev":"vh0","kind":"tbf","handle":"1:","root":true,"options":{"rate":125000,"burst":12500,"lat":25000,"limit":15625}}"#;
        let got: Value = serde_json::from_str(&without_queue_limit(tbf)).unwrap_or_default();
        assert_eq!(
            got["options"],
            serde_json::json!({"rate": 125000, "burst": 12500})
        );
        // With the peak bucket (as tc -j -raw prints it).
        let peak = r#"{"dev":"vh0","kind":"tbf","handle":"1:","root":true,"options":{"rate":125000,"burst":12500,"minburst":0,"mtu_raw":"1","lat":0,"limit":3125}}"#;
        let got: Value = serde_json::from_str(&without_queue_limit(peak)).unwrap_or_default();
        assert_eq!(
            got["options"],
            serde_json::json!({"rate": 125000, "burst": 12500})
        );
        let other = r#"{"dev":"vh0","kind":"bfifo","options":{"limit":15625}}"#;
        assert_eq!(without_queue_limit(other), other);
    }
}
