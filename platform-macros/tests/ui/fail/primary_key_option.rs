use platform_core::Resource;

#[derive(Resource)]
struct Invoice {
    #[resource(primary_key)]
    id: Option<i64>,
}

fn main() {}
