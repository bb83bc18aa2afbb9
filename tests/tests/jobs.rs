//! Jobs on every queue back end: the main SQLite and PostgreSQL databases,
//! Redis (when `PLATFORM_TEST_REDIS_URL` is set; MariaDB deployments put
//! their jobs there, or in a separate SQLite file when it is not set).
//! Dispatch runs once; retries back off and end failed with their error; a
//! payload that no longer decodes and an unknown job fail at once; delays,
//! unique keys, timeouts, graceful shutdown, a worker killed mid-job; the
//! dashboard's figures, actions and commands.

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use http_body_util::BodyExt;
use platform_core::Platform;
use platform_core::context::Context;
use platform_core::db::{Backend, Sql};
use platform_core::platform::PlatformBuilder;
use platform_core::resource::Registry;
use platform_core::value::FieldType;
use platform_jobs::{Dispatched, Job, JobContext, JobError, Jobs, Options, job, register_job};
use platform_tests::queues::{Case, cases_and_sqlite_on_redis, failed_job, jobs};
use platform_tests::{TestDb, tag, test_key, wait_until};
use serde::{Deserialize, Serialize};
use tower::ServiceExt;

static EVENTS: LazyLock<Mutex<HashMap<String, u32>>> = LazyLock::new(Mutex::default);

fn bump(key: String) -> u32 {
    let mut m = EVENTS.lock().unwrap();
    let n = m.entry(key).or_default();
    *n += 1;
    *n
}

fn count(key: &str) -> u32 {
    EVENTS.lock().unwrap().get(key).copied().unwrap_or(0)
}

/// Counts its runs.
#[derive(Serialize, Deserialize)]
struct Count {
    tag: String,
    #[serde(default)]
    email: Option<String>,
}
impl Job for Count {
    const NAME: &'static str = "test_count";
    async fn handle(self, _cx: &JobContext) -> Result<(), JobError> {
        bump(self.tag);
        Ok(())
    }
}
register_job!(Count);

/// Fails its first `fail_times` runs.
#[derive(Serialize, Deserialize)]
struct Flaky {
    tag: String,
    fail_times: u32,
    secret: String,
}
impl Job for Flaky {
    const NAME: &'static str = "test_flaky";
    const BACKOFF: Duration = Duration::from_millis(500);
    const MAX_ATTEMPTS: u32 = 3;
    async fn handle(self, cx: &JobContext) -> Result<(), JobError> {
        let n = bump(self.tag.clone());
        if n <= self.fail_times {
            return Err(JobError::new(format!("boom (attempt {})", cx.attempt())));
        }
        bump(format!("{}:ok", self.tag));
        Ok(())
    }
}
register_job!(Flaky);

/// Sleeps; times out after a second.
#[derive(Serialize, Deserialize)]
struct Sleepy {
    tag: String,
    ms: u64,
}
impl Job for Sleepy {
    const NAME: &'static str = "test_sleepy";
    const MAX_ATTEMPTS: u32 = 1;
    const TIMEOUT: Duration = Duration::from_secs(2);
    async fn handle(self, _cx: &JobContext) -> Result<(), JobError> {
        bump(format!("{}:start", self.tag));
        tokio::time::sleep(Duration::from_millis(self.ms)).await;
        bump(format!("{}:end", self.tag));
        Ok(())
    }
}
register_job!(Sleepy);

/// Checks that it acts for its dispatcher, with their permissions now.
#[derive(Serialize, Deserialize)]
struct AsUser {
    tag: String,
}
impl Job for AsUser {
    const NAME: &'static str = "test_as_user";
    const MAX_ATTEMPTS: u32 = 1;
    async fn handle(self, cx: &JobContext) -> Result<(), JobError> {
        cx.context().authorize("view_jobs")?;
        bump(format!(
            "{}:{}",
            self.tag,
            cx.actor().map_or(0, |a| a.user_id)
        ));
        Ok(())
    }
}
register_job!(AsUser);

/// The type `test_shape` has today.
#[derive(Serialize, Deserialize)]
struct Shape {
    n: u32,
}
impl Job for Shape {
    const NAME: &'static str = "test_shape";
    async fn handle(self, _cx: &JobContext) -> Result<(), JobError> {
        Ok(())
    }
}
register_job!(Shape);

