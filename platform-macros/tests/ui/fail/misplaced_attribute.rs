use platform_core::Resource;

#[derive(Resource)]
#[resource(primary_key, belongs_to = Customer)]
struct Invoice {
    #[resource(primary_key, table = "ids")]
    id: i64,
    #[resource(search(number))]
    number: String,
}

fn main() {}
