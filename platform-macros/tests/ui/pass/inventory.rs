//! `#[derive(Resource)]` registers the type: `Registry::from_inventory()`
//! finds it without any explicit call.

use platform_core::{Registry, Resource};

#[derive(Resource)]
struct Tag {
    #[resource(primary_key)]
    id: i64,
    #[resource(unique)]
    name: String,
}

#[derive(Resource)]
#[resource(navigation(group = "Catalogue"))]
struct Product {
    #[resource(primary_key)]
    id: uuid::Uuid,
    name: String,
    #[resource(belongs_to = Tag)]
    tag_id: Option<i64>,
}

fn main() {
    let registry = Registry::from_inventory().expect("the registry is valid");
    let tag = registry.by_table("tags").expect("`Tag` is registered");
    assert_eq!(tag.type_name(), std::any::type_name::<Tag>());
    let product = registry.of::<Product>().expect("`Product` is registered");
    assert_eq!(product.meta().plural(), "products");
    assert_eq!(product.meta().navigation_entry().group, Some("Catalogue"));
    let tag_id = product.meta().field("tag_id").unwrap();
    assert!(tag_id.is_nullable());
    assert_eq!(tag_id.belongs_to_meta().unwrap().name(), "tag");
    assert_eq!(Tag::meta().field_list().len(), 2);
}
