//! Broadcasting on several nodes over Redis (`RedisBroadcastBackplane`):
//! two platforms in one process on one SQLite database, each with its own
//! broadcasting capability and back plane, against a real Redis server
//! (`PLATFORM_TEST_REDIS_URL`; skipped when unset, failing when set but
//! unreachable). The restart test runs its own `redis-server`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use futures::{SinkExt, StreamExt};
use http_body_util::BodyExt;
use platform_adapters::redis::{RedisBroadcastBackplane, RedisStore};
use platform_broadcast::backplane::{BackplaneSink, BroadcastBackplane, Envelope, Member};
use platform_broadcast::{BroadcastConfig, Broadcaster, Broadcasting};
use platform_core::Platform;
use platform_core::access::NewUser;
use platform_core::cache::CacheStore;
use platform_core::context::Context;
use platform_tests::domain::{Customer, Invoice, customer, invoice, registry};
use platform_tests::{TestDb, redis_url, test_key};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use tower::ServiceExt;

const KEY: &str = "test-key";
const SECRET: &str = "test-secret-0123456789";
const APP: &str = "test-app";
const TTL: Duration = Duration::from_secs(1);

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

fn unique_prefix() -> String {
    format!("bcast-{}:", platform_core::backplane::new_sender_id())
}

async fn backplane(url: &str, prefix: &str) -> Arc<RedisBroadcastBackplane> {
    Arc::new(
        RedisBroadcastBackplane::connect_with_prefix(url, prefix)
            .await
            .unwrap_or_else(|e| panic!("Redis at {url} is not reachable: {e}"))
            .with_node_ttl(TTL),
    )
}

struct Node {
    platform: Platform,
    addr: SocketAddr,
    b: Arc<Broadcaster>,
}

async fn node(db: &TestDb, bp: Arc<RedisBroadcastBackplane>) -> Node {
    node_with(db, bp, false).await
}

/// As [`node`]; `background`: with the platform's background tasks (the
/// outbox dispatcher that resource events go through).
async fn node_with(db: &TestDb, bp: Arc<RedisBroadcastBackplane>, background: bool) -> Node {
    let platform = Platform::builder()
        .ignore_env()
        .database_url(&db.url)
        .app_key(test_key())
        .registry(registry())
        .background_tasks(background)
        .max_connections(4)
        .with(Broadcasting::new(BroadcastConfig {
            backplane: bp,
            ..BroadcastConfig::new(APP, KEY, SECRET)
        }))
        .build()
        .await
        .unwrap();
    let router: axum::Router = platform_admin::app_router(&platform)
        .unwrap()
        .with_state(platform.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(
            listener,
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .unwrap();
    });
    let b = platform.get::<Broadcaster>().unwrap();
    Node { platform, addr, b }
}

/// The users Ada and Bob (tokens), and the presence channel of an invoice
/// they may both view.
struct Data {
    ada: (i64, String),
    bob: (i64, String),
    invoice: i64,
    channel: String,
}

async fn user(p: &Platform, email: &str, name: &str) -> (i64, String) {
    let console = Context::console();
    let u = p
        .access()
        .create_user(
            &console,
            NewUser {
                email: email.into(),
                name: name.into(),
                password: "long enough pw".into(),
            },
        )
        .await
        .unwrap();
    p.access()
        .assign_role(&console, u.id, "reader")
        .await
        .unwrap();
    let t = p
        .access()
        .create_token(&console, u.id, "ws", &[], None)
        .await
        .unwrap();
    (u.id, t.plain_text)
}

async fn data(p: &Platform) -> Data {
    let console = Context::console();
    p.access().create_role(&console, "reader").await.unwrap();
    let perms = vec!["view_any_invoice".to_owned(), "view_invoice".to_owned()];
    p.access()
        .set_role_permissions(&console, "reader", &perms)
        .await
        .unwrap();
    let ada = user(p, "ada@example.com", "Ada").await;
    let bob = user(p, "bob@example.com", "Bob").await;
    let c = p
        .repo::<Customer>(&Context::system())
        .create(&customer("Acme", "acme@example.com", "DE"))
        .await
        .unwrap();
    let inv = p
        .repo::<Invoice>(&Context::system())
        .create(&invoice(c.id, 1, "draft", 100))
        .await
        .unwrap();
    Data {
        ada,
        bob,
        invoice: inv.id,
        channel: format!("presence-invoices.{}", inv.id),
    }
}

