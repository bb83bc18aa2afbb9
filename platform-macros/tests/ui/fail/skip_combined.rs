use platform_core::Resource;

#[derive(Resource)]
struct Invoice {
    #[resource(primary_key)]
    id: i64,
    #[resource(skip, sortable, label = "Cached")]
    cached: Option<String>,
}

fn main() {}
