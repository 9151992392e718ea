//! The `bluejet` command line.
fn main() {
    println!("bluejet: under construction");
}