/// Removes the keys a test left under `prefix`.
async fn clean(url: &str, prefix: &str) {
    let keys = RedisStore::connect_with_prefix(url, prefix).await.unwrap();
    keys.clear().await.unwrap();
}

/// Two nodes on one database and one Redis (keys under `prefix`).
async fn two_nodes(url: &str, prefix: &str) -> (TestDb, Node, Node, Data) {
    let db = TestDb::sqlite();
    db.create_tables(&registry()).await;
    let a = node(&db, backplane(url, prefix).await).await;
    let b = node(&db, backplane(url, prefix).await).await;
    let d = data(&a.platform).await;
    (db, a, b, d)
}

async fn connect(n: &Node) -> (Ws, String) {
    let url = format!(
        "ws://{}/app/{KEY}?protocol=7&client=js&version=8.4.0",
        n.addr
    );
    let mut ws = tokio_tungstenite::connect_async(url).await.unwrap().0;
    let hello = next(&mut ws).await;
    assert_eq!(hello["event"], "pusher:connection_established");
    let d: Value = serde_json::from_str(hello["data"].as_str().unwrap()).unwrap();
    (ws, d["socket_id"].as_str().unwrap().to_owned())
}

/// The next text frame, as JSON (5 s at most).
async fn next(ws: &mut Ws) -> Value {
    loop {
        let m = tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .expect("a frame within 5 s")
            .expect("the socket is open")
            .expect("a frame");
        if let Message::Text(t) = m {
            return serde_json::from_str(t.as_str()).unwrap();
        }
    }
}

async fn send(ws: &mut Ws, v: Value) {
    ws.send(Message::text(v.to_string())).await.unwrap();
}

/// Asserts that nothing is waiting: a ping's pong is the next frame.
async fn quiet(ws: &mut Ws) {
    tokio::time::sleep(Duration::from_millis(200)).await;
    send(ws, json!({"event": "pusher:ping", "data": {}})).await;
    let f = next(ws).await;
    assert_eq!(f["event"], "pusher:pong", "expected nothing, got {f}");
}

async fn auth(n: &Node, token: &str, socket: &str, channel: &str) -> Value {
    let app = platform_admin::app_router(&n.platform)
        .unwrap()
        .with_state(n.platform.clone());
    let req = Request::post("/broadcasting/auth")
        .header("content-type", "application/x-www-form-urlencoded")
        .header("authorization", format!("Bearer {token}"))
        .body(Body::from(format!(
            "socket_id={socket}&channel_name={channel}"
        )))
        .unwrap();
    let res = app.oneshot(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    serde_json::from_slice(&bytes).unwrap()
}

/// Subscribes (with an authorisation when `auth` is given); the reply.
async fn subscribe(ws: &mut Ws, channel: &str, auth: Option<&Value>) -> Value {
    let mut data = json!({"channel": channel});
    if let Some(a) = auth {
        data["auth"] = a["auth"].clone();
        data["channel_data"] = a["channel_data"].clone();
    }
    send(ws, json!({"event": "pusher:subscribe", "data": data})).await;
    next(ws).await
}

/// Joins `channel` on `n` as the user of `token`; the member count seen.
async fn join(n: &Node, ws: &mut Ws, socket: &str, token: &str, channel: &str) -> u64 {
    let a = auth(n, token, socket, channel).await;
    let r = subscribe(ws, channel, Some(&a)).await;
    assert_eq!(r["event"], "pusher_internal:subscription_succeeded", "{r}");
    let p: Value = serde_json::from_str(r["data"].as_str().unwrap()).unwrap();
    p["presence"]["count"].as_u64().unwrap()
}

async fn member_ids(n: &Node, channel: &str) -> Vec<String> {
    n.b.config()
        .backplane
        .members(channel)
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.user_id)
        .collect()
}

