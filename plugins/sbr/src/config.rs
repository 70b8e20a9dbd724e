//! The plugin's own configuration fields, typed and validated once.
//!
//! `logLevel` and `logFile` are read by cni-core; everything here is sbr's.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use cni_core::{CniError, CniResult, NetConf};
use nl_ops::route::{RT_TABLE_DEFAULT, RT_TABLE_LOCAL, RT_TABLE_MAIN};
use serde::Deserialize;

/// The kernel's own tables: unspec, default, main, local. sbr never picks
/// one and never empties one.
pub const RESERVED_TABLES: [u32; 4] = [0, RT_TABLE_DEFAULT, RT_TABLE_MAIN, RT_TABLE_LOCAL];

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Fields {
    #[serde(default)]
    table: Option<i64>,
    #[serde(default)]
    gateways: Option<Vec<String>>,
    #[serde(default)]
    add_source_hints: Option<bool>,
    #[serde(default)]
    priority: Option<i64>,
    #[serde(default)]
    mode: Option<String>,
    /// Upstream's `vrf` plugin spells it `vrfname`: keys fold, both match.
    #[serde(default)]
    vrf_name: Option<String>,
    #[serde(default)]
    l3mdev_accept: Option<bool>,
}

/// How the attachment's traffic finds its way out: rules by source
/// address (`sbr`, the reference's), or a VRF device the interface is
/// enslaved to (`vrf`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Mode {
    #[default]
    Sbr,
    Vrf,
}

/// The kernel's limit on a link's name (IFNAMSIZ less the NUL).
pub const MAX_LINK_NAME: usize = 15;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Config {
    pub mode: Mode,
    /// sbr mode: one table for every address's rule; no routes are moved.
    /// vrf mode: the VRF's table, into which the routes move.
    pub table: Option<u32>,
    /// vrf mode: the VRF device's name; `None` derives it from the interface.
    pub vrf_name: Option<String>,
    /// vrf mode: set `net.ipv4.{tcp,udp}_l3mdev_accept` in the namespace.
    pub l3mdev_accept: bool,
    pub gateway_v4: Option<Ipv4Addr>,
    pub gateway_v6: Option<Ipv6Addr>,
    /// Keep the subnet route in main, with the address as source hint.
    pub add_source_hints: bool,
    /// The rules' priority; `None` lets the kernel pick, as the reference does.
    pub priority: Option<u32>,
}

impl Config {
    /// Keys match case-insensitively, as the reference's Go decoder does.
    pub fn from_netconf(conf: &NetConf) -> CniResult<Config> {
        let fields: Fields = conf.plugin(true)?;
        Config::from_fields(fields)
    }

