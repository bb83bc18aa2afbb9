//! The transactional outbox on every configured database: committed
//! changes reach subscribers (with their values under the audit's rules,
//! the actor and the request), rolled-back ones never do, a failing
//! subscriber is retried without delaying the write or the others, an event
//! committed by a process that died is delivered by the next one, and a
//! resource nothing subscribes to writes no outbox row.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use platform_core::Platform;
use platform_core::capability::{Capability, Setup};
use platform_core::context::Context;
use platform_core::db::Sql;
use platform_core::outbox::Event;
use platform_core::repo::Changes;
use platform_core::value::{FieldType, Value};
use platform_tests::domain::{Customer, Invoice, customer, invoice, registry};
use platform_tests::{TestDb, all_backends, test_key};

type Seen = Arc<Mutex<Vec<Event>>>;

fn builder(db: &TestDb) -> platform_core::platform::PlatformBuilder {
    Platform::builder()
        .ignore_env()
        .database_url(&db.url)
        .app_key(test_key())
        .registry(registry())
        .max_connections(4)
        .outbox_retry_after(Duration::from_millis(300))
}

/// Records what it gets.
fn recorder(
    seen: &Seen,
) -> impl Fn(Event) -> futures::future::Ready<Result<(), platform_core::error::BoxError>>
+ Send
+ Sync
+ 'static {
    let seen = seen.clone();
    move |e: Event| {
        seen.lock().unwrap().push(e);
        futures::future::ready(Ok(()))
    }
}

/// Records what it gets once its gate is opened (`gate.send(true)`): until
/// then its events stay in the outbox, undelivered.
fn gated_recorder(
    seen: &Seen,
) -> (
    tokio::sync::watch::Sender<bool>,
    impl Fn(Event) -> futures::future::BoxFuture<'static, Result<(), platform_core::error::BoxError>>
    + Send
    + Sync
    + 'static,
) {
    let (gate, open) = tokio::sync::watch::channel(false);
    let seen = seen.clone();
    let subscriber = move |e: Event| {
        let (seen, mut open) = (seen.clone(), open.clone());
        Box::pin(async move {
            open.wait_for(|o| *o).await?;
            seen.lock().unwrap().push(e);
            Ok(())
        }) as futures::future::BoxFuture<'static, _>
    };
    (gate, subscriber)
}

/// Waits until the outbox is empty (every event delivered, its row
/// deleted); answers the rows left.
async fn drained(p: &Platform) -> i64 {
    let mut rows = outbox_rows(p).await;
    for _ in 0..300 {
        if rows == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
        rows = outbox_rows(p).await;
    }
    rows
}

