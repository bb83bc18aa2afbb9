//! Broadcasting figures on loopback, with Pusher-protocol clients
//! (tokio-tungstenite) against broadcasting servers run as child processes
//! (so their memory is measured alone):
//!
//! 1. memory per connection: the server's resident memory before and
//!    after `--connections` clients (default 10,000) connect and subscribe
//!    to a public channel;
//! 2. broadcast latency: `--subscribers` clients (default 1,000) on one
//!    channel, `--messages` events (default 100, 20 a second) published
//!    through the signed HTTP API of node A; from the publish call to each
//!    client's receipt (all clocks are this process's), p50/p99/max. With
//!    `--redis URL` the subscribers are split over two nodes sharing the
//!    channel over Redis.
//!
//! Usage:
//! `cargo run --release -p platform-benches --bin broadcast -- [--connections N] [--subscribers N] [--messages N] [--redis URL]`
//! (`serve [--redis URL PREFIX]` is the server child's own mode).

use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures::{SinkExt, StreamExt};
use hmac::{Hmac, KeyInit, Mac};
use md5::Digest;
use platform_adapters::redis::RedisBroadcastBackplane;
use platform_broadcast::{BroadcastConfig, Broadcasting};
use platform_core::Platform;
use platform_tests::domain::registry;
use platform_tests::{TestDb, test_key};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::Mutex;
use tokio_tungstenite::tungstenite::Message;

const KEY: &str = "bench-key";
const SECRET: &str = "bench-secret-0123456789";
const APP: &str = "bench-app";

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn num(args: &[String], name: &str, default: usize) -> usize {
    arg(args, name).map_or(default, |v| v.parse().expect("a number"))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("serve") {
        return serve(args.get(2).cloned(), args.get(3).cloned()).await;
    }
    let connections = num(&args, "--connections", 10_000);
    let subscribers = num(&args, "--subscribers", 1_000);
    let messages = num(&args, "--messages", 100);
    let redis = arg(&args, "--redis");

    // 1. Memory per connection, one node.
    if connections > 0 {
        let (mut child, addr) = spawn_server(None).await?;
        let pid = child.id().expect("pid");
        tokio::time::sleep(Duration::from_millis(500)).await;
        let before = rss_kib(pid);
        let t = Instant::now();
        let held = connect_many(&[addr], connections, "idle").await;
        let took = t.elapsed();
        tokio::time::sleep(Duration::from_secs(1)).await;
        let after = rss_kib(pid);
        println!(
            "memory: {} connections (subscribed) in {:.1} s; server RSS {} KiB -> {} KiB: {:.1} KiB per connection",
            held.len(),
            took.as_secs_f64(),
            before,
            after,
            (after - before) as f64 / held.len() as f64
        );
        drop(held);
        child.kill().await?;
    }

    // 2. Broadcast latency.
    let prefix = format!("bench-bcast-{}:", std::process::id());
    let mut children = Vec::new();
    let mut addrs = Vec::new();
    let nodes = if redis.is_some() { 2 } else { 1 };
    for _ in 0..nodes {
        let (child, addr) = spawn_server(redis.clone().map(|u| (u, prefix.clone()))).await?;
        children.push(child);
        addrs.push(addr);
    }
    let times = Arc::new(Mutex::new(Vec::with_capacity(subscribers * messages)));
    let received = Arc::new(AtomicUsize::new(0));
    let subs = subscribe_many(&addrs, subscribers, &times, &received).await;
    let client = Client::new(addrs[0]);
    for n in 0..messages {
        let t = now_us();
        client
            .publish("bench", "tick", &json!({ "t": t, "n": n }))
            .await?;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while received.load(Ordering::SeqCst) < subscribers * messages && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut v = times.lock().await.clone();
    v.sort_unstable();
    let p =
        |q: f64| v[((v.len() as f64 * q).ceil() as usize).clamp(1, v.len()) - 1] as f64 / 1000.0;
    println!(
        "latency ({} node{}): {} subscribers x {} messages: received {} of {}; p50={:.2} ms p99={:.2} ms max={:.2} ms",
        nodes,
        if nodes == 1 { "" } else { "s over Redis" },
        subscribers,
        messages,
        v.len(),
        subscribers * messages,
        p(0.50),
        p(0.99),
        v.last().copied().unwrap_or(0) as f64 / 1000.0
    );
    drop(subs);
    for mut c in children {
        c.kill().await?;
    }
    Ok(())
}

fn now_us() -> u64 {
    u64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_micros(),
    )
    .unwrap_or(u64::MAX)
}

/// The resident set of process `pid`, in KiB.
fn rss_kib(pid: u32) -> i64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Starts `broadcast serve` as a child; its address.
async fn spawn_server(
    redis: Option<(String, String)>,
) -> anyhow::Result<(tokio::process::Child, SocketAddr)> {
    let mut cmd = tokio::process::Command::new(std::env::current_exe()?);
    cmd.arg("serve");
    if let Some((url, prefix)) = redis {
        cmd.args(["--redis", &url, &prefix]);
    }
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()?;
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    while let Some(line) = lines.next_line().await? {
        if let Some(a) = line.strip_prefix("LISTENING ") {
            return Ok((child, a.parse()?));
        }
    }
    anyhow::bail!("the server exited before listening")
}