    /// DEL's view: only `table`, and leniently. The reference's DEL reads
    /// nothing else (v1.1.1 not even the table), and a DEL that refuses
    /// stops the runtime's teardown of the whole chain (the IPAM address
    /// leaks). An ADD with a table that does not validate never succeeded,
    /// so reading it as absent is safe: sbr's marks still bound what DEL
    /// touches.
    pub fn for_del(conf: &NetConf) -> Config {
        #[derive(Default, Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct DelFields {
            #[serde(default)]
            table: Option<serde_json::Value>,
            #[serde(default)]
            mode: Option<serde_json::Value>,
            #[serde(default)]
            vrf_name: Option<serde_json::Value>,
        }
        let fields: DelFields = conf.plugin(true).unwrap_or_else(|e| {
            log::warn!("ignoring sbr's fields on DEL: {}", e.msg);
            DelFields::default()
        });
        let table = match fields.table {
            None | Some(serde_json::Value::Null) => None,
            Some(v) => match v.as_u64().and_then(|t| u32::try_from(t).ok()).filter(|t| *t > 0) {
                Some(t) => Some(t),
                None => {
                    log::warn!("ignoring invalid table {v} on DEL: must be 1 to 4294967295");
                    None
                }
            },
        };
        // A mode or name ADD refuses reads as sbr's default: DEL then finds
        // only what its marks (and the link's master) say is sbr's.
        let mode = match fields.mode.as_ref().map(|m| mode(m.as_str())) {
            None => Mode::Sbr,
            Some(Ok(m)) => m,
            Some(Err(e)) => {
                log::warn!("ignoring mode on DEL: {}", e.msg);
                Mode::Sbr
            }
        };
        let vrf_name = fields
            .vrf_name
            .and_then(|v| v.as_str().map(str::to_string))
            .and_then(|n| {
                vrf_name(n)
                    .map_err(|e| log::warn!("ignoring on DEL: {}", e.msg))
                    .ok()
            });
        Config {
            mode,
            table,
            vrf_name,
            ..Config::default()
        }
    }

    /// For tests and tools: the plugin fields of a JSON object.
    pub fn from_json(value: &serde_json::Value) -> CniResult<Config> {
        let fields: Fields = serde_json::from_value(value.clone())
            .map_err(|e| CniError::invalid_config(format!("invalid network config: {e}")))?;
        Config::from_fields(fields)
    }

    fn from_fields(fields: Fields) -> CniResult<Config> {
        let mut cfg = Config {
            add_source_hints: fields.add_source_hints.unwrap_or(false),
            ..Config::default()
        };
        if let Some(t) = fields.table {
            // The kernel refuses a rule into table 0 (and the reference with
            // it); tables the reference accepts are accepted here too.
            let t = u32::try_from(t).ok().filter(|t| *t > 0).ok_or_else(|| {
                CniError::invalid_config(format!("invalid table {t}: must be 1 to 4294967295"))
            })?;
            if RESERVED_TABLES.contains(&t) {
                log::warn!(
                    "table {t} is one of the kernel's own (253 default, 254 main, 255 local): \
                     rules into it change nothing for the source addresses"
                );
            }
            cfg.table = Some(t);
        }
        if let Some(p) = fields.priority {
            let p = u32::try_from(p).ok().filter(|p| *p > 0).ok_or_else(|| {
                CniError::invalid_config(format!("invalid priority {p}: must be 1 to 4294967295"))
            })?;
            cfg.priority = Some(p);
        }
        cfg.mode = mode(fields.mode.as_deref())?;
        if cfg.mode == Mode::Vrf {
            cfg.vrf_name = fields.vrf_name.map(vrf_name).transpose()?;
            cfg.l3mdev_accept = fields.l3mdev_accept.unwrap_or(false);
            if let Some(t) = cfg.table.filter(|t| RESERVED_TABLES.contains(t)) {
                return Err(CniError::invalid_config(format!(
                    "invalid table {t} for a vrf: the kernel's own tables (253, 254, 255) cannot be a vrf's"
                )));
            }
            if cfg.priority.take().is_some() {
                log::warn!("ignoring priority in vrf mode: the kernel's l3mdev rule selects the vrf's table");
            }
            if std::mem::take(&mut cfg.add_source_hints) {
                log::warn!("ignoring addSourceHints in vrf mode: the subnet's routes are the vrf's");
            }
        } else {
            for (set, key) in [
                (fields.vrf_name.is_some(), "vrfName"),
                (fields.l3mdev_accept.is_some(), "l3mdevAccept"),
            ] {
                if set {
                    log::warn!("ignoring {key}: it applies only with \"mode\": \"vrf\"");
                }
            }
        }
        let gateways = fields.gateways.unwrap_or_default();
        if let (Some(t), Mode::Sbr) = (cfg.table, cfg.mode) {
            // Upstream reads gateways only when it moves routes, which table
            // mode never does (v1.1.1 not at all): ignored, not refused.
            if !gateways.is_empty() {
                log::warn!("ignoring gateways {gateways:?}: with table {t} sbr makes no default route");
            }
            return Ok(cfg);
        }
        if gateways.len() > 2 {
            return Err(CniError::invalid_config(
                "gateways list cannot contain more than 2 entries (one IPv4, one IPv6)",
            )
            .with_details(format!("{} given", gateways.len())));
        }
        for g in &gateways {
            let ip: IpAddr = g
                .trim()
                .parse()
                .map_err(|_| CniError::invalid_config(format!("invalid static gateway IP address: {g}")))?;
            // Go reads ::ffff:a.b.c.d as IPv4; so do we.
            let ip = match ip {
                IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
                v4 => v4,
            };
            if ip.is_unspecified() {
                return Err(CniError::invalid_config(format!(
                    "invalid static gateway IP address: {g}"
                ))
                .with_details(
                    "the unspecified address is no gateway (the default route would point at the link itself)",
                ));
            }
            match ip {
                IpAddr::V4(v4) => {
                    if let Some(prev) = cfg.gateway_v4 {
                        return Err(CniError::invalid_config(format!(
                            "gateways list contains multiple IPv4 addresses: {prev} and {g}"
                        )));
                    }
                    cfg.gateway_v4 = Some(v4);
                }
                IpAddr::V6(v6) => {
                    if let Some(prev) = cfg.gateway_v6 {
                        return Err(CniError::invalid_config(format!(
                            "gateways list contains multiple IPv6 addresses: {prev} and {g}"
                        )));
                    }
                    cfg.gateway_v6 = Some(v6);
                }
            }
        }
        Ok(cfg)
    }

    /// The VRF's name for the interface `ifname`: `vrfName`, else
    /// `vrf-IFNAME`, or for a name too long for that `vrf-` and eleven hex
    /// digits of a hash of it: the same every time, so DEL finds it
    /// without saved state.
    pub fn vrf_for(&self, ifname: &str) -> String {
        if let Some(n) = &self.vrf_name {
            return n.clone();
        }
        let plain = format!("vrf-{ifname}");
        if plain.len() <= MAX_LINK_NAME {
            return plain;
        }
        // FNV-1a: stable across builds and platforms, unlike std's hasher.
        let h = ifname.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
        });
        let hex = format!("{h:016x}");
        format!("vrf-{}", &hex[..MAX_LINK_NAME - 4])
    }

    /// The static gateway for an address of this family.
    pub fn static_gateway(&self, v4: bool) -> Option<IpAddr> {
        if v4 {
            self.gateway_v4.map(IpAddr::V4)
        } else {
            self.gateway_v6.map(IpAddr::V6)
        }
    }
}

