//! The test domain: the demo's customers and invoices, plus a resource with
//! a nullable sort key.

use chrono::{DateTime, NaiveDate, Utc};
use platform_core::Resource;
use platform_core::context::{Actor, Context};
use platform_core::policy::Scope;
use platform_core::resource::Registry;

/// A customer.
#[derive(Resource, Debug, Clone, PartialEq)]
#[resource(
    table = "customers",
    search(name, email),
    navigation(group = "Billing", sort = 1)
)]
pub struct Customer {
    /// Id.
    #[resource(primary_key, sortable)]
    pub id: i64,
    /// Name.
    #[resource(sortable, max_length = 120)]
    pub name: String,
    /// E-mail (personal data).
    #[resource(unique, pii, email)]
    pub email: String,
    /// ISO country code.
    #[resource(filter, max_length = 2)]
    pub country: String,
    /// Created.
    pub created_at: DateTime<Utc>,
}

/// An invoice.
#[derive(Resource, Debug, Clone, PartialEq)]
#[resource(
    table = "invoices",
    search(number, notes),
    soft_delete,
    cache,
    navigation(group = "Billing", sort = 2)
)]
pub struct Invoice {
    /// Id.
    #[resource(primary_key, sortable)]
    pub id: i64,
    /// The customer.
    #[resource(belongs_to = Customer, filter)]
    pub customer_id: i64,
    /// Number, `INV-000001`.
    #[resource(unique, sortable, max_length = 20)]
    pub number: String,
    /// Status.
    #[resource(choices("draft", "sent", "paid", "void"), filter)]
    pub status: String,
    /// Amount in cents.
    #[resource(sortable, filter, money)]
    pub amount_cents: i64,
    /// Issue date.
    #[resource(sortable, filter)]
    pub issued_on: NaiveDate,
    /// Notes.
    #[resource(text)]
    pub notes: Option<String>,
    /// Bank account (encrypted at rest).
    #[resource(encrypted)]
    pub iban: Option<String>,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Updated (not audited).
    #[resource(audit = false)]
    pub updated_at: DateTime<Utc>,
    /// Soft-deletion time.
    pub deleted_at: Option<DateTime<Utc>>,
}

/// A task with a nullable, sortable due date.
#[derive(Resource, Debug, Clone, PartialEq)]
#[resource(table = "tasks")]
pub struct Task {
    /// Id.
    #[resource(primary_key)]
    pub id: i64,
    /// Title.
    #[resource(sortable)]
    pub title: String,
    /// Due date, maybe.
    #[resource(sortable, filter)]
    pub due_on: Option<NaiveDate>,
    /// Done.
    #[resource(filter)]
    pub done: bool,
}

/// Owner-only notes: a user reaches their own; super admins and trusted
/// actors (console, jobs) reach all.
pub fn own_notes(ctx: &Context) -> Scope {
    match ctx.actor() {
        Actor::User(p) | Actor::Token(p, _) if !p.grants.is_super_admin() => {
            Scope::eq("owner_id", p.user_id)
        }
        Actor::Anonymous => Scope::None,
        _ => Scope::All,
    }
}

/// A note with a record-level policy.
#[derive(Resource, Debug, Clone, PartialEq)]
#[resource(table = "notes", search(body), policy = own_notes)]
pub struct Note {
    /// Id.
    #[resource(primary_key, sortable)]
    pub id: i64,
    /// The owner (filled from the policy on create).
    #[resource(filter)]
    pub owner_id: i64,
    /// Text.
    #[resource(sortable)]
    pub body: String,
}

/// The registry of the test domain.
pub fn registry() -> Registry {
    Registry::builder()
        .register::<Customer>()
        .register::<Invoice>()
        .register::<Task>()
        .register::<Note>()
        .build()
        .expect("test registry")
}

/// A customer value ready to create.
pub fn customer(name: &str, email: &str, country: &str) -> Customer {
    Customer {
        id: 0,
        name: name.into(),
        email: email.into(),
        country: country.into(),
        created_at: Utc::now(),
    }
}

/// An invoice value ready to create.
pub fn invoice(customer_id: i64, n: u32, status: &str, amount_cents: i64) -> Invoice {
    Invoice {
        id: 0,
        customer_id,
        number: format!("INV-{n:06}"),
        status: status.into(),
        amount_cents,
        issued_on: NaiveDate::from_ymd_opt(2024, 1, 1).expect("date")
            + chrono::Days::new(u64::from(n % 365)),
        notes: Some(format!("note for invoice {n}")),
        iban: Some(format!("DE89 3704 0044 0532 {n:04} 00")),
        created_at: Utc::now(),
        updated_at: Utc::now(),
        deleted_at: None,
    }
}
