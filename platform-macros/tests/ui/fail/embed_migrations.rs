// The directory is relative to the crate's `Cargo.toml`.
const MIGRATIONS: platform_core::db::MigrationSet =
    platform_core::embed_migrations!("no/such/migrations");

fn main() {
    let _ = MIGRATIONS;
}