/// The shape `test_shape` had before a deploy (not registered).
#[derive(Serialize, Deserialize)]
struct ShapeBefore {
    n: String,
}
impl Job for ShapeBefore {
    const NAME: &'static str = "test_shape";
    async fn handle(self, _cx: &JobContext) -> Result<(), JobError> {
        Ok(())
    }
}

/// A job no binary knows (not registered).
#[derive(Serialize, Deserialize)]
struct Ghost;
impl Job for Ghost {
    const NAME: &'static str = "test_ghost";
    async fn handle(self, _cx: &JobContext) -> Result<(), JobError> {
        Ok(())
    }
}

/// Declared with `#[job]`: named after its type, registered without a
/// `register_job!`. Fails while its attempt is at most `fail_times`.
#[derive(Serialize, Deserialize)]
struct MacroDeclared {
    tag: String,
    fail_times: u32,
}
#[job(
    queue = "critical",
    max_attempts = 2,
    timeout = "5s",
    backoff = "200ms"
)]
impl Job for MacroDeclared {
    async fn handle(self, cx: &JobContext) -> Result<(), JobError> {
        bump(format!("{}:{}", self.tag, cx.queue()));
        if cx.attempt() <= self.fail_times {
            return Err(JobError::new(format!("attempt {}", cx.attempt())));
        }
        bump(format!("{}:ok", self.tag));
        Ok(())
    }
}

fn builder(case: &Case, jobs: Jobs) -> PlatformBuilder {
    Platform::builder()
        .ignore_env()
        .database_url(&case.db.url)
        .app_key(test_key())
        .registry(Registry::default())
        .max_connections(8)
        .shutdown_grace(Duration::from_secs(10))
        .with(jobs)
}

