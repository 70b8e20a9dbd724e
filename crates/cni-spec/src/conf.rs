//! The network configuration a plugin reads on stdin.

use std::path::PathBuf;

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::error::{CniError, CniResult};
use crate::go_keys::GoKeys;
use crate::types::{Attachment, NetResult};
use crate::version;

/// The fields the spec defines for every plugin, parsed; the plugin's own
/// fields stay in `raw` and are read with [`NetConf::plugin`].
#[derive(Debug, Clone, PartialEq)]
pub struct NetConf {
    /// As sent (empty when missing); the dispatcher puts the negotiated
    /// version here (see [`version::negotiate`]).
    pub cni_version: String,
    /// 1.1: the versions the runtime offers; counted only when `cni_version`
    /// is missing or empty.
    pub cni_versions: Vec<String>,
    pub name: String,
    pub plugin_type: String,
    pub capabilities: Map<String, Value>,
    pub runtime_config: Map<String, Value>,
    pub args: Option<Value>,
    pub ipam: Option<Value>,
    pub dns: Option<Value>,
    /// Parsed in `cni_version`; `None` when the runtime sent none.
    pub prev_result: Option<NetResult>,
    /// `error|warn|info|debug`, default `warn`.
    pub log_level: Option<String>,
    pub log_file: Option<PathBuf>,
    /// Settings left out instead of refused (a `logLevel` or `logFile` that
    /// is no string), each a warning to log.
    pub warnings: Vec<String>,
    /// 1.1 GC: attachments that must be kept.
    pub valid_attachments: Option<Vec<Attachment>>,
    /// The whole object as sent.
    pub raw: Map<String, Value>,
}

/// `null` counts as absent, as Go's decoder treats it.
fn get<'a>(raw: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    raw.get(key).filter(|v| !v.is_null())
}

fn mistyped(key: &str, want: &str) -> CniError {
    CniError::invalid_config(format!("invalid network config: {key} must be {want}"))
}

fn required_string(raw: &Map<String, Value>, key: &str) -> CniResult<String> {
    match get(raw, key) {
        None => Err(CniError::invalid_config(format!(
            "invalid network config: missing {key}"
        ))),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(_) => Err(mistyped(key, "a string")),
    }
}

fn optional_string(raw: &Map<String, Value>, key: &str) -> CniResult<Option<String>> {
    match get(raw, key) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(mistyped(key, "a string")),
    }
}

/// A logging setting: the reference ignores these keys, so one of the
/// wrong type is left out with a warning instead of refused.
fn lenient_string(raw: &Map<String, Value>, key: &str, warnings: &mut Vec<String>) -> Option<String> {
    match get(raw, key) {
        None => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(v) => {
            warnings.push(format!("ignoring {key} {v}: not a string"));
            None
        }
    }
}

fn optional_object(raw: &Map<String, Value>, key: &str) -> CniResult<Map<String, Value>> {
    match get(raw, key) {
        None => Ok(Map::new()),
        Some(Value::Object(m)) => Ok(m.clone()),
        Some(_) => Err(mistyped(key, "an object")),
    }
}

fn string_list(raw: &Map<String, Value>, key: &str) -> CniResult<Vec<String>> {
    match get(raw, key) {
        None => Ok(Vec::new()),
        Some(Value::Array(a)) => a
            .iter()
            .map(|v| {
                v.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| mistyped(key, "an array of strings"))
            })
            .collect(),
        Some(_) => Err(mistyped(key, "an array of strings")),
    }
}

/// The version a `cniVersion`-less prevResult is read in: the config's, as
/// negotiation will choose it; as written when it is none we know (reading
/// then fails with code 1).
fn result_version(cni_version: &str, cni_versions: &[String]) -> String {
    version::negotiate(cni_version, cni_versions, version::ALL).unwrap_or_else(|_| cni_version.to_string())
}

impl NetConf {
    /// The network name, refused (code 7) when the spec forbids it, in the
    /// words of the reference's skel: "missing network name" when empty,
    /// "invalid characters found in network name" (details: the name).
    pub fn checked_name(&self) -> CniResult<&str> {
        if self.name.is_empty() {
            return Err(CniError::invalid_config("missing network name"));
        }
        if crate::names::valid_network_name(&self.name) {
            Ok(&self.name)
        } else {
            Err(CniError::invalid_config(format!(
                "invalid characters found in network name {:?}: it must start with a letter or digit, \
                 followed by letters, digits, '_', '.' or '-'",
                self.name
            ))
            .with_details(self.name.clone()))
        }
    }

