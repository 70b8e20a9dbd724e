//! The plugin's own configuration fields, typed and validated once.
//!
//! `logLevel` and `logFile` are read by cni-core; everything here is sbr's.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use cni_core::{CniError, CniResult, NetConf};
use serde::Deserialize;

/// Tables a rule of ours must never point at: unspec, default, main, local.
pub const RESERVED_TABLES: [u32; 4] = [0, 253, 254, 255];

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Raw {
    #[serde(default)]
    table: Option<i64>,
    #[serde(default)]
    gateways: Option<Vec<String>>,
    #[serde(default)]
    add_source_hints: Option<bool>,
    #[serde(default)]
    priority: Option<i64>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Config {
    /// One table for every address's rule; no routes are moved.
    pub table: Option<u32>,
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
        let raw: Raw = conf.plugin(true)?;
        Config::from_raw(raw)
    }

    /// For tests and tools: the plugin fields of a JSON object.
    pub fn from_json(value: &serde_json::Value) -> CniResult<Config> {
        let raw: Raw = serde_json::from_value(value.clone())
            .map_err(|e| CniError::invalid_config(format!("invalid network config: {e}")))?;
        Config::from_raw(raw)
    }

    fn from_raw(raw: Raw) -> CniResult<Config> {
        let mut cfg = Config {
            add_source_hints: raw.add_source_hints.unwrap_or(false),
            ..Config::default()
        };
        if let Some(t) = raw.table {
            let t = u32::try_from(t).map_err(|_| {
                CniError::invalid_config(format!("invalid table {t}: must be 1 to 4294967295"))
            })?;
            if RESERVED_TABLES.contains(&t) {
                return Err(CniError::invalid_config(format!(
                    "invalid table {t}: 0, 253 (default), 254 (main) and 255 (local) are reserved"
                )));
            }
            cfg.table = Some(t);
        }
        if let Some(p) = raw.priority {
            let p = u32::try_from(p).ok().filter(|p| *p > 0).ok_or_else(|| {
                CniError::invalid_config(format!("invalid priority {p}: must be 1 to 4294967295"))
            })?;
            cfg.priority = Some(p);
        }
        let gateways = raw.gateways.unwrap_or_default();
        if gateways.len() > 2 {
            return Err(CniError::invalid_config(format!(
                "invalid gateways: {} given, at most two (one ipv4, one ipv6)",
                gateways.len()
            )));
        }
        for g in &gateways {
            let ip: IpAddr = g
                .trim()
                .parse()
                .map_err(|_| CniError::invalid_config(format!("invalid gateway {g:?}: not an ip address")))?;
            match ip {
                IpAddr::V4(v4) => {
                    if let Some(prev) = cfg.gateway_v4 {
                        return Err(CniError::invalid_config(format!(
                            "invalid gateways: two ipv4 gateways, {prev} and {v4}"
                        )));
                    }
                    cfg.gateway_v4 = Some(v4);
                }
                IpAddr::V6(v6) => {
                    if let Some(v4) = v6.to_ipv4_mapped() {
                        // Go reads ::ffff:a.b.c.d as IPv4; so do we.
                        if let Some(prev) = cfg.gateway_v4 {
                            return Err(CniError::invalid_config(format!(
                                "invalid gateways: two ipv4 gateways, {prev} and {v4}"
                            )));
                        }
                        cfg.gateway_v4 = Some(v4);
                        continue;
                    }
                    if let Some(prev) = cfg.gateway_v6 {
                        return Err(CniError::invalid_config(format!(
                            "invalid gateways: two ipv6 gateways, {prev} and {v6}"
                        )));
                    }
                    cfg.gateway_v6 = Some(v6);
                }
            }
        }
        Ok(cfg)
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
        let c = cfg(json!({"table": 500, "gateways": ["10.0.0.1", "fd00::1"], "addSourceHints": true, "priority": 1000}))
            .unwrap();
        assert_eq!(c.table, Some(500));
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
            json!({"table": 254}),
            json!({"table": 0}),
            json!({"table": -1}),
            json!({"table": "100"}),
            json!({"priority": 0}),
            json!({"priority": 4294967296u64}),
            json!({"gateways": ["10.0.0.1", "10.0.0.2"]}),
            json!({"gateways": ["fd00::1", "fd00::2"]}),
            json!({"gateways": ["10.0.0.1", "fd00::1", "10.0.0.3"]}),
            json!({"gateways": ["nope"]}),
            json!({"addSourceHints": "yes"}),
        ] {
            let e = cfg(v.clone()).unwrap_err();
            assert_eq!(e.code, Code::InvalidConfig, "{v}: {e}");
        }
    }

    #[test]
    fn mapped_v4_gateway_counts_as_v4() {
        let c = cfg(json!({"gateways": ["::ffff:10.0.0.1"]})).unwrap();
        assert_eq!(c.gateway_v4, Some("10.0.0.1".parse().unwrap()));
        assert_eq!(c.gateway_v6, None);
    }
}
