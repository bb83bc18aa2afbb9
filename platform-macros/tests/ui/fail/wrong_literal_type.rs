use platform_core::Resource;

#[derive(Resource)]
#[resource(audit = "no", table = invoices, api = 0, navigation(sort = "first"))]
struct Invoice {
    #[resource(primary_key)]
    id: i64,
    #[resource(max_length = "20", label = 3)]
    number: String,
    #[resource(audit)]
    notes: String,
    #[resource(belongs_to = "Customer")]
    customer_id: i64,
}

fn main() {}
