//! cni-run: a cnitool with libcni semantics.

fn main() {
    eprintln!("cni-run: under construction");
    std::process::exit(1);
}