#[tokio::test]
async fn jobs_run_retry_fail_and_show_on_the_dashboard() {
    for case in cases_and_sqlite_on_redis().await {
        let label = case.label.clone();
        let ns = tag();
        let p = builder(&case, jobs(&case, &ns))
            .build()
            .await
            .unwrap_or_else(|e| panic!("{label}: {e}"));
        let j = p.get::<Jobs>().expect("the service");
        assert_eq!(p.start_workers(), 1, "{label}");

        // Runs once.
        let a = tag();
        j.dispatch(Count {
            tag: a.clone(),
            email: Some("x@example.com".into()),
        })
        .await
        .unwrap();
        wait_until("a run", Duration::from_secs(10), || count(&a) == 1).await;

        // Retried with backoff, then succeeds.
        let b = tag();
        let t0 = Instant::now();
        j.dispatch(Flaky {
            tag: b.clone(),
            fail_times: 2,
            secret: "s3cr3t".into(),
        })
        .await
        .unwrap();
        wait_until("the retried job", Duration::from_secs(15), || {
            count(&format!("{b}:ok")) == 1
        })
        .await;
        assert_eq!(count(&b), 3, "{label}: three attempts");
        assert!(
            t0.elapsed() >= Duration::from_millis(1400),
            "{label}: backoff 0.5 s + 1 s"
        );

        // A poison job: max attempts, then failed with its error; no more runs.
        let c = tag();
        let poison = j
            .dispatch(Flaky {
                tag: c.clone(),
                fail_times: 100,
                secret: "s3cr3t".into(),
            })
            .await
            .unwrap();
        let f = failed_job(&j, poison.id().unwrap(), Duration::from_secs(15)).await;
        assert_eq!(f.error, "boom (attempt 3)", "{label}");
        assert_eq!(f.attempts, 3, "{label}");
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert_eq!(
            count(&c),
            3,
            "{label}: a poison job is not retried past its maximum"
        );

        // A payload that no longer decodes, an unknown job: failed at once.
        let old = j.dispatch(ShapeBefore { n: "seven".into() }).await.unwrap();
        let f = failed_job(&j, old.id().unwrap(), Duration::from_secs(10)).await;
        assert!(
            f.error.contains("no longer deserialises"),
            "{label}: {}",
            f.error
        );
        assert_eq!(f.attempts, 1, "{label}");
        let ghost = j.dispatch(Ghost).await.unwrap();
        let f = failed_job(&j, ghost.id().unwrap(), Duration::from_secs(10)).await;
        assert!(
            f.error.contains("unknown job `test_ghost`"),
            "{label}: {}",
            f.error
        );

        // A timeout.
        let s = tag();
        let slow = j
            .dispatch(Sleepy {
                tag: s.clone(),
                ms: 10_000,
            })
            .await
            .unwrap();
        let f = failed_job(&j, slow.id().unwrap(), Duration::from_secs(10)).await;
        assert!(f.error.contains("timed out"), "{label}: {}", f.error);
        assert_eq!(count(&format!("{s}:end")), 0, "{label}");

        // A unique key: the second dispatch is a duplicate while the first
        // is queued; released when it ends.
        let d = tag();
        let key = format!("unique-{d}");
        let opts = || {
            Options::new()
                .unique_key(key.clone())
                .delay(Duration::from_secs(1))
        };
        let first = j
            .dispatch_with(
                Count {
                    tag: d.clone(),
                    email: None,
                },
                opts(),
            )
            .await
            .unwrap();
        assert!(matches!(first, Dispatched::Queued(_)), "{label}");
        let second = j
            .dispatch_with(
                Count {
                    tag: d.clone(),
                    email: None,
                },
                opts(),
            )
            .await
            .unwrap();
        assert_eq!(second, Dispatched::Duplicate, "{label}");

        // A delay: not before it, soon after it.
        let e = tag();
        let t0 = Instant::now();
        j.dispatch_with(
            Count {
                tag: e.clone(),
                email: None,
            },
            Options::new().delay(Duration::from_secs(2)),
        )
        .await
        .unwrap();
        tokio::time::sleep(Duration::from_millis(900)).await;
        assert_eq!(count(&e), 0, "{label}: ran before its delay");
        wait_until("the delayed job", Duration::from_secs(10), || {
            count(&e) == 1
        })
        .await;
        assert!(t0.elapsed() >= Duration::from_millis(1000), "{label}");
        wait_until("the unique job", Duration::from_secs(10), || count(&d) == 1).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let again = j
            .dispatch_with(
                Count {
                    tag: d.clone(),
                    email: None,
                },
                Options::new().unique_key(key.clone()),
            )
            .await
            .unwrap();
        assert!(
            matches!(again, Dispatched::Queued(_)),
            "{label}: the key is released when the job ends"
        );
        wait_until("the unique job again", Duration::from_secs(10), || {
            count(&d) == 2
        })
        .await;

        // On behalf of a user: their permissions now.
        let console = Context::console();
        let u = p
            .access()
            .create_user(
                &console,
                platform_core::access::NewUser {
                    email: "jobs@example.com".into(),
                    name: "Jobs".into(),
                    password: "correct horse battery staple".into(),
                },
            )
            .await
            .unwrap();
        p.access()
            .create_role(&console, "jobs_viewer")
            .await
            .unwrap();
        p.access()
            .set_role_permissions(
                &console,
                "jobs_viewer",
                &["view_jobs".to_owned(), "retry_jobs".to_owned()],
            )
            .await
            .unwrap();
        p.access()
            .assign_role(&console, u.id, "jobs_viewer")
            .await
            .unwrap();
        let principal = p.access().principal(u.id).await.unwrap().unwrap();
        let user_ctx = Context::new(platform_core::context::Actor::User(std::sync::Arc::new(
            principal,
        )));
        let g = tag();
        j.dispatch_with(
            AsUser { tag: g.clone() },
            Options::new().on_behalf_of(&user_ctx),
        )
        .await
        .unwrap();
        wait_until(
            "the job on behalf of a user",
            Duration::from_secs(10),
            || count(&format!("{g}:{}", u.id)) == 1,
        )
        .await;

        // The figures.
        j.flush().await.unwrap();
        let stats = j.stats().await.unwrap();
        let default = stats.queues.iter().find(|q| q.queue == "default").unwrap();
        assert_eq!(default.failed, 4, "{label}: {default:?}");
        assert!(default.done >= 5, "{label}: {default:?}");
        assert!(default.per_minute >= 10, "{label}: {default:?}");
        assert_eq!(default.pending, 0, "{label}: {default:?}");
        assert!(
            default.runtime_ms[2] >= 1000,
            "{label}: the timed-out run: {default:?}"
        );
        let poison_view = stats
            .failed
            .iter()
            .find(|f| Some(f.id.as_str()) == poison.id())
            .unwrap();
        assert_eq!(poison_view.payload["secret"], "***", "{label}: masked");
        assert_eq!(poison_view.payload["fail_times"], 100, "{label}");
        let recent_count = stats
            .recent
            .iter()
            .find(|r| r.payload["tag"] == a.as_str())
            .unwrap();
        assert_eq!(recent_count.payload["email"], "***", "{label}");

        // The JSON figures, guarded by `view_jobs`.
        let token = p
            .access()
            .create_token(&console, u.id, "jobs", &["*".to_owned()], None)
            .await
            .unwrap()
            .plain_text;
        let app = platform_admin::app_router(&p)
            .unwrap()
            .with_state(p.clone());
        let get = |t: Option<&str>| {
            let mut r = Request::builder()
                .method(Method::GET)
                .uri("/api/jobs/stats");
            if let Some(t) = t {
                r = r.header("authorization", format!("Bearer {t}"));
            }
            r.body(Body::empty()).unwrap()
        };
        let res = app.clone().oneshot(get(None)).await.unwrap();
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "{label}");
        let res = app.clone().oneshot(get(Some(&token))).await.unwrap();
        assert_eq!(res.status(), StatusCode::OK, "{label}");
        let body: serde_json::Value =
            serde_json::from_slice(&res.into_body().collect().await.unwrap().to_bytes()).unwrap();
        assert_eq!(body["total"]["failed"], 4, "{label}: {body}");
        assert!(body["queues"].as_array().unwrap().len() == 4, "{label}");

        // The panel page and its actions (retry_jobs), the dashboard widget.
        let panel = platform_tests::panel::signed_in_by_header(
            axum::Router::new().nest(
                "/admin",
                platform_admin::panel_router_with(
                    platform_admin::PanelConfig::new().with_capabilities(&p),
                ),
            ),
            &p,
            "csrf-t",
        );
        let page = |uri: &str| {
            Request::builder()
                .uri(uri)
                .header("x-test-user", u.id.to_string())
                .body(Body::empty())
                .unwrap()
        };
        let res = panel.clone().oneshot(page("/admin/jobs")).await.unwrap();
        assert_eq!(res.status(), StatusCode::OK, "{label}");
        let html = String::from_utf8_lossy(&res.into_body().collect().await.unwrap().to_bytes())
            .into_owned();
        assert!(html.contains("id=\"jobs-queues\""), "{label}: {html}");
        assert!(
            html.contains(poison.id().unwrap()),
            "{label}: the failed job is listed"
        );
        assert!(!html.contains("s3cr3t"), "{label}: the secret is masked");
        let res = panel.clone().oneshot(page("/admin")).await.unwrap();
        let html = String::from_utf8_lossy(&res.into_body().collect().await.unwrap().to_bytes())
            .into_owned();
        assert!(html.contains("id=\"jobs-widget\""), "{label}: the widget");
        let shape = j.dispatch(ShapeBefore { n: "eight".into() }).await.unwrap();
        failed_job(&j, shape.id().unwrap(), Duration::from_secs(10)).await;
        let res = panel
            .clone()
            .oneshot(
                Request::builder()
                    .method(Method::POST)
                    .uri(format!(
                        "/admin/jobs/actions/forget/{}",
                        shape.id().unwrap()
                    ))
                    .header("x-test-user", u.id.to_string())
                    .header("content-type", "application/x-www-form-urlencoded")
                    .body(Body::from("_csrf=csrf-t"))
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::SEE_OTHER, "{label}");
        assert_eq!(
            j.failed(100).await.unwrap().len(),
            4,
            "{label}: forgotten from the panel"
        );

        // Retry one (it runs again and fails again), forget one, through
        // the service; then through the commands.
        assert!(j.retry(poison.id().unwrap()).await.unwrap(), "{label}");
        wait_until("the retried poison job", Duration::from_secs(15), || {
            count(&c) == 6
        })
        .await;
        failed_job(&j, poison.id().unwrap(), Duration::from_secs(10)).await;
        assert!(j.forget(ghost.id().unwrap()).await.unwrap(), "{label}");
        assert!(!j.forget(ghost.id().unwrap()).await.unwrap(), "{label}");
        assert_eq!(j.failed(100).await.unwrap().len(), 3, "{label}");

        let cli = |args: Vec<String>| {
            let b = builder(&case, jobs(&case, &ns));
            async move { platform_admin::cli::Cli::new(b).run_from(args).await }
        };
        cli(vec![
            "app".into(),
            "queue:forget".into(),
            old.id().unwrap().into(),
        ])
        .await
        .unwrap();
        assert!(
            cli(vec!["app".into(), "queue:forget".into(), "nope".into()])
                .await
                .is_err(),
            "{label}"
        );
        cli(vec!["app".into(), "queue:failed".into()])
            .await
            .unwrap();
        cli(vec!["app".into(), "schedule:list".into()])
            .await
            .unwrap();
        assert_eq!(j.failed(100).await.unwrap().len(), 2, "{label}");
        cli(vec!["app".into(), "queue:retry".into(), "all".into()])
            .await
            .unwrap();
        assert_eq!(j.failed(100).await.unwrap().len(), 0, "{label}");
        // Both fail again: the poison job three more times, the slow one once.
        failed_job(&j, poison.id().unwrap(), Duration::from_secs(15)).await;
        failed_job(&j, slow.id().unwrap(), Duration::from_secs(15)).await;
        assert_eq!(count(&c), 9, "{label}");

        p.shutdown().await;
    }
}

