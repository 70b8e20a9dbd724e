//! Version numbers, negotiation and result conversion between the families
//! (0.1/0.2, 0.3/0.4, 1.x).
//!
//! Conversions follow libcni: a 0.1/0.2 result becomes `ips` and one merged
//! `routes` list; going down to 0.2 keeps the first IPv4 and the first IPv6
//! address and splits routes by family (no address at all is an error);
//! anything older than 1.1.0 loses the 1.1-only interface and route fields;
//! 0.3.x and 0.4.0 carry `version: "4"|"6"` in each `ips` entry.

use std::cmp::Ordering;

use ipnet::IpNet;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::error::{CniError, CniResult, Code};
use crate::types::{Dns, Interface, IpConfig, NetResult, Route};

pub const ALL: &[&str] = &["0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"];

/// The newest version this crate speaks.
pub const LATEST: &str = "1.1.0";

/// The three wire layouts of a result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// 0.1.0, 0.2.0: `ip4`/`ip6`.
    Legacy,
    /// 0.3.0, 0.3.1, 0.4.0: `interfaces`/`ips` with `version`.
    V04,
    /// 1.0.0, 1.1.0.
    V1,
}

/// The result family of a known version; `None` for versions this crate does
/// not know.
pub fn family(version: &str) -> Option<Family> {
    match version {
        "0.1.0" | "0.2.0" => Some(Family::Legacy),
        "0.3.0" | "0.3.1" | "0.4.0" => Some(Family::V04),
        "1.0.0" | "1.1.0" => Some(Family::V1),
        _ => None,
    }
}

/// Parses `major[.minor[.micro]]` as libcni does; the empty string is 0.1.0.
pub fn parse_version(version: &str) -> Option<(u64, u64, u64)> {
    if version.is_empty() {
        return Some((0, 1, 0));
    }
    let mut parts = version.split('.');
    let num = |p: Option<&str>| -> Option<u64> {
        match p {
            None => Some(0),
            Some(s) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => s.parse().ok(),
            Some(_) => None,
        }
    };
    let major = parts.next().and_then(|s| num(Some(s)))?;
    let minor = num(parts.next())?;
    let micro = num(parts.next())?;
    if parts.next().is_some() {
        return None;
    }
    Some((major, minor, micro))
}

/// Orders two version strings; `None` when either does not parse.
pub fn compare(a: &str, b: &str) -> Option<Ordering> {
    Some(parse_version(a)?.cmp(&parse_version(b)?))
}

/// `a >= b`; false when either does not parse.
pub fn greater_or_equal(a: &str, b: &str) -> bool {
    matches!(compare(a, b), Some(Ordering::Greater | Ordering::Equal))
}

/// The highest version in `offered` that is also in `supported`.
pub fn highest_common(offered: &[String], supported: &[&str]) -> Option<String> {
    offered
        .iter()
        .filter(|v| supported.contains(&v.as_str()))
        .max_by(|a, b| compare(a, b).unwrap_or(Ordering::Equal))
        .cloned()
}

/// The version of a config that names none (skel's DecodeVersion).
pub const UNNAMED: &str = "0.1.0";

/// The version to speak, as the spec and skel read a config: a non-empty
/// `cniVersion` is the one the runtime selected; only when it is missing or
/// empty does a 1.1 `cniVersions` list count (its highest entry the plugin
/// speaks); with neither the config is [`UNNAMED`]. A version the plugin
/// does not speak: code 1.
pub fn negotiate(cni_version: &str, cni_versions: &[String], supported: &[&str]) -> CniResult<String> {
    let spoken = |v: &str| supported.contains(&v).then(|| v.to_string());
    let (chosen, asked) = if !cni_version.is_empty() {
        (spoken(cni_version), format!("cniVersion {cni_version:?}"))
    } else if !cni_versions.is_empty() {
        (
            highest_common(cni_versions, supported),
            format!("cniVersions {cni_versions:?}"),
        )
    } else {
        (
            spoken(UNNAMED),
            format!("no cniVersion, which reads as {UNNAMED:?}"),
        )
    };
    chosen.ok_or_else(|| {
        CniError::new(
            Code::IncompatibleVersion,
            format!("incompatible cni version: config asks for {asked}, plugin supports {supported:?}"),
        )
    })
}

