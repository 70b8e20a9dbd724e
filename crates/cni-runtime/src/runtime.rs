//! libcni's list semantics on top of [`crate::exec`]: config injection,
//! prevResult chaining, capability filtering, the result cache, and the
//! order of ADD, CHECK, DEL, GC and STATUS.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use serde_json::{Map, Value};

use crate::cache::{self, Cached, Entry};
use crate::conflist::{describe, NetworkList};
use crate::exec::{find_in_path, ExecError, Invocation, PluginError};
use cni_spec::version::greater_or_equal;

/// How plugins are found and run.
#[derive(Debug, Clone)]
pub struct Runtime {
    /// `CNI_PATH`.
    pub cni_path: Vec<PathBuf>,
    /// The cache root (results live in `results/` below it).
    pub cache_dir: PathBuf,
    pub timeout: Duration,
    /// Prefix for every plugin process, e.g. `ip netns exec HOST`.
    pub wrapper: Vec<OsString>,
    /// Give plugins only PATH and the CNI variables instead of our environment.
    pub clear_env: bool,
    pub inherit_stderr: bool,
}

/// The per-attachment arguments (libcni's RuntimeConf).
#[derive(Debug, Clone, Default)]
pub struct RuntimeConf {
    pub container_id: String,
    pub netns: String,
    pub ifname: String,
    pub args: Vec<(String, String)>,
    pub capability_args: Map<String, Value>,
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("{0}")]
    Invalid(String),
    #[error("failed to find plugin {name:?} in path {path:?}")]
    PluginNotFound { name: String, path: Vec<PathBuf> },
    #[error("plugin {plugin} failed ({op}): {err}")]
    Plugin {
        plugin: String,
        op: &'static str,
        err: PluginError,
    },
    #[error("plugin {plugin} failed ({op}): {err}")]
    Exec {
        plugin: String,
        op: &'static str,
        err: ExecError,
    },
    #[error("plugin {plugin} ({op}) printed no valid result: {why}")]
    BadResult {
        plugin: String,
        op: &'static str,
        why: String,
    },
    #[error("{0}")]
    Cache(String),
    #[error("{0}")]
    Many(String),
}

impl RunError {
    /// The plugin's spec code, when a plugin answered with one.
    pub fn code(&self) -> Option<u64> {
        match self {
            RunError::Plugin { err, .. } => err.code,
            _ => None,
        }
    }

    pub fn timed_out(&self) -> bool {
        matches!(
            self,
            RunError::Exec {
                err: ExecError::Timeout(..),
                ..
            }
        )
    }
}

