//! `sv0 bench --http URL`: a load generator for `sv0 serve`. It walks the pages of a path query
//! once to learn their cursors, then keeps `--concurrency` keep-alive connections busy asking
//! for those pages in turn for `--seconds`, and reports requests per second, latency
//! percentiles and errors (any status but 200, any broken connection).

use std::io::Write;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::output::print_json;
use crate::{BenchArgs, EXIT_OK};

/// Host and port of an `http://HOST:PORT` base URL.
pub(crate) fn authority(url: &str) -> anyhow::Result<String> {
    let rest = url.strip_prefix("http://").context("--http takes http://HOST:PORT")?;
    Ok(rest.trim_end_matches('/').to_string())
}

/// One keep-alive connection.
pub(crate) struct Connection {
    stream: TcpStream,
    buffer: Vec<u8>,
}

impl Connection {
    pub(crate) async fn open(authority: &str) -> anyhow::Result<Connection> {
        let stream = TcpStream::connect(authority).await.with_context(|| format!("cannot connect to {authority}"))?;
        stream.set_nodelay(true)?;
        Ok(Connection { stream, buffer: Vec::with_capacity(64 * 1024) })
    }

    /// Sends a request and reads the whole response: (status, body).
    pub(crate) async fn get(&mut self, request: &[u8]) -> anyhow::Result<(u16, Vec<u8>)> {
        self.stream.write_all(request).await?;
        self.buffer.clear();
        let mut chunk = [0u8; 16 * 1024];
        let head_end = loop {
            if let Some(end) = self.buffer.windows(4).position(|w| w == b"\r\n\r\n") {
                break end + 4;
            }
            let n = self.stream.read(&mut chunk).await?;
            if n == 0 {
                bail!("the server closed the connection");
            }
            self.buffer.extend_from_slice(&chunk[..n]);
        };
        let head = String::from_utf8_lossy(&self.buffer[..head_end]).to_ascii_lowercase();
        let status = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
        let length: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:").map(|v| v.trim().parse().unwrap_or(0)))
            .context("a response without Content-Length")?;
        while self.buffer.len() < head_end + length {
            let n = self.stream.read(&mut chunk).await?;
            if n == 0 {
                bail!("the server closed the connection mid-body");
            }
            self.buffer.extend_from_slice(&chunk[..n]);
        }
        Ok((status, self.buffer[head_end..head_end + length].to_vec()))
    }
}

fn request(authority: &str, target: &str, token: &str) -> Vec<u8> {
    format!("GET {target} HTTP/1.1\r\nHost: {authority}\r\nAuthorization: Bearer {token}\r\n\r\n").into_bytes()
}

/// A POST of a JSON body.
pub(crate) fn post_json(authority: &str, target: &str, token: &str, body: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "POST {target} HTTP/1.1\r\nHost: {authority}\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(body);
    out
}

/// A GET.
pub(crate) fn get_request(authority: &str, target: &str, token: &str) -> Vec<u8> {
    request(authority, target, token)
}

/// Runs the load test.
pub async fn run(args: &BenchArgs, url: &str, out: &mut dyn Write) -> anyhow::Result<u8> {
    let authority = authority(url)?;
    let token_file = args.token_file.as_ref().context("--http needs --token-file FILE (a token of the tenant)")?;
    let token = std::fs::read_to_string(token_file)
        .with_context(|| format!("cannot read {}", token_file.display()))?
        .trim()
        .to_string();
    // Learn the pages' cursors with one walk.
    let first = format!("/api/v1/paths?scope={}&limit={}", args.scope, args.page);
    let mut targets = vec![first.clone()];
    let mut connection = Connection::open(&authority).await?;
    let mut paths = 0;
    loop {
        let target = targets.last().cloned().unwrap_or_default();
        let (status, body) = connection.get(&request(&authority, &target, &token)).await?;
        if status != 200 {
            bail!("GET {target} answered {status}: {}", String::from_utf8_lossy(&body));
        }
        let page: serde_json::Value = serde_json::from_slice(&body)?;
        paths += page["items"].as_array().map_or(0, Vec::len);
        match page["next_cursor"].as_str() {
            Some(cursor) => targets.push(format!("{first}&cursor={cursor}")),
            None => break,
        }
    }
    let requests: Vec<Vec<u8>> = targets.iter().map(|t| request(&authority, t, &token)).collect();
    let deadline = Instant::now() + Duration::from_secs(args.seconds);
    let started = Instant::now();
    let mut workers = Vec::new();
    for worker in 0..args.concurrency {
        let requests = requests.clone();
        let authority = authority.clone();
        workers.push(tokio::spawn(async move {
            let mut latencies: Vec<u32> = Vec::new();
            let mut errors = 0u64;
            let mut connection = None;
            let mut n = worker;
            while Instant::now() < deadline {
                if connection.is_none() {
                    match Connection::open(&authority).await {
                        Ok(c) => connection = Some(c),
                        Err(_) => {
                            errors += 1;
                            tokio::time::sleep(Duration::from_millis(10)).await;
                            continue;
                        }
                    }
                }
                let Some(c) = connection.as_mut() else { continue };
                let t = Instant::now();
                match c.get(&requests[n % requests.len()]).await {
                    Ok((200, _)) => latencies.push(t.elapsed().as_micros().min(u32::MAX as u128) as u32),
                    Ok(_) => errors += 1,
                    Err(_) => {
                        errors += 1;
                        connection = None;
                    }
                }
                n += 1;
            }
            (latencies, errors)
        }));
    }
    let mut latencies = Vec::new();
    let mut errors = 0;
    for worker in workers {
        let (l, e) = worker.await?;
        latencies.extend(l);
        errors += e;
    }
    let elapsed = started.elapsed().as_secs_f64();
    latencies.sort_unstable();
    let at = |q: f64| -> f64 {
        if latencies.is_empty() {
            return 0.0;
        }
        let i = ((latencies.len() as f64 * q).ceil() as usize).clamp(1, latencies.len()) - 1;
        f64::from(latencies[i]) / 1000.0
    };
    let ok = latencies.len();
    let report = json!({
        "target": first,
        "pages": targets.len(),
        "paths": paths,
        "concurrency": args.concurrency,
        "seconds": elapsed,
        "requests_ok": ok,
        "errors": errors,
        "requests_per_second": ok as f64 / elapsed,
        "latency_ms": { "p50": at(0.50), "p90": at(0.90), "p99": at(0.99), "max": at(1.0) },
    });
    if args.json {
        print_json(out, &report)?;
    } else {
        writeln!(
            out,
            "{ok} requests in {elapsed:.1} s at concurrency {}: {:.0} requests/s, {errors} errors\nlatency p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms, max {:.1} ms\n({} pages of up to {} paths: {paths} paths of {})",
            args.concurrency,
            ok as f64 / elapsed,
            at(0.5),
            at(0.9),
            at(0.99),
            at(1.0),
            targets.len(),
            args.page,
            args.scope
        )?;
    }
    Ok(EXIT_OK)
}