/// The version libcni gives a network configuration list
/// (ConfListFromBytes), for the runtime side: without `cniVersions`, the
/// list's `cniVersion` as written; with it, the highest of its entries and
/// `cniVersion` that is not newer than [`LATEST`] (`cniVersion` as written
/// when none is). An entry, or with `cniVersions` a `cniVersion`, that is
/// no version is code 7.
pub fn list_version(cni_version: &str, cni_versions: Option<&[String]>) -> CniResult<String> {
    let Some(offered) = cni_versions else {
        return Ok(cni_version.to_string());
    };
    let mut best: Option<(&str, (u64, u64, u64))> = None;
    let latest = parse_version(LATEST);
    let own = (!cni_version.is_empty()).then_some(cni_version);
    for (i, v) in offered.iter().map(String::as_str).chain(own).enumerate() {
        let Some(parsed) = parse_version(v) else {
            let what = if i < offered.len() {
                format!("cniVersions entry {v:?} at index {i}")
            } else {
                format!("cniVersion {v:?}")
            };
            return Err(CniError::invalid_config(format!("invalid {what}: not a version")));
        };
        if Some(parsed) > latest {
            continue;
        }
        if best.is_none_or(|(_, b)| parsed > b) {
            best = Some((v, parsed));
        }
    }
    Ok(best.map_or(cni_version, |(v, _)| v).to_string())
}

fn unknown_version(version: &str) -> CniError {
    CniError::new(
        Code::IncompatibleVersion,
        format!("unsupported result version {version:?}"),
    )
    .with_details(format!("known versions: {}", ALL.join(", ")))
}

fn decode_field<T: DeserializeOwned>(value: Value, what: &str) -> CniResult<T> {
    serde_json::from_value(value).map_err(|e| CniError::decode(format!("failed to decode {what}: {e}")))
}

fn decode_list<T: DeserializeOwned>(value: Option<Value>, what: &str) -> CniResult<Vec<T>> {
    match value {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(v) => decode_field(v, what),
    }
}

fn decode_dns(value: Option<Value>) -> CniResult<Dns> {
    match value {
        None | Some(Value::Null) => Ok(Dns::default()),
        Some(v) => decode_field(v, "dns"),
    }
}

/// One `ip4`/`ip6` object of a 0.1/0.2 result.
fn legacy_ip(value: Value, key: &str, ips: &mut Vec<IpConfig>, routes: &mut Vec<Route>) -> CniResult<()> {
    let Value::Object(mut obj) = value else {
        if value.is_null() {
            return Ok(());
        }
        return Err(CniError::decode(format!("failed to decode {key}: not an object")));
    };
    let address: IpNet = decode_field(
        obj.remove("ip")
            .ok_or_else(|| CniError::decode(format!("failed to decode {key}: missing ip")))?,
        &format!("{key}.ip"),
    )?;
    let gateway = match obj.remove("gateway") {
        None | Some(Value::Null) => None,
        Some(v) => Some(decode_field(v, &format!("{key}.gateway"))?),
    };
    let mut r: Vec<Route> = decode_list(obj.remove("routes"), &format!("{key}.routes"))?;
    routes.append(&mut r);
    ips.push(IpConfig {
        address,
        gateway,
        interface: None,
        extra: obj,
    });
    Ok(())
}

impl NetResult {
    /// Parses a result written in `version` (a result with its own
    /// `cniVersion` is read in that one). Not an object or a bad field:
    /// code 6; a version this crate does not know: code 1.
    pub fn parse(version: &str, value: &Value) -> CniResult<NetResult> {
        let Value::Object(obj) = value else {
            return Err(CniError::decode("failed to decode result: not a json object"));
        };
        let mut obj = obj.clone();
        let version = match obj.remove("cniVersion") {
            None | Some(Value::Null) => version.to_string(),
            Some(Value::String(s)) => s,
            Some(_) => {
                return Err(CniError::decode(
                    "failed to decode result: cniVersion is not a string",
                ))
            }
        };
        let fam = family(&version).ok_or_else(|| unknown_version(&version))?;
        let mut res = NetResult {
            cni_version: version,
            ..NetResult::default()
        };
        match fam {
            Family::Legacy => {
                for key in ["ip4", "ip6"] {
                    if let Some(v) = obj.remove(key) {
                        legacy_ip(v, key, &mut res.ips, &mut res.routes)?;
                    }
                }
            }
            Family::V04 | Family::V1 => {
                res.interfaces = decode_list::<Interface>(obj.remove("interfaces"), "interfaces")?;
                let ips = match obj.remove("ips") {
                    None | Some(Value::Null) => Vec::new(),
                    Some(Value::Array(a)) => a,
                    Some(_) => return Err(CniError::decode("failed to decode ips: not an array")),
                };
                for (i, ip) in ips.into_iter().enumerate() {
                    let mut ip = ip;
                    // Derived from the address on output; never kept as an extra.
                    if let Value::Object(o) = &mut ip {
                        o.remove("version");
                    }
                    // An interface index out of range or negative is kept, as
                    // Go keeps it: neither ADD nor DEL fails on it. Look up
                    // with `interface_of`.
                    res.ips.push(decode_field(ip, &format!("ips[{i}]"))?);
                }
                res.routes = decode_list(obj.remove("routes"), "routes")?;
            }
        }
        res.dns = decode_dns(obj.remove("dns"))?;
        res.extra = obj;
        Ok(res)
    }

