use platform_core::Resource;

#[derive(Resource)]
#[resource]
struct Invoice {
    #[resource(primary_key)]
    id: i64,
    #[resource(label = )]
    number: String,
    #[resource("sortable")]
    status: String,
}

fn main() {}