    /// Parses stdin. Broken JSON or not an object is code 6; a missing or
    /// mistyped spec field (`name`, `type`, `cniVersion`, `cniVersions`,
    /// `capabilities`, `runtimeConfig`, `cni.dev/valid-attachments`) is 7
    /// (a mistyped `logLevel` or `logFile` is left out, see
    /// [`NetConf::warnings`]); a bad prevResult is 6, or 1 when it
    /// is in a version this crate does not know, with "prevResult" in the
    /// message. A missing `cniVersion` is no error (see [`version::negotiate`]).
    pub fn parse(bytes: &[u8]) -> CniResult<NetConf> {
        let value: Value = serde_json::from_slice(bytes)
            .map_err(|e| CniError::decode(format!("failed to decode network config: {e}")))?;
        let Value::Object(raw) = value else {
            return Err(CniError::decode(
                "failed to decode network config: not a json object",
            ));
        };
        let cni_versions = string_list(&raw, "cniVersions")?;
        // Missing or empty is 0.1.0 (or cniVersions' choice), as skel reads it.
        let cni_version = optional_string(&raw, "cniVersion")?.unwrap_or_default();
        let name = match get(&raw, "name") {
            // skel's words for it.
            None => return Err(CniError::invalid_config("missing network name")),
            Some(_) => required_string(&raw, "name")?,
        };
        let plugin_type = required_string(&raw, "type")?;
        let capabilities = optional_object(&raw, "capabilities")?;
        let runtime_config = optional_object(&raw, "runtimeConfig")?;
        let mut warnings = Vec::new();
        let log_level = lenient_string(&raw, "logLevel", &mut warnings);
        let log_file = lenient_string(&raw, "logFile", &mut warnings)
            .filter(|s| !s.is_empty())
            .map(PathBuf::from);
        // libcni sends both keys; the spec names the first.
        let attachments = ["cni.dev/valid-attachments", "cni.dev/attachments"]
            .into_iter()
            .find_map(|k| get(&raw, k).map(|v| (k, v)));
        let valid_attachments = match attachments {
            None => None,
            Some((k, v)) => Some(
                serde_json::from_value::<Vec<Attachment>>(v.clone())
                    .map_err(|e| CniError::invalid_config(format!("invalid network config: {k}: {e}")))?,
            ),
        };
        let prev_result = match get(&raw, "prevResult") {
            None => None,
            Some(v) => Some(
                NetResult::parse(&result_version(&cni_version, &cni_versions), v)
                    .map_err(|e| e.context("failed to parse prevResult"))?,
            ),
        };
        Ok(NetConf {
            cni_version,
            cni_versions,
            name,
            plugin_type,
            capabilities,
            runtime_config,
            args: get(&raw, "args").cloned(),
            ipam: get(&raw, "ipam").cloned(),
            dns: get(&raw, "dns").cloned(),
            prev_result,
            log_level,
            log_file,
            warnings,
            valid_attachments,
            raw,
        })
    }

    /// The plugin's own fields, deserialized from the whole config object
    /// (so `T` may also read `runtimeConfig`, `args`, ...). A type mismatch
    /// is code 7.
    ///
    /// With `case_insensitive`, keys match as Go's encoding/json matches
    /// them (`ingressRate` == `IngressRate` == `INGRESSRATE`): an exact match
    /// wins, else an ASCII case-insensitive one, and of two keys naming one
    /// field the later wins. Declare fields with their canonical (camelCase)
    /// serde names as usual; matching applies at every level of nested
    /// structs (`runtimeConfig.bandwidth.ingressRate`), inside `Option` and
    /// `Vec`. It does not reach fields behind `#[serde(flatten)]` or untagged
    /// enums: name such fields in the struct itself when they must fold.
    pub fn plugin<T: DeserializeOwned>(&self, case_insensitive: bool) -> CniResult<T> {
        let value = Value::Object(self.raw.clone());
        let out = if case_insensitive {
            T::deserialize(GoKeys(value))
        } else {
            serde_json::from_value(value)
        };
        out.map_err(|e| CniError::invalid_config(format!("invalid network config: {e}")))
    }

    /// Re-reads prevResult in `version` when it carried no `cniVersion` of its
    /// own (the dispatcher calls it after negotiation moved the config's
    /// version).
    pub fn reparse_prev_result(&mut self, version: &str) -> CniResult<()> {
        if let Some(v) = get(&self.raw, "prevResult") {
            let has_own = v.get("cniVersion").is_some_and(|x| !x.is_null());
            if !has_own {
                self.prev_result =
                    Some(NetResult::parse(version, v).map_err(|e| e.context("failed to parse prevResult"))?);
            }
        }
        Ok(())
    }
}
