use platform_core::Resource;

// Every mistake is reported, each once, and nothing else.
#[derive(Resource)]
#[resource(tabel = "invoices", search(nubmer), soft_delete)]
struct Invoice {
    id: i64,
    #[resource(sortabel, unique, unique)]
    number: String,
    #[resource(encrypted)]
    total: i64,
    #[resource(choices(), max_length = 0)]
    status: String,
}

fn main() {
    // The fallback impl keeps uses of the type from adding errors.
    let registry = platform_core::Registry::builder().register::<Invoice>().build();
    let _ = registry;
    let _ = <Invoice as Resource>::meta();
}
