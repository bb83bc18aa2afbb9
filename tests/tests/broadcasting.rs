//! Broadcasting over the Pusher protocol 7, through a real WebSocket
//! (tokio-tungstenite) against the platform served on loopback: the
//! handshake, ping/pong, malformed, unknown and oversized frames, public,
//! private and presence channels authorised at `/broadcasting/auth` by the
//! platform's permissions and record policies, forged, reused and
//! other-socket signatures, member events once per user, client events,
//! the signed publish API, the notification channel, a 10,000
//! subscribe/unsubscribe storm, connection limits and a client that never
//! reads.

use platform_tests::panel::enc;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use futures::{SinkExt, StreamExt};
use http_body_util::BodyExt;
use md5::Digest;
use platform_broadcast::{BroadcastConfig, Broadcaster, Broadcasting};
use platform_core::Platform;
use platform_core::access::NewUser;
use platform_core::context::Context;
use platform_notify::{Notification, Notifications, Notifier, Recipient};
use platform_tests::domain::{Customer, Invoice, Note, customer, invoice, registry};
use platform_tests::{TestDb, test_key};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use tower::ServiceExt;

const KEY: &str = "test-key";
const SECRET: &str = "test-secret-0123456789";
const APP: &str = "test-app";

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

struct Env {
    platform: Platform,
    addr: SocketAddr,
    b: Arc<Broadcaster>,
    ada: (i64, String),
    bob: (i64, String),
    ada_note: i64,
    invoice: i64,
    _db: TestDb,
}

/// A notification for the broadcast channel.
#[derive(Serialize, Deserialize)]
struct Ping {
    n: u32,
}

impl Notification for Ping {
    const NAME: &'static str = "ping";
    fn channels(&self, _to: &Recipient) -> Vec<&str> {
        vec!["broadcast"]
    }
}

