//! cni-run: a drop-in for cnitool with libcni's list semantics (the logic
//! is `cni_runtime::cli`).

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    cni_runtime::cli::run(&args).await
}