#[tokio::test]
async fn events_and_presence_span_nodes() {
    let Some(url) = redis_url() else { return };
    let prefix = unique_prefix();
    let (_db, a, b, d) = two_nodes(&url, &prefix).await;
    let (mut on_a, sa) = connect(&a).await;
    let (mut on_b, sb) = connect(&b).await;

    // An event broadcast on node B reaches node A's client, and node B's
    // own client once.
    for ws in [&mut on_a, &mut on_b] {
        let r = subscribe(ws, "orders", None).await;
        assert_eq!(r["event"], "pusher_internal:subscription_succeeded");
    }
    b.b.broadcast("orders", "order.shipped", &json!({"id": 7}))
        .await
        .unwrap();
    for ws in [&mut on_a, &mut on_b] {
        let f = next(ws).await;
        assert_eq!(f["event"], "order.shipped");
        assert_eq!(f["data"], json!({"id": 7}).to_string());
        quiet(ws).await;
    }

    // Presence: Ada on A, Bob on B, Ada's second socket on B.
    assert_eq!(join(&a, &mut on_a, &sa, &d.ada.1, &d.channel).await, 1);
    assert_eq!(join(&b, &mut on_b, &sb, &d.bob.1, &d.channel).await, 2);
    let added = next(&mut on_a).await;
    assert_eq!(added["event"], "pusher_internal:member_added");
    let m: Value = serde_json::from_str(added["data"].as_str().unwrap()).unwrap();
    assert_eq!(m["user_id"], d.bob.0.to_string());
    let (mut ada2, s2) = connect(&b).await;
    assert_eq!(join(&b, &mut ada2, &s2, &d.ada.1, &d.channel).await, 2);
    quiet(&mut on_a).await;
    quiet(&mut on_b).await;
    assert_eq!(
        member_ids(&a, &d.channel).await,
        member_ids(&b, &d.channel).await
    );

    // Ada leaves A: still on B, so nobody is told.
    send(
        &mut on_a,
        json!({"event": "pusher:unsubscribe", "data": {"channel": d.channel}}),
    )
    .await;
    quiet(&mut on_b).await;
    // Ada's last socket goes: Bob (on B) sees member_removed once.
    drop(ada2);
    let removed = next(&mut on_b).await;
    assert_eq!(
        removed["event"], "pusher_internal:member_removed",
        "{removed}"
    );
    let m: Value = serde_json::from_str(removed["data"].as_str().unwrap()).unwrap();
    assert_eq!(m["user_id"], d.ada.0.to_string());
    quiet(&mut on_b).await;
    assert_eq!(member_ids(&a, &d.channel).await, vec![d.bob.0.to_string()]);
    clean(&url, &prefix).await;
}

/// The real pusher-js (`tests/pusher/two-nodes.test.mjs`): Ada on node A,
/// Bob on node B; presence, a publish call and a resource event cross the
/// nodes over Redis.
#[tokio::test]
async fn pusher_js_across_two_nodes() {
    let Some(url) = redis_url() else { return };
    let prefix = unique_prefix();
    let db = TestDb::sqlite();
    db.create_tables(&registry()).await;
    let a = node(&db, backplane(&url, &prefix).await).await;
    let b = node_with(&db, backplane(&url, &prefix).await, true).await;
    let d = data(&a.platform).await;
    let platform = b.platform.clone();
    let invoice = d.invoice;
    let editor = tokio::spawn(async move {
        let repo = platform.repo::<Invoice>(&Context::system());
        for n in 0u32.. {
            let mut inv = repo.find(invoice).await.unwrap();
            inv.notes = Some(format!("edit {n}"));
            repo.update(&inv).await.unwrap();
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    });
    let vars = [
        ("PUSHER_HOST", a.addr.ip().to_string()),
        ("PORT_A", a.addr.port().to_string()),
        ("PORT_B", b.addr.port().to_string()),
        ("PUSHER_KEY", KEY.to_owned()),
        ("PUSHER_APP_ID", APP.to_owned()),
        ("PUSHER_SECRET", SECRET.to_owned()),
        ("ADA_TOKEN", d.ada.1.clone()),
        ("BOB_TOKEN", d.bob.1.clone()),
        ("ADA_ID", d.ada.0.to_string()),
        ("BOB_ID", d.bob.0.to_string()),
        ("INVOICE_ID", d.invoice.to_string()),
    ];
    platform_tests::pusher::run("two-nodes.test.mjs", &vars, 3).await;
    editor.abort();
    b.platform.shutdown().await;
    clean(&url, &prefix).await;
}

struct Discard;
impl BackplaneSink for Discard {
    fn deliver(&self, _: &Envelope) {}
}

#[tokio::test]
async fn a_dead_nodes_members_expire() {
    let Some(url) = redis_url() else { return };
    let db = TestDb::sqlite();
    db.create_tables(&registry()).await;
    let prefix = unique_prefix();
    let a = node(&db, backplane(&url, &prefix).await).await;
    let d = data(&a.platform).await;

    // A node that holds Bob, then dies without leaving.
    let ghost = backplane(&url, &prefix).await;
    ghost.start(Arc::new(Discard)).await.unwrap();
    let bob = Member {
        user_id: d.bob.0.to_string(),
        user_info: json!({"name": "Bob"}),
    };
    assert!(ghost.join(&d.channel, "9.9", &bob).await.unwrap());

    let (mut ws, s) = connect(&a).await;
    assert_eq!(join(&a, &mut ws, &s, &d.ada.1, &d.channel).await, 2);
    drop(ghost);
    let removed = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let f = next(&mut ws).await;
            if f["event"] == "pusher_internal:member_removed" {
                return f;
            }
        }
    })
    .await
    .expect("the dead node's member is removed within 10 s");
    let m: Value = serde_json::from_str(removed["data"].as_str().unwrap()).unwrap();
    assert_eq!(m["user_id"], d.bob.0.to_string());
    quiet(&mut ws).await;
    assert_eq!(member_ids(&a, &d.channel).await, vec![d.ada.0.to_string()]);
    clean(&url, &prefix).await;
}