#[tokio::test]
async fn graceful_shutdown_finishes_in_flight_jobs_and_a_killed_worker_loses_none() {
    for case in cases_and_sqlite_on_redis().await {
        let label = case.label.clone();
        let ns = tag();

        // Graceful: the running job finishes before shutdown returns.
        let p = builder(&case, jobs(&case, &ns)).build().await.unwrap();
        p.start_workers();
        let j = p.get::<Jobs>().unwrap();
        let s = tag();
        j.dispatch(Sleepy {
            tag: s.clone(),
            ms: 700,
        })
        .await
        .unwrap();
        wait_until("the slow job to start", Duration::from_secs(10), || {
            count(&format!("{s}:start")) == 1
        })
        .await;
        p.shutdown().await;
        assert_eq!(
            count(&format!("{s}:end")),
            1,
            "{label}: finished before shutdown returned"
        );

        // Killed: a process's runtime is dropped mid-job, without shutdown.
        let k = tag();
        let (url, queue_url, k2, ns2) = (
            case.db.url.clone(),
            case.queue_url.clone(),
            k.clone(),
            ns.clone(),
        );
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let mut jb = Jobs::new()
                    .ignore_env()
                    .namespace(&ns2)
                    .heartbeat(Duration::from_secs(1))
                    .poll_interval(Duration::from_millis(20));
                if let Some(u) = queue_url {
                    jb = jb.queue_url(u);
                }
                let p = Platform::builder()
                    .ignore_env()
                    .database_url(&url)
                    .app_key(test_key())
                    .registry(Registry::default())
                    .with(jb)
                    .build()
                    .await
                    .unwrap();
                p.start_workers();
                p.get::<Jobs>()
                    .unwrap()
                    .dispatch(Sleepy {
                        tag: k2.clone(),
                        ms: 1500,
                    })
                    .await
                    .unwrap();
                wait_until("the job to start", Duration::from_secs(10), || {
                    count(&format!("{k2}:start")) == 1
                })
                .await;
            });
            rt.shutdown_background();
        })
        .join()
        .unwrap();
        assert_eq!(
            count(&format!("{k}:end")),
            0,
            "{label}: the job was killed mid-run"
        );
        let p = builder(&case, jobs(&case, &ns)).build().await.unwrap();
        p.start_workers();
        wait_until(
            "the killed job to run again",
            Duration::from_secs(30),
            || count(&format!("{k}:end")) == 1,
        )
        .await;
        assert_eq!(count(&format!("{k}:start")), 2, "{label}");
        p.shutdown().await;
    }
}

