use platform_core::Resource;

#[derive(Resource)]
struct Invoice {
    #[resource(primary_key)]
    id: i64,
    #[resource(text)]
    total: i64,
    #[resource(max_length = 10)]
    due: Option<i32>,
    #[resource(choices("1", "2"))]
    level: i32,
    #[resource(email, allow_empty)]
    contact: i64,
}

fn main() {}
