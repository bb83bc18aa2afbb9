use platform_core::Resource;

#[derive(Resource)]
#[resource(soft_delete)]
struct Invoice {
    #[resource(primary_key)]
    id: i64,
}

#[derive(Resource)]
#[resource(soft_delete)]
struct Payment {
    #[resource(primary_key)]
    id: i64,
    deleted_at: Option<bool>,
}

fn main() {}
