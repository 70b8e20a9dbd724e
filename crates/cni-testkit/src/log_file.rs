//! What every plugin must do with a `logFile` it must not write.

use std::process::Command;

use crate::ns::{run, Ns};
use crate::skip::root_or_skip;

/// A plugin binary (`bin`, config type `plugin`) given a `logFile` it must
/// not write (a FIFO nobody reads, a path below a symlinked directory, a
/// symlink, a hard link to another file, a directory that does not exist)
/// returns at once, leaves what is there unchanged, warns on stderr naming
/// the path and why, and goes on with the command: logging settings never
/// fail one. The outcome is the plugin's own: an error about the namespace
/// (sbr opens it first) or the prevResult passed on (bandwidth without
/// limits touches nothing). The namespace path is in the test's own
/// directory and cannot be a namespace, and the interface exists nowhere,
/// so the plugin finds nothing to change, least of all in the machine's
/// own namespace.
pub fn assert_unsafe_log_files_unused(bin: &str, plugin: &str) {
    use std::fs;
    let dir = std::env::temp_dir().join(format!("{plugin}-logfile-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    let real = dir.join("real");
    fs::create_dir_all(&real).unwrap_or_else(|e| panic!("mkdir {}: {e}", real.display()));
    let fifo = real.join("fifo.log");
    run(&["mkfifo", &fifo.to_string_lossy()]);
    std::os::unix::fs::symlink(&real, dir.join("linked")).unwrap_or_else(|e| panic!("symlink: {e}"));
    let target = real.join("target");
    fs::write(&target, b"keep\n").unwrap_or_else(|e| panic!("write {}: {e}", target.display()));
    std::os::unix::fs::symlink(&target, real.join("sym.log")).unwrap_or_else(|e| panic!("symlink: {e}"));
    let victim = dir.join("victim");
    fs::write(&victim, b"keep\n").unwrap_or_else(|e| panic!("write {}: {e}", victim.display()));
    fs::hard_link(&victim, real.join("hard.log")).unwrap_or_else(|e| panic!("hard link: {e}"));
    let netns = dir.join("no-such-netns");

    for (path, why) in [
        (fifo.clone(), "fifo"),
        (dir.join("linked/x.log"), "symlink"),
        (real.join("sym.log"), "symlink"),
        (real.join("hard.log"), "hard links"),
        (dir.join("no/such/x.log"), "no such file"),
    ] {
        let conf = serde_json::json!({
            "cniVersion": "1.0.0", "name": "logtest", "type": plugin,
            "logFile": path,
            "prevResult": {"cniVersion": "1.0.0", "ips": [{"address": "10.1.0.2/24"}]}
        });
        let mut child = Command::new(bin)
            .env_clear()
            .env("CNI_COMMAND", "ADD")
            .env("CNI_CONTAINERID", "logtest")
            .env("CNI_NETNS", &netns)
            .env("CNI_IFNAME", "lognone0")
            .env("CNI_PATH", "/usr/lib/cni")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {bin}: {e}"));
        if let Some(mut stdin) = child.stdin.take() {
            use std::io::Write;
            let _ = stdin.write_all(conf.to_string().as_bytes());
        }
        let start = std::time::Instant::now();
        while matches!(child.try_wait(), Ok(None)) {
            if start.elapsed() > std::time::Duration::from_secs(10) {
                let _ = child.kill();
                let _ = child.wait();
                panic!("{plugin} hangs on logFile {}", path.display());
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let out = child
            .wait_with_output()
            .unwrap_or_else(|e| panic!("wait for {bin}: {e}"));
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        let json: serde_json::Value = serde_json::from_str(&stdout).unwrap_or_default();
        let p = path.to_string_lossy();
        assert!(
            stderr
                .lines()
                .any(|l| l.contains(" WARN ") && l.contains(&*p) && l.contains(why) && l.contains("stderr")),
            "want a warning naming {p} and {why:?} on stderr: {stderr}"
        );
        match json.get("code") {
            Some(_) => {
                let msg = json["msg"].as_str().unwrap_or_default();
                assert!(
                    msg.contains(&*netns.to_string_lossy()) && !msg.contains("logFile"),
                    "{p}: want the error about the netns, got: {json}"
                );
            }
            None => {
                assert_eq!(out.status.code(), Some(0), "{p}: {stdout} {stderr}");
                assert_eq!(json["ips"][0]["address"], "10.1.0.2/24", "{p}: {stdout}");
            }
        }
    }
    let meta = fs::symlink_metadata(&fifo).unwrap_or_else(|e| panic!("stat {}: {e}", fifo.display()));
    assert!(
        std::os::unix::fs::FileTypeExt::is_fifo(&meta.file_type()),
        "the fifo was replaced"
    );
    assert!(
        !real.join("x.log").exists(),
        "written through a symlinked directory"
    );
    for f in [&target, &victim] {
        let now = fs::read_to_string(f).unwrap_or_else(|e| panic!("read {}: {e}", f.display()));
        assert_eq!(now, "keep\n", "{} was written", f.display());
    }
    assert!(!dir.join("no").exists(), "a missing directory was made");
    assert!(!netns.exists(), "something was made at the netns path");
    let _ = fs::remove_dir_all(&dir);
}

/// `logFile` naming a knob of the kernel, sysfs's `ifalias` of `lo` and
/// procfs's hostname, must be refused with the warning and left unwritten.
/// The plugin runs in a fresh network namespace (whose sysfs `ip netns
/// exec` mounts) and a fresh UTS namespace, so even a plugin that writes
/// there changes nothing of the machine's; both files are read back inside.
pub fn assert_kernel_files_unused(bin: &str, plugin: &str) {
    if !root_or_skip(&format!("{plugin} logFile on kernel interfaces")) {
        return;
    }
    let ns = Ns::new("logkern");
    let netns = std::env::temp_dir().join(format!("{plugin}-no-such-netns-{}", std::process::id()));
    for (path, why) in [
        ("/sys/devices/virtual/net/lo/ifalias", "sysfs"),
        ("/proc/sys/kernel/hostname", "procfs"),
    ] {
        let conf = serde_json::json!({
            "cniVersion": "1.0.0", "name": "logtest", "type": plugin,
            "logFile": path,
            "prevResult": {"cniVersion": "1.0.0", "ips": [{"address": "10.1.0.2/24"}]}
        });
        // The plugin's stdout, a marker, then the two files as the plugin left them.
        let script = r#"hostname logtest-host && printf '%s' "$CONF" | "$0"; echo; echo @@; hostname; cat /sys/devices/virtual/net/lo/ifalias"#;
        let out = Command::new("ip")
            .args([
                "netns", "exec", &ns.name, "unshare", "--uts", "--", "sh", "-c", script, bin,
            ])
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .env("CONF", conf.to_string())
            .env("CNI_COMMAND", "ADD")
            .env("CNI_CONTAINERID", "logtest")
            .env("CNI_NETNS", &netns)
            .env("CNI_IFNAME", "lognone0")
            .env("CNI_PATH", "/usr/lib/cni")
            .output()
            .unwrap_or_else(|e| panic!("cannot run {bin}: {e}"));
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        let (result, after) = stdout
            .split_once("\n@@\n")
            .unwrap_or_else(|| panic!("{path}: the script did not finish: {stdout} {stderr}"));
        let mut after = after.lines();
        assert_eq!(
            after.next(),
            Some("logtest-host"),
            "{path}: the hostname was written: {stdout}"
        );
        assert_eq!(
            after.next().unwrap_or_default(),
            "",
            "{path}: lo's alias was written: {stdout}"
        );
        assert!(
            stderr
                .lines()
                .any(|l| l.contains(" WARN ") && l.contains(path) && l.contains(why) && l.contains("stderr")),
            "want a warning naming {path} and {why:?} on stderr: {stderr}"
        );
        // bandwidth without limits passes the prevResult on; sbr needs the netns.
        let json: serde_json::Value = serde_json::from_str(result.trim()).unwrap_or_default();
        match json["msg"].as_str() {
            Some(msg) => assert!(
                msg.contains(&*netns.to_string_lossy()),
                "{path}: want the error about the netns, got: {result}"
            ),
            None => assert_eq!(json["ips"][0]["address"], "10.1.0.2/24", "{path}: {result}"),
        }
    }
}
