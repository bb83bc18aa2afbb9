//! Two nodes (`platform_node` processes) on one PostgreSQL database and one
//! Redis: a write on one drops the other's cached count, a permission
//! change made elsewhere is enforced on both, and the sign-in throttle
//! counts the attempts made on both. Latencies are measured from the
//! write's answer to the first answer of the other node that reflects it
//! (polled every 2 ms), 20 rounds each. The nodes' job workers run each of
//! 200 jobs exactly once between them, and a job whose node is killed
//! (SIGKILL) mid-run is taken over by the other node and runs again
//! (at least once).
//!
//! Needs `PLATFORM_TEST_POSTGRES_URL` and `PLATFORM_TEST_REDIS_URL`
//! (skipped with a printed reason otherwise; under `CI=true` both must be
//! set).

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use platform_adapters::redis::RedisScaleOut;
use platform_core::Platform;
use platform_core::access::NewUser;
use platform_core::context::Context;
use platform_core::db::Backend;
use platform_jobs::Jobs;
use platform_tests::domain::{Customer, customer, registry};
use platform_tests::node_jobs::{self, NodeProbe};
use platform_tests::{TestDb, redis_url, test_key};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The tests of this file take turns: each starts two node processes, and
/// the latencies measured must not include the other test's load.
static TURN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A node process, killed when dropped.
struct Node {
    child: Child,
    addr: String,
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn start_node(db_url: &str, redis_url: &str, prefix: &str, name: &str) -> Node {
    let addr = format!("127.0.0.1:{}", free_port());
    let child = Command::new(env!("CARGO_BIN_EXE_platform_node"))
        .args(["serve", "--addr", &addr])
        .env("PLATFORM_DATABASE_URL", db_url)
        .env("PLATFORM_REDIS_URL", redis_url)
        .env("PLATFORM_REDIS_PREFIX", prefix)
        .env("PLATFORM_JOBS_NAMESPACE", namespace(prefix))
        .env("PLATFORM_NODE_NAME", name)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start a node");
    let node = Node { child, addr };
    for _ in 0..300 {
        if let Ok(r) = http(&node.addr, "GET", "/health/live", &[], "").await
            && r.status == 200
        {
            return node;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the node on {} did not start", node.addr);
}

/// The jobs' namespace of the deployment with keys under `prefix`.
fn namespace(prefix: &str) -> String {
    format!("{}jobs", prefix.replace(':', "-"))
}

/// The jobs capability as the nodes configure it (the test's own node
/// dispatches with it and runs no workers).
fn jobs(prefix: &str) -> Jobs {
    Jobs::new()
        .ignore_env()
        .namespace(namespace(prefix))
        .heartbeat(Duration::from_secs(1))
        .poll_interval(Duration::from_millis(20))
        .job::<NodeProbe>()
}

struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

/// One HTTP/1.1 request on its own connection.
async fn http(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> std::io::Result<Reply> {
    let mut s = tokio::net::TcpStream::connect(addr).await?;
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(body);
    s.write_all(req.as_bytes()).await?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).await?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, rest) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let chunked = headers
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"));
    let body = if chunked {
        dechunk(rest)
    } else {
        rest.to_owned()
    };
    Ok(Reply {
        status,
        headers,
        body,
    })
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        s = rest[n..].trim_start_matches("\r\n");
    }
    out
}

fn p99(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[(v.len() * 99).div_ceil(100) - 1]
}

/// Polls `f` every 2 ms until it is true (at most 5 s); the time it took.
async fn until<F, Fut>(what: &str, mut f: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(5) {
        if f().await {
            return t0.elapsed();
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    panic!("{what}: not within 5 s");
}

#[tokio::test]
async fn two_nodes_share_cache_invalidation_permissions_and_throttles() {
    let _turn = TURN.lock().await;
    let Some(db) = TestDb::server(Backend::Postgres).await else {
        return;
    };
    let Some(redis_url) = redis_url() else {
        return;
    };
    let prefix = format!("two-nodes-{}:", platform_core::backplane::new_sender_id());
    db.create_tables(&registry()).await;
    // The test's own node: it seeds, and changes permissions.
    let redis = RedisScaleOut::connect_with_prefix(&redis_url, &prefix)
        .await
        .unwrap();
    let admin_node = redis
        .apply(
            Platform::builder()
                .ignore_env()
                .database_url(&db.url)
                .app_key(test_key())
                .registry(registry()),
        )
        .build()
        .await
        .unwrap();
    let console = Context::console();
    let access = admin_node.access();
    let reader = access
        .create_user(
            &console,
            NewUser {
                email: "reader@example.com".into(),
                name: "Reader".into(),
                password: "correct horse battery staple".into(),
            },
        )
        .await
        .unwrap();
    access.create_role(&console, "readers").await.unwrap();
    access
        .set_role_permissions(&console, "readers", &["view_any_customer".to_owned()])
        .await
        .unwrap();
    access
        .assign_role(&console, reader.id, "readers")
        .await
        .unwrap();
    let admin = access
        .create_user(
            &console,
            NewUser {
                email: "admin@example.com".into(),
                name: "Admin".into(),
                password: "correct horse battery staple".into(),
            },
        )
        .await
        .unwrap();
    access
        .assign_role(&console, admin.id, "super_admin")
        .await
        .unwrap();
    let reader_token = access
        .create_token(&console, reader.id, "t", &["*".to_owned()], None)
        .await
        .unwrap()
        .plain_text;
    let admin_token = access
        .create_token(&console, admin.id, "t", &["*".to_owned()], None)
        .await
        .unwrap()
        .plain_text;
    let repo = admin_node.repo::<Customer>(&console);
    for i in 0..30 {
        repo.create(&customer(
            &format!("C{i}"),
            &format!("c{i}@example.com"),
            "DE",
        ))
        .await
        .unwrap();
    }

    let a = start_node(&db.url, &redis_url, &prefix, "a").await;
    let b = start_node(&db.url, &redis_url, &prefix, "b").await;
    let bearer = |t: &str| format!("Bearer {t}");
    let admin_auth = bearer(&admin_token);
    let reader_auth = bearer(&reader_token);

    // 1. A write on A drops B's cached count.
    let count_on = |addr: String, auth: String| async move {
        let r = http(
            &addr,
            "GET",
            "/api/customers?page%5Bsize%5D=5&count=true",
            &[("Authorization", &auth)],
            "",
        )
        .await
        .unwrap();
        assert_eq!(r.status, 200, "{}", r.body);
        r.json()["meta"]["total"]["value"].as_i64().unwrap()
    };
    let mut cache_latencies = Vec::new();
    for round in 0..20 {
        let before = count_on(b.addr.clone(), admin_auth.clone()).await;
        // B answers again from its cache (the same count).
        assert_eq!(count_on(b.addr.clone(), admin_auth.clone()).await, before);
        let body = serde_json::json!({
            "name": format!("New {round}"),
            "email": format!("new{round}@example.com"),
            "country": "FR",
        })
        .to_string();
        let r = http(
            &a.addr,
            "POST",
            "/api/customers",
            &[
                ("Authorization", &admin_auth),
                ("Content-Type", "application/json"),
            ],
            &body,
        )
        .await
        .unwrap();
        assert_eq!(r.status, 201, "{}", r.body);
        let took = until("B sees A's write", || {
            let (addr, auth) = (b.addr.clone(), admin_auth.clone());
            async move { count_on(addr, auth).await == before + 1 }
        })
        .await;
        cache_latencies.push(took);
    }

    // 2. A permission change (made on a third node) is enforced on A and B.
    let status_on = |addr: String, auth: String| async move {
        http(
            &addr,
            "GET",
            "/api/customers?page%5Bsize%5D=1",
            &[("Authorization", &auth)],
            "",
        )
        .await
        .unwrap()
        .status
    };
    let mut grant_latencies = Vec::new();
    for round in 0..10 {
        let allowed = round % 2 == 1;
        let perms: Vec<String> = if allowed {
            vec!["view_any_customer".to_owned()]
        } else {
            Vec::new()
        };
        access
            .set_role_permissions(&console, "readers", &perms)
            .await
            .unwrap();
        let want = if allowed { 200 } else { 403 };
        for node in [&a, &b] {
            let took = until("a node enforces the change", || {
                let (addr, auth) = (node.addr.clone(), reader_auth.clone());
                async move { status_on(addr, auth).await == want }
            })
            .await;
            grant_latencies.push(took);
        }
    }

    // 3. The sign-in throttle (5 per minute per account and address)
    // counts the attempts made on both nodes: 3 on A and 2 on B pass, the
    // next on B is refused although B has seen only 2.
    let attempt = |addr: String| async move {
        let page = http(&addr, "GET", "/admin/login", &[], "").await.unwrap();
        let cookie = page
            .header("set-cookie")
            .map(|c| c.split(';').next().unwrap_or_default().to_owned())
            .unwrap_or_default();
        let csrf = page
            .body
            .split("name=\"_csrf\" value=\"")
            .nth(1)
            .and_then(|s| s.split('"').next())
            .unwrap_or_default()
            .to_owned();
        let form = format!(
            "_csrf={}&email=admin%40example.com&password=wrong-password",
            csrf
        );
        http(
            &addr,
            "POST",
            "/admin/login",
            &[
                ("Cookie", &cookie),
                ("Content-Type", "application/x-www-form-urlencoded"),
            ],
            &form,
        )
        .await
        .unwrap()
        .status
    };
    for (i, node) in [&a, &a, &a, &b, &b].into_iter().enumerate() {
        assert_eq!(attempt(node.addr.clone()).await, 422, "attempt {i}");
    }
    assert_eq!(attempt(b.addr.clone()).await, 429, "the sixth, on B");
    assert_eq!(attempt(a.addr.clone()).await, 429, "and on A");

    let cache_p99 = p99(cache_latencies.clone());
    let grant_p99 = p99(grant_latencies.clone());
    eprintln!(
        "two nodes: cache invalidation p99 {:.1} ms (max {:.1} ms, {} rounds); permission change p99 {:.1} ms ({} observations)",
        cache_p99.as_secs_f64() * 1000.0,
        cache_latencies.iter().max().unwrap().as_secs_f64() * 1000.0,
        cache_latencies.len(),
        grant_p99.as_secs_f64() * 1000.0,
        grant_latencies.len(),
    );
    assert!(cache_p99 < Duration::from_millis(100), "{cache_p99:?}");
    assert!(grant_p99 < Duration::from_millis(100), "{grant_p99:?}");
    drop(a);
    drop(b);
    admin_node.shutdown().await;
}

/// Rows of `two_node_runs`: (tag, node, phase).
async fn runs(p: &Platform) -> Vec<(String, String, String)> {
    let db = p.db();
    let mut q = db.sql();
    q.push("SELECT tag, node, phase FROM two_node_runs");
    use platform_core::value::{FieldType, Value};
    let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
    db.fetch_all(q, &[FieldType::Text, FieldType::Text, FieldType::Text])
        .await
        .unwrap()
        .iter()
        .map(|r| (text(&r[0]), text(&r[1]), text(&r[2])))
        .collect()
}

#[tokio::test]
async fn two_nodes_run_each_job_once_and_take_over_a_killed_nodes_job() {
    let _turn = TURN.lock().await;
    let Some(db) = TestDb::server(Backend::Postgres).await else {
        return;
    };
    let Some(redis_url) = redis_url() else {
        return;
    };
    let prefix = format!("two-nodes-{}:", platform_core::backplane::new_sender_id());
    db.create_tables(&registry()).await;
    // The test's own node dispatches (no workers) and reads the runs.
    let redis = RedisScaleOut::connect_with_prefix(&redis_url, &prefix)
        .await
        .unwrap();
    let me = redis
        .apply(
            Platform::builder()
                .ignore_env()
                .database_url(&db.url)
                .app_key(test_key())
                .registry(registry())
                .with(jobs(&prefix)),
        )
        .build()
        .await
        .unwrap();
    let mut q = me.db().sql();
    q.push(node_jobs::TABLE);
    me.db().execute(q).await.unwrap();
    let queue = me.get::<Jobs>().unwrap();

    let mut a = start_node(&db.url, &redis_url, &prefix, "a").await;
    let mut b = start_node(&db.url, &redis_url, &prefix, "b").await;

    // 1. 200 jobs, each run exactly once across both nodes' workers.
    for i in 0..200 {
        queue
            .dispatch(NodeProbe {
                tag: format!("once-{i}"),
                ms: 5,
            })
            .await
            .unwrap();
    }
    let t0 = Instant::now();
    loop {
        let ends = runs(&me).await.iter().filter(|r| r.2 == "end").count();
        if ends >= 200 {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "only {ends} of 200 jobs ran in 60 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Late duplicates would show up shortly after.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let all = runs(&me).await;
    let mut per_tag = std::collections::HashMap::<&str, usize>::new();
    for r in all.iter().filter(|r| r.2 == "start") {
        *per_tag.entry(r.0.as_str()).or_default() += 1;
    }
    assert_eq!(per_tag.len(), 200, "every job ran");
    assert!(
        per_tag.values().all(|n| *n == 1),
        "a job ran twice: {:?}",
        per_tag.iter().filter(|(_, n)| **n > 1).collect::<Vec<_>>()
    );
    let on_a = all.iter().filter(|r| r.2 == "start" && r.1 == "a").count();
    let on_b = all.iter().filter(|r| r.2 == "start" && r.1 == "b").count();
    eprintln!(
        "two nodes: 200 jobs in {:?}, {on_a} on A, {on_b} on B",
        t0.elapsed()
    );
    assert!(on_a > 0 && on_b > 0, "both nodes work: {on_a} / {on_b}");

    // 2. A node killed (SIGKILL) mid-job: the other takes the job over.
    queue
        .dispatch(NodeProbe {
            tag: "killed".into(),
            ms: 3000,
        })
        .await
        .unwrap();
    let t0 = Instant::now();
    let first = loop {
        if let Some(r) = runs(&me).await.into_iter().find(|r| r.0 == "killed") {
            break r.1;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "the slow job did not start"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let (victim, survivor) = if first == "a" {
        (&mut a, "b")
    } else {
        (&mut b, "a")
    };
    // `Child::kill` is SIGKILL on Unix: no shutdown, no goodbye.
    victim.child.kill().unwrap();
    victim.child.wait().unwrap();
    let t0 = Instant::now();
    loop {
        let rows = runs(&me).await;
        if rows.iter().any(|r| r.0 == "killed" && r.2 == "end") {
            let killed: Vec<_> = rows.into_iter().filter(|r| r.0 == "killed").collect();
            eprintln!(
                "two nodes: the killed node's job ended on {survivor} {:?} after the kill",
                t0.elapsed()
            );
            let mut starts: Vec<&str> = killed
                .iter()
                .filter(|r| r.2 == "start")
                .map(|r| r.1.as_str())
                .collect();
            starts.sort_unstable();
            let mut want = vec![first.as_str(), survivor];
            want.sort_unstable();
            assert_eq!(
                starts, want,
                "started on the killed node, then again on the other"
            );
            assert_eq!(
                killed
                    .iter()
                    .filter(|r| r.2 == "end")
                    .map(|r| r.1.as_str())
                    .collect::<Vec<_>>(),
                vec![survivor],
                "ended once, on the survivor"
            );
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "the killed node's job was not taken over in 30 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop(a);
    drop(b);
    me.shutdown().await;
}
