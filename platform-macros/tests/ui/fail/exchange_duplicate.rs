use platform_core::Resource;

#[derive(Resource)]
#[resource(export = false, import = false)]
#[resource(export = false, import(key = number))]
struct Invoice {
    #[resource(primary_key)]
    id: i64,
    #[resource(unique, export = false, export = false)]
    number: String,
}

fn main() {}
