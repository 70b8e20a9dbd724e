//! The sandbox ("pause") image, made offline: no registry can be reached
//! here, so a docker-archive holding one layer with busybox-static is
//! written for `ctr images import`. Its entrypoint sleeps forever, as
//! pause does.

use std::path::{Path, PathBuf};

use serde_json::json;
use sha2::{Digest, Sha256};

use cni_testkit::ns::sh;

/// The name the CRI plugin is configured to use as `sandbox_image`.
pub const PAUSE_REF: &str = "localhost/cnf-pause:1";

pub const BUSYBOX: &str = "/bin/busybox";

pub fn sha256_hex(data: &[u8]) -> String {
    Sha256::digest(data).iter().map(|b| format!("{b:02x}")).collect()
}

/// The image config: what `ctr` and the CRI plugin read (platform,
/// entrypoint, the layer's uncompressed digest).
pub fn config_json(layer_digest: &str) -> Vec<u8> {
    let c = json!({
        "architecture": "amd64",
        "os": "linux",
        "config": {"Entrypoint": ["/bin/sleep", "infinity"], "Env": ["PATH=/bin"]},
        "rootfs": {"type": "layers", "diff_ids": [format!("sha256:{layer_digest}")]}
    });
    serde_json::to_vec(&c).unwrap_or_default()
}

/// docker-archive's manifest.json for one image with one layer.
pub fn manifest_json(config_file: &str, layer_file: &str) -> Vec<u8> {
    let m = json!([{"Config": config_file, "RepoTags": [PAUSE_REF], "Layers": [layer_file]}]);
    serde_json::to_vec(&m).unwrap_or_default()
}

fn write(path: &Path, data: &[u8]) -> Result<(), String> {
    std::fs::write(path, data).map_err(|e| format!("failed to write {}: {e}", path.display()))
}

/// A busybox-static root filesystem at `root`: the usual top directories,
/// busybox and a link per applet. The suite's images (the pause image, the
/// podman case's) are made of it.
pub fn busybox_rootfs(root: &Path, applets: &[&str]) -> Result<(), String> {
    for d in ["bin", "proc", "sys", "dev", "etc", "tmp"] {
        std::fs::create_dir_all(root.join(d))
            .map_err(|e| format!("failed to create the image rootfs: {e}"))?;
    }
    std::fs::copy(BUSYBOX, root.join("bin/busybox")).map_err(|e| format!("failed to copy {BUSYBOX}: {e}"))?;
    for applet in applets {
        std::os::unix::fs::symlink("busybox", root.join("bin").join(applet))
            .map_err(|e| format!("failed to link {applet}: {e}"))?;
    }
    Ok(())
}

/// A tar at `out` of `entries` under `dir`, owned by root (numeric ids).
pub fn tar(dir: &Path, out: &Path, entries: &[&str]) -> Result<(), String> {
    let (dir, out) = (dir.display().to_string(), out.display().to_string());
    let mut v = vec![
        "tar",
        "--owner=0",
        "--group=0",
        "--numeric-owner",
        "-C",
        &dir,
        "-cf",
        &out,
    ];
    v.extend_from_slice(entries);
    sh(&v).map(|_| ())
}

/// Writes the archive under `dir` (once; later calls reuse it) and returns its path.
pub fn pause_archive(dir: &Path) -> Result<PathBuf, String> {
    let archive = dir.join("pause.tar");
    if archive.is_file() {
        return Ok(archive);
    }
    let work = dir.join("pause-image");
    let root = work.join("rootfs");
    busybox_rootfs(&root, &["sleep", "sh"])?;
    let layer = work.join("layer.tar");
    tar(&root, &layer, &["."])?;
    let layer_bytes = std::fs::read(&layer).map_err(|e| format!("failed to read the layer: {e}"))?;
    let config = config_json(&sha256_hex(&layer_bytes));
    let config_file = format!("{}.json", sha256_hex(&config));
    write(&work.join(&config_file), &config)?;
    write(
        &work.join("manifest.json"),
        &manifest_json(&config_file, "layer.tar"),
    )?;
    let partial = dir.join("pause.tar.part");
    tar(&work, &partial, &["manifest.json", &config_file, "layer.tar"])?;
    std::fs::rename(&partial, &archive).map_err(|e| format!("failed to move the archive in place: {e}"))?;
    let _ = std::fs::remove_dir_all(&work);
    Ok(archive)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    #[test]
    fn config_names_the_layer_and_sleeps() {
        let c: Value = serde_json::from_slice(&config_json("ab")).unwrap();
        assert_eq!(c["rootfs"]["diff_ids"][0], "sha256:ab");
        assert_eq!(c["config"]["Entrypoint"], json!(["/bin/sleep", "infinity"]));
        assert_eq!(c["os"], "linux");
    }

    #[test]
    fn manifest_tags_the_pause_ref() {
        let m: Value = serde_json::from_slice(&manifest_json("c.json", "l.tar")).unwrap();
        assert_eq!(m[0]["RepoTags"][0], PAUSE_REF);
        assert_eq!(m[0]["Layers"][0], "l.tar");
        assert_eq!(m[0]["Config"], "c.json");
    }

    #[test]
    fn sha256_of_empty_input() {
        assert_eq!(
            sha256_hex(b""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }
}