#[tokio::test]
async fn a_schedule_runs_once_per_time_across_two_processes() {
    for case in cases_and_sqlite_on_redis().await {
        let label = case.label.clone();
        let ns = tag();
        let t = tag();
        let make = || {
            jobs(&case, &ns).schedule(
                "* * * * * *",
                Count {
                    tag: t.clone(),
                    email: None,
                },
            )
        };
        let a = builder(&case, make()).build().await.unwrap();
        let b = builder(&case, make()).build().await.unwrap();
        a.start_workers();
        b.start_workers();
        tokio::time::sleep(Duration::from_millis(3500)).await;
        a.shutdown().await;
        b.shutdown().await;
        let p = builder(&case, make())
            .background_tasks(false)
            .build()
            .await
            .unwrap();
        let mut q = p.db().sql();
        q.push("SELECT COUNT(*) FROM platform_job_unique WHERE unique_key LIKE ")
            .bind_str("schedule:test_count:%");
        let keys = p.db().fetch_i64(q).await.unwrap().unwrap_or_default();
        let runs = count(&t);
        assert!(runs >= 2, "{label}: {runs} runs");
        // Never two runs of one scheduled time (doubled runs would outnumber
        // the claimed times). A time claimed just before the shutdown may
        // still wait in the queue (it runs at the next start), so there can
        // be one claimed time more than runs.
        assert!(
            i64::from(runs) <= keys && keys <= i64::from(runs) + 2,
            "{label}: {runs} runs for {keys} scheduled times"
        );
        p.shutdown().await;
    }
}

