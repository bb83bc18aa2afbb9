use platform_core::Resource;

#[derive(Resource)]
struct Wrapper<T> {
    #[resource(primary_key)]
    id: i64,
    value: T,
}

#[derive(Resource)]
struct Borrowed<'a> {
    #[resource(primary_key)]
    id: i64,
    name: &'a str,
}

fn main() {}
