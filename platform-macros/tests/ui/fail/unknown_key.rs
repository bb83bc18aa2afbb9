use platform_core::Resource;

#[derive(Resource)]
#[resource(tabel = "invoices")]
struct Invoice {
    #[resource(primary_key)]
    id: i64,
    #[resource(sortabel)]
    number: String,
    #[resource(filter(all), unique)]
    status: String,
}

fn main() {}
