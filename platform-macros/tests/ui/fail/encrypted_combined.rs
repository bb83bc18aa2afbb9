use platform_core::Resource;

#[derive(Resource)]
#[resource(search(tax_number))]
struct Customer {
    #[resource(primary_key)]
    id: i64,
    #[resource(encrypted, sortable)]
    tax_number: String,
    #[resource(filter, unique, encrypted)]
    iban: Option<String>,
}

fn main() {}
