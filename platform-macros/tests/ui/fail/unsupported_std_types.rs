use platform_core::Resource;

// Standard types that are not field types: one error each, at the type,
// saying what to use instead.
#[derive(Resource)]
struct Attachment {
    #[resource(primary_key)]
    id: i64,
    data: Vec<u8>,
    tags: std::collections::HashMap<String, String>,
    size: Option<u32>,
    ratio: f32,
}

fn main() {}
