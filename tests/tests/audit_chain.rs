//! The tamper-evident audit chain: concurrent writers from many connections
//! and many processes, tampering of every kind, pruning with a checkpoint.

use platform_core::Platform;
use platform_core::context::Context;
use platform_core::db::Sql;
use platform_core::repo::Changes;
use platform_tests::domain::{Customer, Invoice, customer, invoice, registry};
use platform_tests::{TestDb, all_backends};

async fn exec(p: &Platform, sql: &'static str) {
    p.db()
        .execute(Sql::literal(p.db().backend(), sql))
        .await
        .unwrap();
}

async fn count(p: &Platform, sql: &'static str) -> i64 {
    p.db()
        .fetch_i64(Sql::literal(p.db().backend(), sql))
        .await
        .unwrap()
        .unwrap_or(0)
}

async fn seed(db: &TestDb) -> (Platform, i64) {
    let p = db.platform(registry()).await;
    let c = p
        .repo::<Customer>(&Context::system())
        .create(&customer("Grace", "grace@example.com", "US"))
        .await
        .unwrap();
    (p, c.id)
}

#[tokio::test]
async fn concurrent_writers_on_many_connections_form_one_valid_chain() {
    for db in all_backends().await {
        let backend = db.backend.name();
        let (p, cid) = seed(&db).await;
        // Eight writers, each with its own pool, sealing in the background
        // while they write.
        let mut handles = Vec::new();
        for w in 0..8_u32 {
            let url = db.url.clone();
            handles.push(tokio::spawn(async move {
                let p = Platform::builder()
                    .ignore_env()
                    .database_url(url)
                    .app_key(platform_tests::test_key())
                    .registry(registry())
                    .max_connections(2)
                    .build()
                    .await
                    .unwrap();
                let ctx = Context::job(format!("w{w}"));
                let repo = p.repo::<Invoice>(&ctx);
                for i in 0..15_u32 {
                    let inv = repo
                        .create(&invoice(cid, w * 1000 + i, "draft", 1))
                        .await
                        .unwrap();
                    repo.update_fields(inv.id, Changes::new().set("amount_cents", 2_i64))
                        .await
                        .unwrap();
                }
                p.shutdown().await;
            }));
        }
        for h in handles {
            h.await.unwrap();
        }
        let report = p.audit().verify().await.unwrap();
        assert!(report.is_ok(), "{backend}: {report:?}");
        assert_eq!(report.checked, 1 + 8 * 15 * 2, "{backend}");
        assert_eq!(report.unsealed, 0);
        assert_eq!(
            count(&p, "SELECT COUNT(*) FROM platform_audit_pending").await,
            0
        );
        assert_eq!(
            count(&p, "SELECT COUNT(*) FROM platform_audit_seals").await,
            count(&p, "SELECT COUNT(*) FROM platform_audits").await,
            "{backend}: every entry has its seal"
        );
    }
}

#[tokio::test]
async fn several_processes_writing_at_once_keep_the_chain_valid() {
    for db in all_backends().await {
        let backend = db.backend.name();
        let (p, cid) = seed(&db).await;
        let exe = env!("CARGO_BIN_EXE_audit_writer");
        let children: Vec<_> = (1..=4)
            .map(|tag| {
                std::process::Command::new(exe)
                    .args([db.url.as_str(), &cid.to_string(), "20", &tag.to_string()])
                    .spawn()
                    .expect("spawn writer")
            })
            .collect();
        for mut c in children {
            let status = tokio::task::spawn_blocking(move || c.wait())
                .await
                .unwrap()
                .unwrap();
            assert!(status.success(), "{backend}: writer failed");
        }
        let report = p.audit().verify().await.unwrap();
        assert!(report.is_ok(), "{backend}: {report:?}");
        assert_eq!(report.checked, 1 + 4 * 20 * 2, "{backend}");
    }
}

