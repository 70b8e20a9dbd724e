//! The network configuration a plugin reads on stdin.

use std::path::PathBuf;

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::error::CniResult;
use crate::types::{Attachment, NetResult};

/// The fields the spec defines for every plugin, parsed; the plugin's own
/// fields stay in `raw` and are read with [`NetConf::plugin`].
#[derive(Debug, Clone, PartialEq)]
pub struct NetConf {
    pub cni_version: String,
    /// 1.1: the versions the runtime offers; the highest we support wins.
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
    /// 1.1 GC: attachments that must be kept.
    pub valid_attachments: Option<Vec<Attachment>>,
    /// The whole object as sent.
    pub raw: Map<String, Value>,
}

impl NetConf {
    /// Parses stdin. Broken JSON is code 6, a missing or mistyped spec field 7,
    /// an unparsable prevResult 6 (with where it failed).
    pub fn parse(bytes: &[u8]) -> CniResult<NetConf> {
        let _ = bytes;
        todo!("cni-core helper")
    }

    /// The plugin's own fields. With `case_insensitive`, keys match as Go's
    /// encoding/json matches them (`ingressRate` == `IngressRate`).
    pub fn plugin<T: DeserializeOwned>(&self, case_insensitive: bool) -> CniResult<T> {
        let _ = case_insensitive;
        todo!("cni-core helper")
    }
}
