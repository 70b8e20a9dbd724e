#![allow(clippy::unwrap_used)]
//! The logger is process-global, so this file holds one test that walks it
//! through its states in order.

use std::fs;
use std::os::unix::fs::PermissionsExt;

use cni_core::{logging, Code};

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
    logging::init("sbr", None, Some(&file)).unwrap();
    log::warn!("first warning");
    log::info!("not shown at warn");
    log::error!("an error");
    assert_eq!(fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o600);
    let l = lines(&file);
    assert_eq!(l.len(), 2, "{l:?}");
    assert_format(&l[0], "sbr", "WARN", "first warning");
    assert_format(&l[1], "sbr", "ERROR", "an error");

    // Idempotent: again with debug appends to the same file.
    logging::init("bandwidth", Some("debug"), Some(&file)).unwrap();
    log::debug!("now debug");
    let l = lines(&file);
    assert_eq!(l.len(), 3, "appended, not truncated: {l:?}");
    assert_format(&l[2], "bandwidth", "DEBUG", "now debug");

    // error level hides warnings.
    logging::init("sbr", Some("error"), Some(&file)).unwrap();
    log::warn!("hidden");
    assert_eq!(lines(&file).len(), 3);

    // A symlink is refused and its target left alone.
    let target = dir.join("target");
    fs::write(&target, b"keep\n").unwrap();
    let link = dir.join("link.log");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let e = logging::init("sbr", None, Some(&link)).unwrap_err();
    assert_eq!(e.code, Code::InvalidConfig);
    assert!(
        e.msg.contains("symlink") && e.msg.contains("link.log"),
        "{}",
        e.msg
    );
    // A dangling symlink must not create its target either.
    let dangling = dir.join("dangling.log");
    std::os::unix::fs::symlink(dir.join("created-by-mistake"), &dangling).unwrap();
    assert_eq!(
        logging::init("sbr", None, Some(&dangling)).unwrap_err().code,
        Code::InvalidConfig
    );
    assert!(!dir.join("created-by-mistake").exists());
    log::error!("after refusals");
    assert_eq!(fs::read_to_string(&target).unwrap(), "keep\n");

    // Bad level: code 7, nothing changed.
    assert_eq!(
        logging::init("sbr", Some("trace!"), None).unwrap_err().code,
        Code::InvalidConfig
    );

    // Back to stderr: the file gets nothing more.
    logging::init("sbr", None, None).unwrap();
    let before = lines(&file).len();
    log::error!("to stderr");
    assert_eq!(lines(&file).len(), before);
    fs::remove_dir_all(&dir).unwrap();
}

/// `open_log_file` on another thread, so an open that hangs fails the test
/// instead of the whole run.
fn open_within_5s(path: &std::path::Path) -> Result<fs::File, cni_core::CniError> {
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
    assert_eq!(e.code, Code::InvalidConfig, "{}", e.msg);
    assert!(
        e.msg.contains(path.to_str().unwrap()) && e.msg.contains(why),
        "want the path and {why:?} in: {}",
        e.msg
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
