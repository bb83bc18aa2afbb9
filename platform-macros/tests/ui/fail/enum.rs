use platform_core::Resource;

#[derive(Resource)]
enum Status {
    Draft,
    Sent,
}

#[derive(Resource)]
union Bits {
    int: i64,
    float: f64,
}

fn main() {
    // The fallback impl keeps this from adding errors.
    let _ = platform_core::Registry::builder().register::<Status>();
}
