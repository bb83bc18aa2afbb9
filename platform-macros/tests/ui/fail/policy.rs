use platform_core::Resource;
use platform_core::context::Context;
use platform_core::policy::Scope;

#[derive(Resource)]
#[resource(policy)]
struct Bare {
    #[resource(primary_key)]
    id: i64,
}

#[derive(Resource)]
#[resource(policy = "own_rows")]
struct Quoted {
    #[resource(primary_key)]
    id: i64,
}

fn not_a_policy(_: &Context) -> bool {
    true
}

#[derive(Resource)]
#[resource(policy = not_a_policy)]
struct WrongType {
    #[resource(primary_key)]
    id: i64,
}

fn own_rows(_: &Context) -> Scope {
    Scope::All
}

fn main() {
    let _ = own_rows;
}
