use platform_core::Resource;

#[derive(Resource)]
#[resource(table = "invoices", cache)]
#[resource(table = "bills", cache)]
struct Invoice {
    #[resource(primary_key, primary_key)]
    id: i64,
    #[resource(label = "No.")]
    #[resource(label = "Number")]
    number: String,
}

fn main() {}
