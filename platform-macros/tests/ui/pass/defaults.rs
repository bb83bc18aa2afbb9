//! Names, plurals and labels derived from the struct and field names.

use platform_core::Resource;
use platform_core::value::{FieldType, Value};

#[derive(Resource)]
struct DeliveryCategory {
    #[resource(primary_key)]
    id: i32,
    r#type: String,
    is_active: bool,
    weight: f64,
    settings: serde_json::Value,
}

#[derive(Resource)]
struct Address {
    #[resource(primary_key)]
    id: i64,
    #[resource(email)]
    contact: Option<String>,
    #[resource(allow_empty)]
    line2: String,
}

#[derive(Resource)]
#[resource(name = "person", plural = "people", label = "Person", plural_label = "People")]
struct Employee {
    #[resource(primary_key)]
    id: i64,
}

#[derive(Resource)]
#[resource(label = "Parts box")]
struct PartBox {
    #[resource(primary_key)]
    id: i64,
}

fn main() {
    let meta = DeliveryCategory::meta();
    assert_eq!(meta.name(), "delivery_category");
    assert_eq!(meta.plural(), "delivery_categories");
    assert_eq!(meta.table(), "delivery_categories");
    assert_eq!(meta.label_text(), "Delivery category");
    assert_eq!(meta.plural_label(), "Delivery categories");
    assert!(meta.is_audited() && meta.in_api() && meta.in_admin());
    assert!(!meta.is_cached() && !meta.is_soft_delete());
    assert!(meta.search_fields().is_empty());
    let labels: Vec<&str> = meta.field_list().iter().map(|f| f.label_text()).collect();
    assert_eq!(labels, ["Id", "Type", "Is active", "Weight", "Settings"]);
    let types: Vec<FieldType> = meta.field_list().iter().map(|f| f.ty()).collect();
    assert_eq!(
        types,
        [
            FieldType::I32,
            FieldType::String,
            FieldType::Bool,
            FieldType::F64,
            FieldType::Json
        ]
    );
    // A raw identifier is stored under its plain name.
    assert_eq!(meta.field("type").unwrap().column_name(), "type");
    let row = DeliveryCategory {
        id: 1,
        r#type: "parcel".into(),
        is_active: true,
        weight: 2.5,
        settings: serde_json::json!({"fragile": false}),
    };
    let values = row.to_values();
    assert_eq!(values[1], Value::Text("parcel".into()));
    let back = DeliveryCategory::from_values(values).unwrap();
    assert_eq!(back.r#type, "parcel");
    assert_eq!(back.settings, serde_json::json!({"fragile": false}));

    assert_eq!(Address::meta().plural(), "addresses");
    let contact = Address::meta().field("contact").unwrap();
    assert!(contact.is_email() && !contact.allows_empty());
    let line2 = Address::meta().field("line2").unwrap();
    assert!(line2.allows_empty() && !line2.is_email());
    assert_eq!(Address::meta().plural_label(), "Addresses");
    let employee = Employee::meta();
    assert_eq!(
        (employee.name(), employee.plural(), employee.table()),
        ("person", "people", "people")
    );
    assert_eq!((employee.label_text(), employee.plural_label()), ("Person", "People"));
    assert_eq!(PartBox::meta().name(), "part_box");
    assert_eq!(PartBox::meta().plural(), "part_boxes");
    assert_eq!(PartBox::meta().label_text(), "Parts box");
    assert_eq!(PartBox::meta().plural_label(), "Parts boxes");
}