fn mode(m: Option<&str>) -> CniResult<Mode> {
    match m {
        None | Some("sbr") => Ok(Mode::Sbr),
        Some("vrf") => Ok(Mode::Vrf),
        Some(other) => Err(CniError::invalid_config(format!(
            "invalid mode {other:?}: must be \"sbr\" or \"vrf\""
        ))),
    }
}

/// A name the kernel takes for a link, that is no path component trick.
fn vrf_name(n: String) -> CniResult<String> {
    let bad = n.is_empty()
        || n.len() > MAX_LINK_NAME
        || n == "."
        || n == ".."
        || n.chars()
            .any(|c| c == '/' || c == ':' || c.is_whitespace() || c.is_control());
    if bad {
        return Err(CniError::invalid_config(format!(
            "invalid vrfName {n:?}: must be a link name of 1 to {MAX_LINK_NAME} bytes without '/', ':' or spaces"
        )));
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use cni_core::Code;
    use serde_json::json;

    fn cfg(v: serde_json::Value) -> CniResult<Config> {
        Config::from_json(&v)
    }

    #[test]
    fn empty_config_is_reference_behaviour() {
        assert_eq!(cfg(json!({"type": "sbr"})).unwrap(), Config::default());
    }

    #[test]
    fn all_fields() {
        let c = cfg(json!({"gateways": ["10.0.0.1", "fd00::1"], "addSourceHints": true, "priority": 1000}))
            .unwrap();
        assert_eq!(c.table, None);
        assert_eq!(cfg(json!({"table": 500})).unwrap().table, Some(500));
        assert_eq!(c.gateway_v4, Some("10.0.0.1".parse().unwrap()));
        assert_eq!(c.gateway_v6, Some("fd00::1".parse().unwrap()));
        assert!(c.add_source_hints);
        assert_eq!(c.priority, Some(1000));
        assert_eq!(c.static_gateway(true), Some("10.0.0.1".parse().unwrap()));
        assert_eq!(c.static_gateway(false), Some("fd00::1".parse().unwrap()));
    }

    #[test]
    fn bad_values_are_code_7() {
        for v in [
            json!({"table": 0}),
            json!({"table": -1}),
            json!({"table": "100"}),
            json!({"priority": 0}),
            json!({"priority": 4294967296u64}),
            json!({"gateways": ["10.0.0.1", "10.0.0.2"]}),
            json!({"gateways": ["fd00::1", "fd00::2"]}),
            json!({"gateways": ["10.0.0.1", "fd00::1", "10.0.0.3"]}),
            json!({"gateways": ["nope"]}),
            json!({"gateways": ["0.0.0.0"]}),
            json!({"gateways": ["::"]}),
            json!({"gateways": ["::ffff:0.0.0.0"]}),
            json!({"addSourceHints": "yes"}),
        ] {
            let e = cfg(v.clone()).unwrap_err();
            assert_eq!(e.code, Code::InvalidConfig, "{v}: {e}");
        }
    }

    #[test]
    fn messages_carry_the_references_words() {
        for (v, words) in [
            (
                json!({"gateways": ["10.0.0.1", "10.0.0.2"]}),
                "gateways list contains multiple IPv4 addresses: 10.0.0.1 and 10.0.0.2",
            ),
            (
                json!({"gateways": ["fd00::1", "fd00::2"]}),
                "gateways list contains multiple IPv6 addresses: fd00::1 and fd00::2",
            ),
            (
                json!({"gateways": ["a", "b", "c"]}),
                "gateways list cannot contain more than 2 entries (one IPv4, one IPv6)",
            ),
            (
                json!({"gateways": ["nope"]}),
                "invalid static gateway IP address: nope",
            ),
            (
                json!({"gateways": ["0.0.0.0"]}),
                "invalid static gateway IP address: 0.0.0.0",
            ),
        ] {
            // The whole message is the reference's; ours may add details.
            let e = cfg(v.clone()).unwrap_err();
            assert_eq!(e.msg, words, "{v}");
        }
        let e = cfg(json!({"gateways": ["a", "b", "c"]})).unwrap_err();
        assert_eq!(e.details, "3 given");
    }

    #[test]
    fn tables_the_reference_accepts_are_accepted() {
        for t in [253, 254, 255, 1, 4_294_967_295u32] {
            assert_eq!(cfg(json!({"table": t})).unwrap().table, Some(t));
        }
    }

    #[test]
    fn del_reads_only_the_table_and_never_refuses() {
        let conf = |v: serde_json::Value| {
            let mut base = json!({"cniVersion": "1.0.0", "name": "n", "type": "sbr"});
            base.as_object_mut()
                .unwrap()
                .extend(v.as_object().unwrap().clone());
            NetConf::parse(base.to_string().as_bytes()).unwrap()
        };
        let del = |v: serde_json::Value| Config::for_del(&conf(v));
        // The table is read (keys fold as in Go), everything else is not.
        let c =
            del(json!({"gateways": ["nope", "a", "b"], "priority": "x", "addSourceHints": 3, "TABLE": 300}));
        assert_eq!(
            c,
            Config {
                table: Some(300),
                ..Config::default()
            }
        );
        assert_eq!(del(json!({"table": 4_294_967_295u32})).table, Some(4_294_967_295));
        // A table ADD refuses reads as absent: no error.
        for t in [
            json!(null),
            json!(0),
            json!(-1),
            json!(4_294_967_296u64),
            json!(100.5),
            json!("100"),
            json!([100]),
        ] {
            assert_eq!(del(json!({ "table": t })), Config::default(), "table {t}");
        }
    }

    #[test]
    fn gateways_are_ignored_with_a_table() {
        for g in [
            json!(["nope"]),
            json!(["10.0.0.1", "10.0.0.2", "10.0.0.3"]),
            json!(["0.0.0.0"]),
            json!(["10.0.0.1", "fd00::1"]),
        ] {
            let c = cfg(json!({"table": 500, "gateways": g, "priority": 7})).unwrap();
            assert_eq!(
                c,
                Config {
                    table: Some(500),
                    priority: Some(7),
                    ..Config::default()
                },
                "{g}"
            );
            // Without the table the same list is read, and refused or used.
            let e = cfg(json!({ "gateways": g }));
            assert!(e.is_err() || e.unwrap().gateway_v4.is_some(), "{g}");
        }
    }

    #[test]
    fn mapped_v4_gateway_counts_as_v4() {
        let c = cfg(json!({"gateways": ["::ffff:10.0.0.1"]})).unwrap();
        assert_eq!(c.gateway_v4, Some("10.0.0.1".parse().unwrap()));
        assert_eq!(c.gateway_v6, None);
    }
}

#[cfg(test)]
mod vrf_tests {
    use super::*;
    use cni_core::Code;
    use serde_json::json;

    fn cfg(v: serde_json::Value) -> CniResult<Config> {
        Config::from_json(&v)
    }

    #[test]
    fn mode_defaults_to_sbr_and_vrf_reads_its_fields() {
        assert_eq!(cfg(json!({})).unwrap().mode, Mode::Sbr);
        assert_eq!(cfg(json!({"mode": "sbr"})).unwrap().mode, Mode::Sbr);
        let c = cfg(
            json!({"mode": "vrf", "vrfName": "blue", "table": 1001, "l3mdevAccept": true,
            "gateways": ["10.1.0.1"], "priority": 5, "addSourceHints": true}),
        )
        .unwrap();
        assert_eq!(
            c,
            Config {
                mode: Mode::Vrf,
                table: Some(1001),
                vrf_name: Some("blue".into()),
                l3mdev_accept: true,
                // With a table, vrf mode still makes the default route.
                gateway_v4: Some("10.1.0.1".parse().unwrap()),
                ..Config::default()
            }
        );
        // In sbr mode the vrf fields change nothing.
        assert_eq!(
            cfg(json!({"vrfName": "blue", "l3mdevAccept": true})).unwrap(),
            Config::default()
        );
    }

    #[test]
    fn unknown_mode_and_bad_vrf_fields_are_code_7() {
        for v in [
            json!({"mode": "VRF"}),
            json!({"mode": "rules"}),
            json!({"mode": 1}),
            json!({"mode": "vrf", "vrfName": ""}),
            json!({"mode": "vrf", "vrfName": "a-name-too-long0"}),
            json!({"mode": "vrf", "vrfName": "a/b"}),
            json!({"mode": "vrf", "vrfName": "a b"}),
            json!({"mode": "vrf", "vrfName": ".."}),
            json!({"mode": "vrf", "table": 254}),
            json!({"mode": "vrf", "table": 0}),
            json!({"mode": "vrf", "l3mdevAccept": "yes"}),
        ] {
            let e = cfg(v.clone()).unwrap_err();
            assert_eq!(e.code, Code::InvalidConfig, "{v}: {e}");
        }
    }

    #[test]
    fn vrf_names_are_derived_and_fit_a_link_name() {
        let c = Config::default();
        assert_eq!(c.vrf_for("net1"), "vrf-net1");
        assert_eq!(c.vrf_for("abcdefghijk"), "vrf-abcdefghijk");
        let long = c.vrf_for("abcdefghijkl");
        assert_eq!(long.len(), MAX_LINK_NAME);
        assert_eq!(long, c.vrf_for("abcdefghijkl"));
        assert_ne!(long, c.vrf_for("abcdefghijkm"));
        let named = Config {
            vrf_name: Some("blue".into()),
            ..Config::default()
        };
        assert_eq!(named.vrf_for("net1"), "blue");
    }

    #[test]
    fn del_reads_mode_and_vrf_name_leniently() {
        let conf = |v: serde_json::Value| {
            let mut base = json!({"cniVersion": "1.0.0", "name": "n", "type": "sbr"});
            base.as_object_mut()
                .unwrap()
                .extend(v.as_object().unwrap().clone());
            NetConf::parse(base.to_string().as_bytes()).unwrap()
        };
        let c = Config::for_del(&conf(json!({"mode": "vrf", "vrfname": "blue", "gateways": 3})));
        assert_eq!((c.mode, c.vrf_name.as_deref()), (Mode::Vrf, Some("blue")));
        // Upstream's vrf plugin spells it `vrfname`: keys fold as in Go.
        let add = Config::from_netconf(&conf(json!({"mode": "vrf", "vrfname": "red"}))).unwrap();
        assert_eq!(add.vrf_name.as_deref(), Some("red"));
        let c = Config::for_del(&conf(json!({"mode": "nope", "vrfName": "a/b"})));
        assert_eq!((c.mode, c.vrf_name), (Mode::Sbr, None));
    }
}
