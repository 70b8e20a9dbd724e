//! Network configuration lists found by name in a directory, as libcni
//! loads them: `.conflist` files first (sorted), then a single `.conf` or
//! `.json` config upgraded to a list of one.

use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use cni_spec::version::list_version;

#[derive(Debug, Clone)]
pub struct NetworkList {
    pub name: String,
    /// After `cniVersions` negotiation.
    pub cni_version: String,
    pub disable_check: bool,
    /// Each plugin's config object as written.
    pub plugins: Vec<Map<String, Value>>,
    /// The list's bytes, stored in the cache as libcni does.
    pub bytes: Vec<u8>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfError {
    #[error("failed to read {p}: {1}", p = .0.display())]
    Read(PathBuf, std::io::Error),
    #[error("error parsing configuration list {p}: {1}", p = .0.display())]
    Parse(PathBuf, String),
    #[error("no net configuration with name \"{name}\" in {}", .dir.display())]
    NotFound { dir: PathBuf, name: String },
    #[error("no net configurations found in {}", .0.display())]
    NoConfigs(PathBuf),
}

impl NetworkList {
    /// Parses a conflist.
    pub fn from_bytes(bytes: &[u8]) -> Result<NetworkList, String> {
        let v: Value = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
        let Value::Object(raw) = v else {
            return Err("not a json object".into());
        };
        let name = match raw.get("name") {
            Some(Value::String(s)) => s.clone(),
            Some(_) => return Err("invalid name type".into()),
            None => return Err("no name".into()),
        };
        let mut cni_version = match raw.get("cniVersion") {
            Some(Value::String(s)) => s.clone(),
            None => String::new(),
            Some(_) => return Err("invalid cniVersion type".into()),
        };
        if let Some(vs) = raw.get("cniVersions") {
            let Value::Array(vs) = vs else {
                return Err("invalid cniVersions type".into());
            };
            let strs: Option<Vec<String>> = vs.iter().map(|v| v.as_str().map(str::to_string)).collect();
            let strs = strs.ok_or("invalid cniVersions entry type")?;
            cni_version = list_version(&cni_version, Some(&strs)).map_err(|e| e.msg)?;
        }
        let disable_check = match raw.get("disableCheck") {
            None => false,
            Some(Value::Bool(b)) => *b,
            Some(Value::String(s)) if s.eq_ignore_ascii_case("true") => true,
            Some(Value::String(s)) if s.eq_ignore_ascii_case("false") => false,
            Some(other) => return Err(format!("invalid disableCheck value {other}")),
        };
        let plugins = match raw.get("plugins") {
            Some(Value::Array(a)) if a.is_empty() => return Err("no plugins in list".into()),
            Some(Value::Array(a)) => a,
            Some(_) => return Err("invalid 'plugins' type".into()),
            None => return Err("no 'plugins' key".into()),
        };
        let mut out = Vec::with_capacity(plugins.len());
        for (i, p) in plugins.iter().enumerate() {
            let Value::Object(m) = p else {
                return Err(format!("plugin config {i} is not an object"));
            };
            match m.get("type") {
                Some(Value::String(t)) if !t.is_empty() => {}
                _ => return Err(format!("plugin config {i}: missing 'type'")),
            }
            out.push(m.clone());
        }
        Ok(NetworkList {
            name,
            cni_version,
            disable_check,
            plugins: out,
            bytes: bytes.to_vec(),
        })
    }

    /// A single plugin config as a list of one, named and versioned by it.
    pub fn from_single(bytes: &[u8]) -> Result<NetworkList, String> {
        let v: Value = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
        let Value::Object(raw) = v else {
            return Err("not a json object".into());
        };
        let mut list = Map::new();
        list.insert(
            "name".into(),
            raw.get("name").cloned().unwrap_or(Value::String(String::new())),
        );
        list.insert(
            "cniVersion".into(),
            raw.get("cniVersion")
                .cloned()
                .unwrap_or(Value::String(String::new())),
        );
        list.insert("plugins".into(), Value::Array(vec![Value::Object(raw)]));
        let bytes = serde_json::to_vec(&Value::Object(list)).map_err(|e| e.to_string())?;
        NetworkList::from_bytes(&bytes)
    }

