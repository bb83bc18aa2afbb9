use platform_core::Resource;

#[derive(Resource)]
struct Invoice {
    #[resource(primary_key)]
    id: i64,
    #[resource(primary_key)]
    number: i64,
}

fn main() {}
