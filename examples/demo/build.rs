//! Rebuilds the demo when a migration is added (`embed_migrations!` reads the
//! directory at compile time, and Cargo does not watch directories itself).

fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