#[tokio::test]
async fn mariadb_needs_a_queue_url() {
    let Some(db) = TestDb::server(Backend::MySql).await else {
        return;
    };
    let err = Platform::builder()
        .ignore_env()
        .database_url(&db.url)
        .app_key(test_key())
        .registry(Registry::default())
        .with(Jobs::new().ignore_env())
        .build()
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("redis://") && err.contains("sqlite://"),
        "{err}"
    );
    let _ = Sql::literal(Backend::MySql, "SELECT 1");
    let _ = FieldType::I64;
}

/// An idle worker looks for jobs every poll interval, not only at its
/// heartbeat: a job dispatched to a queue idle for a while starts long
/// before the next heartbeat (10 s here). apalis's interval strategy lost
/// its timer when an empty fetch answered within the same poll, so idle
/// PostgreSQL queues woke only at heartbeats.
#[tokio::test]
async fn an_idle_worker_wakes_at_its_poll_interval_not_its_heartbeat() {
    for case in cases_and_sqlite_on_redis().await {
        let label = case.label.clone();
        let ns = tag();
        let mut j = Jobs::new()
            .ignore_env()
            .namespace(&ns)
            .heartbeat(Duration::from_secs(10))
            .poll_interval(Duration::from_millis(20));
        if let Some(u) = &case.queue_url {
            j = j.queue_url(u);
        }
        let p = builder(&case, j).build().await.unwrap();
        p.start_workers();
        // Idle for a while: many empty fetches.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let t = tag();
        p.get::<Jobs>()
            .unwrap()
            .dispatch(Count {
                tag: t.clone(),
                email: None,
            })
            .await
            .unwrap();
        wait_until(
            &format!("{label}: the job on an idle queue to run before the heartbeat"),
            Duration::from_secs(5),
            || count(&t) == 1,
        )
        .await;
        p.shutdown().await;
    }
}

/// A `#[job]` type is registered with the policy its arguments give, and a
/// worker runs it on that queue, with that many attempts.
#[tokio::test]
async fn a_job_declared_with_the_attribute_is_registered_and_runs() {
    let t = platform_jobs::registered_jobs()
        .find(|t| t.name == "macro_declared")
        .expect("`#[job]` registers the type under its snake-case name");
    assert_eq!(t.queue, "critical");
    assert_eq!(t.max_attempts, 2);
    assert_eq!(t.timeout, Duration::from_secs(5));
    assert_eq!(t.backoff, Duration::from_millis(200));
    assert!(
        t.type_name().ends_with("MacroDeclared"),
        "{}",
        t.type_name()
    );

    let case = Case {
        db: TestDb::sqlite(),
        queue_url: None,
        label: "sqlite".into(),
        dir: None,
    };
    let p = builder(&case, jobs(&case, &tag())).build().await.unwrap();
    let j = p.get::<Jobs>().expect("the service");
    p.start_workers();

    // Retried once on its own queue, then done.
    let a = tag();
    j.dispatch(MacroDeclared {
        tag: a.clone(),
        fail_times: 1,
    })
    .await
    .unwrap();
    wait_until("the retried job", Duration::from_secs(10), || {
        count(&format!("{a}:ok")) == 1
    })
    .await;
    assert_eq!(count(&format!("{a}:critical")), 2);

    // Failed after its two attempts.
    let b = tag();
    let poison = j
        .dispatch(MacroDeclared {
            tag: b.clone(),
            fail_times: 100,
        })
        .await
        .unwrap();
    let f = failed_job(&j, poison.id().unwrap(), Duration::from_secs(10)).await;
    assert_eq!((f.attempts, f.error.as_str()), (2, "attempt 2"));
    assert_eq!(count(&format!("{b}:critical")), 2);
    p.shutdown().await;
}
