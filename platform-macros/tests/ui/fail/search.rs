use platform_core::Resource;

#[derive(Resource)]
#[resource(search(nubmer, total, number, number, cache_key, "notes"))]
struct Invoice {
    #[resource(primary_key)]
    id: i64,
    number: String,
    total: i64,
    #[resource(skip)]
    cache_key: String,
}

fn main() {}
