//! `#[resource(crate = "...")]` for hosts that re-export platform-core under
//! another path.

mod host {
    pub mod platform {
        pub use platform_core::*;
    }
}

// Nothing named `platform_core` is in scope through this path.
use crate::host::platform::Resource;

#[derive(Resource)]
#[resource(crate = "crate::host::platform")]
struct Note {
    #[resource(primary_key)]
    id: i64,
    body: String,
}

fn main() {
    let registry = crate::host::platform::Registry::builder()
        .register::<Note>()
        .build()
        .unwrap();
    assert_eq!(registry.by_name("note").unwrap().meta().table(), "notes");
    let note = Note {
        id: 1,
        body: "hello".to_owned(),
    };
    let back = Note::from_values(note.to_values()).unwrap();
    assert_eq!((back.id, back.body.as_str()), (1, "hello"));
}
