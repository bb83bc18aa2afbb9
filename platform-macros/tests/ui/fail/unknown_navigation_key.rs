use platform_core::Resource;

#[derive(Resource)]
#[resource(navigation(group = "Billing", colour = "red", sort = 2, group = "Sales"))]
struct Invoice {
    #[resource(primary_key)]
    id: i64,
}

#[derive(Resource)]
#[resource(navigation = "Billing")]
struct Payment {
    #[resource(primary_key)]
    id: i64,
}

fn main() {}
