use platform_core::Resource;

#[derive(Resource)]
struct Pair(i64, String);

#[derive(Resource)]
struct Unit;

fn main() {
    // The fallback impl keeps this from adding errors.
    let _ = platform_core::Registry::builder().register::<Pair>().register::<Unit>();
}