async fn wait_for(seen: &Seen, n: usize, what: &str) -> Vec<Event> {
    for _ in 0..300 {
        if seen.lock().unwrap().len() >= n {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let got = seen.lock().unwrap().clone();
    assert!(got.len() >= n, "{what}: {} of {n} events", got.len());
    got
}

async fn outbox_rows(p: &Platform) -> i64 {
    let q = Sql::literal(p.db().backend(), "SELECT COUNT(*) FROM platform_outbox");
    p.db().fetch_all(q, &[FieldType::I64]).await.unwrap()[0][0]
        .as_i64()
        .unwrap()
}

#[tokio::test]
async fn committed_changes_reach_subscribers_rolled_back_ones_never() {
    for db in all_backends().await {
        let backend = db.backend.name();
        db.create_tables(&registry()).await;
        let p = builder(&db).build().await.unwrap();
        let seen = Seen::default();
        p.outbox()
            .subscribe_to::<Invoice>("recorder", recorder(&seen));
        let customers = Seen::default();
        p.outbox()
            .subscribe_to::<Customer>("customers", recorder(&customers));
        let ctx = Context::system().with_request_id("req-1").with_tag("test");
        let c = p
            .repo::<Customer>(&ctx)
            .create(&customer("Ada", "ada@example.com", "DE"))
            .await
            .unwrap();
        let mut inv = invoice(c.id, 1, "draft", 1000);
        inv.iban = Some("DE89370400440532013000".into());
        let inv = p.repo::<Invoice>(&ctx).create(&inv).await.unwrap();
        let records = p.records("invoices", &ctx).unwrap();
        records
            .update(
                Value::Int(inv.id),
                Changes::new()
                    .set("status", "paid")
                    .set("amount_cents", 2500_i64),
            )
            .await
            .unwrap();
        // Rolled back: a duplicate number fails at the database.
        let dup = invoice(c.id, 1, "draft", 1);
        assert!(p.repo::<Invoice>(&ctx).create(&dup).await.is_err());
        // Refused before any transaction.
        assert!(
            records
                .update(Value::Int(inv.id), Changes::new().set("status", "bogus"))
                .await
                .is_err()
        );
        records.delete(Value::Int(inv.id)).await.unwrap();

        let got = wait_for(&seen, 3, backend).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        let got_now = seen.lock().unwrap().clone();
        assert_eq!(
            got_now.len(),
            3,
            "{backend}: nothing for the failures: {got:?}"
        );
        let events: Vec<&str> = got.iter().map(|e| e.event.as_str()).collect();
        let mut sorted = events.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, ["created", "deleted", "updated"], "{backend}");
        let created = got.iter().find(|e| e.event == "created").unwrap();
        assert!(created.is::<Invoice>());
        assert_eq!(created.record_id, inv.id.to_string());
        assert_eq!(
            created.new_value::<String>("number").as_deref(),
            Some("INV-000001")
        );
        assert_eq!(
            created.new_value::<String>("iban").as_deref(),
            Some(platform_core::audit::REDACTED),
            "{backend}: encrypted values are redacted as in the audit"
        );
        assert!(
            !created.changed("updated_at"),
            "{backend}: not audited, not sent"
        );
        assert_eq!(created.actor.kind, "system");
        assert_eq!(created.request_id.as_deref(), Some("req-1"));
        assert_eq!(created.tags, ["test"]);
        assert_eq!(created.attempt, 1);
        let updated = got.iter().find(|e| e.event == "updated").unwrap();
        assert_eq!(
            updated.old_value::<String>("status").as_deref(),
            Some("draft")
        );
        assert_eq!(
            updated.new_value::<String>("status").as_deref(),
            Some("paid")
        );
        assert_eq!(updated.new_value::<i64>("amount_cents"), Some(2500));
        assert!(!updated.changed("number"), "{backend}: only what changed");
        // Ids are unique, and the customers' subscriber got only its own.
        let mut ids: Vec<&str> = got.iter().map(|e| e.id.as_str()).collect();
        ids.dedup();
        assert_eq!(ids.len(), 3);
        let cs = wait_for(&customers, 1, backend).await;
        assert_eq!(cs.len(), 1, "{backend}");
        assert!(cs[0].is::<Customer>());
        // Delivered rows are deleted.
        assert_eq!(drained(&p).await, 0, "{backend}");
        assert_eq!(p.outbox().counts(p.db()).await.unwrap(), (0, 0));
        p.shutdown().await;
    }
}

#[tokio::test]
async fn a_failing_subscriber_is_retried_without_holding_anything_up() {
    for db in all_backends().await {
        let backend = db.backend.name();
        db.create_tables(&registry()).await;
        let p = builder(&db).build().await.unwrap();
        let good = Seen::default();
        p.outbox().subscribe_to::<Customer>("good", recorder(&good));
        let tries = Seen::default();
        let t = tries.clone();
        p.outbox()
            .subscribe_to::<Customer>("flaky", move |e: Event| {
                let t = t.clone();
                async move {
                    let n = {
                        let mut t = t.lock().unwrap();
                        t.push(e);
                        t.len()
                    };
                    if n < 3 {
                        Err(format!("down (try {n})").into())
                    } else {
                        Ok(())
                    }
                }
            });
        let started = std::time::Instant::now();
        p.repo::<Customer>(&Context::system())
            .create(&customer("Bob", "bob@example.com", "FR"))
            .await
            .unwrap();
        assert!(
            started.elapsed() < Duration::from_millis(500),
            "{backend}: the write does not wait for subscribers"
        );
        wait_for(&good, 1, backend).await;
        // Retries: after 1 s, then 2 s.
        let attempts = {
            let mut got = Vec::new();
            for _ in 0..80 {
                got = tries.lock().unwrap().clone();
                if got.len() >= 3 {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            got
        };
        assert_eq!(attempts.len(), 3, "{backend}");
        assert_eq!(
            attempts.iter().map(|e| e.attempt).collect::<Vec<_>>(),
            [1, 2, 3],
            "{backend}"
        );
        assert!(attempts.iter().all(|e| e.id == attempts[0].id));
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(
            good.lock().unwrap().len(),
            1,
            "{backend}: the good one got it once"
        );
        assert_eq!(
            p.outbox().counts(p.db()).await.unwrap(),
            (0, 0),
            "{backend}"
        );

        // A subscriber that never succeeds ends failed with its error
        // (the attempts before the last are skipped here).
        p.outbox()
            .subscribe_to::<Customer>("poison", |_e: Event| async {
                Err::<(), _>("always broken".into())
            });
        p.repo::<Customer>(&Context::system())
            .create(&customer("Eve", "eve@example.com", "FR"))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
        let skip = Sql::literal(
            db.backend,
            "UPDATE platform_outbox SET attempts = 9 WHERE dispatched_at IS NULL",
        );
        p.db().execute(skip).await.unwrap();
        let q = Sql::literal(
            db.backend,
            "SELECT last_error FROM platform_outbox WHERE failed_at IS NOT NULL",
        );
        let mut failed = Vec::new();
        for _ in 0..100 {
            failed = p
                .db()
                .fetch_all(q.clone(), &[FieldType::Text])
                .await
                .unwrap();
            if !failed.is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(failed.len(), 1, "{backend}");
        let error = failed[0][0].as_str().unwrap().to_owned();
        assert!(
            error.contains("poison: always broken"),
            "{backend}: {error}"
        );
        assert!(!error.contains("good"), "{backend}: {error}");
        assert_eq!(
            p.outbox().counts(p.db()).await.unwrap(),
            (0, 1),
            "{backend}"
        );
        p.shutdown().await;
    }
}

/// Subscribes its recorder when the platform starts (before any task).
struct RecorderCapability(Seen);

impl Capability for RecorderCapability {
    fn name(&self) -> &'static str {
        "recorder"
    }
    fn setup(&self, setup: &mut Setup) {
        let seen = self.0.clone();
        setup.on_start(move |p: Platform| {
            p.outbox()
                .subscribe_to::<Customer>("recorder", recorder(&seen));
            async { Ok(()) }
        });
    }
}

#[tokio::test]
async fn an_event_committed_by_a_process_that_died_is_delivered_by_the_next() {
    for db in all_backends().await {
        let backend = db.backend.name();
        db.create_tables(&registry()).await;
        // The first process commits, and dies before its dispatcher runs
        // (it has none: no background tasks).
        let first = Seen::default();
        let a = builder(&db)
            .background_tasks(false)
            .with(RecorderCapability(first.clone()))
            .build()
            .await
            .unwrap();
        let created = a
            .repo::<Customer>(&Context::system())
            .create(&customer("Cy", "cy@example.com", "IT"))
            .await
            .unwrap();
        assert_eq!(outbox_rows(&a).await, 1, "{backend}");
        drop(a);
        assert!(first.lock().unwrap().is_empty());
        // The next process delivers it, once.
        let seen = Seen::default();
        let b = builder(&db)
            .with(RecorderCapability(seen.clone()))
            .build()
            .await
            .unwrap();
        let got = wait_for(&seen, 1, backend).await;
        assert_eq!(got[0].record_id, created.id.to_string(), "{backend}");
        assert_eq!(got[0].attempt, 1, "{backend}");
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert_eq!(seen.lock().unwrap().len(), 1, "{backend}: delivered once");
        b.shutdown().await;
    }
}

#[tokio::test]
async fn a_resource_nothing_subscribes_to_writes_no_outbox_row() {
    let db = TestDb::sqlite();
    db.create_tables(&registry()).await;
    // No redelivery by the sweep while the gate is closed.
    let p = builder(&db)
        .outbox_retry_after(Duration::from_secs(60))
        .build()
        .await
        .unwrap();
    let seen = Seen::default();
    let (gate, subscriber) = gated_recorder(&seen);
    p.outbox()
        .subscribe_to::<Customer>("customers-only", subscriber);
    let ctx = Context::system();
    let c = p
        .repo::<Customer>(&ctx)
        .create(&customer("Di", "di@example.com", "ES"))
        .await
        .unwrap();
    p.repo::<Invoice>(&ctx)
        .create(&invoice(c.id, 2, "draft", 10))
        .await
        .unwrap();
    assert_eq!(outbox_rows(&p).await, 1, "only the customer's change");
    gate.send(true).unwrap();
    wait_for(&seen, 1, "sqlite").await;
    assert_eq!(drained(&p).await, 0, "delivered, deleted");
    p.shutdown().await;
}

/// Updates that set the status to `sent`.
fn set_to_sent(e: &Event) -> bool {
    e.event == "updated" && e.new_value::<String>("status").as_deref() == Some("sent")
}

#[tokio::test]
async fn a_filtered_subscription_stores_only_the_events_it_wants() {
    for db in all_backends().await {
        let backend = db.backend.name();
        db.create_tables(&registry()).await;
        // Deliveries wait for the gates, with no redelivery by the sweep
        // meanwhile: the rows counted are those stored.
        let p = builder(&db)
            .outbox_retry_after(Duration::from_secs(60))
            .build()
            .await
            .unwrap();
        let sent = Seen::default();
        let (sent_gate, sent_only) = gated_recorder(&sent);
        p.outbox()
            .subscribe_to_where::<Invoice>("sent-only", set_to_sent, sent_only);
        let ctx = Context::system();
        let c = p
            .repo::<Customer>(&ctx)
            .create(&customer("Flo", "flo@example.com", "FR"))
            .await
            .unwrap();
        let invoices = p.repo::<Invoice>(&ctx);
        // Creates (even of a sent invoice) and other changes: no row.
        let a = invoices
            .create(&invoice(c.id, 1, "draft", 10))
            .await
            .unwrap();
        invoices
            .create(&invoice(c.id, 2, "sent", 10))
            .await
            .unwrap();
        invoices
            .update_fields(a.id, Changes::new().set("amount_cents", 20_i64))
            .await
            .unwrap();
        assert_eq!(outbox_rows(&p).await, 0, "{backend}: nothing wanted");
        // The status set to sent: one row.
        invoices
            .update_fields(a.id, Changes::new().set("status", "sent"))
            .await
            .unwrap();
        assert_eq!(outbox_rows(&p).await, 1, "{backend}");
        sent_gate.send(true).unwrap();
        let got = wait_for(&sent, 1, backend).await;
        assert_eq!(got[0].record_id, a.id.to_string(), "{backend}");
        assert_eq!(
            got[0].old_value::<String>("status").as_deref(),
            Some("draft")
        );
        assert_eq!(drained(&p).await, 0, "{backend}: delivered, deleted");
        // An unfiltered subscriber next to it: every change is stored, and
        // each event goes only to the subscribers that want it.
        let all = Seen::default();
        let (all_gate, everything) = gated_recorder(&all);
        p.outbox().subscribe_to::<Invoice>("everything", everything);
        invoices
            .update_fields(a.id, Changes::new().set("status", "paid"))
            .await
            .unwrap();
        invoices
            .update_fields(a.id, Changes::new().set("status", "sent"))
            .await
            .unwrap();
        // The first row is delivered and deleted; the next two wait for
        // `everything`.
        assert_eq!(outbox_rows(&p).await, 2, "{backend}");
        all_gate.send(true).unwrap();
        wait_for(&all, 2, backend).await;
        let got = wait_for(&sent, 2, backend).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(
            sent.lock().unwrap().len(),
            2,
            "{backend}: paid is not for sent-only"
        );
        assert_eq!(
            got[1].new_value::<String>("status").as_deref(),
            Some("sent")
        );
        assert_eq!(drained(&p).await, 0, "{backend}");
        p.shutdown().await;
    }
}
