//! An open-loop load generator: sends GET requests at a fixed rate over a
//! fixed number of keep-alive connections, and measures each request's
//! latency from the moment it was *due*, so a slow server cannot hide its
//! queueing (no coordinated omission, which closed-loop tools like wrk have).
//!
//! `load <url> <requests per second> <seconds> <connections> [header ...]`
//!
//! Prints one line: `sent ok rps p50_ms p90_ms p99_ms max_ms`. wrk and oha
//! measure throughput well; this measures latency at a given rate (the
//! figure "N requests/s with p99 under T ms").
//!
//! Written here rather than taken from crates.io: oha's rate mode needs a
//! ten-minute `cargo install`, wrk2 is not packaged in Debian, and this is
//! a few dozen lines over tokio.

use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

struct Target {
    host: String,
    path: String,
    headers: Vec<String>,
}

async fn request(conn: &mut BufReader<TcpStream>, t: &Target) -> std::io::Result<u16> {
    let mut req = format!("GET {} HTTP/1.1\r\nHost: {}\r\n", t.path, t.host);
    for h in &t.headers {
        req.push_str(h);
        req.push_str("\r\n");
    }
    req.push_str("\r\n");
    conn.get_mut().write_all(req.as_bytes()).await?;
    let mut line = String::new();
    conn.read_line(&mut line).await?;
    let status: u16 = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let mut len = 0usize;
    loop {
        line.clear();
        if conn.read_line(&mut line).await? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        if let Some((k, v)) = l.split_once(':')
            && k.eq_ignore_ascii_case("content-length")
        {
            len = v.trim().parse().unwrap_or(0);
        }
    }
    let mut body = vec![0; len];
    conn.read_exact(&mut body).await?;
    Ok(status)
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i].as_secs_f64() * 1000.0
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 5 {
        anyhow::bail!("usage: load <url> <rps> <seconds> <connections> [header ...]");
    }
    let url = args[1]
        .strip_prefix("http://")
        .ok_or_else(|| anyhow::anyhow!("http:// URLs only"))?;
    let (host, path) = url.split_at(url.find('/').unwrap_or(url.len()));
    let rate: f64 = args[2].parse()?;
    let secs: f64 = args[3].parse()?;
    let conns: usize = args[4].parse()?;
    let target = std::sync::Arc::new(Target {
        host: host.to_owned(),
        path: if path.is_empty() {
            "/".into()
        } else {
            path.to_owned()
        },
        headers: args[5..].to_vec(),
    });
    let total = (rate * secs) as usize;
    let interval = Duration::from_secs_f64(1.0 / rate);
    let start = Instant::now() + Duration::from_millis(200);
    // Request k is due at start + k * interval; connections take the next
    // due request as soon as they are free.
    let (tx, rx) = async_channel(total);
    for k in 0..total {
        tx.send(start + interval * k as u32).await.ok();
    }
    drop(tx);
    let mut workers = Vec::new();
    for _ in 0..conns {
        let rx = rx.clone();
        let t = target.clone();
        workers.push(tokio::spawn(async move {
            let mut out = Vec::new();
            let mut conn = BufReader::new(TcpStream::connect(&t.host).await.expect("connect"));
            while let Some(due) = rx.recv().await {
                tokio::time::sleep_until(due.into()).await;
                let ok = match request(&mut conn, &t).await {
                    Ok(s) => (200..300).contains(&s),
                    Err(_) => {
                        conn =
                            BufReader::new(TcpStream::connect(&t.host).await.expect("reconnect"));
                        false
                    }
                };
                out.push((due.elapsed(), ok));
            }
            out
        }));
    }
    let mut all = Vec::with_capacity(total);
    for w in workers {
        all.extend(w.await?);
    }
    let elapsed = start.elapsed().as_secs_f64();
    let ok = all.iter().filter(|r| r.1).count();
    let mut lat: Vec<Duration> = all.iter().map(|r| r.0).collect();
    lat.sort();
    println!(
        "{} {} {:.1} {:.2} {:.2} {:.2} {:.2}",
        all.len(),
        ok,
        all.len() as f64 / elapsed,
        percentile(&lat, 0.50),
        percentile(&lat, 0.90),
        percentile(&lat, 0.99),
        lat.last().map_or(0.0, |d| d.as_secs_f64() * 1000.0)
    );
    Ok(())
}

/// A tiny multi-consumer queue over a mutex (tokio has no mpmc channel).
fn async_channel(cap: usize) -> (Sender, Receiver) {
    let (tx, rx) = tokio::sync::mpsc::channel(cap.max(1));
    let rx = std::sync::Arc::new(tokio::sync::Mutex::new(rx));
    (Sender(tx), Receiver(rx))
}

struct Sender(tokio::sync::mpsc::Sender<Instant>);
impl Sender {
    async fn send(&self, v: Instant) -> Result<(), ()> {
        self.0.send(v).await.map_err(|_| ())
    }
}

#[derive(Clone)]
struct Receiver(std::sync::Arc<tokio::sync::Mutex<tokio::sync::mpsc::Receiver<Instant>>>);
impl Receiver {
    async fn recv(&self) -> Option<Instant> {
        self.0.lock().await.recv().await
    }
}
