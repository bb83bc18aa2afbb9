//! The demo's domain: customers and their invoices (DESIGN.md, "The demo
//! application"). Everything else (API, audit, permissions, cache) comes
//! from these two annotated structs.

use chrono::{DateTime, NaiveDate, Utc};
use platform_core::prelude::*;

// ANCHOR: customer
/// A customer.
#[derive(Resource, Debug, Clone)]
#[resource(
    search(name, email),
    navigation(group = "Billing", icon = "users", sort = 1)
)]
pub(crate) struct Customer {
    /// Id.
    #[resource(primary_key, sortable)]
    pub(crate) id: i64,
    /// Name.
    #[resource(sortable, max_length = 120)]
    pub(crate) name: String,
    /// E-mail address: personal data, masked for users without `view_pii`.
    #[resource(unique, pii, email)]
    pub(crate) email: String,
    /// ISO 3166 country code.
    #[resource(filter, sortable, max_length = 2)]
    pub(crate) country: String,
    /// When the customer was created.
    pub(crate) created_at: DateTime<Utc>,
}
// ANCHOR_END: customer

// ANCHOR: invoice
/// An invoice.
#[derive(Resource, Debug, Clone)]
#[resource(
    search(number, notes),
    soft_delete,
    cache,
    navigation(group = "Billing", icon = "receipt", sort = 2)
)]
pub(crate) struct Invoice {
    /// Id.
    #[resource(primary_key, sortable)]
    pub(crate) id: i64,
    /// The customer billed.
    #[resource(belongs_to = Customer, filter)]
    pub(crate) customer_id: i64,
    /// Invoice number, `INV-000001`.
    #[resource(unique, sortable, max_length = 20)]
    pub(crate) number: String,
    /// Where the invoice stands.
    #[resource(choices("draft", "sent", "paid", "void"), filter)]
    pub(crate) status: String,
    /// Amount in cents.
    #[resource(sortable, filter, money)]
    pub(crate) amount_cents: i64,
    /// Date of issue.
    #[resource(sortable, filter)]
    pub(crate) issued_on: NaiveDate,
    /// Free notes.
    #[resource(text)]
    pub(crate) notes: Option<String>,
    /// Bank account: AES-GCM at rest, never in the audit trail in clear.
    #[resource(encrypted, label = "IBAN")]
    pub(crate) iban: Option<String>,
    /// When the invoice was created.
    pub(crate) created_at: DateTime<Utc>,
    /// Last change (not audited).
    #[resource(audit = false)]
    pub(crate) updated_at: DateTime<Utc>,
    /// Soft-deletion time.
    pub(crate) deleted_at: Option<DateTime<Utc>>,
}
// ANCHOR_END: invoice

// ANCHOR: product
/// A product of the catalogue, with images (the media library's `images`
/// collection, declared in `main.rs`).
#[derive(Resource, Debug, Clone)]
#[resource(
    search(name, sku),
    navigation(group = "Catalog", icon = "box", sort = 1)
)]
pub(crate) struct Product {
    /// Id.
    #[resource(primary_key, sortable)]
    pub(crate) id: i64,
    /// Name.
    #[resource(sortable, max_length = 120)]
    pub(crate) name: String,
    /// Stock-keeping unit, unique.
    #[resource(unique, sortable, max_length = 40)]
    pub(crate) sku: String,
    /// Price in cents.
    #[resource(sortable, money)]
    pub(crate) price_cents: i64,
    /// Description.
    #[resource(text)]
    pub(crate) description: Option<String>,
}
// ANCHOR_END: product
