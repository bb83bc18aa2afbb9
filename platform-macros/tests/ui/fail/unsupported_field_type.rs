use platform_core::Resource;

struct Money(i64);

#[derive(Resource)]
struct Invoice {
    #[resource(primary_key)]
    id: i64,
    total: Money,
    lines: Vec<u8>,
}

fn main() {}
