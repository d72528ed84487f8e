//! A local HTTP/1.1 server for playing external services (GitHub, Azure DevOps, Microsoft
//! Graph, ARM, ServiceNow, Foundry) in tests: it answers each request with a closure.

use std::io::{BufRead, BufReader, Read, Write};

/// A request a fake server received: method, path (with query), headers, body.
pub struct Received {
    pub method: String,
    pub path: String,
    pub authorization: String,
    pub body: Vec<u8>,
    /// Every header line, name lower-cased.
    pub headers: Vec<(String, String)>,
}

impl Received {
    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// An answer: status line text (e.g. `200 OK`), extra headers, body.
pub struct Reply {
    pub status: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    /// A JSON answer without extra headers (another `Content-Type` header replaces JSON's).
    pub fn json(status: &str, body: impl Into<Vec<u8>>) -> Reply {
        Reply { status: status.to_string(), headers: Vec::new(), body: body.into() }
    }

    /// Adds a header.
    pub fn header(mut self, name: &str, value: impl Into<String>) -> Reply {
        self.headers.push((name.to_string(), value.into()));
        self
    }
}

/// A local server answering each request with `answer`; returns its base URL.
pub fn fake_server(answer: impl Fn(&Received) -> (&'static str, String) + Send + 'static) -> String {
    fake_server_with(move |r| {
        let (status, body) = answer(r);
        Reply::json(status, body)
    })
}

/// A local server answering each request with a full `Reply`; returns its base URL.
pub fn fake_server_with(answer: impl Fn(&Received) -> Reply + Send + 'static) -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut head = String::new();
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                head.push_str(&line);
            }
            let header = |name: &str| {
                head.lines().find_map(|l| {
                    let (n, v) = l.split_once(':')?;
                    n.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
                })
            };
            let length: usize = header("content-length").and_then(|v| v.parse().ok()).unwrap_or(0);
            let mut body = vec![0; length];
            if reader.read_exact(&mut body).is_err() {
                continue;
            }
            let mut words = head.split_whitespace();
            let received = Received {
                method: words.next().unwrap_or_default().to_string(),
                path: words.next().unwrap_or_default().to_string(),
                authorization: header("authorization").unwrap_or_default(),
                body,
                headers: head
                    .lines()
                    .skip(1)
                    .filter_map(|l| l.split_once(':'))
                    .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
                    .collect(),
            };
            let reply = answer(&received);
            let mut extra = String::new();
            if !reply.headers.iter().any(|(name, _)| name.eq_ignore_ascii_case("content-type")) {
                extra.push_str("Content-Type: application/json\r\n");
            }
            for (name, value) in &reply.headers {
                extra.push_str(&format!("{name}: {value}\r\n"));
            }
            let _ = write!(
                stream,
                "HTTP/1.1 {}\r\nContent-Length: {}\r\n{extra}Connection: close\r\n\r\n",
                reply.status,
                reply.body.len(),
            );
            let _ = stream.write_all(&reply.body);
        }
    });
    url
}
