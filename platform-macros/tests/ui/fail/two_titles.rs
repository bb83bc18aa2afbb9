use platform_core::Resource;

#[derive(Resource)]
struct Customer {
    #[resource(primary_key)]
    id: i64,
    #[resource(title)]
    name: String,
    #[resource(title)]
    email: String,
}

fn main() {}
