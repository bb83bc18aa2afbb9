//! First-start data: the administrator and, unless `PLATFORM_SEED=0`, a
//! deterministic set of customers and invoices (`PLATFORM_SEED_INVOICES`,
//! default 3000, and a tenth as many customers).

use chrono::{Days, NaiveDate};
use platform_core::Platform;
use platform_core::access::{NewUser, NewUserOptions};
use platform_core::context::Context;
use platform_core::permission::SUPER_ADMIN;
use platform_core::query::ListQuery;
use platform_core::repo::Changes;
use platform_core::value::Value;

/// The administrator the demo creates.
pub(crate) const ADMIN_EMAIL: &str = "admin@example.com";

/// Rows written per transaction while seeding.
const BATCH: usize = 2_000;

/// A small deterministic generator (splitmix64), so every seeded database
/// holds the same data and benchmark figures stay comparable.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len() as u64) as usize]
    }
}

const FIRST: &[&str] = &[
    "Ada",
    "Grace",
    "Alan",
    "Edsger",
    "Barbara",
    "Donald",
    "Margaret",
    "Ken",
    "Dennis",
    "Frances",
    "John",
    "Radia",
    "Tim",
    "Hedy",
    "Claude",
    "Katherine",
    "Linus",
    "Guido",
    "Bjarne",
    "Niklaus",
];
const LAST: &[&str] = &[
    "Lovelace",
    "Hopper",
    "Turing",
    "Dijkstra",
    "Liskov",
    "Knuth",
    "Hamilton",
    "Thompson",
    "Ritchie",
    "Allen",
    "McCarthy",
    "Perlman",
    "Berners-Lee",
    "Lamarr",
    "Shannon",
    "Johnson",
    "Torvalds",
    "van Rossum",
    "Stroustrup",
    "Wirth",
];
const COUNTRIES: &[&str] = &[
    "DE", "FR", "GB", "US", "KR", "JP", "NL", "SE", "ES", "IT", "BR", "CA",
];
const STATUSES: &[&str] = &["draft", "sent", "sent", "paid", "paid", "paid", "void"];
const NOTES: &[&str] = &[
    "Net 30, thank you for your business",
    "Consulting, March",
    "Hardware and installation",
    "Annual support contract",
    "Rush order, ship express",
    "Discount applied as agreed",
    "Second reminder sent",
    "Paid by bank transfer",
];

/// Creates the administrator on first start (with its role, in one
/// transaction). Its password is `PLATFORM_ADMIN_PASSWORD` when set; else
/// one is generated, printed in a box, and must be changed at the first
/// sign-in. Run it last before serving, so the box is the last thing
/// printed before the address.
pub(crate) async fn ensure_admin(p: &Platform) -> anyhow::Result<()> {
    if p.access().find_user_by_email(ADMIN_EMAIL).await?.is_some() {
        return Ok(());
    }
    let (password, generated) = match std::env::var("PLATFORM_ADMIN_PASSWORD") {
        Ok(pw) if !pw.is_empty() => (pw, false),
        _ => (platform_core::crypto::random_token(15), true),
    };
    p.access()
        .create_user_with(
            &Context::system(),
            NewUser {
                email: ADMIN_EMAIL.into(),
                name: "Administrator".into(),
                password: password.clone(),
            },
            NewUserOptions {
                roles: vec![SUPER_ADMIN.to_owned()],
                password_change_required: generated,
            },
        )
        .await?;
    if generated {
        println!(
            "{}",
            boxed(&[
                format!("Sign in to /admin as {ADMIN_EMAIL}"),
                format!("with the generated password  {password}"),
                "You choose your own password at the first sign-in.".to_owned(),
                String::new(),
                "To set it yourself instead: PLATFORM_ADMIN_PASSWORD=... on".to_owned(),
                "the first start, or at any time:".to_owned(),
                format!("  cargo run -p demo -- user:password --email {ADMIN_EMAIL}"),
            ])
        );
    } else {
        println!("Created the administrator {ADMIN_EMAIL} (password from PLATFORM_ADMIN_PASSWORD)");
    }
    Ok(())
}

/// `lines` in a box of ASCII characters (any terminal shows them).
fn boxed(lines: &[String]) -> String {
    let width = lines.iter().map(|l| l.chars().count()).max().unwrap_or(0);
    let rule = format!("+{}+", "-".repeat(width + 2));
    let mut out = rule.clone();
    for l in lines {
        let pad = width - l.chars().count();
        out.push_str(&format!("\n| {l}{} |", " ".repeat(pad)));
    }
    out.push('\n');
    out.push_str(&rule);
    out
}

async fn count(p: &Platform, sql: &'static str) -> anyhow::Result<u64> {
    let n = p
        .db()
        .fetch_i64(platform_core::db::Sql::literal(p.db().backend(), sql))
        .await?
        .unwrap_or(0);
    Ok(u64::try_from(n).unwrap_or(0))
}