    /// Finds the network `name` in `dir`.
    pub fn load(dir: &Path, name: &str) -> Result<NetworkList, ConfError> {
        let lists = files_with(dir, &["conflist"])?;
        for f in &lists {
            let bytes = std::fs::read(f).map_err(|e| ConfError::Read(f.clone(), e))?;
            let list = NetworkList::from_bytes(&bytes).map_err(|e| ConfError::Parse(f.clone(), e))?;
            if list.name == name {
                return Ok(list);
            }
        }
        let singles = files_with(dir, &["conf", "json"])?;
        if singles.is_empty() {
            if lists.is_empty() {
                return Err(ConfError::NoConfigs(dir.to_path_buf()));
            }
            return Err(ConfError::NotFound {
                dir: dir.to_path_buf(),
                name: name.to_string(),
            });
        }
        for f in &singles {
            let bytes = std::fs::read(f).map_err(|e| ConfError::Read(f.clone(), e))?;
            let v: Value =
                serde_json::from_slice(&bytes).map_err(|e| ConfError::Parse(f.clone(), e.to_string()))?;
            if v.get("name").and_then(Value::as_str) == Some(name) {
                return NetworkList::from_single(&bytes).map_err(|e| ConfError::Parse(f.clone(), e));
            }
        }
        Err(ConfError::NotFound {
            dir: dir.to_path_buf(),
            name: name.to_string(),
        })
    }
}

fn files_with(dir: &Path, exts: &[&str]) -> Result<Vec<PathBuf>, ConfError> {
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(ConfError::Read(dir.to_path_buf(), e)),
    };
    let mut out: Vec<PathBuf> = rd
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_ok_and(|t| !t.is_dir()))
        .map(|e| e.path())
        .filter(|p| {
            p.extension()
                .and_then(|x| x.to_str())
                .is_some_and(|x| exts.contains(&x))
        })
        .collect();
    out.sort();
    Ok(out)
}

/// The name of a plugin config for messages: `type="sbr" name="net"`.
pub fn describe(plugin: &Map<String, Value>) -> String {
    let t = plugin.get("type").and_then(Value::as_str).unwrap_or("<missing>");
    match plugin.get("name").and_then(Value::as_str) {
        Some(n) if !n.is_empty() => format!("type={t:?} name={n:?}"),
        _ => format!("type={t:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn version_of(version: &str, versions: &str) -> Result<String, String> {
        let mut list = format!(r#"{{"name":"n","plugins":[{{"type":"x"}}],"cniVersions":{versions}"#);
        if !version.is_empty() {
            list.push_str(&format!(r#","cniVersion":"{version}""#));
        }
        list.push('}');
        NetworkList::from_bytes(list.as_bytes()).map(|l| l.cni_version)
    }

    #[test]
    fn negotiates_cni_versions() {
        let l = NetworkList::from_bytes(
            br#"{"name":"n","cniVersion":"1.0.0","cniVersions":["1.0.0","1.1.0","2.0.0"],"plugins":[{"type":"x"}]}"#,
        )
        .unwrap();
        assert_eq!(l.cni_version, "1.1.0");
        assert_eq!(l.plugins.len(), 1);
    }

    /// libcni's ConfListFromBytes: the highest of cniVersions and
    /// cniVersion, versions newer than it implements skipped, an entry that
    /// is no version an error.
    #[test]
    fn cni_versions_as_libcni_picks_them() {
        assert_eq!(version_of("1.0.0", r#"["0.4.0"]"#).unwrap(), "1.0.0");
        assert_eq!(version_of("", r#"["0.4.0","0.3.1"]"#).unwrap(), "0.4.0");
        assert_eq!(version_of("2.0.0", r#"["0.4.0"]"#).unwrap(), "0.4.0");
        assert_eq!(version_of("2.0.0", "[]").unwrap(), "2.0.0");
        assert_eq!(version_of("1.0.0", r#"["9.0.0"]"#).unwrap(), "1.0.0");
        assert!(version_of("1.0.0", r#"["x"]"#).is_err());
        assert!(version_of("x", r#"["1.0.0"]"#).is_err());
    }

    #[test]
    fn rejects_bad_lists() {
        assert!(NetworkList::from_bytes(br#"{"name":"n","plugins":[]}"#).is_err());
        assert!(NetworkList::from_bytes(br#"{"plugins":[{"type":"x"}]}"#).is_err());
        assert!(NetworkList::from_bytes(br#"{"name":"n","plugins":[{"name":"x"}]}"#).is_err());
    }

    #[test]
    fn upgrades_single_conf() {
        let l = NetworkList::from_single(br#"{"name":"n","cniVersion":"0.3.1","type":"ptp"}"#).unwrap();
        assert_eq!(l.name, "n");
        assert_eq!(l.cni_version, "0.3.1");
        assert_eq!(l.plugins[0]["type"], "ptp");
    }
}
