use platform_core::Resource;

#[derive(Resource)]
struct Invoice {
    #[resource(primary_key)]
    id: i64,
    #[resource(max_length = 0)]
    number: String,
    #[resource(max_length = 99999999999)]
    notes: String,
}

fn main() {}
