use platform_core::Resource;

struct Customer {
    id: i64,
}

#[derive(Resource)]
struct Invoice {
    #[resource(primary_key)]
    id: i64,
    #[resource(belongs_to = Customer)]
    customer_id: i64,
}

fn main() {}
