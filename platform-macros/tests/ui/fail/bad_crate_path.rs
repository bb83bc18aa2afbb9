use platform_core::Resource;

#[derive(Resource)]
#[resource(crate = "not a path")]
struct Invoice {
    #[resource(primary_key)]
    id: i64,
}

fn main() {}