/// The spec's name rule for container IDs and network names (libcni's):
/// `[a-zA-Z0-9][a-zA-Z0-9_.-]*`.
fn spec_name(s: &str) -> bool {
    s.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

pub fn validate_container_id(id: &str) -> Result<(), RunError> {
    if spec_name(id) {
        Ok(())
    } else {
        Err(RunError::Invalid(format!(
            "invalid characters in container id {id:?}"
        )))
    }
}

/// What the kernel accepts: 1 to 15 bytes, not `.` or `..`, no `/`, `:` or
/// whitespace.
pub fn validate_ifname(name: &str) -> Result<(), RunError> {
    let bad = name.is_empty()
        || name.len() > 15
        || name == "."
        || name == ".."
        || name.contains(['/', ':'])
        || name.contains(char::is_whitespace);
    if bad {
        return Err(RunError::Invalid(format!("invalid interface name {name:?}")));
    }
    Ok(())
}

/// `CNI_ARGS` as `K=V;K2=V2`, as libcni runtimes send it: an empty value is
/// allowed (cnitool refuses it; libcni's LoadArgs does not), empty segments
/// are skipped, a pair without exactly one `=` or with an empty key is not.
pub fn parse_cni_args(s: &str) -> Result<Vec<(String, String)>, RunError> {
    let pair = |p: &str| match p.split_once('=') {
        Some((k, v)) if !k.is_empty() && !v.contains('=') => Ok((k.to_string(), v.to_string())),
        _ => Err(RunError::Invalid(format!(
            "invalid CNI_ARGS pair {p:?}: want KEY=VALUE"
        ))),
    };
    s.split(';').filter(|p| !p.is_empty()).map(pair).collect()
}

/// A result converted to `to` (libcni's GetAsVersion), for a cached result
/// written under another version of the list.
pub fn convert_result(result: &Value, to: &str) -> Result<Value, String> {
    let from = result.get("cniVersion").and_then(Value::as_str).unwrap_or(to);
    if from == to {
        return Ok(result.clone());
    }
    let parsed = cni_spec::NetResult::parse(from, result).map_err(|e| e.msg)?;
    parsed.to_json(to).map_err(|e| e.msg)
}

impl Runtime {
    fn cache_path(&self, list: &NetworkList, rt: &RuntimeConf) -> Option<PathBuf> {
        if list.name.is_empty() || rt.container_id.is_empty() || rt.ifname.is_empty() {
            return None;
        }
        Some(cache::file(
            &self.cache_dir,
            &list.name,
            &rt.container_id,
            &rt.ifname,
        ))
    }

    /// The config one plugin sees: its own object with the list's name and
    /// version, prevResult, and the capability args it declares.
    pub fn plugin_config(
        list: &NetworkList,
        plugin: &Map<String, Value>,
        prev_result: Option<&Value>,
        capability_args: Option<&Map<String, Value>>,
    ) -> Map<String, Value> {
        let mut conf = plugin.clone();
        conf.insert("name".into(), list.name.clone().into());
        conf.insert("cniVersion".into(), list.cni_version.clone().into());
        if let Some(p) = prev_result {
            conf.insert("prevResult".into(), p.clone());
        }
        if let Some(caps) = capability_args {
            let declared = plugin.get("capabilities").and_then(Value::as_object);
            let rc: Map<String, Value> = caps
                .iter()
                .filter(|(k, _)| declared.and_then(|d| d.get(*k)).and_then(Value::as_bool) == Some(true))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            if !rc.is_empty() {
                conf.insert("runtimeConfig".into(), Value::Object(rc));
            }
        }
        conf
    }

    async fn invoke(
        &self,
        op: &'static str,
        plugin: &Map<String, Value>,
        conf: &Map<String, Value>,
        rt: &RuntimeConf,
    ) -> Result<Vec<u8>, RunError> {
        let name = plugin.get("type").and_then(Value::as_str).unwrap_or_default();
        let program = find_in_path(name, &self.cni_path).ok_or_else(|| RunError::PluginNotFound {
            name: name.to_string(),
            path: self.cni_path.clone(),
        })?;
        let args = rt
            .args
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(";");
        let path = std::env::join_paths(&self.cni_path)
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_default();
        let mut inv = Invocation::new(program)
            .env("CNI_COMMAND", op.to_uppercase())
            .env("CNI_CONTAINERID", rt.container_id.clone())
            .env("CNI_NETNS", rt.netns.clone())
            .env("CNI_ARGS", args)
            .env("CNI_IFNAME", rt.ifname.clone())
            .env("CNI_PATH", path);
        inv.wrapper = self.wrapper.clone();
        inv.clear_env = self.clear_env;
        inv.inherit_stderr = self.inherit_stderr;
        inv.timeout = self.timeout;
        inv.stdin = serde_json::to_vec(&Value::Object(conf.clone())).unwrap_or_default();
        let out = inv.run().await.map_err(|err| RunError::Exec {
            plugin: describe(plugin),
            op,
            err,
        })?;
        if let Some(err) = out.error() {
            return Err(RunError::Plugin {
                plugin: describe(plugin),
                op,
                err,
            });
        }
        Ok(out.stdout)
    }

    /// ADD through the list in order; the last result is cached and returned.
    pub async fn add(&self, list: &NetworkList, rt: &RuntimeConf) -> Result<Value, RunError> {
        validate_container_id(&rt.container_id)?;
        if !spec_name(&list.name) {
            return Err(RunError::Invalid(format!(
                "invalid characters in network name {:?}",
                list.name
            )));
        }
        validate_ifname(&rt.ifname)?;
        let mut result: Option<Value> = None;
        for plugin in &list.plugins {
            let conf = Self::plugin_config(list, plugin, result.as_ref(), Some(&rt.capability_args));
            let stdout = self.invoke("add", plugin, &conf, rt).await?;
            let mut r: Value = serde_json::from_slice(&stdout).map_err(|e| RunError::BadResult {
                plugin: describe(plugin),
                op: "add",
                why: e.to_string(),
            })?;
            let Some(obj) = r.as_object_mut() else {
                return Err(RunError::BadResult {
                    plugin: describe(plugin),
                    op: "add",
                    why: "not a json object".into(),
                });
            };
            // A result without a version is in the config's (libcni's fixup).
            if !obj.get("cniVersion").is_some_and(Value::is_string) {
                obj.insert("cniVersion".into(), list.cni_version.clone().into());
            }
            result = Some(r);
        }
        let result = result.unwrap_or_else(|| Value::Object(Map::new()));
        let entry = Entry {
            container_id: rt.container_id.clone(),
            config: list.bytes.clone(),
            ifname: rt.ifname.clone(),
            network: list.name.clone(),
            netns: rt.netns.clone(),
            cni_args: rt.args.clone(),
            capability_args: rt.capability_args.clone(),
            result: Some(result.clone()),
        };
        cache::write(&self.cache_dir, &entry).map_err(|e| {
            RunError::Cache(format!(
                "failed to set network {:?} cached result: {e}",
                list.name
            ))
        })?;
        Ok(result)
    }

    /// The cached entry of this attachment, if any.
    pub fn cached(&self, list: &NetworkList, rt: &RuntimeConf) -> Result<Option<Cached>, RunError> {
        match self.cache_path(list, rt) {
            Some(p) => cache::read(&p).map_err(RunError::Cache),
            None => Ok(None),
        }
    }

    fn cached_result(&self, list: &NetworkList, rt: &RuntimeConf) -> Result<Option<Value>, RunError> {
        let Some(c) = self.cached(list, rt)? else {
            return Ok(None);
        };
        let Some(r) = c.result() else { return Ok(None) };
        convert_result(r, &list.cni_version).map(Some).map_err(|e| {
            RunError::Cache(format!(
                "failed to convert cached result of network {:?} to version {:?}: {e}",
                list.name, list.cni_version
            ))
        })
    }

    /// CHECK each plugin in order with the cached result (0.4.0 and later).
    pub async fn check(&self, list: &NetworkList, rt: &RuntimeConf) -> Result<(), RunError> {
        if !greater_or_equal(&list.cni_version, "0.4.0") {
            return Err(RunError::Invalid(format!(
                "configuration version {:?} does not support the CHECK command",
                list.cni_version
            )));
        }
        if list.disable_check {
            return Ok(());
        }
        let prev = self.cached_result(list, rt)?;
        for plugin in &list.plugins {
            let conf = Self::plugin_config(list, plugin, prev.as_ref(), Some(&rt.capability_args));
            self.invoke("check", plugin, &conf, rt).await?;
        }
        Ok(())
    }

    /// DEL in reverse order with the cached result as prevResult (0.4.0 and
    /// later); the cache entry goes once every plugin succeeded.
    pub async fn del(&self, list: &NetworkList, rt: &RuntimeConf) -> Result<(), RunError> {
        let path = self.cache_path(list, rt);
        let prev = if greater_or_equal(&list.cni_version, "0.4.0") {
            // An unreadable cache is dropped and DEL goes on without it.
            match self.cached_result(list, rt) {
                Ok(p) => p,
                Err(_) => {
                    if let Some(p) = &path {
                        let _ = cache::remove(p);
                    }
                    None
                }
            }
        } else {
            None
        };
        for plugin in list.plugins.iter().rev() {
            let conf = Self::plugin_config(list, plugin, prev.as_ref(), Some(&rt.capability_args));
            self.invoke("del", plugin, &conf, rt).await?;
        }
        if let Some(p) = &path {
            cache::remove(p)
                .map_err(|e| RunError::Cache(format!("failed to remove {}: {e}", p.display())))?;
        }
        Ok(())
    }

    /// GC (1.1.0 and later): cached attachments of this network that are
    /// not in `valid` are deleted first, as libcni does; then every plugin
    /// gets `cni.dev/valid-attachments`. `valid` defaults to every cached
    /// attachment of the network.
    pub async fn gc(&self, list: &NetworkList, valid: Option<Vec<(String, String)>>) -> Result<(), RunError> {
        let cached: Vec<Entry> = cache::entries(&self.cache_dir)
            .into_iter()
            .filter(|e| e.network == list.name)
            .collect();
        let valid = valid.unwrap_or_else(|| {
            cached
                .iter()
                .map(|e| (e.container_id.clone(), e.ifname.clone()))
                .collect()
        });
        let mut errs = Vec::new();
        for e in cached
            .iter()
            .filter(|e| !valid.contains(&(e.container_id.clone(), e.ifname.clone())))
        {
            let rt = RuntimeConf {
                container_id: e.container_id.clone(),
                netns: e.netns.clone(),
                ifname: e.ifname.clone(),
                args: e.cni_args.clone(),
                capability_args: e.capability_args.clone(),
            };
            if let Err(err) = self.del(list, &rt).await {
                errs.push(format!(
                    "failed to delete stale attachment {} {}: {err}",
                    e.container_id, e.ifname
                ));
            }
        }
        if greater_or_equal(&list.cni_version, "1.1.0") {
            let attachments: Vec<Value> = valid
                .iter()
                .map(|(c, i)| serde_json::json!({"containerID": c, "ifname": i}))
                .collect();
            for plugin in &list.plugins {
                let mut conf = Self::plugin_config(list, plugin, None, None);
                conf.insert(
                    "cni.dev/valid-attachments".into(),
                    Value::Array(attachments.clone()),
                );
                if let Err(e) = self.invoke("gc", plugin, &conf, &RuntimeConf::default()).await {
                    errs.push(e.to_string());
                }
            }
        }
        if errs.is_empty() {
            Ok(())
        } else {
            Err(RunError::Many(errs.join("; ")))
        }
    }

    /// STATUS of each plugin in order (1.1.0 and later), stopping at the first error.
    pub async fn status(&self, list: &NetworkList) -> Result<(), RunError> {
        if !greater_or_equal(&list.cni_version, "1.1.0") {
            return Ok(());
        }
        for plugin in &list.plugins {
            let conf = Self::plugin_config(list, plugin, None, None);
            self.invoke("status", plugin, &conf, &RuntimeConf::default())
                .await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list() -> NetworkList {
        NetworkList::from_bytes(
            br#"{"name":"net","cniVersion":"1.0.0","plugins":[
              {"type":"ptp","runtimeConfig":{"old":1}},
              {"type":"bandwidth","capabilities":{"bandwidth":true,"portMappings":false}}]}"#,
        )
        .unwrap()
    }

    #[test]
    fn injects_name_version_and_declared_capabilities_only() {
        let l = list();
        let caps: Map<String, Value> =
            serde_json::from_str(r#"{"bandwidth":{"ingressRate":1},"portMappings":[]}"#).unwrap();
        let prev = serde_json::json!({"cniVersion":"1.0.0"});
        let c0 = Runtime::plugin_config(&l, &l.plugins[0], None, Some(&caps));
        assert_eq!(c0["name"], "net");
        assert_eq!(c0["cniVersion"], "1.0.0");
        assert_eq!(c0["runtimeConfig"], serde_json::json!({"old":1}));
        assert!(c0.get("prevResult").is_none());
        let c1 = Runtime::plugin_config(&l, &l.plugins[1], Some(&prev), Some(&caps));
        assert_eq!(
            c1["runtimeConfig"],
            serde_json::json!({"bandwidth":{"ingressRate":1}})
        );
        assert_eq!(c1["prevResult"], prev);
    }

    #[test]
    fn validates_names() {
        for (id, ok) in [
            ("cnitool-0123abc", true),
            ("A_b.c-d", true),
            ("-x", false),
            ("_x", false),
        ] {
            assert_eq!(validate_container_id(id).is_ok(), ok, "{id:?}");
        }
        for id in ["a b", "\u{e4}", ""] {
            assert!(validate_container_id(id).is_err(), "{id:?}");
        }
        for (name, ok) in [
            ("eth0", true),
            ("\u{e4}", true),
            ("0123456789abcdef", false),
            ("a/b", false),
        ] {
            assert_eq!(validate_ifname(name).is_ok(), ok, "{name:?}");
        }
        for name in ["..", ".", "a:b", "a b", ""] {
            assert!(validate_ifname(name).is_err(), "{name:?}");
        }
    }

    #[test]
    fn parses_cni_args() {
        assert_eq!(
            parse_cni_args("A=1;B=2").unwrap(),
            vec![("A".into(), "1".into()), ("B".into(), "2".into())]
        );
        // An empty value is a value (libcni's LoadArgs reads it, and a
        // libcni runtime sends the pairs it is given).
        assert_eq!(
            parse_cni_args("A=;B=2").unwrap(),
            vec![("A".into(), String::new()), ("B".into(), "2".into())]
        );
        // Empty segments carry nothing and are skipped.
        assert_eq!(parse_cni_args("A=1;;B=2;").unwrap().len(), 2);
        for bad in ["A", "=1", "A=1=2", "A=1;B"] {
            assert!(parse_cni_args(bad).is_err(), "{bad}");
        }
        assert!(parse_cni_args("").unwrap().is_empty());
    }

    #[tokio::test]
    async fn check_reads_versions_as_libcni_does() {
        let rt = Runtime {
            cni_path: Vec::new(),
            cache_dir: std::env::temp_dir().join(format!("conformance-gate-{}", std::process::id())),
            timeout: Duration::from_secs(5),
            wrapper: Vec::new(),
            clear_env: false,
            inherit_stderr: false,
        };
        let list = |v: &str| {
            NetworkList::from_bytes(
                format!(
                    r#"{{"name":"n","cniVersion":"{v}","disableCheck":true,"plugins":[{{"type":"x"}}]}}"#
                )
                .as_bytes(),
            )
            .unwrap()
        };
        // "1.1" is 1.1.0 to libcni's ParseVersion: CHECK is allowed.
        for v in ["1.1", "1", "0.4.0", "1.0.0"] {
            let r = rt.check(&list(v), &RuntimeConf::default()).await;
            assert!(r.is_ok(), "{v}: {r:?}");
        }
        for v in ["0.3.1", "0.3", ""] {
            assert!(rt.check(&list(v), &RuntimeConf::default()).await.is_err(), "{v}");
        }
    }

    #[test]
    fn converts_cached_result_between_families() {
        let r = serde_json::json!({"cniVersion":"0.4.0",
            "interfaces":[{"name":"eth0","sandbox":"/run/netns/x"}],
            "ips":[{"version":"4","address":"10.0.0.2/24","gateway":"10.0.0.1","interface":0}]});
        let v = convert_result(&r, "1.0.0").unwrap();
        assert_eq!(v["cniVersion"], "1.0.0");
        assert_eq!(v["ips"][0]["address"], "10.0.0.2/24");
        assert!(v["ips"][0].get("version").is_none());
        assert!(convert_result(&r, "7.0.0").is_err());
    }

    #[test]
    fn same_version_result_is_untouched() {
        let r = serde_json::json!({"cniVersion":"1.0.0","x":1});
        assert_eq!(convert_result(&r, "1.0.0").unwrap(), r);
    }
}
