#![allow(clippy::unwrap_used)]
//! The logger is process-global, so this file holds one test that walks it
//! through its states in order.

use std::fs;
use std::os::unix::fs::PermissionsExt;

use cni_core::logging;

fn lines(path: &std::path::Path) -> Vec<String> {
    fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

/// `2026-11-22T07:00:00Z name[pid] LEVEL msg`
fn assert_format(line: &str, name: &str, level: &str, msg: &str) {
    let (ts, rest) = line.split_once(' ').unwrap();
    assert_eq!(ts.len(), 20, "{line}");
    let b = ts.as_bytes();
    assert!(
        b[4] == b'-' && b[7] == b'-' && b[10] == b'T' && b[13] == b':' && b[16] == b':' && b[19] == b'Z',
        "{line}"
    );
    assert!(ts.bytes().filter(u8::is_ascii_digit).count() == 14, "{line}");
    assert_eq!(rest, format!("{name}[{}] {level} {msg}", std::process::id()));
}

#[test]
fn logger_lifecycle() {
    let dir = std::env::temp_dir().join(format!("cni-core-logging-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    let file = dir.join("plugin.log");

    // Default level warn, to a new 0600 file.
    assert!(logging::init("sbr", None, Some(&file)).is_empty());
    log::warn!("first warning");
    log::info!("not shown at warn");
    log::error!("an error");
    assert_eq!(fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o600);
    let l = lines(&file);
    assert_eq!(l.len(), 2, "{l:?}");
    assert_format(&l[0], "sbr", "WARN", "first warning");
    assert_format(&l[1], "sbr", "ERROR", "an error");

    // Idempotent: again with debug appends to the same file.
    assert!(logging::init("bandwidth", Some("debug"), Some(&file)).is_empty());
    log::debug!("now debug");
    let l = lines(&file);
    assert_eq!(l.len(), 3, "appended, not truncated: {l:?}");
    assert_format(&l[2], "bandwidth", "DEBUG", "now debug");

    // error level hides warnings.
    assert!(logging::init("sbr", Some("error"), Some(&file)).is_empty());
    log::warn!("hidden");
    assert_eq!(lines(&file).len(), 3);

    // An unknown level: a warning, and the default level (warn), not a failure.
    let w = logging::init("sbr", Some("trace!"), Some(&file));
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(
        w[0].contains("\"trace!\"") && w[0].contains("logging at warn"),
        "{w:?}"
    );
    log::info!("hidden at warn");
    log::warn!("shown at warn");
    let l = lines(&file);
    assert_eq!(l.len(), 5, "{l:?}");
    assert_format(&l[3], "sbr", "WARN", &w[0]);
    assert_format(&l[4], "sbr", "WARN", "shown at warn");

    // A symlink is not used and its target left alone; logging goes to
    // stderr, with a warning naming the path and why.
    let target = dir.join("target");
    fs::write(&target, b"keep\n").unwrap();
    let link = dir.join("link.log");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let w = logging::init("sbr", Some("error"), Some(&link));
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(
        w[0].contains("symlink") && w[0].contains(link.to_str().unwrap()) && w[0].contains("stderr"),
        "{w:?}"
    );
    // A dangling symlink must not create its target either.
    let dangling = dir.join("dangling.log");
    std::os::unix::fs::symlink(dir.join("created-by-mistake"), &dangling).unwrap();
    let w = logging::init("sbr", None, Some(&dangling));
    assert!(w.len() == 1 && w[0].contains("symlink"), "{w:?}");
    // A directory that does not exist.
    let w = logging::init("sbr", None, Some(&dir.join("no/such/dir.log")));
    assert!(
        w.len() == 1 && w[0].contains("no/such/dir.log") && w[0].contains("no such file"),
        "{w:?}"
    );
    assert!(!dir.join("created-by-mistake").exists());
    assert!(!dir.join("no").exists());
    log::error!("after refusals");
    assert_eq!(fs::read_to_string(&target).unwrap(), "keep\n");
    assert_eq!(lines(&file).len(), 5, "the old file is no longer written");

    // Back to stderr: the file gets nothing more.
    assert!(logging::init("sbr", None, None).is_empty());
    let before = lines(&file).len();
    log::error!("to stderr");
    assert_eq!(lines(&file).len(), before);
    fs::remove_dir_all(&dir).unwrap();
}

/// `open_log_file` on another thread, so an open that hangs fails the test
/// instead of the whole run.
fn open_within_5s(path: &std::path::Path) -> Result<fs::File, String> {
    let (tx, rx) = std::sync::mpsc::channel();
    let p = path.to_path_buf();
    std::thread::spawn(move || {
        let _ = tx.send(logging::open_log_file(&p));
    });
    rx.recv_timeout(std::time::Duration::from_secs(5))
        .unwrap_or_else(|_| panic!("opening {} hangs", path.display()))
}

#[track_caller]
fn assert_refused(path: &std::path::Path, why: &str) {
    let e = open_within_5s(path).unwrap_err();
    assert!(
        e.contains(path.to_str().unwrap()) && e.contains(why),
        "want the path and {why:?} in: {e}"
    );
}

#[test]
fn log_file_refuses_what_is_not_a_plain_file_and_never_waits() {
    let dir = std::env::temp_dir().join(format!("cni-core-logrefuse-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    let real = dir.join("real");
    fs::create_dir_all(&real).unwrap();

    // A FIFO nobody reads: open(O_WRONLY) would wait for a reader forever.
    let fifo = real.join("fifo.log");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    assert_refused(&fifo, "fifo");

    // A symlinked directory in the path: nothing may be written through it.
    std::os::unix::fs::symlink(&real, dir.join("linked")).unwrap();
    let through = dir.join("linked/plugin.log");
    assert_refused(&through, "symlink");
    assert!(
        !real.join("plugin.log").exists(),
        "created through a symlinked directory"
    );

    // A hard link to another file: appending would write into that file.
    let victim = dir.join("victim");
    fs::write(&victim, b"keep\n").unwrap();
    let hard = real.join("hard.log");
    fs::hard_link(&victim, &hard).unwrap();
    assert_refused(&hard, "hard links");
    assert_eq!(fs::read_to_string(&victim).unwrap(), "keep\n");

    // Not files at all.
    assert_refused(&real, "directory");
    assert_refused(std::path::Path::new("/dev/null"), "character device");

    // A plain file still works, created 0600 and appended to.
    let good = real.join("good.log");
    use std::io::Write;
    open_within_5s(&good).unwrap().write_all(b"a\n").unwrap();
    open_within_5s(&good).unwrap().write_all(b"b\n").unwrap();
    assert_eq!(fs::read_to_string(&good).unwrap(), "a\nb\n");
    assert_eq!(fs::metadata(&good).unwrap().permissions().mode() & 0o777, 0o600);
    fs::remove_dir_all(&dir).unwrap();
}