/// Seeds customers and invoices on first start (an empty database), or up
/// to `PLATFORM_SEED_INVOICES` when that is set (an interrupted seed of a
/// benchmark database resumes where it stopped).
pub(crate) async fn seed_domain(p: &Platform) -> anyhow::Result<()> {
    if std::env::var("PLATFORM_SEED").is_ok_and(|v| v == "0") {
        return Ok(());
    }
    let ctx = Context::system();
    seed_products(p, &ctx).await?;
    let customers = p.records("customers", &ctx).expect("customers resource");
    let invoices = p.records("invoices", &ctx).expect("invoices resource");
    let explicit: Option<u64> = std::env::var("PLATFORM_SEED_INVOICES")
        .ok()
        .and_then(|v| v.parse().ok());
    let have_customers = count(p, "SELECT COUNT(*) FROM customers").await?;
    if have_customers > 0 && explicit.is_none() {
        return Ok(());
    }
    let n_invoices = explicit.unwrap_or(3_000);
    let n_customers = (n_invoices / 10).max(1);
    let have_invoices = count(p, "SELECT COUNT(*) FROM invoices").await?;
    if have_customers >= n_customers && have_invoices >= n_invoices {
        return Ok(());
    }
    let started = std::time::Instant::now();
    let mut customer_ids: Vec<i64> = Vec::with_capacity(n_customers as usize);
    let mut page = customers.list(&ListQuery::new().page_size(100)).await?;
    loop {
        customer_ids.extend(page.items.iter().filter_map(|c| c.id().as_i64()));
        match page.next_cursor.take() {
            Some(c) => {
                page = customers
                    .list(&ListQuery::new().page_size(100).after(c))
                    .await?;
            }
            None => break,
        }
    }
    let mut rng = Rng(0x5EED ^ have_customers);
    let mut done = have_customers;
    while done < n_customers {
        let batch: Vec<Changes> = (done..(done + BATCH as u64).min(n_customers))
            .map(|i| {
                let (first, last) = (rng.pick(FIRST), rng.pick(LAST));
                let name = format!("{first} {last}");
                let email = format!(
                    "{}.{}.{}@example.com",
                    first.to_lowercase(),
                    last.to_lowercase().replace(' ', ""),
                    i + 1
                );
                Changes::new()
                    .set("name", name)
                    .set("email", email)
                    .set("country", rng.pick(COUNTRIES))
            })
            .collect();
        done += batch.len() as u64;
        for id in customers.create_many(batch).await? {
            customer_ids.push(id.as_i64().unwrap_or_default());
        }
    }
    let start = NaiveDate::from_ymd_opt(2024, 1, 1).expect("date");
    let mut rng = Rng(0xB111 ^ have_invoices);
    let mut done = have_invoices;
    while done < n_invoices {
        let batch: Vec<Changes> = (done..(done + BATCH as u64).min(n_invoices))
            .map(|i| {
                let customer = customer_ids[rng.below(customer_ids.len() as u64) as usize];
                let issued = start + Days::new(rng.below(730));
                let mut c = Changes::new()
                    .set("customer_id", customer)
                    .set("number", format!("INV-{:06}", i + 1))
                    .set("status", rng.pick(STATUSES))
                    .set("amount_cents", (1_000 + rng.below(499_000)) as i64)
                    .set("issued_on", Value::Date(issued));
                if rng.below(3) > 0 {
                    c = c.set("notes", rng.pick(NOTES));
                }
                if rng.below(2) == 0 {
                    c = c.set(
                        "iban",
                        format!(
                            "DE{:02} {:04} {:04} {:04} {:04} {:02}",
                            rng.below(100),
                            rng.below(10_000),
                            rng.below(10_000),
                            rng.below(10_000),
                            rng.below(10_000),
                            rng.below(100)
                        ),
                    );
                }
                c
            })
            .collect();
        done += batch.len() as u64;
        invoices.create_many(batch).await?;
        if done % 100_000 == 0 {
            println!("seeded {done} of {n_invoices} invoices");
        }
    }
    // Fresh statistics (and, on PostgreSQL, a merged trigram index) after a
    // bulk load, so the first queries get good plans.
    // (One statement per call: PostgreSQL runs a multi-statement script in
    // one transaction, and VACUUM refuses that.)
    let maintenance: &[&str] = match p.db().backend() {
        platform_core::db::Backend::Postgres => {
            &["VACUUM ANALYZE customers", "VACUUM ANALYZE invoices"]
        }
        platform_core::db::Backend::MySql => &["ANALYZE TABLE customers, invoices"],
        platform_core::db::Backend::Sqlite => &["ANALYZE"],
    };
    for statement in maintenance {
        p.db().execute_script(statement).await?;
    }
    println!(
        "Seeded to {n_customers} customers and {n_invoices} invoices in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// A few products (the media library's demo resource) when there are none.
async fn seed_products(p: &Platform, ctx: &Context) -> anyhow::Result<()> {
    if count(p, "SELECT COUNT(*) FROM products").await? > 0 {
        return Ok(());
    }
    let products = p.records("products", ctx).expect("products resource");
    let rows: [(&str, &str, i64, &str); 3] = [
        (
            "Espresso cup",
            "CUP-ESP-01",
            1_250,
            "A thick-walled porcelain cup, 80 ml.",
        ),
        (
            "Pour-over kettle",
            "KET-PO-01",
            5_900,
            "Gooseneck kettle, 1 litre, stainless steel.",
        ),
        (
            "Burr grinder",
            "GRN-BUR-01",
            14_900,
            "Conical burrs, 40 grind settings.",
        ),
    ];
    let batch: Vec<Changes> = rows
        .iter()
        .map(|(name, sku, price, description)| {
            Changes::new()
                .set("name", *name)
                .set("sku", *sku)
                .set("price_cents", *price)
                .set("description", *description)
        })
        .collect();
    products.create_many(batch).await?;
    Ok(())
}