    /// The interface an address belongs to, if its index points at one
    /// (not unset, negative or out of range).
    pub fn interface_of(&self, ip: &IpConfig) -> Option<&Interface> {
        self.interfaces.get(ip.interface_index()?)
    }

    /// The wire form in `version`, as libcni converts.
    pub fn to_json(&self, version: &str) -> CniResult<Value> {
        let fam = family(version).ok_or_else(|| unknown_version(version))?;
        let mut out = Map::new();
        out.insert("cniVersion".into(), Value::String(version.to_string()));
        let pre_11 = !greater_or_equal(version, "1.1.0");
        match fam {
            Family::Legacy => self.legacy_into(&mut out, version)?,
            Family::V04 | Family::V1 => {
                if !self.interfaces.is_empty() {
                    let mut list = Vec::with_capacity(self.interfaces.len());
                    for iface in &self.interfaces {
                        let mut iface = iface.clone();
                        if pre_11 {
                            iface.mtu = None;
                            iface.socket_path = None;
                            iface.pci_id = None;
                        }
                        list.push(encode(&iface)?);
                    }
                    out.insert("interfaces".into(), Value::Array(list));
                }
                if !self.ips.is_empty() {
                    let mut list = Vec::with_capacity(self.ips.len());
                    for ip in &self.ips {
                        let mut v = Map::new();
                        if fam == Family::V04 {
                            let fam = if ip.address.addr().is_ipv4() { "4" } else { "6" };
                            v.insert("version".into(), Value::String(fam.into()));
                        }
                        if let Value::Object(o) = encode(ip)? {
                            for (k, x) in o {
                                if k != "version" {
                                    v.insert(k, x);
                                }
                            }
                        }
                        list.push(Value::Object(v));
                    }
                    out.insert("ips".into(), Value::Array(list));
                }
                if !self.routes.is_empty() {
                    let list = self
                        .routes
                        .iter()
                        .map(|r| route_json(r, pre_11))
                        .collect::<CniResult<Vec<_>>>()?;
                    out.insert("routes".into(), Value::Array(list));
                }
                out.insert("dns".into(), encode(&self.dns)?);
            }
        }
        for (k, v) in &self.extra {
            if !out.contains_key(k) && !is_result_key(k) {
                out.insert(k.clone(), v.clone());
            }
        }
        Ok(Value::Object(out))
    }

    fn legacy_into(&self, out: &mut Map<String, Value>, version: &str) -> CniResult<()> {
        let v4 = self.ips.iter().find(|ip| ip.address.addr().is_ipv4());
        let v6 = self.ips.iter().find(|ip| ip.address.addr().is_ipv6());
        if v4.is_none() && v6.is_none() {
            return Err(CniError::new(
                Code::IncompatibleVersion,
                format!("cannot convert result to version {version}: it has no ip address"),
            ));
        }
        for (key, ip, want_v4) in [("ip4", v4, true), ("ip6", v6, false)] {
            let Some(ip) = ip else { continue };
            let mut o = Map::new();
            o.insert("ip".into(), Value::String(ip.address.to_string()));
            if let Some(gw) = ip.gateway {
                o.insert("gateway".into(), Value::String(gw.to_string()));
            }
            let routes = self
                .routes
                .iter()
                .filter(|r| r.dst.addr().is_ipv4() == want_v4)
                .map(|r| route_json(r, true))
                .collect::<CniResult<Vec<_>>>()?;
            if !routes.is_empty() {
                o.insert("routes".into(), Value::Array(routes));
            }
            for (k, v) in &ip.extra {
                if !o.contains_key(k) && !matches!(k.as_str(), "interface" | "address" | "version") {
                    o.insert(k.clone(), v.clone());
                }
            }
            out.insert(key.into(), Value::Object(o));
        }
        // Go prints `dns` in every family, empty or not.
        out.insert("dns".into(), encode(&self.dns)?);
        Ok(())
    }
}

/// Keys one family defines that must not leak into another as extras.
fn is_result_key(k: &str) -> bool {
    matches!(
        k,
        "cniVersion" | "interfaces" | "ips" | "routes" | "dns" | "ip4" | "ip6"
    )
}

fn route_json(r: &Route, pre_11: bool) -> CniResult<Value> {
    let mut r = r.clone();
    if pre_11 {
        r.mtu = None;
        r.advmss = None;
        r.priority = None;
        r.table = None;
        r.scope = None;
    }
    encode(&r)
}

fn encode<T: serde::Serialize>(v: &T) -> CniResult<Value> {
    serde_json::to_value(v).map_err(|e| CniError::internal(format!("failed to encode result: {e}")))
}
