//! A realistic pair of resources, checked through an explicit registry.

use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use platform_core::Resource;
use platform_core::resource::Navigation;
use platform_core::value::{FieldType, Value};

#[derive(Debug, Clone, PartialEq, Resource)]
#[resource(search(name, email), cache)]
struct Customer {
    #[resource(primary_key)]
    id: i64,
    #[resource(title, sortable, max_length = 120)]
    name: String,
    #[resource(unique, pii, label = "E-mail")]
    email: String,
    #[resource(encrypted, pii)]
    tax_number: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Resource)]
#[resource(
    table = "billing_invoices",
    search(number, notes),
    soft_delete,
    audit = false,
    api = false,
    navigation(group = "Billing", icon = "receipt", sort = -2)
)]
struct Invoice {
    #[resource(primary_key)]
    id: i64,
    #[resource(unique, sortable, filter, title)]
    number: String,
    #[resource(belongs_to = Customer, filter)]
    customer_id: i64,
    #[resource(choices("draft", "sent", "paid"), filter)]
    status: String,
    #[resource(money, sortable)]
    amount_cents: i64,
    #[resource(text)]
    notes: Option<String>,
    issued_on: NaiveDate,
    #[resource(hidden, audit = false, column = "internal_ref")]
    reference: Option<String>,
    #[resource(read_only)]
    created_at: DateTime<Utc>,
    deleted_at: Option<DateTime<Utc>>,
    #[resource(skip)]
    cached_total: Option<u128>,
}

fn main() {
    let registry = platform_core::Registry::builder()
        .register::<Invoice>()
        .register::<Customer>()
        .build()
        .expect("the registry is valid");
    assert_eq!(registry.len(), 2);

    let meta = Invoice::meta();
    assert_eq!(meta.name(), "invoice");
    assert_eq!(meta.plural(), "invoices");
    assert_eq!(meta.table(), "billing_invoices");
    assert_eq!(meta.label_text(), "Invoice");
    assert_eq!(meta.plural_label(), "Invoices");
    assert_eq!(meta.search_fields(), ["number", "notes"]);
    assert!(!meta.is_cached());
    assert!(meta.is_soft_delete());
    assert!(!meta.is_audited());
    assert!(!meta.in_api());
    assert!(meta.in_admin());
    assert_eq!(
        meta.navigation_entry(),
        Navigation {
            group: Some("Billing"),
            icon: Some("receipt"),
            sort: -2,
        }
    );
    // `skip` leaves the field out of the metadata.
    let names: Vec<&str> = meta.field_list().iter().map(|f| f.name()).collect();
    assert_eq!(
        names,
        [
            "id",
            "number",
            "customer_id",
            "status",
            "amount_cents",
            "notes",
            "issued_on",
            "reference",
            "created_at",
            "deleted_at",
        ]
    );
    assert_eq!(meta.primary_key().name(), "id");
    assert!(meta.primary_key().is_read_only());
    assert_eq!(meta.title_field().name(), "number");

    let number = meta.field("number").unwrap();
    assert!(number.is_unique() && number.is_sortable() && number.is_filter());
    assert_eq!(number.ty(), FieldType::String);
    assert_eq!(number.max_len(), Some(255));
    assert_eq!(number.label_text(), "Number");

    let customer = meta.field("customer_id").unwrap();
    assert_eq!(customer.label_text(), "Customer");
    assert_eq!(customer.belongs_to_meta().unwrap().table(), "customers");
    let status = meta.field("status").unwrap();
    assert_eq!(status.choice_list(), ["draft", "sent", "paid"]);
    let amount = meta.field("amount_cents").unwrap();
    assert!(amount.is_money() && amount.ty() == FieldType::I64);
    assert_eq!(amount.label_text(), "Amount");
    let notes = meta.field("notes").unwrap();
    assert_eq!(notes.ty(), FieldType::Text);
    assert!(notes.is_nullable());
    assert_eq!(notes.max_len(), None);
    assert_eq!(meta.field("issued_on").unwrap().ty(), FieldType::Date);
    let reference = meta.field("reference").unwrap();
    assert!(reference.is_hidden() && !reference.is_audited());
    assert_eq!(reference.column_name(), "internal_ref");
    assert!(meta.field("created_at").unwrap().is_read_only());
    assert!(meta.deleted_at().unwrap().is_nullable());

    let cmeta = Customer::meta();
    assert_eq!(cmeta.table(), "customers");
    assert!(cmeta.is_cached() && cmeta.is_audited() && cmeta.in_api());
    assert_eq!(cmeta.navigation_entry().group, None);
    let name = cmeta.field("name").unwrap();
    assert!(name.is_title() && name.is_sortable());
    assert_eq!(name.max_len(), Some(120));
    let email = cmeta.field("email").unwrap();
    assert!(email.is_unique() && email.is_pii());
    assert_eq!(email.label_text(), "E-mail");
    let tax = cmeta.field("tax_number").unwrap();
    assert!(tax.is_encrypted() && tax.is_pii() && tax.is_nullable());

    let entry = registry.of::<Invoice>().unwrap();
    assert_eq!(entry.type_name(), std::any::type_name::<Invoice>());
    assert!(registry.by_plural("customers").is_some());

    // Round trip, and `skip` comes back as `Default::default()`.
    let invoice = Invoice {
        id: 7,
        number: "2024-0007".into(),
        customer_id: 3,
        status: "sent".into(),
        amount_cents: 12_300,
        notes: None,
        issued_on: NaiveDate::from_ymd_opt(2024, 2, 29).unwrap(),
        reference: Some("R-1".into()),
        created_at: Utc.with_ymd_and_hms(2024, 3, 1, 8, 30, 0).unwrap(),
        deleted_at: None,
        cached_total: Some(99),
    };
    let values = invoice.to_values();
    assert_eq!(values.len(), 10);
    assert_eq!(values[0], Value::Int(7));
    assert_eq!(values[5], Value::Null);
    let back = Invoice::from_values(values).unwrap();
    assert_eq!(
        back,
        Invoice {
            cached_total: None,
            ..invoice.clone()
        }
    );

    // A wrong value names the field.
    let mut values = invoice.to_values();
    values[1] = Value::Int(1);
    let err = Invoice::from_values(values).unwrap_err();
    assert_eq!(err.field, "number");
    // Missing values read as null.
    let err = Customer::from_values(vec![Value::Int(1)]).unwrap_err();
    assert_eq!(err.field, "name");
}