/// The server child: a platform with broadcasting (and no other traffic).
async fn serve(redis: Option<String>, prefix: Option<String>) -> anyhow::Result<()> {
    let db = TestDb::sqlite();
    db.create_tables(&registry()).await;
    let mut config = BroadcastConfig {
        max_connections: 20_000,
        max_connections_per_ip: 20_000,
        resource_events: false,
        ..BroadcastConfig::new(APP, KEY, SECRET)
    };
    if let (Some(url), Some(prefix)) = (redis, prefix) {
        config.backplane =
            Arc::new(RedisBroadcastBackplane::connect_with_prefix(&url, &prefix).await?);
    }
    let platform = Platform::builder()
        .ignore_env()
        .database_url(&db.url)
        .app_key(test_key())
        .registry(registry())
        .background_tasks(false)
        .access_log(false)
        .with(Broadcasting::new(config))
        .build()
        .await?;
    let router: axum::Router = platform_admin::app_router(&platform)?.with_state(platform.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    println!("LISTENING {}", listener.local_addr()?);
    axum::serve(
        listener,
        router.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .await?;
    Ok(())
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Connects to `addr` and subscribes to the public `channel`.
async fn connect(addr: SocketAddr, channel: &str) -> anyhow::Result<Ws> {
    let url = format!("ws://{addr}/app/{KEY}?protocol=7&client=js&version=8.4.0");
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await?;
    let hello = ws.next().await.ok_or_else(|| anyhow::anyhow!("closed"))??;
    anyhow::ensure!(
        hello.to_text()?.contains("connection_established"),
        "{hello}"
    );
    ws.send(Message::text(
        json!({"event": "pusher:subscribe", "data": {"channel": channel}}).to_string(),
    ))
    .await?;
    let ok = ws.next().await.ok_or_else(|| anyhow::anyhow!("closed"))??;
    anyhow::ensure!(ok.to_text()?.contains("subscription_succeeded"), "{ok}");
    Ok(ws)
}

/// `n` idle connections, spread over `addrs`, 200 connecting at a time.
async fn connect_many(addrs: &[SocketAddr], n: usize, channel: &str) -> Vec<Ws> {
    let mut out = Vec::with_capacity(n);
    let mut i = 0;
    while i < n {
        let batch: Vec<_> = (i..(i + 200).min(n))
            .map(|k| connect(addrs[k % addrs.len()], channel))
            .collect();
        for r in futures::future::join_all(batch).await {
            out.push(r.expect("a connection"));
        }
        i += 200;
    }
    out
}

/// `n` subscribers of `bench` spread over `addrs`, each recording the
/// latency of every `tick` it reads.
async fn subscribe_many(
    addrs: &[SocketAddr],
    n: usize,
    times: &Arc<Mutex<Vec<u64>>>,
    received: &Arc<AtomicUsize>,
) -> Vec<tokio::task::JoinHandle<()>> {
    let conns = connect_many(addrs, n, "bench").await;
    conns
        .into_iter()
        .map(|mut ws| {
            let (times, received) = (times.clone(), received.clone());
            tokio::spawn(async move {
                while let Some(Ok(m)) = ws.next().await {
                    let Ok(text) = m.to_text() else { continue };
                    let Ok(frame) = serde_json::from_str::<Value>(text) else {
                        continue;
                    };
                    if frame["event"] != "tick" {
                        continue;
                    }
                    let now = now_us();
                    let data: Value = serde_json::from_str(frame["data"].as_str().unwrap_or("{}"))
                        .unwrap_or_default();
                    let t = data["t"].as_u64().unwrap_or(now);
                    times.lock().await.push(now.saturating_sub(t));
                    received.fetch_add(1, Ordering::SeqCst);
                }
            })
        })
        .collect()
}

/// Signed calls to the publish API of one node (HTTP/1.1 written by hand:
/// one request per connection is all a benchmark needs).
struct Client {
    addr: SocketAddr,
}

impl Client {
    fn new(addr: SocketAddr) -> Self {
        Self { addr }
    }

    async fn publish(&self, channel: &str, event: &str, data: &Value) -> anyhow::Result<()> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let body =
            json!({"name": event, "channels": [channel], "data": data.to_string()}).to_string();
        let path = format!("/apps/{APP}/events");
        let md5 = hex::encode(md5::Md5::digest(body.as_bytes()));
        let ts = now_us() / 1_000_000;
        let query = format!("auth_key={KEY}&auth_timestamp={ts}&auth_version=1.0&body_md5={md5}");
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(SECRET.as_bytes())?;
        mac.update(format!("POST\n{path}\n{query}").as_bytes());
        let sig = hex::encode(mac.finalize().into_bytes());
        let req = format!(
            "POST {path}?{query}&auth_signature={sig} HTTP/1.1\r\nhost: {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            self.addr,
            body.len()
        );
        let mut s = tokio::net::TcpStream::connect(self.addr).await?;
        s.write_all(req.as_bytes()).await?;
        let mut res = Vec::new();
        s.read_to_end(&mut res).await?;
        let head = String::from_utf8_lossy(&res[..res.len().min(12)]).into_owned();
        anyhow::ensure!(
            head.ends_with("200"),
            "publish: {}",
            String::from_utf8_lossy(&res)
        );
        Ok(())
    }
}
