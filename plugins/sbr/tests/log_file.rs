//! A `logFile` that cannot be used safely (a FIFO nobody reads, a symlink
//! anywhere in the path, a hard link, a missing directory) must not hang the
//! plugin, must not be written, and must not fail the command: a warning on
//! stderr, and logging goes there.

#[test]
fn unsafe_log_files_are_not_used_and_fail_nothing() {
    cni_testkit::log_file::assert_unsafe_log_files_unused(env!("CARGO_BIN_EXE_sbr"), "sbr");
}

/// sysfs and procfs files pass "regular file, one link"; they are refused by
/// their file system.
#[test]
fn kernel_interface_files_are_not_used() {
    cni_testkit::log_file::assert_kernel_files_unused(env!("CARGO_BIN_EXE_sbr"), "sbr");
}
