//! cni-install: the entrypoint of the `FROM scratch` plugin image.
//!
//! A scratch image has no shell or `cp`, so the DaemonSet runs this static binary:
//! it copies every file of the image's plugin directory onto the node's CNI bin
//! directory, each one written beside its final name, fsynced and renamed over the
//! old one (a runtime executing a plugin meanwhile sees the old or the new binary,
//! never half of one), then waits for SIGTERM so the pod stays running.

use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

const USAGE: &str = "usage: cni-install [--from DIR] [--to DIR] [--once]

Copies every file in --from (default /cni/bin) into --to (default /host/opt/cni/bin)
atomically, then stays idle until SIGTERM or SIGINT (--once: exit after copying).";

#[derive(Debug, PartialEq)]
struct Args {
    from: PathBuf,
    to: PathBuf,
    once: bool,
}

fn parse_args(args: impl IntoIterator<Item = OsString>) -> Result<Args, String> {
    let mut parsed = Args {
        from: "/cni/bin".into(),
        to: "/host/opt/cni/bin".into(),
        once: false,
    };
    let mut it = args.into_iter();
    while let Some(arg) = it.next() {
        match arg.to_str() {
            Some("--from") => parsed.from = it.next().ok_or("--from needs a directory")?.into(),
            Some("--to") => parsed.to = it.next().ok_or("--to needs a directory")?.into(),
            Some("--once") => parsed.once = true,
            Some("-h" | "--help") => return Err(String::new()),
            _ => return Err(format!("unknown argument {}", arg.to_string_lossy())),
        }
    }
    Ok(parsed)
}

/// What happened to one file.
#[derive(Debug, PartialEq)]
enum Outcome {
    Installed { size: u64 },
    Replaced { old_size: u64, size: u64 },
    Unchanged,
}

fn same_content(a: &Path, b: &Path) -> io::Result<bool> {
    let (ma, mb) = match (fs::metadata(a), fs::metadata(b)) {
        (Ok(ma), Ok(mb)) => (ma, mb),
        (_, Err(e)) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        (Err(e), _) | (_, Err(e)) => return Err(e),
    };
    if ma.len() != mb.len() || mb.permissions().mode() & 0o777 != 0o755 {
        return Ok(false);
    }
    let (mut fa, mut fb) = (File::open(a)?, File::open(b)?);
    let (mut ba, mut bb) = (vec![0u8; 1 << 16], vec![0u8; 1 << 16]);
    loop {
        let n = fa.read(&mut ba)?;
        if n == 0 {
            return Ok(true);
        }
        fb.read_exact(&mut bb[..n])?;
        if ba[..n] != bb[..n] {
            return Ok(false);
        }
    }
}

/// Opens a fresh temporary file beside `target`, in the same directory so the
/// final rename stays on one filesystem.
fn create_beside(target: &Path) -> io::Result<(PathBuf, File)> {
    let dir = target.parent().unwrap_or(Path::new("."));
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    for attempt in 0..100u32 {
        let tmp = dir.join(format!(".{name}.install.{}.{attempt}", std::process::id()));
        match OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o755)
            .open(&tmp)
        {
            Ok(f) => return Ok((tmp, f)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
    Err(io::Error::new(
        io::ErrorKind::AlreadyExists,
        "no free temporary name",
    ))
}

/// Copies `src` to `target` by write-beside, fsync, rename, fsync of the directory.
fn install_file(src: &Path, target: &Path) -> io::Result<Outcome> {
    if same_content(src, target)? {
        return Ok(Outcome::Unchanged);
    }
    let old_size = fs::metadata(target).ok().map(|m| m.len());
    let (tmp, mut out) = create_beside(target)?;
    let result = (|| {
        let mut input = File::open(src)?;
        let size = io::copy(&mut input, &mut out)?;
        out.set_permissions(fs::Permissions::from_mode(0o755))?;
        out.flush()?;
        out.sync_all()?;
        fs::rename(&tmp, target)?;
        Ok(size)
    })();
    let size = match result {
        Ok(size) => size,
        Err(e) => {
            let _ = fs::remove_file(&tmp);
            return Err(e);
        }
    };
    File::open(target.parent().unwrap_or(Path::new(".")))?.sync_all()?;
    Ok(match old_size {
        Some(old_size) => Outcome::Replaced { old_size, size },
        None => Outcome::Installed { size },
    })
}

/// Installs every regular file of `from` into `to`, in name order.
fn install_dir(from: &Path, to: &Path) -> Result<Vec<(PathBuf, Outcome)>, String> {
    let entries = fs::read_dir(from).map_err(|e| format!("failed to read {}: {e}", from.display()))?;
    let mut sources = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| format!("failed to read {}: {e}", from.display()))?;
        let path = entry.path();
        if fs::metadata(&path).map(|m| m.is_file()).unwrap_or(false) {
            sources.push(path);
        }
    }
    if sources.is_empty() {
        return Err(format!("no plugins in {}", from.display()));
    }
    sources.sort();
    fs::create_dir_all(to).map_err(|e| format!("failed to create {}: {e}", to.display()))?;
    let mut done = Vec::new();
    for src in sources {
        let Some(name) = src.file_name() else { continue };
        let target = to.join(name);
        let outcome = install_file(&src, &target)
            .map_err(|e| format!("failed to install {} to {}: {e}", src.display(), target.display()))?;
        done.push((target, outcome));
    }
    Ok(done)
}