/// A `redis-server` child on `port`, without persistence.
fn redis_server(port: u16) -> tokio::process::Child {
    tokio::process::Command::new("redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .stdout(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("redis-server must be installed for the restart test")
}

async fn wait_until_up(port: u16) {
    for _ in 0..100 {
        if TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("redis-server did not start on port {port}");
}

#[tokio::test]
async fn nodes_recover_after_redis_restarts() {
    // Runs its own server, but only where the real-component tests run.
    if redis_url().is_none() {
        return;
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut server = redis_server(port);
    wait_until_up(port).await;
    let url = format!("redis://127.0.0.1:{port}/0");
    let (_db, a, b, d) = two_nodes(&url, &unique_prefix()).await;
    let (mut on_a, sa) = connect(&a).await;
    let (mut on_b, sb) = connect(&b).await;
    assert_eq!(
        subscribe(&mut on_a, "orders", None).await["event"],
        "pusher_internal:subscription_succeeded"
    );
    assert_eq!(join(&a, &mut on_a, &sa, &d.ada.1, &d.channel).await, 1);
    assert_eq!(join(&b, &mut on_b, &sb, &d.bob.1, &d.channel).await, 2);
    assert_eq!(
        next(&mut on_a).await["event"],
        "pusher_internal:member_added"
    );

    server.kill().await.unwrap();
    server.wait().await.unwrap();
    // Down: local delivery goes on.
    a.b.broadcast("orders", "while.down", &json!({}))
        .await
        .unwrap();
    assert_eq!(next(&mut on_a).await["event"], "while.down");

    let mut server = redis_server(port);
    wait_until_up(port).await;
    // Both nodes re-assert their members (the new server is empty).
    let ids = vec![d.ada.0.to_string(), d.bob.0.to_string()];
    let mut sorted = ids.clone();
    sorted.sort();
    tokio::time::timeout(Duration::from_secs(15), async {
        loop {
            if let Ok(m) = b.b.config().backplane.members(&d.channel).await
                && m.iter().map(|m| m.user_id.clone()).collect::<Vec<_>>() == sorted
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await
    .expect("presence converges after the restart");
    // B's events reach A again (the subscription was made again).
    tokio::time::timeout(Duration::from_secs(15), async {
        loop {
            b.b.broadcast("orders", "after.restart", &json!({}))
                .await
                .unwrap();
            if let Ok(Some(Ok(Message::Text(t)))) =
                tokio::time::timeout(Duration::from_millis(300), on_a.next()).await
            {
                let f: Value = serde_json::from_str(t.as_str()).unwrap();
                if f["event"] == "after.restart" {
                    return;
                }
            }
        }
    })
    .await
    .expect("events flow between the nodes after the restart");
    // Bob leaves B: Ada (on A) is told, once.
    send(
        &mut on_b,
        json!({"event": "pusher:unsubscribe", "data": {"channel": d.channel}}),
    )
    .await;
    let removed = loop {
        let f = next(&mut on_a).await;
        if f["event"] != "after.restart" {
            break f;
        }
    };
    assert_eq!(
        removed["event"], "pusher_internal:member_removed",
        "{removed}"
    );
    quiet(&mut on_a).await;
    server.kill().await.unwrap();
}
