use platform_core::Resource;

#[derive(Resource)]
struct Invoice {
    #[resource(primary_key)]
    id: i64,
    #[resource(choices())]
    status: String,
    #[resource(choices("draft", 1, sent))]
    stage: String,
    #[resource(choices("draft", "sent", "draft"))]
    state: String,
    #[resource(choices = "draft")]
    phase: String,
}

fn main() {}
