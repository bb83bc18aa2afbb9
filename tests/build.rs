//! Rebuilds when a migration is added under `migrations/`.

fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
