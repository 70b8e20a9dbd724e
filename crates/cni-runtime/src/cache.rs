//! The result cache in libcni's on-disk format (`kind: cniCacheV1`), so a
//! cache written by podman or containerd is read here and the other way
//! round: `CACHE_DIR/results/NETWORK-CONTAINERID-IFNAME`.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

pub const KIND: &str = "cniCacheV1";
pub const DEFAULT_DIR: &str = "/var/lib/cni";

#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub container_id: String,
    /// The network list's bytes.
    pub config: Vec<u8>,
    pub ifname: String,
    pub network: String,
    pub netns: String,
    pub cni_args: Vec<(String, String)>,
    pub capability_args: Map<String, Value>,
    /// The list's final result; `None` in an entry without one.
    pub result: Option<Value>,
}

pub fn file(dir: &Path, network: &str, container_id: &str, ifname: &str) -> PathBuf {
    dir.join("results")
        .join(format!("{network}-{container_id}-{ifname}"))
}

impl Entry {
    /// The JSON object with libcni's field names; empty optional fields are
    /// left out as Go's `omitempty` does.
    pub fn to_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("kind".into(), KIND.into());
        m.insert("containerId".into(), self.container_id.clone().into());
        m.insert("config".into(), base64_encode(&self.config).into());
        m.insert("ifName".into(), self.ifname.clone().into());
        m.insert("networkName".into(), self.network.clone().into());
        if !self.netns.is_empty() {
            m.insert("netns".into(), self.netns.clone().into());
        }
        if !self.cni_args.is_empty() {
            let pairs = self
                .cni_args
                .iter()
                .map(|(k, v)| Value::Array(vec![k.clone().into(), v.clone().into()]));
            m.insert("cniArgs".into(), Value::Array(pairs.collect()));
        }
        if !self.capability_args.is_empty() {
            m.insert(
                "capabilityArgs".into(),
                Value::Object(self.capability_args.clone()),
            );
        }
        if let Some(r) = self
            .result
            .as_ref()
            .filter(|r| r.as_object().is_some_and(|o| !o.is_empty()))
        {
            m.insert("result".into(), r.clone());
        }
        Value::Object(m)
    }

    /// Reads a `cniCacheV1` object. Anything else is `Err` (libcni then
    /// treats the whole file as a bare result of the legacy format).
    pub fn from_json(v: &Value) -> Result<Entry, String> {
        let o = v.as_object().ok_or("cache entry is not a json object")?;
        if o.get("kind").and_then(Value::as_str) != Some(KIND) {
            return Err(format!("cache entry kind is not {KIND}"));
        }
        let s = |k: &str| o.get(k).and_then(Value::as_str).unwrap_or_default().to_string();
        let config = match o.get("config") {
            Some(Value::String(b)) => base64_decode(b).ok_or("cache entry config is not base64")?,
            _ => Vec::new(),
        };
        let cni_args = match o.get("cniArgs") {
            Some(Value::Array(a)) => a
                .iter()
                .filter_map(|p| {
                    let p = p.as_array()?;
                    Some((p.first()?.as_str()?.to_string(), p.get(1)?.as_str()?.to_string()))
                })
                .collect(),
            _ => Vec::new(),
        };
        Ok(Entry {
            container_id: s("containerId"),
            config,
            ifname: s("ifName"),
            network: s("networkName"),
            netns: s("netns"),
            cni_args,
            capability_args: o
                .get("capabilityArgs")
                .and_then(Value::as_object)
                .cloned()
                .unwrap_or_default(),
            result: o.get("result").filter(|r| !r.is_null()).cloned(),
        })
    }
}

/// What a cache file holds: a v1 entry or a legacy bare result.
#[derive(Debug, Clone, PartialEq)]
pub enum Cached {
    V1(Box<Entry>),
    Legacy(Value),
}

impl Cached {
    pub fn result(&self) -> Option<&Value> {
        match self {
            Cached::V1(e) => e.result.as_ref(),
            Cached::Legacy(v) => Some(v),
        }
    }
}

