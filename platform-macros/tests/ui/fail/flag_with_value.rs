use platform_core::Resource;

#[derive(Resource)]
#[resource(cache = true)]
struct Invoice {
    #[resource(primary_key = true)]
    id: i64,
    #[resource(sortable(asc))]
    number: String,
}

fn main() {}
