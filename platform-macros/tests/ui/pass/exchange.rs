//! The import/export switches and their defaults.

use chrono::{DateTime, Utc};
use platform_core::Resource;

#[derive(Resource)]
#[resource(import(key = number))]
struct Invoice {
    #[resource(primary_key)]
    id: i64,
    #[resource(unique, label = "Invoice no.")]
    number: String,
    #[resource(export = false)]
    internal_note: Option<String>,
    #[resource(import = false)]
    total_cents: i64,
    #[resource(read_only)]
    paid: bool,
    #[resource(hidden)]
    secret: String,
    #[resource(encrypted, pii)]
    tax_number: Option<String>,
    created_at: DateTime<Utc>,
}

#[derive(Resource)]
#[resource(export = false, import = false)]
struct Session {
    #[resource(primary_key)]
    id: i64,
}

fn main() {
    let m = Invoice::meta();
    assert!(m.exportable() && m.importable());
    assert_eq!(m.import_key(), Some("number"));
    let f = |n: &str| m.field(n).unwrap();
    assert_eq!(f("number").label_text(), "Invoice no.");
    assert!(f("number").exportable() && f("number").importable());
    assert!(!f("internal_note").exportable() && f("internal_note").importable());
    assert!(f("total_cents").exportable() && !f("total_cents").importable());
    assert!(f("paid").exportable() && !f("paid").importable());
    assert!(f("id").exportable() && !f("id").importable());
    assert!(!f("secret").exportable() && !f("secret").importable());
    assert!(f("tax_number").exportable() && f("tax_number").importable());
    assert!(f("created_at").exportable() && !f("created_at").importable());
    let s = Session::meta();
    assert!(!s.exportable() && !s.importable());
    assert_eq!(s.import_key(), None);
}
