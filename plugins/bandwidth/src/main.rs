//! CNI bandwidth plugin.

fn main() {
    eprintln!("bandwidth: under construction");
    std::process::exit(1);
}