fn config() -> BroadcastConfig {
    BroadcastConfig::new(APP, KEY, SECRET)
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

async fn start(config: BroadcastConfig) -> Env {
    start_with(config, false).await
}

/// As [`start`]; `background`: with the platform's background tasks (the
/// outbox dispatcher that resource events go through).
async fn start_with(config: BroadcastConfig, background: bool) -> Env {
    let db = TestDb::sqlite();
    let reg = registry();
    db.create_tables(&reg).await;
    let platform = Platform::builder()
        .ignore_env()
        .database_url(&db.url)
        .app_key(test_key())
        .registry(reg)
        .background_tasks(background)
        .max_connections(8)
        .with(Broadcasting::new(config))
        .with(Notifications::new().without_queue().notification::<Ping>())
        .build()
        .await
        .unwrap();
    let console = Context::console();
    platform
        .access()
        .create_role(&console, "reader")
        .await
        .unwrap();
    let perms: Vec<String> = [
        "view_any_note",
        "view_note",
        "create_note",
        "view_any_invoice",
        "view_invoice",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    platform
        .access()
        .set_role_permissions(&console, "reader", &perms)
        .await
        .unwrap();
    let ada = user(&platform, "ada@example.com", "Ada").await;
    let bob = user(&platform, "bob@example.com", "Bob").await;
    let ada_principal = platform.access().principal(ada.0).await.unwrap().unwrap();
    let ada_ctx = Context::new(platform_core::context::Actor::User(Arc::new(ada_principal)));
    let note = platform
        .repo::<Note>(&ada_ctx)
        .create(&Note {
            id: 0,
            owner_id: ada.0,
            body: "ada's".into(),
        })
        .await
        .unwrap();
    let c = platform
        .repo::<Customer>(&Context::system())
        .create(&customer("Acme", "acme@example.com", "DE"))
        .await
        .unwrap();
    let inv = platform
        .repo::<Invoice>(&Context::system())
        .create(&invoice(c.id, 1, "draft", 100))
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
    Env {
        platform,
        addr,
        b,
        ada,
        bob,
        ada_note: note.id,
        invoice: inv.id,
        _db: db,
    }
}

async fn open(addr: SocketAddr, key: &str, query: &str) -> Ws {
    let url = format!("ws://{addr}/app/{key}{query}");
    tokio_tungstenite::connect_async(url).await.unwrap().0
}

/// Connects and reads `pusher:connection_established`: the socket id.
async fn connect(env: &Env) -> (Ws, String) {
    let mut ws = open(env.addr, KEY, "?protocol=7&client=js&version=8.4.0").await;
    let hello = next(&mut ws).await;
    assert_eq!(hello["event"], "pusher:connection_established");
    let data: Value = serde_json::from_str(hello["data"].as_str().unwrap()).unwrap();
    let id = data["socket_id"].as_str().unwrap().to_owned();
    let (a, b) = id.split_once('.').unwrap();
    assert!(a.parse::<u64>().is_ok() && b.parse::<u64>().is_ok(), "{id}");
    assert_eq!(data["activity_timeout"], 30);
    (ws, id)
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
    send(ws, json!({"event": "pusher:ping", "data": {}})).await;
    let f = next(ws).await;
    assert_eq!(
        f["event"], "pusher:pong",
        "expected nothing before the pong, got {f}"
    );
}

/// The close frame's code (after any text frames).
async fn closed_with(ws: &mut Ws) -> Option<u16> {
    loop {
        match tokio::time::timeout(Duration::from_secs(5), ws.next()).await {
            Ok(Some(Ok(Message::Close(f)))) => return f.map(|f| u16::from(f.code)),
            Ok(Some(Ok(_))) => {}
            Ok(Some(Err(_)) | None) => return None,
            Err(_) => panic!("the server did not close within 5 s"),
        }
    }
}

async fn post_form(env: &Env, token: Option<&str>, body: String) -> (StatusCode, Value) {
    let app = platform_admin::app_router(&env.platform)
        .unwrap()
        .with_state(env.platform.clone());
    let mut req = Request::post("/broadcasting/auth")
        .header("content-type", "application/x-www-form-urlencoded");
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    let res = app
        .oneshot(req.body(Body::from(body)).unwrap())
        .await
        .unwrap();
    let status = res.status();
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

async fn auth(env: &Env, token: &str, socket: &str, channel: &str) -> (StatusCode, Value) {
    post_form(
        env,
        Some(token),
        format!("socket_id={socket}&channel_name={channel}"),
    )
    .await
}

async fn subscribe(ws: &mut Ws, channel: &str, auth: &Value) -> Value {
    let mut data = json!({"channel": channel});
    if let Some(a) = auth.get("auth") {
        data["auth"] = a.clone();
    }
    if let Some(d) = auth.get("channel_data") {
        data["channel_data"] = d.clone();
    }
    send(ws, json!({"event": "pusher:subscribe", "data": data})).await;
    next(ws).await
}

fn error_code(frame: &Value) -> Option<i64> {
    (frame["event"] == "pusher:error").then(|| frame["data"]["code"].as_i64())?
}

#[tokio::test]
async fn handshake_ping_and_bad_frames() {
    let env = start(config()).await;
    let (mut ws, _) = connect(&env).await;
    quiet(&mut ws).await;

    ws.send(Message::text("{not json")).await.unwrap();
    assert_eq!(error_code(&next(&mut ws).await), Some(4300));
    send(&mut ws, json!({"no": "event"})).await;
    assert_eq!(error_code(&next(&mut ws).await), Some(4300));
    send(
        &mut ws,
        json!({"event": "pusher:launch_missiles", "data": {}}),
    )
    .await;
    assert_eq!(error_code(&next(&mut ws).await), Some(4300));
    send(&mut ws, json!({"event": "pusher:subscribe", "data": 7})).await;
    assert_eq!(error_code(&next(&mut ws).await), Some(4300));
    send(
        &mut ws,
        json!({"event": "pusher:subscribe", "data": {"channel": "bad channel!"}}),
    )
    .await;
    assert_eq!(error_code(&next(&mut ws).await), Some(4300));
    ws.send(Message::binary(vec![0u8, 1, 2])).await.unwrap();
    assert_eq!(error_code(&next(&mut ws).await), Some(4300));
    // Still connected after all that.
    quiet(&mut ws).await;

    // Public channel: subscribe, receive, unsubscribe, receive nothing.
    let ok = subscribe(&mut ws, "orders", &Value::Null).await;
    assert_eq!(ok["event"], "pusher_internal:subscription_succeeded");
    assert_eq!(ok["channel"], "orders");
    env.b
        .broadcast("orders", "order.shipped", &json!({"id": 7}))
        .await
        .unwrap();
    let got = next(&mut ws).await;
    assert_eq!(got["event"], "order.shipped");
    assert_eq!(got["channel"], "orders");
    assert_eq!(
        serde_json::from_str::<Value>(got["data"].as_str().unwrap()).unwrap(),
        json!({"id": 7})
    );
    send(
        &mut ws,
        json!({"event": "pusher:unsubscribe", "data": {"channel": "orders"}}),
    )
    .await;
    quiet(&mut ws).await;
    env.b
        .broadcast("orders", "order.shipped", &json!({"id": 8}))
        .await
        .unwrap();
    quiet(&mut ws).await;
    assert_eq!(env.b.channels(), 0);

    // Wrong key, no protocol, an unsupported protocol.
    for (key, query, code) in [
        ("nope", "?protocol=7", 4001),
        (KEY, "", 4008),
        (KEY, "?protocol=x", 4006),
        (KEY, "?protocol=99", 4007),
    ] {
        let mut ws = open(env.addr, key, query).await;
        assert_eq!(error_code(&next(&mut ws).await), Some(code), "{key}{query}");
        assert_eq!(closed_with(&mut ws).await, Some(code as u16));
    }
}

#[tokio::test]
async fn oversized_message_closes_the_connection() {
    let env = start(BroadcastConfig {
        max_message_size: 1024,
        ..config()
    })
    .await;
    let (mut ws, _) = connect(&env).await;
    let big = json!({"event": "pusher:ping", "data": "x".repeat(1100)});
    send(&mut ws, big).await;
    assert_eq!(error_code(&next(&mut ws).await), Some(4300));
    assert_eq!(closed_with(&mut ws).await, Some(4300));
    // Far over the limit: refused by the socket itself.
    let (mut ws, _) = connect(&env).await;
    let _ = ws.send(Message::text("x".repeat(1 << 20))).await;
    assert!(closed_with(&mut ws).await.is_none_or(|c| c != 1000));
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(env.b.connections(), 0);
}

#[tokio::test]
async fn private_channels_follow_permissions_and_policies() {
    let env = start(config()).await;
    let (mut ws, sid) = connect(&env).await;
    let note = format!("private-notes.{}", env.ada_note);
    let mine = format!("private-user.{}", env.ada.0);
    let bobs = format!("private-user.{}", env.bob.0);

    // Ada may view her note and her own channel; Bob may not.
    let (s, ok) = auth(&env, &env.ada.1, &sid, &note).await;
    assert_eq!(s, StatusCode::OK, "{ok}");
    assert!(ok["auth"].as_str().unwrap().starts_with(&format!("{KEY}:")));
    assert_eq!(
        auth(&env, &env.bob.1, &sid, &note).await.0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        auth(&env, &env.ada.1, &sid, &bobs).await.0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        auth(&env, &env.ada.1, &sid, "private-notes.999999").await.0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        auth(&env, &env.ada.1, &sid, "private-nothing.1").await.0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        auth(&env, &env.ada.1, &sid, "orders").await.0,
        StatusCode::FORBIDDEN
    );
    let body = format!("socket_id={sid}&channel_name={note}");
    assert_eq!(
        post_form(&env, None, body.clone()).await.0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        post_form(&env, Some("forged"), body).await.0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        post_form(
            &env,
            Some(&env.ada.1),
            format!("socket_id=nope&channel_name={note}")
        )
        .await
        .0,
        StatusCode::UNPROCESSABLE_ENTITY
    );

    // A forged signature, one for another channel, none at all.
    let forged = json!({"auth": format!("{KEY}:{}", "0".repeat(64))});
    assert_eq!(
        error_code(&subscribe(&mut ws, &note, &forged).await),
        Some(4009)
    );
    let (_, other) = auth(&env, &env.ada.1, &sid, &mine).await;
    assert_eq!(
        error_code(&subscribe(&mut ws, &note, &other).await),
        Some(4009)
    );
    assert_eq!(
        error_code(&subscribe(&mut ws, &note, &Value::Null).await),
        Some(4009)
    );
    // Another socket's signature (reused on a second connection).
    let (mut ws2, _) = connect(&env).await;
    assert_eq!(
        error_code(&subscribe(&mut ws2, &note, &ok).await),
        Some(4009)
    );
    assert_eq!(env.b.subscribers(&note), 0);

    // The right one works, and the event arrives.
    let r = subscribe(&mut ws, &note, &ok).await;
    assert_eq!(r["event"], "pusher_internal:subscription_succeeded", "{r}");
    assert_eq!(
        error_code(&subscribe(&mut ws2, &note, &ok).await),
        Some(4009)
    );
    env.b
        .broadcast(&note, "note.updated", &json!({"id": env.ada_note}))
        .await
        .unwrap();
    assert_eq!(next(&mut ws).await["event"], "note.updated");
    quiet(&mut ws2).await;

    // The notification channel delivers to private-user.{id}.
    let r = subscribe(&mut ws, &mine, &other).await;
    assert_eq!(r["event"], "pusher_internal:subscription_succeeded", "{r}");
    env.platform
        .get::<Notifier>()
        .unwrap()
        .notify(env.ada.0, &Ping { n: 3 })
        .await
        .unwrap();
    let got = next(&mut ws).await;
    assert_eq!(got["event"], "ping");
    assert_eq!(got["channel"], mine.as_str());
    assert_eq!(
        serde_json::from_str::<Value>(got["data"].as_str().unwrap()).unwrap(),
        json!({"n": 3})
    );

    // A notice stored for the bell is announced there too (the panel's
    // bell counts up).
    let id = env
        .platform
        .notifications()
        .send(
            env.ada.0,
            platform_core::notification::Notice::new("Hello", "body").with_url("/admin/x"),
        )
        .await
        .unwrap();
    let got = next(&mut ws).await;
    assert_eq!(got["event"], "notification.created", "{got}");
    assert_eq!(got["channel"], mine.as_str());
    assert_eq!(
        data_of(&got),
        json!({"id": id, "title": "Hello", "url": "/admin/x", "level": "info"})
    );
    quiet(&mut ws2).await;
}

#[tokio::test]
async fn presence_members_once_per_user_and_client_events() {
    let env = start(BroadcastConfig {
        client_events: true,
        ..config()
    })
    .await;
    let chan = format!("presence-invoices.{}", env.invoice);
    let (mut a1, s1) = connect(&env).await;
    let (mut a2, s2) = connect(&env).await;
    let (mut b1, s3) = connect(&env).await;

    let (st, auth1) = auth(&env, &env.ada.1, &s1, &chan).await;
    assert_eq!(st, StatusCode::OK, "{auth1}");
    let cd: Value = serde_json::from_str(auth1["channel_data"].as_str().unwrap()).unwrap();
    assert_eq!(
        cd,
        json!({"user_id": env.ada.0.to_string(), "user_info": {"name": "Ada"}})
    );
    // Tampered channel_data (another user id) is refused.
    let mut tampered = auth1.clone();
    tampered["channel_data"] =
        json!({"user_id": env.bob.0.to_string(), "user_info": {"name": "Bob"}})
            .to_string()
            .into();
    assert_eq!(
        error_code(&subscribe(&mut a1, &chan, &tampered).await),
        Some(4009)
    );

    let r = subscribe(&mut a1, &chan, &auth1).await;
    assert_eq!(r["event"], "pusher_internal:subscription_succeeded");
    let p: Value = serde_json::from_str(r["data"].as_str().unwrap()).unwrap();
    assert_eq!(p["presence"]["count"], 1);

    let (_, auth3) = auth(&env, &env.bob.1, &s3, &chan).await;
    let r = subscribe(&mut b1, &chan, &auth3).await;
    let p: Value = serde_json::from_str(r["data"].as_str().unwrap()).unwrap();
    assert_eq!(p["presence"]["count"], 2, "{p}");
    assert_eq!(p["presence"]["hash"][env.ada.0.to_string()]["name"], "Ada");
    let added = next(&mut a1).await;
    assert_eq!(added["event"], "pusher_internal:member_added");
    // Ada's second socket: no member_added for Bob (Ada is already there).
    let (_, auth2) = auth(&env, &env.ada.1, &s2, &chan).await;
    let r = subscribe(&mut a2, &chan, &auth2).await;
    assert_eq!(
        serde_json::from_str::<Value>(r["data"].as_str().unwrap()).unwrap()["presence"]["count"],
        2
    );
    quiet(&mut b1).await;

    // A client event reaches the others, not the sender, with its user id.
    send(
        &mut b1,
        json!({"event": "client-typing", "channel": chan, "data": {"on": true}}),
    )
    .await;
    let got = next(&mut a1).await;
    assert_eq!(got["event"], "client-typing");
    assert_eq!(got["user_id"], env.bob.0.to_string());
    assert_eq!(next(&mut a2).await["event"], "client-typing");
    quiet(&mut b1).await;
    // At most 10 client events a second: the 11th of a burst is refused
    // (4301) and not delivered; the connection stays.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    for n in 1..=10 {
        send(
            &mut b1,
            json!({"event": "client-burst", "channel": chan, "data": {"n": n}}),
        )
        .await;
    }
    send(
        &mut b1,
        json!({"event": "client-burst", "channel": chan, "data": {"n": 11}}),
    )
    .await;
    assert_eq!(error_code(&next(&mut b1).await), Some(4301));
    for n in 1..=10 {
        let got = next(&mut a1).await;
        assert_eq!(got["event"], "client-burst");
        assert_eq!(data_of(&got)["n"], n);
    }
    quiet(&mut a1).await;
    quiet(&mut b1).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    // Not on a public channel, nor on one it is not subscribed to.
    subscribe(&mut b1, "lobby", &Value::Null).await;
    send(
        &mut b1,
        json!({"event": "client-x", "channel": "lobby", "data": {}}),
    )
    .await;
    assert_eq!(error_code(&next(&mut b1).await), Some(4009));
    send(
        &mut b1,
        json!({"event": "client-x", "channel": "private-user.1", "data": {}}),
    )
    .await;
    assert_eq!(error_code(&next(&mut b1).await), Some(4009));

    // Ada's second socket leaves: no member_removed; her last does: one.
    a2.close(None).await.unwrap();
    drop(a2);
    tokio::time::sleep(Duration::from_millis(200)).await;
    quiet(&mut b1).await;
    a1.close(None).await.unwrap();
    let removed = next(&mut b1).await;
    assert_eq!(removed["event"], "pusher_internal:member_removed");
    let d: Value = serde_json::from_str(removed["data"].as_str().unwrap()).unwrap();
    assert_eq!(d["user_id"], env.ada.0.to_string());
    quiet(&mut b1).await;
}

#[tokio::test]
async fn client_events_are_off_by_default() {
    let env = start(config()).await;
    let (mut ws, sid) = connect(&env).await;
    let chan = format!("private-user.{}", env.ada.0);
    let (_, a) = auth(&env, &env.ada.1, &sid, &chan).await;
    subscribe(&mut ws, &chan, &a).await;
    send(
        &mut ws,
        json!({"event": "client-x", "channel": chan, "data": {}}),
    )
    .await;
    assert_eq!(error_code(&next(&mut ws).await), Some(4009));
}

fn signed(path: &str, body: &str, ts: u64, secret: &str) -> String {
    let md5 = hex::encode(md5::Md5::digest(body.as_bytes()));
    let q = format!("auth_key={KEY}&auth_timestamp={ts}&auth_version=1.0&body_md5={md5}");
    let sig = platform_broadcast::protocol::sign(secret, &format!("POST\n{path}\n{q}"));
    format!("{path}?{q}&auth_signature={sig}")
}

#[tokio::test]
async fn publish_api_is_signed() {
    let env = start(config()).await;
    let (mut ws, _) = connect(&env).await;
    subscribe(&mut ws, "news", &Value::Null).await;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let path = format!("/apps/{APP}/events");
    let body = json!({"name": "headline", "data": "{\"t\":1}", "channels": ["news"]}).to_string();
    let call = |uri: String, body: String| {
        let app = platform_admin::app_router(&env.platform)
            .unwrap()
            .with_state(env.platform.clone());
        async move {
            app.oneshot(
                Request::post(uri)
                    .header("content-type", "application/json")
                    .body(Body::from(body))
                    .unwrap(),
            )
            .await
            .unwrap()
            .status()
        }
    };
    assert_eq!(
        call(signed(&path, &body, now, SECRET), body.clone()).await,
        StatusCode::OK
    );
    let got = next(&mut ws).await;
    assert_eq!(got["event"], "headline");
    assert_eq!(got["data"], "{\"t\":1}");
    // Wrong secret, stale timestamp, a body that is not the signed one.
    assert_eq!(
        call(
            signed(&path, &body, now, "wrong-secret-0123456"),
            body.clone()
        )
        .await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        call(signed(&path, &body, now - 3600, SECRET), body.clone()).await,
        StatusCode::UNAUTHORIZED
    );
    let other = body.replace("headline", "tampered");
    assert_eq!(
        call(signed(&path, &body, now, SECRET), other).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        call(path.clone(), body.clone()).await,
        StatusCode::UNAUTHORIZED
    );
    // Batch.
    let bpath = format!("/apps/{APP}/batch_events");
    let batch = json!({"batch": [{"name": "a", "data": "1", "channel": "news"}, {"name": "b", "data": "2", "channel": "news"}]}).to_string();
    assert_eq!(
        call(signed(&bpath, &batch, now, SECRET), batch.clone()).await,
        StatusCode::OK
    );
    assert_eq!(next(&mut ws).await["event"], "a");
    assert_eq!(next(&mut ws).await["event"], "b");
    quiet(&mut ws).await;
}

#[tokio::test]
async fn subscribe_storm_leaves_nothing_behind() {
    let env = start(BroadcastConfig {
        max_subscriptions: 50,
        ..config()
    })
    .await;
    let (ws, sid) = connect(&env).await;
    let chan = format!("presence-invoices.{}", env.invoice);
    let (_, pa) = auth(&env, &env.ada.1, &sid, &chan).await;
    let (mut tx, mut rx) = ws.split();
    let reader = tokio::spawn(async move {
        let mut succeeded = 0u32;
        while let Some(Ok(m)) = rx.next().await {
            if let Message::Text(t) = m {
                let v: Value = serde_json::from_str(t.as_str()).unwrap();
                if v["event"] == "pusher_internal:subscription_succeeded" {
                    succeeded += 1;
                }
                if v["event"] == "pusher:pong" {
                    break;
                }
            }
        }
        (succeeded, rx)
    });
    for i in 0..10_000u32 {
        let sub = if i % 10 == 0 {
            json!({"event": "pusher:subscribe", "data": {"channel": chan, "auth": pa["auth"], "channel_data": pa["channel_data"]}})
        } else {
            json!({"event": "pusher:subscribe", "data": {"channel": format!("storm-{i}")}})
        };
        tx.send(Message::text(sub.to_string())).await.unwrap();
        let ch = if i % 10 == 0 {
            chan.clone()
        } else {
            format!("storm-{i}")
        };
        let unsub = json!({"event": "pusher:unsubscribe", "data": {"channel": ch}});
        tx.send(Message::text(unsub.to_string())).await.unwrap();
    }
    tx.send(Message::text(json!({"event": "pusher:ping"}).to_string()))
        .await
        .unwrap();
    let (succeeded, rx) = tokio::time::timeout(Duration::from_secs(60), reader)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(succeeded, 10_000);
    assert_eq!(env.b.channels(), 0);
    assert_eq!(env.b.connections(), 1);
    assert_eq!(env.b.tracked_users(), 1, "the socket counts as Ada's");
    let mut ws = tx.reunite(rx).unwrap();
    // The cap on subscriptions per connection.
    for i in 0..50 {
        let r = subscribe(&mut ws, &format!("cap-{i}"), &Value::Null).await;
        assert_eq!(r["event"], "pusher_internal:subscription_succeeded");
    }
    assert_eq!(
        error_code(&subscribe(&mut ws, "cap-50", &Value::Null).await),
        Some(4100)
    );
    assert_eq!(env.b.channels(), 50);
    ws.close(None).await.unwrap();
    drop(ws);
    wait_for(|| env.b.connections() == 0 && env.b.channels() == 0 && env.b.tracked_users() == 0)
        .await;
}

async fn wait_for(cond: impl Fn() -> bool) {
    for _ in 0..200 {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("condition not met within 10 s");
}

#[tokio::test]
async fn a_client_that_never_reads_is_disconnected() {
    let env = start(BroadcastConfig {
        send_queue: 16,
        write_timeout: Duration::from_secs(1),
        ..config()
    })
    .await;
    let (mut slow, _) = connect(&env).await;
    subscribe(&mut slow, "firehose", &Value::Null).await;
    let (mut fast, _) = connect(&env).await;
    subscribe(&mut fast, "firehose", &Value::Null).await;
    let (tx, mut rx) = fast.split();
    let counter = tokio::spawn(async move {
        let mut n = 0u32;
        while let Some(Ok(m)) = rx.next().await {
            if matches!(m, Message::Text(_)) {
                n += 1;
                if n == 2_000 {
                    break;
                }
            }
        }
        (n, rx)
    });
    // `slow` never reads again: 2,000 events of 4 KiB (8 MiB) overflow
    // the socket buffers, then its queue of 16, and it is dropped.
    let payload = json!("x".repeat(4096));
    for _ in 0..2_000 {
        env.b
            .broadcast("firehose", "chunk", &payload)
            .await
            .unwrap();
        tokio::task::yield_now().await;
    }
    wait_for(|| env.b.subscribers("firehose") == 1).await;
    assert_eq!(env.b.connections(), 1);
    let (n, _rx) = tokio::time::timeout(Duration::from_secs(30), counter)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(n, 2_000, "the reading client got everything");
    drop(tx);
    drop(slow);
}

#[tokio::test]
async fn connections_per_address_and_user_are_limited() {
    let env = start(BroadcastConfig {
        max_connections_per_ip: 2,
        max_connections_per_user: 1,
        ..config()
    })
    .await;
    let (mut a, sa) = connect(&env).await;
    let (mut b, sb) = connect(&env).await;
    let mut c = open(env.addr, KEY, "?protocol=7").await;
    assert_eq!(error_code(&next(&mut c).await), Some(4100));
    assert_eq!(closed_with(&mut c).await, Some(4100));
    // One connection per user: the second socket of Ada is refused.
    let chan = format!("private-user.{}", env.ada.0);
    let (_, pa) = auth(&env, &env.ada.1, &sa, &chan).await;
    assert_eq!(
        subscribe(&mut a, &chan, &pa).await["event"],
        "pusher_internal:subscription_succeeded"
    );
    let (_, pb) = auth(&env, &env.ada.1, &sb, &chan).await;
    assert_eq!(error_code(&subscribe(&mut b, &chan, &pb).await), Some(4100));
    a.close(None).await.unwrap();
    wait_for(|| env.b.connections() == 1).await;
    assert_eq!(
        subscribe(&mut b, &chan, &pb).await["event"],
        "pusher_internal:subscription_succeeded"
    );
}

/// The real `pusher-js` from npm, run by Node (`tests/pusher/`): connects,
/// subscribes to public, private and presence channels (authorised at
/// `/broadcasting/auth`), receives a server broadcast and signed publish
/// calls, sees members added and removed, and gets a resource event (its
/// subscription signed with `channel_data`). Skipped with a reason when Node
/// is missing, except under `CI=true`.
#[tokio::test]
async fn pusher_js_connects_and_receives() {
    let env = start_with(config(), true).await;
    // Ada may see personal data: her subscriptions to a resource's
    // channels carry a signed `channel_data`, which pusher-js must send.
    let console = Context::console();
    let access = env.platform.access();
    access.create_role(&console, "pii").await.unwrap();
    access
        .set_role_permissions(&console, "pii", &["view_pii".to_owned()])
        .await
        .unwrap();
    access
        .assign_role(&console, env.ada.0, "pii")
        .await
        .unwrap();
    let b = env.b.clone();
    let platform = env.platform.clone();
    let invoice = env.invoice;
    let ticker = tokio::spawn(async move {
        let repo = platform.repo::<Invoice>(&Context::system());
        for n in 0u32.. {
            b.broadcast("server-ticks", "tick", &json!({ "n": n }))
                .await
                .unwrap();
            if n % 3 == 0 {
                let mut inv = repo.find(invoice).await.unwrap();
                inv.notes = Some(format!("edit {n}"));
                repo.update(&inv).await.unwrap();
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    let vars = [
        ("PUSHER_HOST", env.addr.ip().to_string()),
        ("PUSHER_PORT", env.addr.port().to_string()),
        ("PUSHER_KEY", KEY.to_owned()),
        ("PUSHER_APP_ID", APP.to_owned()),
        ("PUSHER_SECRET", SECRET.to_owned()),
        ("ADA_TOKEN", env.ada.1.clone()),
        ("BOB_TOKEN", env.bob.1.clone()),
        ("ADA_ID", env.ada.0.to_string()),
        ("BOB_ID", env.bob.0.to_string()),
        ("INVOICE_ID", env.invoice.to_string()),
    ];
    platform_tests::pusher::run("pusher.test.mjs", &vars, 5).await;
    ticker.abort();
}

#[tokio::test]
async fn a_silent_client_is_pinged_then_closed() {
    let env = start(BroadcastConfig {
        activity_timeout: Duration::from_secs(1),
        pong_timeout: Duration::from_secs(1),
        ..config()
    })
    .await;
    // One that answers the server's ping stays.
    let mut alive = open(env.addr, KEY, "?protocol=7").await;
    assert_eq!(
        next(&mut alive).await["event"],
        "pusher:connection_established"
    );
    // One that does not is closed with 4201.
    let mut silent = open(env.addr, KEY, "?protocol=7").await;
    assert_eq!(
        next(&mut silent).await["event"],
        "pusher:connection_established"
    );
    assert_eq!(next(&mut alive).await["event"], "pusher:ping");
    send(&mut alive, json!({"event": "pusher:pong", "data": {}})).await;
    assert_eq!(next(&mut silent).await["event"], "pusher:ping");
    assert_eq!(error_code(&next(&mut silent).await), Some(4201));
    assert_eq!(closed_with(&mut silent).await, Some(4201));
    assert_eq!(next(&mut alive).await["event"], "pusher:ping");
    quiet(&mut alive).await;
    assert_eq!(env.b.connections(), 1);
}

/// One request through the application router with the session cookie;
/// status, the session cookie it sets (if any) and the body.
async fn panel(
    env: &Env,
    method: &str,
    path: &str,
    cookie: Option<&str>,
    headers: &[(&str, &str)],
    body: String,
) -> (StatusCode, Option<String>, String) {
    let app = platform_admin::app_router(&env.platform)
        .unwrap()
        .with_state(env.platform.clone());
    let mut b = Request::builder()
        .method(method)
        .uri(path)
        .header("content-type", "application/x-www-form-urlencoded")
        .header("user-agent", "platform-tests (broadcasting)");
    if let Some(c) = cookie {
        b = b.header("cookie", format!("platform_session={c}"));
    }
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    let mut req = b.body(Body::from(body)).unwrap();
    req.extensions_mut()
        .insert(axum::extract::ConnectInfo(SocketAddr::from((
            [192, 0, 2, 7],
            4000,
        ))));
    let res = app.oneshot(req).await.unwrap();
    let status = res.status();
    let set = res
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|c| c.strip_prefix("platform_session="))
        .map(|c| c.split(';').next().unwrap_or_default().to_owned());
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    (status, set, String::from_utf8_lossy(&bytes).into_owned())
}

fn between(s: &str, start: &str, end: &str) -> String {
    let i = s
        .find(start)
        .unwrap_or_else(|| panic!("`{start}` not in {s}"))
        + start.len();
    s[i..i + s[i..].find(end).expect("end")].to_owned()
}

fn csrf_of(page: &str) -> String {
    between(page, "<meta name=\"csrf-token\" content=\"", "\"")
}

/// The panel's session authorises too, with its CSRF token in
/// `X-CSRF-TOKEN`; without it (or with another) the answer is 403.
#[tokio::test]
async fn the_panel_session_authorises_with_its_csrf_token() {
    let env = start(config()).await;
    let (_, cookie, page) = panel(&env, "GET", "/admin/login", None, &[], String::new()).await;
    let cookie = cookie.expect("a session cookie");
    let login = format!(
        "_csrf={}&email={}&password={}",
        enc(&csrf_of(&page)),
        enc("ada@example.com"),
        enc("long enough pw")
    );
    let (st, cookie2, _) = panel(&env, "POST", "/admin/login", Some(&cookie), &[], login).await;
    assert_eq!(st, StatusCode::SEE_OTHER);
    let cookie = cookie2.expect("sign-in rotates the session");
    let (_, _, setup) = panel(
        &env,
        "GET",
        "/admin/two-factor/setup",
        Some(&cookie),
        &[],
        String::new(),
    )
    .await;
    let secret = between(&setup, "<code id=\"two-factor-secret\">", "<");
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let code = platform_core::auth::code_at(&secret, now).unwrap();
    let body = format!("_csrf={}&code={code}", enc(&csrf_of(&setup)));
    let (st, cookie2, done) = panel(
        &env,
        "POST",
        "/admin/two-factor/setup",
        Some(&cookie),
        &[],
        body,
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{done}");
    let cookie = cookie2.expect("two-factor set-up rotates the session");
    let (st, _, home) = panel(&env, "GET", "/admin", Some(&cookie), &[], String::new()).await;
    assert_eq!(st, StatusCode::OK);
    let csrf = csrf_of(&home);

    let (_, sid) = connect(&env).await;
    let chan = format!("private-notes.{}", env.ada_note);
    let form = format!("socket_id={sid}&channel_name={chan}");
    let (st, _, body) = panel(
        &env,
        "POST",
        "/broadcasting/auth",
        Some(&cookie),
        &[("x-csrf-token", &csrf)],
        form.clone(),
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{body}");
    assert!(body.contains("\"auth\""), "{body}");
    let (st, _, _) = panel(
        &env,
        "POST",
        "/broadcasting/auth",
        Some(&cookie),
        &[],
        form.clone(),
    )
    .await;
    assert_eq!(st, StatusCode::FORBIDDEN, "no CSRF token");
    let (st, _, _) = panel(
        &env,
        "POST",
        "/broadcasting/auth",
        Some(&cookie),
        &[("x-csrf-token", "forged")],
        form.clone(),
    )
    .await;
    assert_eq!(st, StatusCode::FORBIDDEN, "another CSRF token");
    let (st, _, _) = panel(
        &env,
        "POST",
        "/broadcasting/auth",
        Some("not-a-session"),
        &[("x-csrf-token", &csrf)],
        form,
    )
    .await;
    assert_eq!(st, StatusCode::FORBIDDEN, "no session");
}

/// The data of a received event frame.
fn data_of(frame: &Value) -> Value {
    serde_json::from_str(frame["data"].as_str().unwrap()).unwrap()
}

#[tokio::test]
async fn resource_events_are_broadcast_per_viewer_after_commit() {
    let env = start_with(config(), true).await;
    let console = Context::console();
    let access = env.platform.access();
    for (role, perms) in [
        ("clerk", &["view_any_customer", "view_customer"][..]),
        (
            "auditor",
            &["view_any_customer", "view_customer", "view_pii"][..],
        ),
    ] {
        access.create_role(&console, role).await.unwrap();
        let perms: Vec<String> = perms.iter().map(|p| (*p).to_owned()).collect();
        access
            .set_role_permissions(&console, role, &perms)
            .await
            .unwrap();
    }
    access
        .assign_role(&console, env.ada.0, "auditor")
        .await
        .unwrap();
    access
        .assign_role(&console, env.bob.0, "clerk")
        .await
        .unwrap();
    let carol = user(&env.platform, "carol@example.com", "Carol").await;

    let (mut ada, ada_sid) = connect(&env).await;
    let (mut bob, bob_sid) = connect(&env).await;
    let channel = "private-customers";

    // The resource channel needs the list permission, and a policy that
    // lets the subscriber see every record.
    assert_eq!(
        auth(&env, &carol.1, &ada_sid, channel).await.0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        auth(&env, &env.ada.1, &ada_sid, "private-notes").await.0,
        StatusCode::FORBIDDEN,
        "the notes' policy shows Ada her own notes only"
    );

    // Ada may see personal data: her subscription is signed as such.
    let (s, ada_auth) = auth(&env, &env.ada.1, &ada_sid, channel).await;
    assert_eq!(s, StatusCode::OK, "{ada_auth}");
    assert_eq!(ada_auth["channel_data"], r#"{"pii":true}"#);
    let (s, bob_auth) = auth(&env, &env.bob.1, &bob_sid, channel).await;
    assert_eq!(s, StatusCode::OK, "{bob_auth}");
    assert!(bob_auth.get("channel_data").is_none(), "{bob_auth}");

    // Bob cannot add the grant himself: the signature covers it.
    let mut forged = bob_auth.clone();
    forged["channel_data"] = json!(r#"{"pii":true}"#);
    assert_eq!(
        error_code(&subscribe(&mut bob, channel, &forged).await),
        Some(4009)
    );
    for (ws, a) in [(&mut ada, &ada_auth), (&mut bob, &bob_auth)] {
        let r = subscribe(ws, channel, a).await;
        assert_eq!(r["event"], "pusher_internal:subscription_succeeded", "{r}");
    }

    // A committed create reaches both, the e-mail masked for Bob only.
    let zed = env
        .platform
        .repo::<Customer>(&Context::system())
        .create(&customer("Zed", "zed@example.com", "FR"))
        .await
        .unwrap();
    let (a, b) = (next(&mut ada).await, next(&mut bob).await);
    for f in [&a, &b] {
        assert_eq!(f["event"], "customer.created", "{f}");
        assert_eq!(f["channel"], channel);
        let d = data_of(f);
        assert_eq!(d["record_id"], zed.id.to_string());
        assert_eq!(d["changes"]["name"]["new"], "Zed");
    }
    assert_eq!(data_of(&a)["changes"]["email"]["new"], "zed@example.com");
    assert_eq!(data_of(&b)["changes"]["email"]["new"], "z***@example.com");
    assert!(!b["data"].as_str().unwrap().contains("zed@example.com"));

    // A write that fails (a duplicate e-mail) broadcasts nothing.
    let dup = env
        .platform
        .repo::<Customer>(&Context::system())
        .create(&customer("Zed again", "zed@example.com", "FR"))
        .await;
    assert!(dup.is_err());
    quiet(&mut ada).await;
    quiet(&mut bob).await;

    // A record's channel: an invoice's encrypted IBAN is never sent.
    let inv_channel = format!("private-invoices.{}", env.invoice);
    let (s, inv_auth) = auth(&env, &env.bob.1, &bob_sid, &inv_channel).await;
    assert_eq!(s, StatusCode::OK, "{inv_auth}");
    let r = subscribe(&mut bob, &inv_channel, &inv_auth).await;
    assert_eq!(r["event"], "pusher_internal:subscription_succeeded", "{r}");
    let repo = env.platform.repo::<Invoice>(&Context::system());
    let mut inv = repo.find(env.invoice).await.unwrap();
    inv.status = "sent".into();
    inv.iban = Some("GB33 BUKB 2020 1555 5555 55".into());
    repo.update(&inv).await.unwrap();
    let f = next(&mut bob).await;
    assert_eq!(f["event"], "invoice.updated", "{f}");
    assert_eq!(f["channel"], inv_channel.as_str());
    let d = data_of(&f);
    assert_eq!(
        d["changes"]["status"],
        json!({"old": "draft", "new": "sent"})
    );
    assert!(d["changes"].get("iban").is_none(), "{d}");
    assert!(!f["data"].as_str().unwrap().contains("GB33"));
    env.platform.shutdown().await;
}

async fn outbox_rows(p: &Platform) -> i64 {
    let q =
        platform_core::db::Sql::literal(p.db().backend(), "SELECT COUNT(*) FROM platform_outbox");
    p.db()
        .fetch_all(q, &[platform_core::value::FieldType::I64])
        .await
        .unwrap()[0][0]
        .as_i64()
        .unwrap()
}

#[tokio::test]
async fn on_one_node_changes_nobody_watches_store_no_outbox_row() {
    // No dispatcher: what is stored stays in the table.
    let env = start(config()).await;
    assert_eq!(
        outbox_rows(&env.platform).await,
        0,
        "the set-up's writes had no subscriber"
    );
    let (mut ws, sid) = connect(&env).await;
    let channel = format!("private-invoices.{}", env.invoice);
    let (s, a) = auth(&env, &env.ada.1, &sid, &channel).await;
    assert_eq!(s, StatusCode::OK, "{a}");
    let r = subscribe(&mut ws, &channel, &a).await;
    assert_eq!(r["event"], "pusher_internal:subscription_succeeded", "{r}");
    let repo = env.platform.repo::<Invoice>(&Context::system());
    // Another invoice: neither of its channels is watched.
    let customer_id = repo.find(env.invoice).await.unwrap().customer_id;
    let other = repo
        .create(&invoice(customer_id, 2, "draft", 5))
        .await
        .unwrap();
    let mut o = repo.find(other.id).await.unwrap();
    o.status = "sent".into();
    repo.update(&o).await.unwrap();
    assert_eq!(outbox_rows(&env.platform).await, 0);
    // The watched invoice: stored.
    let mut inv = repo.find(env.invoice).await.unwrap();
    inv.status = "paid".into();
    repo.update(&inv).await.unwrap();
    assert_eq!(outbox_rows(&env.platform).await, 1);
    env.platform.shutdown().await;
}