#[tokio::test]
async fn verify_names_the_first_tampered_entry() {
    for db in all_backends().await {
        let backend = db.backend.name();
        let (p, cid) = seed(&db).await;
        let repo = p.repo::<Invoice>(&Context::system());
        for n in 1..=5 {
            repo.create(&invoice(cid, n, "draft", 1)).await.unwrap();
        }
        assert!(p.audit().verify().await.unwrap().is_ok());

        // Altered content.
        exec(&p, "UPDATE platform_audits SET new_values = REPLACE(new_values, 'draft', 'paid') WHERE id = (SELECT audit_id FROM platform_audit_seals WHERE seq = 3)").await;
        let r = p.audit().verify().await.unwrap();
        let b = r.broken.expect("altered entry found");
        assert_eq!(b.seq, 3, "{backend}: {b:?}");
        assert!(b.reason.contains("altered"), "{b:?}");
        exec(&p, "UPDATE platform_audits SET new_values = REPLACE(new_values, 'paid', 'draft') WHERE id = (SELECT audit_id FROM platform_audit_seals WHERE seq = 3)").await;
        assert!(
            p.audit().verify().await.unwrap().is_ok(),
            "{backend}: restoring the text restores the chain"
        );

        // Altered actor.
        exec(
            &p,
            "UPDATE platform_audits SET actor_type = 'user' WHERE id = (SELECT audit_id FROM platform_audit_seals WHERE seq = 2)",
        )
        .await;
        assert_eq!(
            p.audit().verify().await.unwrap().broken.map(|b| b.seq),
            Some(2)
        );
        exec(
            &p,
            "UPDATE platform_audits SET actor_type = 'system' WHERE id = (SELECT audit_id FROM platform_audit_seals WHERE seq = 2)",
        )
        .await;

        // A deleted entry in the middle.
        exec(&p, "DELETE FROM platform_audits WHERE id = (SELECT audit_id FROM platform_audit_seals WHERE seq = 4)").await;
        let b = p.audit().verify().await.unwrap().broken.expect("gap found");
        assert_eq!(b.seq, 5, "{backend}: {b:?}");
        assert!(b.reason.contains("missing"), "{b:?}");

        // Entries deleted from the end (after repairing nothing): the signed head disagrees.
        let db2 = TestDb::sqlite();
        let (p2, cid2) = seed(&db2).await;
        let repo2 = p2.repo::<Invoice>(&Context::system());
        for n in 1..=3 {
            repo2.create(&invoice(cid2, n, "draft", 1)).await.unwrap();
        }
        assert!(p2.audit().verify().await.unwrap().is_ok());
        exec(&p2, "DELETE FROM platform_audits WHERE id = (SELECT audit_id FROM platform_audit_seals WHERE seq = 4)").await;
        exec(&p2, "DELETE FROM platform_audit_seals WHERE seq = 4").await;
        let b = p2
            .audit()
            .verify()
            .await
            .unwrap()
            .broken
            .expect("truncation found");
        assert!(b.reason.contains("signed head"), "{b:?}");
        // A forged head (moved back without the key) is caught too.
        exec(&p2, "UPDATE platform_audit_chain SET seq = 3").await;
        let b = p2
            .audit()
            .verify()
            .await
            .unwrap()
            .broken
            .expect("forged head found");
        assert!(b.reason.contains("signature"), "{b:?}");
    }
}

