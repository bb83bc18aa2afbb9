use platform_core::Resource;

#[derive(Resource)]
#[resource(export = "no", import)]
struct Invoice {
    #[resource(primary_key, import = true)]
    id: i64,
    #[resource(unique, export = 0, import(key = number))]
    number: String,
    #[resource(hidden, export = true)]
    password_hash: String,
    #[resource(skip, export = false)]
    scratch: u8,
}

#[derive(Resource)]
#[resource(import(key = "number", unique = true))]
struct Bill {
    #[resource(primary_key)]
    id: i64,
}

fn main() {}
