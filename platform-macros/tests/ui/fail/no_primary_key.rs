use platform_core::Resource;

#[derive(Resource)]
struct Invoice {
    id: i64,
    number: String,
}

fn main() {}
