use platform_core::Resource;

#[derive(Resource)]
#[resource(import(key = numbr))]
struct Invoice {
    #[resource(primary_key)]
    id: i64,
    #[resource(unique)]
    number: String,
}

fn main() {}
