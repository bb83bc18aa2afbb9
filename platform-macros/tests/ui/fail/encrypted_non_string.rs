use platform_core::Resource;

#[derive(Resource)]
struct Customer {
    #[resource(primary_key)]
    id: i64,
    #[resource(encrypted)]
    birth_year: i32,
    #[resource(encrypted)]
    score: Option<i64>,
    // These are fine.
    #[resource(encrypted)]
    tax_number: String,
    #[resource(encrypted)]
    iban: Option<String>,
}

fn main() {}
