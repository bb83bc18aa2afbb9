use platform_core::Resource;

#[derive(Resource)]
#[resource(import(key = number))]
struct Invoice {
    #[resource(primary_key)]
    id: i64,
    number: String,
}

#[derive(Resource)]
#[resource(import(key = code))]
struct Product {
    #[resource(primary_key)]
    id: i64,
    #[resource(unique, import = false)]
    code: String,
}

#[derive(Resource)]
#[resource(import(key = id))]
struct Tag {
    #[resource(primary_key, unique)]
    id: i64,
}

fn main() {}
