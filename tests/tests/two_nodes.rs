//! Two nodes (`platform_node` processes) on one PostgreSQL database and one
//! Redis: a write on one drops the other's cached count, a permission
//! change made elsewhere is enforced on both, and the sign-in throttle
//! counts the attempts made on both. Latencies are measured from the
//! write's answer to the first answer of the other node that reflects it
//! (polled every 2 ms), 20 rounds each.
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
use platform_tests::domain::{Customer, customer, registry};
use platform_tests::{TestDb, test_key};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

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

async fn start_node(db_url: &str, redis_url: &str, prefix: &str) -> Node {
    let addr = format!("127.0.0.1:{}", free_port());
    let child = Command::new(env!("CARGO_BIN_EXE_platform_node"))
        .args(["serve", "--addr", &addr])
        .env("PLATFORM_DATABASE_URL", db_url)
        .env("PLATFORM_REDIS_URL", redis_url)
        .env("PLATFORM_REDIS_PREFIX", prefix)
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
    let Some(db) = TestDb::server(Backend::Postgres).await else {
        return;
    };
    let redis_url = match std::env::var("PLATFORM_TEST_REDIS_URL") {
        Ok(u) if !u.trim().is_empty() => u,
        _ => {
            assert!(
                std::env::var("CI").map_or(true, |v| v != "true"),
                "PLATFORM_TEST_REDIS_URL must be set under CI=true"
            );
            eprintln!("skipping: PLATFORM_TEST_REDIS_URL is not set");
            return;
        }
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

    let a = start_node(&db.url, &redis_url, &prefix).await;
    let b = start_node(&db.url, &redis_url, &prefix).await;
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
