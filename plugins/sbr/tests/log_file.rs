//! A `logFile` that is a FIFO nobody reads must not hang the plugin, and one
//! under a symlinked directory must not be written through: both are code 7
//! before any change is made.

#[test]
fn fifo_and_symlinked_directory_are_code_7() {
    nl_ops::testutil::assert_unsafe_log_files_refused(env!("CARGO_BIN_EXE_sbr"), "sbr");
}
