use platform_core::Resource;

#[derive(Resource)]
struct Customer {
    #[resource(primary_key)]
    id: i64,
}

#[derive(Resource)]
struct Invoice {
    #[resource(primary_key)]
    id: i64,
    #[resource(belongs_to = Customer, choices("1", "2"))]
    customer_id: String,
}

fn main() {}