/// Blocks until SIGTERM or SIGINT. As PID 1 in a container the default action
/// of those signals is ignored, so they are waited for explicitly.
fn wait_for_termination() -> Result<i32, String> {
    // SAFETY: sigset_t is plain data initialised by sigemptyset before use; the
    // calls only read and write the set and this thread's signal mask.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::sigaddset(&mut set, libc::SIGINT);
        let rc = libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        if rc != 0 {
            return Err(format!(
                "failed to block signals: {}",
                io::Error::from_raw_os_error(rc)
            ));
        }
        let mut sig: libc::c_int = 0;
        let rc = libc::sigwait(&set, &mut sig);
        if rc != 0 {
            return Err(format!(
                "failed to wait for a signal: {}",
                io::Error::from_raw_os_error(rc)
            ));
        }
        Ok(sig)
    }
}

fn main() -> ExitCode {
    let args = match parse_args(std::env::args_os().skip(1)) {
        Ok(args) => args,
        Err(msg) if msg.is_empty() => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(msg) => {
            eprintln!("cni-install: {msg}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match install_dir(&args.from, &args.to) {
        Ok(done) => {
            for (target, outcome) in done {
                match outcome {
                    Outcome::Installed { size } => println!("installed {} ({size} bytes)", target.display()),
                    Outcome::Replaced { old_size, size } => {
                        println!("replaced {} ({old_size} -> {size} bytes)", target.display())
                    }
                    Outcome::Unchanged => println!("unchanged {}", target.display()),
                }
            }
        }
        Err(msg) => {
            eprintln!("cni-install: {msg}");
            return ExitCode::FAILURE;
        }
    }
    if args.once {
        return ExitCode::SUCCESS;
    }
    println!("plugins installed; idle until terminated");
    match wait_for_termination() {
        Ok(sig) => {
            println!("signal {sig}: exiting");
            ExitCode::SUCCESS
        }
        Err(msg) => {
            eprintln!("cni-install: {msg}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    fn scratch() -> PathBuf {
        static N: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "cni-install-test-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn write(path: &Path, content: &[u8]) {
        fs::write(path, content).unwrap();
    }

    #[test]
    fn args_default_and_override() {
        let default = parse_args(Vec::<OsString>::new()).unwrap();
        assert_eq!(
            default,
            Args {
                from: "/cni/bin".into(),
                to: "/host/opt/cni/bin".into(),
                once: false
            }
        );
        let args = parse_args(["--from", "/a", "--to", "/b", "--once"].map(OsString::from)).unwrap();
        assert_eq!(
            args,
            Args {
                from: "/a".into(),
                to: "/b".into(),
                once: true
            }
        );
        assert!(parse_args(["--to"].map(OsString::from))
            .unwrap_err()
            .contains("--to"));
        assert!(parse_args(["--bogus"].map(OsString::from))
            .unwrap_err()
            .contains("--bogus"));
    }

    #[test]
    fn installs_replaces_and_skips_identical() {
        let dir = scratch();
        let (from, to) = (dir.join("from"), dir.join("to/nested"));
        fs::create_dir_all(&from).unwrap();
        write(&from.join("sbr"), b"new sbr");
        write(&from.join("bandwidth"), b"bw");

        let done = install_dir(&from, &to).unwrap();
        assert_eq!(
            done,
            vec![
                (to.join("bandwidth"), Outcome::Installed { size: 2 }),
                (to.join("sbr"), Outcome::Installed { size: 7 }),
            ]
        );
        assert_eq!(fs::read(to.join("sbr")).unwrap(), b"new sbr");
        assert_eq!(
            fs::metadata(to.join("sbr")).unwrap().permissions().mode() & 0o777,
            0o755
        );

        write(&from.join("sbr"), b"newer sbr!");
        let done = install_dir(&from, &to).unwrap();
        assert_eq!(done[0], (to.join("bandwidth"), Outcome::Unchanged));
        assert_eq!(
            done[1],
            (
                to.join("sbr"),
                Outcome::Replaced {
                    old_size: 7,
                    size: 10
                }
            )
        );
        assert_eq!(fs::read(to.join("sbr")).unwrap(), b"newer sbr!");

        let leftovers: Vec<_> = fs::read_dir(&to)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with('.'))
            .collect();
        assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn same_size_but_different_content_is_replaced() {
        let dir = scratch();
        let (src, dst) = (dir.join("src"), dir.join("dst"));
        write(&src, b"aaaa");
        write(&dst, b"aaab");
        fs::set_permissions(&dst, fs::Permissions::from_mode(0o755)).unwrap();
        assert_eq!(
            install_file(&src, &dst).unwrap(),
            Outcome::Replaced { old_size: 4, size: 4 }
        );
        assert_eq!(install_file(&src, &dst).unwrap(), Outcome::Unchanged);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn empty_or_missing_source_is_an_error() {
        let dir = scratch();
        assert!(install_dir(&dir, &dir.join("to"))
            .unwrap_err()
            .contains("no plugins"));
        assert!(install_dir(&dir.join("missing"), &dir.join("to"))
            .unwrap_err()
            .contains("failed to read"));
        assert!(!dir.join("to").exists());
        fs::remove_dir_all(&dir).unwrap();
    }
}