#[tokio::test]
async fn pruning_keeps_the_rest_verifiable() {
    for db in all_backends().await {
        let backend = db.backend.name();
        let (p, cid) = seed(&db).await;
        let repo = p.repo::<Invoice>(&Context::system());
        // The customer and the first five invoices are older than the
        // cutoff. (Entries cannot be back-dated: each carries a MAC over
        // its content, so an edited `created_at` is refused as forged.)
        for n in 1..=5 {
            repo.create(&invoice(cid, n, "draft", 1)).await.unwrap();
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        let cutoff = chrono::Utc::now();
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        for n in 6..=10 {
            repo.create(&invoice(cid, n, "draft", 1)).await.unwrap();
        }
        p.audit().seal().await.unwrap();
        assert!(p.audit().verify().await.unwrap().is_ok(), "{backend}");
        let pruned = p.audit().prune(cutoff).await.unwrap();
        assert_eq!(pruned, 6, "{backend}");
        let r = p.audit().verify().await.unwrap();
        assert!(r.is_ok(), "{backend}: {r:?}");
        assert_eq!(r.checked, 5);
        // New entries continue the chain after the checkpoint.
        repo.create(&invoice(cid, 99, "draft", 1)).await.unwrap();
        assert!(p.audit().verify().await.unwrap().is_ok());
        // A forged checkpoint is caught.
        exec(&p, "UPDATE platform_audit_checkpoints SET pruned = 1").await;
        let b = p
            .audit()
            .verify()
            .await
            .unwrap()
            .broken
            .expect("forged checkpoint");
        assert!(b.reason.contains("checkpoint"), "{b:?}");
    }
}

#[tokio::test]
async fn parallel_verification_checks_the_links_between_ranges() {
    for db in all_backends().await {
        let backend = db.backend.name();
        let (p, cid) = seed(&db).await;
        let repo = p.repo::<Invoice>(&Context::system());
        let _ = repo
            .create_many(
                &(1..=40)
                    .map(|n| invoice(cid, n, "draft", 1))
                    .collect::<Vec<_>>(),
            )
            .await
            .unwrap();
        for parts in [1, 2, 4, 7] {
            let r = p.audit().verify_in_parts(Some(parts)).await.unwrap();
            assert!(r.is_ok(), "{backend} {parts}: {r:?}");
            assert_eq!(r.checked, 41, "{backend} {parts}");
        }
        // Swap the links of two entries that sit at a range boundary (seq 11
        // starts the second of four ranges): only the cross-range check sees it.
        exec(&p, "UPDATE platform_audit_seals SET prev_hash = '0000000000000000000000000000000000000000000000000000000000000000' WHERE seq = 11").await;
        for parts in [1, 4] {
            let b = p.audit().verify_in_parts(Some(parts)).await.unwrap().broken;
            assert_eq!(
                b.as_ref().map(|b| b.seq),
                Some(11),
                "{backend} {parts}: {b:?}"
            );
        }
        // A gap at the end of a middle range.
        exec(&p, "DELETE FROM platform_audits WHERE id = (SELECT audit_id FROM platform_audit_seals WHERE seq = 20)").await;
        let b = p
            .audit()
            .verify_in_parts(Some(4))
            .await
            .unwrap()
            .broken
            .unwrap();
        assert!(b.seq <= 20, "{backend}: {b:?}");
    }
}

/// A row inserted straight into `platform_audits` (the shape of a genuine
/// entry, queued for the sealer in `platform_audit_pending`) is not
/// chained: the sealer refuses it for want of a valid MAC and
/// `audit:verify` names it. A row inserted without being queued never
/// meets the sealer: `audit:verify` finds it, refuses it and names it. A copy
/// of a genuine row (with its MAC) cannot be inserted at all. A chain
/// signed with a key that is not configured is reported as that.
#[tokio::test]
async fn rows_inserted_around_the_platform_are_refused() {
    for db in all_backends().await {
        let backend = db.backend.name();
        let (p, cid) = seed(&db).await;
        let repo = p.repo::<Invoice>(&Context::system());
        let inv = repo.create(&invoice(cid, 1, "draft", 1)).await.unwrap();
        p.audit().seal().await.unwrap();
        let now = match p.db().backend() {
            platform_core::db::Backend::MySql => "NOW(6)",
            platform_core::db::Backend::Postgres => "NOW()",
            platform_core::db::Backend::Sqlite => "'2026-01-01T00:00:00.000000Z'",
        };
        let forged = format!(
            "INSERT INTO platform_audits (event, resource, record_id, old_values, new_values, actor_type, actor_id, actor_label, created_at) \
             VALUES ('updated', 'invoice', '{}', '{{\"status\":\"draft\"}}', '{{\"status\":\"paid\"}}', 'user', 1, 'boss@example.com', {now})",
            inv.id
        );
        p.db().execute_script(&forged).await.unwrap();
        // With a MAC that is not one, in the platform's key's name.
        let with_mac = |mac: String| {
            forged
                .replace("created_at)", "created_at, mac)")
                .replace(&format!("{now})"), &format!("{now}, '{mac}')"))
        };
        let kid = platform_tests::test_key().id();
        p.db()
            .execute_script(&with_mac(format!("abcd:{kid}:{}", "0".repeat(64))))
            .await
            .unwrap();
        let forged_ids: Vec<i64> = p
            .db()
            .fetch_all(
                Sql::literal(
                    p.db().backend(),
                    "SELECT id FROM platform_audits WHERE actor_label = 'boss@example.com' ORDER BY id",
                ),
                &[platform_core::value::FieldType::I64],
            )
            .await
            .unwrap()
            .into_iter()
            .map(|r| r[0].as_i64().unwrap())
            .collect();
        assert_eq!(forged_ids.len(), 2, "{backend}");

        // One in the name of a key nobody configured: not sealed, and it
        // does not stop the sealer either.
        p.db()
            .execute_script(
                &with_mac(format!("abce:0badc0de:{}", "0".repeat(64))).replace("boss@", "other@"),
            )
            .await
            .unwrap();
        // Queued for the sealer, as the platform queues its own entries.
        p.db()
            .execute_script(
                "INSERT INTO platform_audit_pending (audit_id) SELECT id FROM platform_audits WHERE actor_label IN ('boss@example.com', 'other@example.com')",
            )
            .await
            .unwrap();
        // And one not queued at all.
        p.db()
            .execute_script(&forged.replace("boss@", "stray@"))
            .await
            .unwrap();
        let stray = count(
            &p,
            "SELECT MAX(id) FROM platform_audits WHERE actor_label = 'stray@example.com'",
        )
        .await;
        let sealed = p.audit().seal().await.unwrap();
        assert_eq!(sealed, 0, "{backend}: forged rows were sealed");
        assert_eq!(
            count(
                &p,
                "SELECT COUNT(*) FROM platform_audits WHERE rejected_at IS NOT NULL"
            )
            .await,
            2,
            "{backend}: the sealer refused the queued forged rows"
        );
        // The platform's own writes go on being sealed past them.
        repo.create(&invoice(cid, 2, "draft", 1)).await.unwrap();
        assert_eq!(p.audit().seal().await.unwrap(), 1, "{backend}");
        let r = p.audit().verify().await.unwrap();
        assert!(r.broken.is_none(), "{backend}: {r:?}");
        let mut expected = forged_ids.clone();
        expected.push(stray);
        assert_eq!(r.rejected, expected, "{backend}: reported by id");
        assert_eq!(
            count(&p, "SELECT COUNT(*) FROM platform_audit_seals WHERE audit_id IN (SELECT id FROM platform_audits WHERE rejected_at IS NOT NULL)").await,
            0,
            "{backend}: no refused row is chained"
        );
        assert!(!r.is_ok(), "{backend}: forged rows make the report fail");
        assert_eq!(r.unsealed, 1, "{backend}: the unknown key's row waits");

        // A copy of a genuine entry, MAC and all, is refused by the database.
        let copy = "INSERT INTO platform_audits (event, resource, record_id, old_values, new_values, actor_type, actor_id, actor_label, ip, user_agent, url, request_id, tags, created_at, mac) \
             SELECT event, resource, record_id, old_values, new_values, actor_type, actor_id, actor_label, ip, user_agent, url, request_id, tags, created_at, mac FROM platform_audits WHERE id = (SELECT audit_id FROM platform_audit_seals WHERE seq = 1)";
        assert!(
            p.db().execute_script(copy).await.is_err(),
            "{backend}: a replayed entry was accepted"
        );

        // A sealed entry whose MAC is removed (the chain re-hashed around it
        // by someone without the key cannot sign the head; here only the
        // MAC goes) is named by verify.
        exec(&p, "UPDATE platform_audits SET mac = NULL WHERE id = (SELECT audit_id FROM platform_audit_seals WHERE seq = 2)").await;
        let b = p
            .audit()
            .verify()
            .await
            .unwrap()
            .broken
            .expect("missing MAC found");
        assert_eq!(b.seq, 2, "{backend}: {b:?}");
        assert!(b.reason.contains("MAC"), "{backend}: {b:?}");
        p.shutdown().await;
    }
}

#[tokio::test]
async fn a_chain_signed_with_an_unconfigured_key_is_reported_as_such() {
    let db = TestDb::sqlite();
    let (p, cid) = seed(&db).await;
    p.audit().seal().await.unwrap();
    p.shutdown().await;
    // Another key writes and seals on the same database.
    let other = platform_core::crypto::AppKey::generate();
    let p2 = Platform::builder()
        .ignore_env()
        .database_url(db.url.clone())
        .app_key(other.clone())
        .registry(registry())
        .background_tasks(false)
        .build()
        .await
        .unwrap();
    let err = p2.audit().seal().await.unwrap_err().to_string();
    assert!(
        err.contains(&format!(
            "signed with key id {}",
            platform_tests::test_key().id()
        )) && err.contains("not configured"),
        "{err}"
    );
    // Given the first key as a previous key, it seals its own entries.
    p2.shutdown().await;
    let p2 = Platform::builder()
        .ignore_env()
        .database_url(db.url.clone())
        .app_key(other.clone())
        .previous_keys(vec![platform_tests::test_key()])
        .registry(registry())
        .background_tasks(false)
        .build()
        .await
        .unwrap();
    p2.repo::<Invoice>(&Context::system())
        .create(&invoice(cid, 7, "draft", 1))
        .await
        .unwrap();
    assert!(p2.audit().verify().await.unwrap().is_ok());
    p2.shutdown().await;
    // Back to the first key alone: the head is signed by a key it lacks.
    let p1 = Platform::builder()
        .ignore_env()
        .database_url(db.url.clone())
        .app_key(platform_tests::test_key())
        .registry(registry())
        .background_tasks(false)
        .build()
        .await
        .unwrap();
    let r = p1.audit().verify().await.unwrap();
    let b = r.broken.expect("unknown key found");
    assert!(
        b.reason.contains(&format!(
            "signed with key id {}, which is not configured",
            other.id()
        )),
        "{b:?}"
    );
    assert!(!b.reason.contains("altered"), "{b:?}");
    p1.shutdown().await;
}
