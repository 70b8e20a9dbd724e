//! CNI sbr plugin.

fn main() {
    eprintln!("sbr: under construction");
    std::process::exit(1);
}