/// Reads a cache file; `Ok(None)` when there is none.
pub fn read(path: &Path) -> Result<Option<Cached>, String> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("failed to read {}: {e}", path.display())),
    };
    let v: Value = serde_json::from_slice(&bytes)
        .map_err(|e| format!("failed to decode cache file {}: {e}", path.display()))?;
    Ok(Some(match Entry::from_json(&v) {
        Ok(e) => Cached::V1(Box::new(e)),
        Err(_) => Cached::Legacy(v),
    }))
}

/// Writes an entry with the modes libcni uses (dir 0700, file 0600),
/// through a temporary file so a reader never sees half of it.
pub fn write(dir: &Path, entry: &Entry) -> std::io::Result<PathBuf> {
    let path = file(dir, &entry.network, &entry.container_id, &entry.ifname);
    let parent = dir.join("results");
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&parent)?;
    let tmp = parent.join(format!(".{}.tmp{}", entry.container_id, std::process::id()));
    let bytes = serde_json::to_vec(&entry.to_json()).map_err(std::io::Error::other)?;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(&bytes)?;
    drop(f);
    std::fs::rename(&tmp, &path)?;
    Ok(path)
}

pub fn remove(path: &Path) -> std::io::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Every v1 entry in the cache, sorted by file name (libcni's
/// GetCachedAttachments); unreadable files and other kinds are skipped.
pub fn entries(dir: &Path) -> Vec<Entry> {
    let Ok(rd) = std::fs::read_dir(dir.join("results")) else {
        return Vec::new();
    };
    let mut paths: Vec<PathBuf> = rd.filter_map(Result::ok).map(|e| e.path()).collect();
    paths.sort();
    paths
        .iter()
        .filter_map(|p| match read(p) {
            Ok(Some(Cached::V1(e))) if !e.ifname.is_empty() && !e.network.is_empty() => Some(*e),
            _ => None,
        })
        .collect()
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard base64 with padding, the form Go's encoding/json gives `[]byte`.
pub fn base64_encode(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(B64[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

pub fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let s = s.trim_end_matches('=');
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let mut acc: u32 = 0;
    let mut bits = 0;
    for c in s.bytes() {
        let v = B64.iter().position(|&b| b == c)?;
        acc = (acc << 6) | u32::try_from(v).ok()?;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push(((acc >> bits) & 0xff) as u8);
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_round_trips() {
        for s in ["", "f", "fo", "foo", "foob", "fooba", "foobar"] {
            assert_eq!(base64_decode(&base64_encode(s.as_bytes())).unwrap(), s.as_bytes());
        }
        assert_eq!(base64_encode(b"foobar"), "Zm9vYmFy");
        assert_eq!(base64_encode(b"fo"), "Zm8=");
        assert_eq!(base64_decode("!!"), None);
    }

    #[test]
    fn reads_libcni_entry() {
        // As libcni writes it (podman 4 on this machine).
        let v: Value = serde_json::from_str(
            r#"{"kind":"cniCacheV1","containerId":"abc","config":"eyJhIjoxfQ==","ifName":"eth0",
            "networkName":"net","netns":"/run/netns/x","cniArgs":[["K","V"]],
            "result":{"cniVersion":"1.0.0","ips":[]}}"#,
        )
        .unwrap();
        let e = Entry::from_json(&v).unwrap();
        assert_eq!(e.config, br#"{"a":1}"#);
        assert_eq!(e.cni_args, vec![("K".to_string(), "V".to_string())]);
        assert_eq!(e.to_json(), v);
    }

    #[test]
    fn round_trips_through_disk() {
        let dir = std::env::temp_dir().join(format!("cni-run-cache-test-{}", std::process::id()));
        let e = Entry {
            container_id: "c1".into(),
            config: b"{}".to_vec(),
            ifname: "eth0".into(),
            network: "n".into(),
            netns: String::new(),
            cni_args: Vec::new(),
            capability_args: Map::new(),
            result: Some(serde_json::json!({"cniVersion":"1.0.0"})),
        };
        let p = write(&dir, &e).unwrap();
        assert_eq!(read(&p).unwrap(), Some(Cached::V1(Box::new(e.clone()))));
        assert_eq!(entries(&dir), vec![e]);
        remove(&p).unwrap();
        remove(&p).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
