//! The HTTP API of `sv0 serve` on the embedded log: every route × every role × another
//! tenant's token × no token × a malformed, wrong or revoked token gives the documented status;
//! a token of one tenant never sees another's data; bad input is refused with problem+json and
//! changes nothing; the OpenAPI document lists every route.

use std::io::{BufRead, Read, Write};
use std::net::TcpStream;
use std::process::Child;
use std::time::Duration;

use serde_json::Value;
use sv0_api::routes::ROUTES;
use sv0_domain::access::Role;
use sv0_tests::TempDir;

use crate::fake_http::fake_server;
use crate::{DEMO_SNAPSHOTS, sv0_in};

/// A response: status, content type, headers (names lower-case), body.
#[derive(Debug)]
pub(crate) struct Reply {
    pub(crate) status: u16,
    pub(crate) content_type: String,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: String,
}

impl Reply {
    /// Every value of a header.
    pub(crate) fn header_values(&self, name: &str) -> Vec<&str> {
        self.headers.iter().filter(|(n, _)| n == name).map(|(_, v)| v.as_str()).collect()
    }

    pub(crate) fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }

    /// The problem type after the base URI, for a problem+json reply.
    fn problem(&self) -> String {
        assert_eq!(self.content_type, "application/problem+json", "{self:?}");
        let kind = self.json()["type"].as_str().unwrap().to_string();
        kind.strip_prefix(sv0_api::problem::PROBLEM_BASE).unwrap().to_string()
    }
}

/// One HTTP/1.1 request on a fresh connection. The body is read by its `Content-Length` when
/// the reply has one (a server may keep the connection open whatever `Connection: close` says,
/// as chromedriver does), else to the end of the connection.
pub(crate) fn request(addr: &str, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Reply {
    let mut stream = TcpStream::connect(addr).expect("connect to sv0 serve");
    stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    stream.write_all(head.as_bytes()).unwrap();
    // The server may answer (413) before reading a large body; a write error then is fine.
    let _ = stream.write_all(body);
    let mut reader = std::io::BufReader::new(stream);
    let mut head = String::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            panic!("no response to {method} {path}: {head}");
        }
        if line == "\r\n" {
            break;
        }
        head.push_str(&line);
    }
    let length = head
        .lines()
        .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().parse::<usize>()));
    let mut bytes = Vec::new();
    match length {
        Some(Ok(n)) => {
            bytes.resize(n, 0);
            reader.read_exact(&mut bytes).unwrap_or_else(|e| panic!("the reply to {method} {path} broke off: {e}"));
        }
        _ => {
            let _ = reader.read_to_end(&mut bytes);
        }
    }
    let body = String::from_utf8_lossy(&bytes);
    let body = body.as_ref();
    let status = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let content_type = head
        .lines()
        .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-type: ").map(str::to_string))
        .unwrap_or_default();
    let body =
        if head.to_ascii_lowercase().contains("transfer-encoding: chunked") { dechunk(body) } else { body.to_string() };
    let headers = head
        .lines()
        .skip(1)
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Reply { status, content_type, headers, body }
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 {
            break;
        }
        out.push_str(&rest[..n]);
        body = &rest[n + 2..];
    }
    out
}

/// `sv0 serve` over a data directory, stopped when dropped.
pub(crate) struct Server {
    child: Child,
    pub(crate) addr: String,
    /// Where `/metrics` is served.
    metrics: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    pub(crate) fn start(data: &std::path::Path, extra: &[&str]) -> Server {
        let (child, addr, metrics) = crate::spawn_serve_with_metrics(&["--data-dir", data.to_str().unwrap()], extra);
        Server { child, addr, metrics }
    }

    /// `/metrics`, from its own listener.
    fn metrics(&self) -> String {
        request(&self.metrics, "GET", "/metrics", &[], b"").body
    }

    pub(crate) fn get(&self, path: &str, token: Option<&str>) -> Reply {
        let auth = token.map(|t| format!("Bearer {t}"));
        let headers: Vec<(&str, &str)> = auth.iter().map(|a| ("Authorization", a.as_str())).collect();
        request(&self.addr, "GET", path, &headers, b"")
    }

    fn post(&self, path: &str, token: Option<&str>, content_type: &str, body: &[u8]) -> Reply {
        let auth = token.map(|t| format!("Bearer {t}"));
        let mut headers: Vec<(&str, &str)> = auth.iter().map(|a| ("Authorization", a.as_str())).collect();
        headers.push(("Content-Type", content_type));
        request(&self.addr, "POST", path, &headers, body)
    }

    /// The log head, from `/readyz`.
    pub(crate) fn log_head(&self) -> u64 {
        self.get("/readyz", None).json()["log_head"].as_u64().unwrap()
    }
}

/// Issues a token and returns it (the last line of `sv0 tokens create`).
pub(crate) fn token(data: &std::path::Path, tenant: &str, roles: &[&str], principal: &str) -> String {
    let mut args = vec!["--tenant", tenant, "tokens", "create", "--principal", principal, "--name", principal];
    for role in roles {
        args.extend_from_slice(&["--role", role]);
    }
    let (code, out) = sv0_in(data, &args);
    assert_eq!(code, 0, "{out}");
    out.lines().last().unwrap().to_string()
}

/// The demo's data (tenant contoso, five packs), a token per role, and one of another tenant
/// with every role.
pub(crate) struct Fixture {
    _dir: TempDir,
    pub(crate) data: std::path::PathBuf,
    pub(crate) roles: Vec<(Role, String)>,
    pub(crate) other: String,
}

impl Fixture {
    /// The token of a role.
    pub(crate) fn token(&self, role: Role) -> &str {
        &self.roles.iter().find(|(r, _)| *r == role).expect("a token per role").1
    }
}

pub(crate) fn fixture() -> Fixture {
    let dir = TempDir::new();
    let data = dir.join("data");
    let (code, out) = sv0_in(&data, &["demo"]);
    assert_eq!(code, 0, "{out}");
    let roles = Role::ALL
        .into_iter()
        .map(|role| (role, token(&data, "contoso", &[role.name()], &format!("{role}@contoso.example"))))
        .collect();
    let all: Vec<&str> = Role::ALL.map(Role::name).to_vec();
    let other = token(&data, "fabrikam", &all, "mallory@fabrikam.example");
    Fixture { _dir: dir, data, roles, other }
}

/// A data directory holding the demo's first scan, approved as `project:HR-Automation` v1,
/// with `config` added to its `sv0.toml`.
fn approved_first_scan(dir: &TempDir, config: &str) -> std::path::PathBuf {
    let data = dir.join("data");
    std::fs::create_dir_all(&data).unwrap();
    let toml = format!("[identity]\nprincipal = \"riley.chen@contoso.example\"\n\n{config}");
    std::fs::write(data.join("sv0.toml"), toml).unwrap();
    let first = dir.join("first.json");
    std::fs::write(&first, snapshot(0)).unwrap();
    assert_eq!(sv0_in(&data, &["scan", "import", first.to_str().unwrap()]).0, 0);
    assert_eq!(sv0_in(&data, &["approve", "--scope", "project:HR-Automation", "--note", "v1"]).0, 0);
    data
}

fn snapshot(n: usize) -> Vec<u8> {
    crate::demo_snapshot(DEMO_SNAPSHOTS[n])
}

/// Ids of the tenant's things that routes name.
struct Ids {
    scan: String,
    sync: String,
    finding: String,
    throwaway: String,
    policy: String,
    /// An admin of contoso, who sets the policies approvals are asked for.
    admin: String,
}

/// Sets a fresh `replace` Rego policy as contoso's admin (waiting for a second person) and
/// returns its digest.
fn pending_policy(server: &Server, ids: &Ids) -> String {
    static SET: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = SET.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let mut policy: Value = serde_json::from_str(&ids.policy).unwrap();
    policy["rego"] = serde_json::json!({
        "mode": "replace",
        "source": format!("package sv0\n\n# matrix {n}\ndefault decision := \"requires_review\"\n"),
    });
    let headers = [("Authorization", format!("Bearer {}", ids.admin)), ("Content-Type", "application/json".into())];
    let headers: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
    let set = request(&server.addr, "PUT", "/api/v1/policy", &headers, policy.to_string().as_bytes());
    assert_eq!(set.status, 200, "{set:?}");
    let state = server.get("/api/v1/policy/approvals", Some(&ids.admin)).json();
    state["pending"]["digest"].as_str().unwrap_or_else(|| panic!("{state}")).to_string()
}

/// The request that succeeds on `route` for a role that may call it: real ids, a scope with
/// a baseline, a snapshot of the tenant.
fn call(server: &Server, method: &str, route: &str, token: Option<&str>, ids: &Ids) -> Reply {
    let path = route
        .replace("/scans/{id}", &format!("/scans/{}", ids.scan))
        .replace("/syncs/{id}", &format!("/syncs/{}", ids.sync))
        .replace("/tokens/{id}", &format!("/tokens/{}", ids.throwaway))
        .replace("{id}", "1");
    let url = match path.as_str() {
        "/delta" => "/api/v1/delta?scope=project:HR-Automation".to_string(),
        "/review" => "/api/v1/review?scope=project:HR-Automation".to_string(),
        "/whatif" => "/api/v1/whatif?scope=all".to_string(),
        "/proofs/consistency" => "/api/v1/proofs/consistency?old=1&new=2".to_string(),
        "/replay/paths" | "/replay/findings" => format!("/api/v1{path}?as_of=5"),
        other => format!("/api/v1{other}"),
    };
    match (method, route) {
        ("POST", "/scans") => server.post(&url, token, "application/json", &snapshot(0)),
        ("POST", "/approvals") => server.post(
            &url,
            token,
            "application/json",
            br#"{"scope":"project:HR-Automation","note":"matrix","force":true}"#,
        ),
        ("POST", "/syncs") => server.post(&url, token, "application/json", br#"{"scope":"all","environment":"prod"}"#),
        ("POST", "/whatif") => {
            let plan = std::fs::read(crate::repo_root().join("tests/data/plans/terraform-hr-release.json")).unwrap();
            server.post(&url, token, "application/json", &plan)
        }
        ("POST", "/tokens") => server.post(
            &url,
            token,
            "application/json",
            br#"{"name":"matrix","principal":"matrix@contoso.example","roles":["viewer"]}"#,
        ),
        ("POST", "/tokens/{id}/revoke") => server.post(&url, token, "application/json", b""),
        ("PUT", "/policy") => {
            let headers: Vec<(&str, String)> = token
                .map(|t| ("Authorization", format!("Bearer {t}")))
                .into_iter()
                .chain([("Content-Type", "application/json".to_string())])
                .collect();
            let headers: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
            request(&server.addr, "PUT", &url, &headers, ids.policy.as_bytes())
        }
        ("POST", "/policy/approvals") => {
            let digest = pending_policy(server, ids);
            let body = serde_json::json!({ "digest": digest, "note": "matrix" });
            server.post(&url, token, "application/json", body.to_string().as_bytes())
        }
        ("POST", "/findings/acknowledgements") => {
            let body = serde_json::json!({ "acknowledge": [{ "finding_id": ids.finding, "due": "2099-12-31" }], "note": "matrix" });
            server.post(&url, token, "application/json", body.to_string().as_bytes())
        }
        ("GET", _) => server.get(&url, token),
        (method, route) => panic!("the matrix has no request for {method} {route}"),
    }
}

#[test]
fn every_route_gives_the_documented_status_for_every_caller() {
    let f = fixture();
    let (code, out) = sv0_in(&f.data, &["scan", "list", "--json"]);
    assert_eq!(code, 0, "{out}");
    let scan_id = serde_json::from_str::<Value>(&out).unwrap()[0]["scan_id"].as_str().unwrap().to_string();
    // A wrong secret for a real id, and a revoked token.
    let viewer = &f.roles[0].1;
    let wrong = format!("{}{}", &viewer[..viewer.len() - 4], "0000");
    let revoked = token(&f.data, "contoso", &["viewer"], "gone@contoso.example");
    let throwaway = token(&f.data, "contoso", &["viewer"], "throwaway@contoso.example");
    let (code, out) = sv0_in(&f.data, &["--tenant", "contoso", "tokens", "revoke", "gone@contoso.example"]);
    assert_eq!(code, 0, "{out}");
    let source = f._dir.join("collector.json");
    std::fs::write(&source, snapshot(2)).unwrap();
    let server =
        Server::start(&f.data, &["--auth-failures-per-minute", "100000", "--sync-snapshot", source.to_str().unwrap()]);
    let admin = &f.roles.iter().find(|(r, _)| *r == Role::Admin).unwrap().1;
    let started = server.post("/api/v1/syncs", Some(admin), "application/json", b"{}");
    assert_eq!(started.status, 202, "{started:?}");
    let findings = server.get("/api/v1/findings?status=open&limit=1", Some(&f.roles[0].1)).json();
    let finding = findings["items"][0]["finding"]["finding_id"].as_str().unwrap().to_string();
    let ids = Ids {
        scan: scan_id.clone(),
        sync: started.json()["sync_id"].as_str().unwrap().to_string(),
        finding,
        throwaway: throwaway.split('_').nth(1).unwrap().to_string(),
        // The default policy (another tenant's, which has none set), so no body names contoso.
        policy: server.get("/api/v1/policy", Some(&f.other)).body,
        admin: admin.clone(),
    };

    // Every reply is checked against the OpenAPI document the server publishes.
    let doc = server.get("/api/v1/openapi.json", None).json();
    let problem = schema_at(&doc, "#/components/responses/Problem/content/application~1problem+json/schema");
    for route in ROUTES {
        let name = format!("{} {}", route.method, route.path);
        let documented = response_schema(&doc, route);
        for (role, token) in &f.roles {
            let reply = call(&server, route.method, route.path, Some(token), &ids);
            if role.permits(route.permission) {
                assert!((200..300).contains(&reply.status), "{name} as {role}: {reply:?}");
                if route.method == "GET" && route.path != "/checkpoint" && route.path != "/keys" {
                    assert!(reply.content_type.starts_with("application/json"), "{name}: {reply:?}");
                }
                if reply.content_type.starts_with("application/json") {
                    conforms(&documented, &reply.json(), &format!("{name} as {role}"));
                }
            } else {
                assert_eq!((reply.status, reply.problem()), (403, "forbidden".to_string()), "{name} as {role}");
                conforms(&problem, &reply.json(), &format!("{name} as {role}"));
            }
        }
        let reply = call(&server, route.method, route.path, None, &ids);
        assert_eq!((reply.status, reply.problem()), (401, "missing-token".to_string()), "{name} without a token");
        for (token, kind) in
            [("nonsense", "malformed-token"), (wrong.as_str(), "invalid-token"), (revoked.as_str(), "invalid-token")]
        {
            let reply = call(&server, route.method, route.path, Some(token), &ids);
            assert_eq!((reply.status, reply.problem()), (401, kind.to_string()), "{name} with {token}");
        }
        // Another tenant's token (every role): never contoso's data, never a server error.
        let reply = call(&server, route.method, route.path, Some(&f.other), &ids);
        assert!(reply.status < 500, "{name} as another tenant: {reply:?}");
        // A problem may echo what the caller sent; a success must hold nothing of contoso.
        if reply.content_type != "application/problem+json" {
            // (A token lists who issued it: the host's operator, not the tenant's data.)
            let contoso = if route.path == "/tokens" { "HR-Automation" } else { "contoso" };
            for marker in ["HR-Automation", contoso, "asst_", scan_id.as_str(), "secret_sha256"] {
                assert!(!reply.body.contains(marker), "{name} as another tenant shows {marker}: {reply:?}");
            }
        }
        let expected = match (route.method, route.path) {
            ("POST", "/scans") => Some(403),
            (_, "/scans/{id}" | "/syncs/{id}" | "/packs/{id}" | "/packs/{id}/dsse" | "/proofs/inclusion/{id}") => {
                Some(404)
            }
            (
                "GET",
                "/paths" | "/findings" | "/scopes" | "/scans" | "/baselines" | "/approvals" | "/signals" | "/packs",
            ) => Some(200),
            _ => None,
        };
        if let Some(expected) = expected {
            assert_eq!(reply.status, expected, "{name} as another tenant: {reply:?}");
        }
        if reply.status == 200
            && reply.content_type.starts_with("application/json")
            && let Some(items) = reply.json()["items"].as_array()
        {
            // Only its own tenant's things (its own token, on /tokens).
            assert!(
                items.iter().all(|item| item["tenant"] == "fabrikam"),
                "{name} as another tenant lists items: {reply:?}"
            );
        }
    }
}

#[test]
fn approvals_record_the_caller_and_refuse_a_claimed_approver() {
    let f = fixture();
    let server = Server::start(&f.data, &[]);
    let approver = &f.roles.iter().find(|(r, _)| *r == Role::Approver).unwrap().1;
    let head = server.log_head();
    let claimed = br#"{"scope":"project:HR-Automation","note":"x","approver":"ceo@contoso.example"}"#;
    let reply = server.post("/api/v1/approvals", Some(approver), "application/json", claimed);
    assert_eq!((reply.status, reply.problem()), (403, "forbidden".to_string()), "{reply:?}");
    assert_eq!(server.log_head(), head, "a refused approval appended something");
    let body =
        br#"{"scope":"project:HR-Automation","note":"via the API","approver":"approver@contoso.example","force":true}"#;
    let reply = server.post("/api/v1/approvals", Some(approver), "application/json", body);
    assert_eq!(reply.status, 201, "{reply:?}");
    assert_eq!(reply.json()["baseline"]["approver"], "approver@contoso.example");
    let listed = server.get("/api/v1/approvals?scope=project:HR-Automation", Some(approver)).json();
    let last = listed["items"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(
        (last["approver"].as_str(), last["note"].as_str()),
        (Some("approver@contoso.example"), Some("via the API"))
    );
}

#[test]
fn bad_input_is_refused_with_problem_json_and_changes_nothing() {
    let f = fixture();
    let server = Server::start(&f.data, &["--max-body", "65536"]);
    let analyst = &f.roles.iter().find(|(r, _)| *r == Role::Analyst).unwrap().1;
    let approver = &f.roles.iter().find(|(r, _)| *r == Role::Approver).unwrap().1;
    let auditor = &f.roles.iter().find(|(r, _)| *r == Role::Auditor).unwrap().1;
    let head = server.log_head();
    let big = vec![b' '; 200_000];
    let cases: Vec<(&str, Reply, u16, &str)> = vec![
        (
            "oversized body",
            server.post("/api/v1/scans", Some(analyst), "application/json", &big),
            413,
            "body-too-large",
        ),
        (
            "malformed JSON",
            server.post("/api/v1/scans", Some(analyst), "application/json", b"{\"tenant\": "),
            422,
            "invalid-snapshot",
        ),
        (
            "wrong content type",
            server.post("/api/v1/scans", Some(analyst), "text/plain", &snapshot(1)),
            415,
            "unsupported-media-type",
        ),
        (
            "unknown snapshot field",
            {
                let mut s: Value = serde_json::from_slice(&snapshot(1)).unwrap();
                s["surprise"] = Value::Bool(true);
                server.post("/api/v1/scans", Some(analyst), "application/json", &serde_json::to_vec(&s).unwrap())
            },
            422,
            "invalid-snapshot",
        ),
        (
            "unknown approval field",
            server.post(
                "/api/v1/approvals",
                Some(approver),
                "application/json",
                br#"{"scope":"all","note":"x","sudo":true}"#,
            ),
            400,
            "invalid-request",
        ),
        ("unknown query parameter", server.get("/api/v1/paths?color=red", Some(analyst)), 400, "invalid-request"),
        ("bad scope", server.get("/api/v1/paths?scope=nonsense", Some(analyst)), 400, "invalid-request"),
        ("bad cursor", server.get("/api/v1/paths?cursor=zz", Some(analyst)), 400, "invalid-request"),
        ("limit out of range", server.get("/api/v1/paths?limit=100000", Some(analyst)), 400, "invalid-request"),
        (
            "path traversal in an id",
            server.get("/api/v1/packs/..%2F..%2Fetc%2Fpasswd", Some(auditor)),
            400,
            "invalid-request",
        ),
        ("unknown route", server.get("/api/v1/nothing-here", Some(analyst)), 404, "not-found"),
    ];
    for (what, reply, status, kind) in cases {
        assert_eq!((reply.status, reply.problem()), (status, kind.to_string()), "{what}: {reply:?}");
    }
    // A snapshot with several problems lists every one in the problem's `problems` member.
    let mut bad: Value = serde_json::from_slice(&snapshot(1)).unwrap();
    let grants = bad["grants"].as_array().unwrap().len();
    for (n, grant) in bad["grants"].as_array_mut().unwrap().iter_mut().enumerate() {
        grant["identity"] = Value::from(format!("no-such-identity-{n}"));
    }
    let reply = server.post("/api/v1/scans", Some(analyst), "application/json", &serde_json::to_vec(&bad).unwrap());
    assert_eq!((reply.status, reply.problem()), (422, "invalid-snapshot".to_string()), "{reply:?}");
    let problems = reply.json()["problems"].as_array().cloned().unwrap_or_default();
    assert_eq!(problems.len(), grants, "{reply:?}");
    assert!(problems.iter().all(|p| p.as_str().is_some_and(|p| p.contains("no-such-identity-"))), "{problems:?}");
    assert_eq!(server.log_head(), head, "bad input appended something");
    // Good input from the same caller works: a new scan is accepted.
    let mut later: Value = serde_json::from_slice(&snapshot(2)).unwrap();
    later["scan"]["observed_at"] = Value::from("2026-03-10T00:00:00Z");
    let reply = server.post("/api/v1/scans", Some(analyst), "application/json", &serde_json::to_vec(&later).unwrap());
    assert_eq!(reply.status, 201, "{reply:?}");
    assert!(server.log_head() > head);
}

#[test]
fn failed_authentications_are_rate_limited_per_address() {
    let f = fixture();
    let server = Server::start(&f.data, &["--auth-failures-per-minute", "3"]);
    for _ in 0..3 {
        assert_eq!(server.get("/api/v1/paths", Some("nonsense")).status, 401);
    }
    let reply = server.get("/api/v1/paths", Some("nonsense"));
    assert_eq!((reply.status, reply.problem()), (429, "too-many-failed-authentications".to_string()), "{reply:?}");
    let reply = server.get("/api/v1/paths", None);
    assert_eq!(reply.status, 429, "a missing token is a failing attempt too: {reply:?}");
    // Only failures are limited: a user's valid token still works from the blocked address.
    let reply = server.get("/api/v1/paths", Some(&f.roles[0].1));
    assert_eq!(reply.status, 200, "{reply:?}");
    // The operational routes need no token and stay up.
    assert_eq!(server.get("/healthz", None).status, 200);
}

#[test]
fn paging_walks_every_path_once_and_the_openapi_document_lists_every_route() {
    let f = fixture();
    let server = Server::start(&f.data, &[]);
    let viewer = &f.roles[0].1;
    let all = server.get("/api/v1/paths?limit=1000", Some(viewer)).json()["items"].as_array().unwrap().len();
    let mut seen = Vec::new();
    let mut url = "/api/v1/paths?limit=2".to_string();
    loop {
        let page = server.get(&url, Some(viewer)).json();
        seen.extend(page["items"].as_array().unwrap().iter().map(|p| p["path_id"].as_str().unwrap().to_string()));
        match page["next_cursor"].as_str() {
            Some(cursor) => url = format!("/api/v1/paths?limit=2&cursor={cursor}"),
            None => break,
        }
    }
    let mut unique = seen.clone();
    unique.sort();
    unique.dedup();
    assert_eq!((seen.len(), unique.len()), (all, all), "pages repeat or skip paths");
    assert!(all > 2);
    // Requests are counted and timed per matched route (ids never make new series).
    let pages = all.div_ceil(2) as u64 + 1;
    let metrics = server.metrics();
    let line = metrics
        .lines()
        .find(|l| l.starts_with("sv0_http_requests_total{method=\"GET\",route=\"/api/v1/paths\",status=\"200\"}"))
        .unwrap_or_else(|| panic!("{metrics}"));
    assert_eq!(line.rsplit(' ').next().unwrap().parse::<u64>().unwrap(), pages, "{line}");
    assert!(metrics.contains(
        "sv0_http_request_duration_seconds_bucket{method=\"GET\",route=\"/api/v1/paths\",status=\"200\",le=\"+Inf\"}"
    ));

    let doc = server.get("/api/v1/openapi.json", None).json();
    assert_eq!(doc["openapi"], "3.1.0");
    for route in ROUTES {
        let operation = &doc["paths"][route.path][route.method.to_ascii_lowercase()];
        assert!(operation.is_object(), "{} {} is not documented", route.method, route.path);
        let roles: Vec<&str> = Role::ALL.into_iter().filter(|r| r.permits(route.permission)).map(Role::name).collect();
        assert_eq!(operation["x-sv0-roles"], serde_json::json!(roles));
    }
    let documented: usize =
        doc["paths"].as_object().unwrap().values().map(|item| item.as_object().unwrap().len()).sum();
    assert_eq!(documented, ROUTES.len());
}

/// A validator of the schema at `pointer` (a `#/...` JSON pointer) of the OpenAPI document:
/// the document itself is the schema resource, so that its `#/components/schemas/...`
/// references resolve as a client generator would resolve them.
fn schema_at(doc: &Value, pointer: &str) -> jsonschema::Validator {
    let mut schema = doc.clone();
    schema["$schema"] = serde_json::json!("https://json-schema.org/draft/2020-12/schema");
    schema["$ref"] = serde_json::json!(pointer.replace('{', "%7B").replace('}', "%7D"));
    jsonschema::options()
        .with_draft(jsonschema::Draft::Draft202012)
        .build(&schema)
        .unwrap_or_else(|e| panic!("the schema at {pointer} does not compile: {e}"))
}

/// A JSON pointer token (RFC 6901): `~` and `/` escaped.
fn escape(token: &str) -> String {
    token.replace('~', "~0").replace('/', "~1")
}

/// The documented schema of a route's success body.
fn response_schema(doc: &Value, route: &sv0_api::routes::RouteSpec) -> jsonschema::Validator {
    let pointer = format!(
        "#/paths/{}/{}/responses/{}/content/{}/schema",
        escape(route.path),
        route.method.to_ascii_lowercase(),
        route.success,
        escape(route.response.content_type)
    );
    schema_at(doc, &pointer)
}

/// Fails with every violation when `value` does not conform.
fn conforms(validator: &jsonschema::Validator, value: &Value, what: &str) {
    let errors: Vec<String> =
        validator.iter_errors(value).map(|e| format!("{} at {}", e, e.instance_path())).take(10).collect();
    assert!(errors.is_empty(), "{what}: the reply does not conform to the OpenAPI document: {errors:#?}\n{value}");
}

/// The OpenAPI document describes every body: each request body has a schema and an example
/// that conforms to it, each JSON response a schema of its own type (never a bare object), and
/// every reference resolves.
#[test]
fn the_openapi_document_describes_every_request_and_response() {
    let doc = sv0_api::openapi::document();
    for route in ROUTES {
        let name = format!("{} {}", route.method, route.path);
        let operation = &doc["paths"][route.path][route.method.to_ascii_lowercase()];
        let schema =
            &operation["responses"][route.success.to_string()]["content"][route.response.content_type]["schema"];
        assert!(schema.get("$ref").is_some() || schema.get("type").is_some(), "{name}: {schema}");
        let _ = response_schema(&doc, route);
        match route.request {
            Some(request) => {
                let media = &operation["requestBody"]["content"][request.content_type];
                let pointer = format!(
                    "#/paths/{}/{}/requestBody/content/{}/schema",
                    escape(route.path),
                    route.method.to_ascii_lowercase(),
                    escape(request.content_type)
                );
                let example = &media["example"];
                assert!(example.is_object(), "{name} has no example: {media}");
                conforms(&schema_at(&doc, &pointer), example, &format!("the example of {name}"));
            }
            None => assert!(operation.get("requestBody").is_none(), "{name}"),
        }
    }
    // The schemas are not vacuous: a page without items, or with an item of the wrong shape,
    // does not conform.
    let paths = ROUTES.iter().find(|r| r.method == "GET" && r.path == "/paths").unwrap();
    let paths = response_schema(&doc, paths);
    assert!(!paths.is_valid(&serde_json::json!({ "next_cursor": null })));
    assert!(!paths.is_valid(&serde_json::json!({ "items": [{ "path_id": 7 }], "next_cursor": null })));
    assert!(paths.is_valid(&serde_json::json!({ "items": [], "next_cursor": null })));
    // What a caller got wrong is told apart from what is missing: unknown fields are refused.
    let approval = &doc["components"]["schemas"]["ApprovalBody"];
    assert_eq!(approval["additionalProperties"], false, "{approval}");
    assert!(approval["required"].as_array().unwrap().contains(&serde_json::json!("note")), "{approval}");
}

/// The kind of the pack sealing the assessment at log position `seq`, once the server's signer
/// has sealed it.
fn last_pack_kind(server: &Server, token: &str, seq: u64) -> String {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let packs = server.get("/api/v1/packs?limit=1000", Some(token)).json();
        let sealed = packs["items"].as_array().unwrap().iter().find(|p| p["assessed_seq"] == seq).cloned();
        if let Some(pack) = sealed {
            let full = server.get(&format!("/api/v1/packs/{}", pack["pack_id"].as_str().unwrap()), Some(token)).json();
            let body: Value = match &full["body"] {
                Value::String(text) => serde_json::from_str(text).unwrap(),
                other => other.clone(),
            };
            return body["kind"].as_str().unwrap_or_else(|| panic!("{full}")).to_string();
        }
        assert!(std::time::Instant::now() < deadline, "no pack sealed the assessment at {seq}: {packs}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A CI pipeline asks for a sync of its deployment: `202` with a sync id at once, then the
/// sync runs the collector's snapshot as a deployment scan and judges the scope: the demo's
/// deployment adds five paths, two of them finance writes, so the scope needs review.
#[test]
fn a_sync_scans_the_deployment_and_judges_the_scope() {
    let dir = TempDir::new();
    let data = approved_first_scan(&dir, "");
    let analyst = token(&data, "contoso", &["analyst"], "ci@contoso.example");
    let auditor = token(&data, "contoso", &["auditor"], "audit@contoso.example");

    // Without a source, a sync is refused and nothing is appended.
    let server = Server::start(&data, &[]);
    let head = server.log_head();
    let reply = server.post("/api/v1/syncs", Some(&analyst), "application/json", b"{}");
    assert_eq!((reply.status, reply.problem()), (409, "conflict".to_string()), "{reply:?}");
    assert_eq!(server.log_head(), head);
    drop(server);

    let source = dir.join("collector.json");
    std::fs::write(&source, snapshot(1)).unwrap();
    let server = Server::start(&data, &["--sync-snapshot", source.to_str().unwrap()]);
    let request = br#"{"scope":"project:HR-Automation","environment":"production","repository":"contoso/hr-agents","run_id":"4711","commit":"9fceb02"}"#;
    let reply = server.post("/api/v1/syncs", Some(&analyst), "application/json", request);
    assert_eq!(reply.status, 202, "{reply:?}");
    let id = reply.json()["sync_id"].as_str().unwrap().to_string();
    let sync = finished_sync(&server, &id, &analyst);
    assert_eq!(sync["status"], "completed", "{sync}");
    assert_eq!(sync["disposition"]["decision"], "requires_review", "{sync}");
    assert_eq!(sync["delta"]["new_paths"], 5, "{sync}");
    assert_eq!(sync["delta"]["flagged"], 2, "{sync}");
    assert_eq!(sync["requested_by"], "ci@contoso.example");
    let scan = server.get(&format!("/api/v1/scans/{}", sync["scan_id"].as_str().unwrap()), Some(&analyst)).json();
    // A gate judges before the deployment job runs: never a post-deployment delta.
    assert_eq!(scan["trigger"], "pre_deployment", "{scan}");
    assert_eq!(sync["trigger"], "pre_deployment", "{sync}");
    assert_eq!(last_pack_kind(&server, &auditor, scan["completed_seq"].as_u64().unwrap()), "pre_deployment_assessment");
    let unknown = server.get("/api/v1/syncs/sync-0000000000000000", Some(&analyst));
    assert_eq!((unknown.status, unknown.problem()), (404, "not-found".to_string()));

    // `sv0 gate` does the same from any CI: exit 1 while the scope needs review, with the
    // Markdown summary and a failing JUnit case; exit 0 once the posture is approved.
    let token_file = dir.join("token");
    std::fs::write(&token_file, &analyst).unwrap();
    let junit = dir.join("gate.xml");
    // `sv0 gate` against `url` for the HR scope in production.
    let gate = |url: &str, scope: &str, extra: &[&str]| {
        let mut args = vec!["gate", "--url", url, "--token-file", token_file.to_str().unwrap(), "--scope", scope];
        args.extend_from_slice(&["--environment", "production", "--poll", "100ms"]);
        args.extend_from_slice(extra);
        crate::sv0(&args)
    };
    let (code, out) =
        gate(&format!("http://{}", server.addr), "project:HR-Automation", &["--junit", junit.to_str().unwrap()]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("## SV0 deployment gate: requires_review") && out.contains("| new paths | 5 |"), "{out}");
    assert!(out.contains("### Remediation"), "{out}");
    let report = std::fs::read_to_string(&junit).unwrap();
    assert!(report.contains("failures=\"1\"") && report.contains("<failure message=\"requires_review\""), "{report}");
    drop(server);
    let approver = token(&data, "contoso", &["approver"], "riley.chen@contoso.example");
    let server = Server::start(&data, &["--sync-snapshot", source.to_str().unwrap()]);
    let approved = server.post(
        "/api/v1/approvals",
        Some(&approver),
        "application/json",
        br#"{"scope":"project:HR-Automation","note":"the deployment is reviewed"}"#,
    );
    assert_eq!(approved.status, 201, "{approved:?}");
    let (code, out) = gate(&format!("http://{}", server.addr), "project:HR-Automation", &[]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("## SV0 deployment gate: approved"), "{out}");
    // A mistyped scope is named as such, never "approve it first".
    let (code, out) = gate(&format!("http://{}", server.addr), "project:HR-Automaton", &[]);
    assert_eq!(code, 2, "{out}");
    assert!(
        out.contains("project:HR-Automaton selects no workload") && out.contains("project:HR-Automation?"),
        "{out}"
    );
    assert!(!out.contains("approve"), "{out}");
    // A gate that cannot reach a server is an error (2), never a pass.
    let (code, out) = gate("http://127.0.0.1:9", "all", &[]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("## SV0 deployment gate: error"), "{out}");
}

/// A local server playing GitHub's side of a deployment protection rule: it issues an
/// installation token to a valid App JWT (RS256, signed by the App's key, issuer the App id)
/// and records the deployment callbacks.
struct FakeGitHub {
    url: String,
    callbacks: std::sync::Arc<std::sync::Mutex<Vec<(String, Value)>>>,
    tokens: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

fn fake_github(public_key: Vec<u8>) -> FakeGitHub {
    use std::sync::atomic::Ordering;
    let callbacks = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let tokens = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let (seen, issued) = (callbacks.clone(), tokens.clone());
    let url = fake_server(move |r| {
        if r.path.starts_with("/app/installations/42/access_tokens") {
            let jwt = r.authorization.strip_prefix("Bearer ").unwrap_or_default();
            let parts: Vec<&str> = jwt.split('.').collect();
            let valid = parts.len() == 3 && {
                use base64::Engine as _;
                let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
                let signature = b64.decode(parts[2]).unwrap_or_default();
                let claims: Value =
                    serde_json::from_slice(&b64.decode(parts[1]).unwrap_or_default()).unwrap_or_default();
                ring::signature::UnparsedPublicKey::new(&ring::signature::RSA_PKCS1_2048_8192_SHA256, &public_key)
                    .verify(format!("{}.{}", parts[0], parts[1]).as_bytes(), &signature)
                    .is_ok()
                    && claims["iss"] == "4242"
            };
            if valid {
                issued.fetch_add(1, Ordering::SeqCst);
                ("201 Created", r#"{"token":"ghs_installation","expires_at":"2030-01-01T00:00:00Z"}"#.to_string())
            } else {
                ("401 Unauthorized", r#"{"message":"A JSON web token could not be decoded"}"#.to_string())
            }
        } else if r.path.ends_with("/deployment_protection_rule") && r.authorization == "Bearer ghs_installation" {
            seen.lock().unwrap().push((r.path.clone(), serde_json::from_slice(&r.body).unwrap_or_default()));
            ("204 No Content", String::new())
        } else {
            ("404 Not Found", r#"{"message":"Not Found"}"#.to_string())
        }
    });
    FakeGitHub { url, callbacks, tokens }
}

/// GitHub's `deployment_protection_rule` webhook, signed as GitHub signs it.
fn webhook(server: &Server, secret: &[u8], delivery: &str, body: &[u8], signature: Option<String>) -> Reply {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret);
    let signature =
        signature.unwrap_or_else(|| format!("sha256={}", hex::encode(ring::hmac::sign(&key, body).as_ref())));
    request(
        &server.addr,
        "POST",
        "/integrations/github/deployment-protection",
        &[
            ("X-GitHub-Event", "deployment_protection_rule"),
            ("X-GitHub-Delivery", delivery),
            ("X-Hub-Signature-256", &signature),
            ("Content-Type", "application/json"),
        ],
        body,
    )
}

#[test]
fn githubs_published_signature_example_verifies() {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, b"It's a Secret to Everybody");
    let good = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
    assert!(sv0_api::github::signature_valid(&key, Some(good), b"Hello, World!"));
    assert!(!sv0_api::github::signature_valid(&key, Some(good), b"Hello, World?"));
    assert!(!sv0_api::github::signature_valid(&key, Some(&good.replace("sha256=7", "sha256=8")), b"Hello, World!"));
    assert!(!sv0_api::github::signature_valid(&key, None, b"Hello, World!"));
    assert!(!sv0_api::github::signature_valid(&key, Some("sha1=757107ea"), b"Hello, World!"));
    let long = "x".repeat(5000);
    let cut = sv0_api::github::cut(&long, sv0_api::github::MAX_COMMENT);
    assert_eq!(cut.chars().count(), sv0_api::github::MAX_COMMENT);
}

/// A deployment to a protected environment: the signed webhook starts a sync of the deployment,
/// and SV0 answers GitHub's callback as the App (RS256 JWT → installation token) with
/// `rejected` and a comment of at most 1,024 characters, since the demo's deployment needs
/// review. A bad or missing signature is 401 and a replayed delivery 409; neither changes
/// anything or calls back. An environment with no scope is rejected.
#[test]
fn github_deployment_protection_rules_are_answered_as_the_app() {
    let dir = TempDir::new();
    let key_file = crate::repo_root().join("tests/data/github-app-test-key.pem");
    let pem = std::fs::read_to_string(&key_file).unwrap();
    let der = {
        use base64::Engine as _;
        let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
        base64::engine::general_purpose::STANDARD.decode(body).unwrap()
    };
    let public = ring::signature::RsaKeyPair::from_der(&der).unwrap();
    let github = fake_github(ring::signature::KeyPair::public_key(&public).as_ref().to_vec());
    let secret = b"s3cret webhook";
    std::fs::write(dir.join("secret"), secret).unwrap();
    let data = approved_first_scan(
        &dir,
        &format!(
            "[github]\ntenant = \"contoso\"\nwebhook_secret_file = {:?}\napp_id = \"4242\"\nprivate_key_file = {:?}\napi_url = {:?}\nreport_url = \"https://sv0.contoso.example/report\"\n\n[[github.environment]]\nrepository = \"contoso/hr-agents\"\nenvironment = \"production\"\nscope = \"project:HR-Automation\"\n",
            dir.join("secret"),
            key_file,
            github.url
        ),
    );
    let source = dir.join("collector.json");
    std::fs::write(&source, snapshot(1)).unwrap();
    let server = Server::start(&data, &["--sync-snapshot", source.to_str().unwrap()]);
    let payload = |environment: &str| {
        serde_json::to_vec(&serde_json::json!({
            "action": "requested",
            "environment": environment,
            "event": "workflow_dispatch",
            "deployment_callback_url": format!("{}/repos/contoso/hr-agents/actions/runs/1234/deployment_protection_rule", github.url),
            "deployment": { "id": 1, "sha": "9fceb02d0ae598e95dc970b74767f19372d61af8", "environment": environment },
            "repository": { "id": 7, "full_name": "contoso/hr-agents" },
            "installation": { "id": 42 },
            "sender": { "login": "octocat" }
        }))
        .unwrap()
    };
    let head = server.log_head();
    let body = payload("production");
    let forged = webhook(&server, b"another secret", "d-1", &body, None);
    assert_eq!((forged.status, forged.problem()), (401, "invalid-signature".to_string()), "{forged:?}");
    let unsigned = webhook(&server, secret, "d-1", &body, Some(String::new()));
    assert_eq!(unsigned.status, 401, "{unsigned:?}");
    assert_eq!(server.log_head(), head, "a refused webhook changed something");

    let accepted = webhook(&server, secret, "d-1", &body, None);
    assert_eq!(accepted.status, 202, "{accepted:?}");
    let replayed = webhook(&server, secret, "d-1", &body, None);
    assert_eq!((replayed.status, replayed.problem()), (409, "replayed-delivery".to_string()), "{replayed:?}");
    // The delivery header is not signed: a new one on the same signed payload is a replay too.
    let renamed = webhook(&server, secret, "d-1-again", &body, None);
    assert_eq!((renamed.status, renamed.problem()), (409, "replayed-delivery".to_string()), "{renamed:?}");
    let unmapped = webhook(&server, secret, "d-2", &payload("staging"), None);
    assert_eq!(unmapped.status, 202, "{unmapped:?}");

    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while github.callbacks.lock().unwrap().len() < 2 {
        assert!(std::time::Instant::now() < deadline, "GitHub was not called back");
        std::thread::sleep(Duration::from_millis(100));
    }
    let callbacks = github.callbacks.lock().unwrap().clone();
    assert_eq!(callbacks.len(), 2, "{callbacks:?}");
    let production = callbacks.iter().find(|(_, b)| b["environment_name"] == "production").unwrap();
    assert!(production.0.ends_with("/repos/contoso/hr-agents/actions/runs/1234/deployment_protection_rule"));
    assert_eq!(production.1["state"], "rejected", "{production:?}");
    let comment = production.1["comment"].as_str().unwrap();
    assert!(comment.chars().count() <= 1024, "{comment}");
    assert!(comment.contains("requires review") && comment.contains("5 new path(s)"), "{comment}");
    assert!(comment.contains("https://sv0.contoso.example/report"), "{comment}");
    let staging = callbacks.iter().find(|(_, b)| b["environment_name"] == "staging").unwrap();
    assert_eq!(staging.1["state"], "rejected");
    assert!(staging.1["comment"].as_str().unwrap().contains("No SV0 scope is configured"));
    assert_eq!(github.tokens.load(std::sync::atomic::Ordering::SeqCst), 2, "one installation token per callback");

    // Replays are refused after a restart too.
    drop(server);
    let server = Server::start(&data, &["--sync-snapshot", source.to_str().unwrap()]);
    let after_restart = webhook(&server, secret, "d-9", &body, None);
    assert_eq!(after_restart.status, 409, "{after_restart:?}");
}

/// Azure DevOps "Invoke REST API" checks, authenticated with an SV0 token as the Generic
/// service connection's password. ApiResponse mode answers the scope's disposition now, well
/// within 3 s, for `eq(root['status'], 'approved')`; Callback mode acknowledges at once, syncs
/// the deployment and posts `TaskCompleted` (`failed`: the demo deployment needs review) to the
/// plan's events endpoint with the job's token. A collection URL not configured is refused.
#[test]
fn azure_devops_checks_answer_now_or_call_back() {
    let received = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = received.clone();
    let ado = fake_server(move |r| {
        seen.lock().unwrap().push((
            r.path.clone(),
            r.authorization.clone(),
            serde_json::from_slice::<Value>(&r.body).unwrap_or_default(),
        ));
        ("204 No Content", String::new())
    });
    let dir = TempDir::new();
    let data = approved_first_scan(&dir, &format!("[azure_devops]\ncollection_urls = [\"{ado}/contoso/\"]\n"));
    let analyst = token(&data, "contoso", &["analyst"], "azure-pipelines@contoso.example");
    let viewer = token(&data, "contoso", &["viewer"], "dashboards@contoso.example");
    let source = dir.join("collector.json");
    std::fs::write(&source, snapshot(1)).unwrap();
    let server = Server::start(&data, &["--sync-snapshot", source.to_str().unwrap()]);
    let basic = |token: &str| {
        use base64::Engine as _;
        format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("sv0:{token}")))
    };
    let check = |auth: &str, plan: Option<&str>| {
        let mut headers = vec![("Authorization", auth.to_string()), ("Content-Type", "application/json".to_string())];
        if let Some(plan_url) = plan {
            for (name, value) in [
                ("PlanUrl", plan_url),
                ("ProjectId", "p-1"),
                ("HubName", "build"),
                ("PlanId", "plan-1"),
                ("JobId", "job-1"),
                ("TaskInstanceId", "task-1"),
                ("AuthToken", "ado-job-token"),
            ] {
                headers.push((name, value.to_string()));
            }
        }
        let headers: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
        request(
            &server.addr,
            "POST",
            "/integrations/azure-devops/check",
            &headers,
            br#"{"scope":"project:HR-Automation","environment":"production"}"#,
        )
    };
    let started = std::time::Instant::now();
    let now = check(&basic(&analyst), None);
    assert!(started.elapsed() < Duration::from_secs(3), "the ApiResponse answer took {:?}", started.elapsed());
    assert_eq!((now.status, now.json()["status"].as_str()), (200, Some("approved")), "{now:?}");
    assert_eq!(check("", None).status, 401);
    let head = server.log_head();
    let elsewhere = check(&basic(&analyst), Some("https://attacker.example/contoso/"));
    assert_eq!((elsewhere.status, elsewhere.problem()), (403, "forbidden".to_string()), "{elsewhere:?}");
    // Compared by origin and path segments: no way out of the collection through `..`.
    for escape in [format!("{ado}/contoso/../fabrikam/"), format!("{ado}/contoso/%2e%2e/fabrikam/")] {
        let escaped = check(&basic(&analyst), Some(&escape));
        assert_eq!(escaped.status, 403, "{escape}: {escaped:?}");
    }
    let viewing = check(&basic(&viewer), Some(&format!("{ado}/contoso/")));
    assert_eq!(viewing.status, 403, "{viewing:?}");
    assert_eq!(server.log_head(), head, "a refused check appended something");

    let accepted = check(&format!("Bearer {analyst}"), Some(&format!("{ado}/contoso/")));
    assert_eq!(accepted.status, 200, "{accepted:?}");
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while received.lock().unwrap().is_empty() {
        assert!(std::time::Instant::now() < deadline, "Azure DevOps was not called back");
        std::thread::sleep(Duration::from_millis(100));
    }
    let (path, authorization, event) = received.lock().unwrap()[0].clone();
    assert_eq!(path, "/contoso/p-1/_apis/distributedtask/hubs/build/plans/plan-1/events?api-version=2.0-preview.1");
    assert_eq!(authorization, "Bearer ado-job-token");
    assert_eq!(
        event,
        serde_json::json!({ "name": "TaskCompleted", "taskId": "task-1", "jobId": "job-1", "result": "failed" })
    );
    // The deployment's scan is in: the scope needs review now.
    let now = check(&basic(&analyst), None);
    assert_eq!(now.json()["status"], "requires_review", "{now:?}");
}

/// Signs a JWT with the test key (RS256), as an identity provider would.
pub(crate) fn provider_jwt(claims: &Value, kid: &str) -> String {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let pem = std::fs::read_to_string(crate::repo_root().join("tests/data/github-app-test-key.pem")).unwrap();
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    let der = base64::engine::general_purpose::STANDARD.decode(body).unwrap();
    let key = ring::signature::RsaKeyPair::from_der(&der).unwrap();
    let header = b64.encode(serde_json::json!({ "alg": "RS256", "typ": "JWT", "kid": kid }).to_string());
    let input = format!("{header}.{}", b64.encode(claims.to_string()));
    let mut signature = vec![0; key.public().modulus_len()];
    key.sign(&ring::signature::RSA_PKCS1_SHA256, &ring::rand::SystemRandom::new(), input.as_bytes(), &mut signature)
        .unwrap();
    format!("{input}.{}", b64.encode(signature))
}

/// With `[oidc]` configured, a provider's JWT is a bearer token: its signature (by the JWKS
/// key it names), issuer, audience and lifetime are checked; its principal claim is who acts
/// and its roles claim (`SV0.Approver`, or bare role names) what it may do. SV0 tokens keep
/// working next to it.
#[test]
fn provider_jwts_sign_in_when_oidc_is_configured() {
    let f = fixture();
    let config = std::fs::read_to_string(f.data.join("sv0.toml")).unwrap_or_default();
    // The provider's keys, in a file the provider rotates below.
    let published = std::fs::read_to_string(crate::repo_root().join("tests/data/oidc-test-jwks.json")).unwrap();
    let jwks = f._dir.join("jwks.json");
    std::fs::write(&jwks, &published).unwrap();
    std::fs::write(
        f.data.join("sv0.toml"),
        format!(
            "{config}\n[oidc]\nissuer = \"https://login.example/contoso/v2.0\"\naudience = \"api://sv0\"\ntenant = \"contoso\"\njwks_file = {jwks:?}\n"
        ),
    )
    .unwrap();
    let server = Server::start(&f.data, &["--auth-failures-per-minute", "1000"]);
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    let claims = |change: &dyn Fn(&mut Value)| {
        let mut c = serde_json::json!({
            "iss": "https://login.example/contoso/v2.0",
            "aud": "api://sv0",
            "sub": "00000000-riley",
            "preferred_username": "riley.chen@contoso.example",
            "roles": ["SV0.Approver"],
            "nbf": now - 10,
            "exp": now + 600,
        });
        change(&mut c);
        c
    };
    let good = provider_jwt(&claims(&|_| {}), "test-key-1");
    assert_eq!(server.get("/api/v1/paths?limit=1", Some(&good)).status, 200);
    let approval = server.post(
        "/api/v1/approvals",
        Some(&good),
        "application/json",
        br#"{"scope":"project:HR-Automation","note":"signed in with Entra ID","force":true}"#,
    );
    assert_eq!(approval.status, 201, "{approval:?}");
    // The principal is the issuer and the immutable subject, not a name the user can change.
    let riley = "https://login.example/contoso/v2.0#00000000-riley";
    assert_eq!(approval.json()["baseline"]["approver"], riley);
    let renamed = provider_jwt(&claims(&|c| c["preferred_username"] = "ciso@contoso.example".into()), "test-key-1");
    let reply = server.get("/api/v1/approvals", Some(&renamed));
    assert_eq!(reply.status, 200, "{reply:?}");

    // The provider rotates its key: a JWT naming the new key id makes SV0 read the set again.
    let mut rotated: Value = serde_json::from_str(&published).unwrap();
    let mut next = rotated["keys"][0].clone();
    next["kid"] = "rotated-key".into();
    rotated["keys"].as_array_mut().unwrap().push(next.clone());
    std::fs::write(&jwks, rotated.to_string()).unwrap();
    let after_rotation = provider_jwt(&claims(&|_| {}), "rotated-key");
    assert_eq!(server.get("/api/v1/paths?limit=1", Some(&after_rotation)).status, 200);
    // Reading again is rate-limited: a key added within the interval is not seen yet.
    next["kid"] = "late-key".into();
    rotated["keys"].as_array_mut().unwrap().push(next);
    std::fs::write(&jwks, rotated.to_string()).unwrap();
    let late = provider_jwt(&claims(&|_| {}), "late-key");
    assert_eq!(server.get("/api/v1/paths?limit=1", Some(&late)).status, 401);

    let refused: Vec<(&str, String)> = vec![
        ("another audience", provider_jwt(&claims(&|c| c["aud"] = "api://other".into()), "test-key-1")),
        ("another issuer", provider_jwt(&claims(&|c| c["iss"] = "https://evil.example/".into()), "test-key-1")),
        ("expired", provider_jwt(&claims(&|c| c["exp"] = (now - 3600).into()), "test-key-1")),
        ("not yet valid", provider_jwt(&claims(&|c| c["nbf"] = (now + 3600).into()), "test-key-1")),
        ("an unknown key", provider_jwt(&claims(&|_| {}), "another-key")),
        ("changed claims", {
            use base64::Engine as _;
            let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
            let mut parts: Vec<String> = good.split('.').map(str::to_string).collect();
            parts[1] = b64.encode(claims(&|c| c["roles"] = serde_json::json!(["SV0.Admin"])).to_string());
            parts.join(".")
        }),
    ];
    for (what, jwt) in refused {
        let reply = server.get("/api/v1/paths?limit=1", Some(&jwt));
        assert_eq!((reply.status, reply.problem()), (401, "invalid-token".to_string()), "{what}: {reply:?}");
    }
    let no_roles = provider_jwt(&claims(&|c| c["roles"] = serde_json::json!([])), "test-key-1");
    assert_eq!(server.get("/api/v1/paths?limit=1", Some(&no_roles)).status, 403);
    let viewer = provider_jwt(&claims(&|c| c["roles"] = serde_json::json!(["viewer"])), "test-key-1");
    assert_eq!(server.get("/api/v1/paths?limit=1", Some(&viewer)).status, 200);
    let reply = server.post("/api/v1/approvals", Some(&viewer), "application/json", br#"{"scope":"all","note":"x"}"#);
    assert_eq!(reply.status, 403, "{reply:?}");
    // SV0 tokens still work.
    assert_eq!(server.get("/api/v1/paths?limit=1", Some(&f.roles[0].1)).status, 200);
    drop(server);
    // The approval records who signed in, as the provider named them.
    let approval = crate::log_events(&f.data)
        .into_iter()
        .rfind(|e| matches!(e.payload, sv0_domain::events::EventPayload::ApprovalRecorded(_)))
        .unwrap();
    assert_eq!(approval.meta.actor, "api:https://login.example/contoso/v2.0#00000000-riley");
    assert_eq!(approval.meta.credential.as_deref(), Some("oidc:https://login.example/contoso/v2.0#00000000-riley"));
}

/// An analyst triages: open findings are accepted until a date, recorded as the caller; a
/// finding that is not open is refused and nothing is appended.
#[test]
fn analysts_acknowledge_open_findings_as_themselves() {
    let f = fixture();
    let server = Server::start(&f.data, &[]);
    let analyst = &f.roles.iter().find(|(r, _)| *r == Role::Analyst).unwrap().1;
    let open = server.get("/api/v1/findings?status=open&limit=1000", Some(analyst)).json();
    let id = open["items"][0]["finding"]["finding_id"].as_str().unwrap().to_string();
    let head = server.log_head();
    let body =
        serde_json::json!({ "acknowledge": [{ "finding_id": "F-000000000000", "due": "2099-12-31" }], "note": "x" });
    let refused = server.post(
        "/api/v1/findings/acknowledgements",
        Some(analyst),
        "application/json",
        body.to_string().as_bytes(),
    );
    assert_eq!((refused.status, refused.problem()), (400, "invalid-request".to_string()), "{refused:?}");
    assert_eq!(server.log_head(), head);
    let body =
        serde_json::json!({ "acknowledge": [{ "finding_id": id, "due": "2099-12-31" }], "note": "fix scheduled" });
    let reply = server.post(
        "/api/v1/findings/acknowledgements",
        Some(analyst),
        "application/json",
        body.to_string().as_bytes(),
    );
    assert_eq!(reply.status, 201, "{reply:?}");
    let all = server.get("/api/v1/findings?limit=1000", Some(analyst)).json();
    let record =
        all["items"].as_array().unwrap().iter().find(|r| r["finding"]["finding_id"] == id.as_str()).unwrap().clone();
    assert_eq!(record["acknowledgement"]["by"], "analyst@contoso.example", "{record}");
    assert_eq!(record["status"], "open");
}

/// Admins manage tokens over the API but cannot mint approvers (an admin cannot approve).
#[test]
fn admins_issue_and_revoke_tokens_but_not_approvers() {
    let f = fixture();
    let server = Server::start(&f.data, &[]);
    let admin = &f.roles.iter().find(|(r, _)| *r == Role::Admin).unwrap().1;
    let approver = br#"{"name":"x","principal":"x@contoso.example","roles":["approver"]}"#;
    let reply = server.post("/api/v1/tokens", Some(admin), "application/json", approver);
    assert_eq!((reply.status, reply.problem()), (403, "forbidden".to_string()), "{reply:?}");
    let body = br#"{"name":"dash","principal":"dash@contoso.example","roles":["viewer"]}"#;
    let issued = server.post("/api/v1/tokens", Some(admin), "application/json", body);
    assert_eq!(issued.status, 201, "{issued:?}");
    let token = issued.json()["token"].as_str().unwrap().to_string();
    let id = issued.json()["record"]["token_id"].as_str().unwrap().to_string();
    assert_eq!(server.get("/api/v1/paths?limit=1", Some(&token)).status, 200);
    let listed = server.get("/api/v1/tokens?limit=1000", Some(admin)).json();
    assert!(listed.to_string().contains(&id) && !listed.to_string().contains(&token), "{listed}");
    assert!(!listed.to_string().contains("secret_sha256"), "{listed}");
    let revoked = server.post(&format!("/api/v1/tokens/{id}/revoke"), Some(admin), "application/json", b"");
    assert_eq!(revoked.status, 200, "{revoked:?}");
    assert_eq!(server.get("/api/v1/paths?limit=1", Some(&token)).status, 401);
}

/// Auditors replay: the paths and findings as the log stood at a position.
#[test]
fn auditors_replay_paths_and_findings_at_a_position() {
    let f = fixture();
    let server = Server::start(&f.data, &[]);
    let auditor = &f.roles.iter().find(|(r, _)| *r == Role::Auditor).unwrap().1;
    let now = server.get("/api/v1/paths?scope=project:HR-Automation&limit=1000", Some(auditor)).json();
    let then = server.get("/api/v1/replay/paths?as_of=3&scope=project:HR-Automation&limit=1000", Some(auditor)).json();
    let count = |v: &Value| v["items"].as_array().unwrap().len();
    assert!(
        count(&then) > 0 && count(&then) < count(&now),
        "the first scan had fewer paths: {} vs {}",
        count(&then),
        count(&now)
    );
    let bad = server.get("/api/v1/replay/paths?as_of=yesterday", Some(auditor));
    assert_eq!((bad.status, bad.problem()), (400, "invalid-request".to_string()));
}

/// A targeted sync reads only its workloads from the source: the deployment's other changes
/// stay out, and a target the source does not have fails the sync.
#[test]
fn a_targeted_sync_changes_only_its_workloads() {
    let dir = TempDir::new();
    let data = approved_first_scan(&dir, "");
    let analyst = token(&data, "contoso", &["analyst"], "ci@contoso.example");
    let source = dir.join("collector.json");
    std::fs::write(&source, snapshot(1)).unwrap();
    let server = Server::start(&data, &["--sync-snapshot", source.to_str().unwrap()]);
    let run = |body: &str| {
        let reply = server.post("/api/v1/syncs", Some(&analyst), "application/json", body.as_bytes());
        assert_eq!(reply.status, 202, "{reply:?}");
        let id = reply.json()["sync_id"].as_str().unwrap().to_string();
        finished_sync(&server, &id, &analyst)
    };
    let missing = run(r#"{"scope":"project:HR-Automation","targets":["no-such-workload"]}"#);
    assert_eq!(missing["status"], "failed", "{missing}");
    assert!(missing["error"].as_str().unwrap().contains("none of the sync's targets"), "{missing}");
    // The deployment's five new paths are all of asst_hr_onboarding's identity.
    let targeted = run(r#"{"scope":"project:HR-Automation","targets":["sn-int-ticketing"]}"#);
    assert_eq!(targeted["status"], "completed", "{targeted}");
    assert_eq!(targeted["targets"], serde_json::json!(["sn-int-ticketing"]));
    let full = run(r#"{"scope":"project:HR-Automation"}"#);
    assert_eq!(full["delta"]["new_paths"], 5, "{full}");
    assert_eq!(targeted["delta"]["new_paths"], 0, "a targeted sync took in another workload's changes: {targeted}");
}

/// The policy over the API: everyone reads it; an admin replaces it (an event, so a replay
/// folds the tenant under it) and a malformed or unknown-field policy changes nothing.
#[test]
fn admins_set_the_policy() {
    let f = fixture();
    let server = Server::start(&f.data, &[]);
    let admin = &f.roles.iter().find(|(r, _)| *r == Role::Admin).unwrap().1;
    let viewer = &f.roles[0].1;
    let mut policy = server.get("/api/v1/policy", Some(viewer)).json();
    policy["evidence_window_days"] = Value::from(45);
    let put = |token: &str, body: &[u8]| {
        let auth = format!("Bearer {token}");
        request(
            &server.addr,
            "PUT",
            "/api/v1/policy",
            &[("Authorization", &auth), ("Content-Type", "application/json")],
            body,
        )
    };
    let head = server.log_head();
    let mut unknown = policy.clone();
    unknown["sudo"] = Value::Bool(true);
    assert_eq!(put(admin, unknown.to_string().as_bytes()).status, 400);
    assert_eq!(put(viewer, policy.to_string().as_bytes()).status, 403);
    assert_eq!(server.log_head(), head);
    let reply = put(admin, policy.to_string().as_bytes());
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(server.get("/api/v1/policy", Some(viewer)).json()["evidence_window_days"], 45);
}

/// Polls a sync until it is neither pending nor running (at most a minute).
fn finished_sync(server: &Server, id: &str, token: &str) -> Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let sync = server.get(&format!("/api/v1/syncs/{id}"), Some(token)).json();
        if !matches!(sync["status"].as_str(), Some("pending" | "running")) {
            return sync;
        }
        assert!(std::time::Instant::now() < deadline, "the sync did not finish: {sync}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `sv0 serve --sync-connector ...`: each sync runs the connectors (here over the recorded
/// export) and imports what they read as a deployment scan.
#[test]
fn a_sync_runs_the_connectors() {
    let dir = TempDir::new();
    let data = dir.join("data");
    let export = crate::repo_root().join("tests/data/connectors/contoso");
    let connectors = ["--connector", "entra", "--connector", "azure-rbac", "--connector", "foundry"];
    let mut first = vec!["scan", "run"];
    first.extend(connectors);
    first.extend(["--from-export", export.to_str().unwrap()]);
    let (code, out) = sv0_in(&data, &first);
    assert_eq!(code, 0, "{out}");
    let analyst = token(&data, "contoso", &["analyst"], "ci@contoso.example");
    let server = Server::start(
        &data,
        &[
            "--sync-connector",
            "entra",
            "--sync-connector",
            "azure-rbac",
            "--sync-connector",
            "foundry",
            "--sync-connector",
            "servicenow",
            "--sync-from-export",
            export.to_str().unwrap(),
        ],
    );
    let reply = server.post(
        "/api/v1/syncs",
        Some(&analyst),
        "application/json",
        br#"{"scope":"project:contoso-agents","environment":"production","run_id":"77"}"#,
    );
    assert_eq!(reply.status, 202, "{reply:?}");
    let id = reply.json()["sync_id"].as_str().unwrap().to_string();
    let sync = finished_sync(&server, &id, &analyst);
    assert_eq!(sync["status"], "completed", "{sync}");
    let scan = server.get(&format!("/api/v1/scans/{}", sync["scan_id"].as_str().unwrap()), Some(&analyst)).json();
    assert_eq!(scan["trigger"], "pre_deployment", "{scan}");
    assert_eq!(scan["observed_at"], "2026-11-25T09:00:00Z", "read from the export: {scan}");
    // The first scan read three connectors; the sync read four, ServiceNow's integrations too.
    assert!(scan["entity_count"].as_u64().unwrap() > 130, "{scan}");
    let paths = server.get("/api/v1/paths?domain=hr", Some(&analyst));
    assert_eq!(paths.status, 200, "{paths:?}");
    assert!(paths.json().to_string().contains("sn_hr_core_case"), "{paths:?}");
}

/// Issue 14 through the API: the review document and the posture digest of every posture read,
/// an approval refused with 409 once the posture changed, one with declared intent accepted,
/// and events that record who authenticated with what.
#[test]
fn an_api_approval_names_the_posture_and_intent_and_events_record_the_credential() {
    let dir = TempDir::new();
    let data = dir.join("data");
    let first = dir.join("first.json");
    std::fs::write(&first, snapshot(0)).unwrap();
    assert_eq!(sv0_in(&data, &["scan", "import", first.to_str().unwrap()]).0, 0);
    let analyst = token(&data, "contoso", &["analyst"], "ci@contoso.example");
    let approver = token(&data, "contoso", &["approver"], "riley@contoso.example");
    let id_of = |token: &str| token.split('_').nth(1).unwrap().to_string();
    let server = Server::start(&data, &[]);

    let review = server.get("/api/v1/review?scope=project:HR-Automation", Some(&analyst));
    assert_eq!(review.status, 200, "{review:?}");
    let review = review.json();
    let digest = review["posture_digest"].as_str().unwrap().to_string();
    let position = review["log_position"].as_u64().unwrap();
    assert_eq!(review["counts"]["paths"], 4);
    for read in ["/api/v1/paths?scope=project:HR-Automation", "/api/v1/findings?scope=project:HR-Automation"] {
        let page = server.get(read, Some(&analyst)).json();
        assert_eq!(page["posture_digest"], digest.as_str(), "{read}: {page}");
        assert_eq!(page["log_position"], position, "{read}");
    }
    assert!(server.get("/api/v1/paths", Some(&analyst)).json()["posture_digest"].is_null(), "no scope, no posture");

    // A pushed scan records who pushed it.
    let pushed = server.post("/api/v1/scans", Some(&analyst), "application/json", &snapshot(1));
    assert_eq!(pushed.status, 201, "{pushed:?}");

    let body = serde_json::json!({
        "scope": "project:HR-Automation", "note": "as reviewed",
        "posture_digest": digest, "log_position": position,
    });
    let refused = server.post("/api/v1/approvals", Some(&approver), "application/json", body.to_string().as_bytes());
    assert_eq!((refused.status, refused.problem()), (409, "conflict".to_string()), "{refused:?}");
    let detail = refused.json()["detail"].as_str().unwrap().to_string();
    assert!(detail.contains(&digest) && detail.contains("deployment, observed 2026-03-03T14:00:00Z"), "{detail}");
    let baselines = server.get("/api/v1/baselines", Some(&analyst)).json();
    assert!(baselines["items"].as_array().unwrap().is_empty(), "nothing was approved: {baselines}");

    let now = server.get("/api/v1/review?scope=project:HR-Automation", Some(&analyst)).json();
    let intent: Value = serde_json::from_slice(&crate::demo_snapshot("contoso-intent.json")).unwrap();
    let body = serde_json::json!({
        "scope": "project:HR-Automation", "note": "as reviewed",
        "posture_digest": now["posture_digest"], "intent": intent,
    });
    let approved = server.post("/api/v1/approvals", Some(&approver), "application/json", body.to_string().as_bytes());
    assert_eq!(approved.status, 201, "{approved:?}");
    assert_eq!(approved.json()["baseline"]["intent"].as_array().unwrap().len(), 3);
    let listed = server.get("/api/v1/approvals", Some(&analyst)).json();
    assert_eq!(listed["items"][0]["posture_digest"], now["posture_digest"], "{listed}");
    assert_eq!(listed["items"][0]["intent"].as_array().unwrap().len(), 3);
    let bad = serde_json::json!({"scope": "project:HR-Automation", "note": "x", "intent": [{"permissions": ["read"]}]});
    let refused = server.post("/api/v1/approvals", Some(&approver), "application/json", bad.to_string().as_bytes());
    assert_eq!(refused.status, 400, "{refused:?}");
    drop(server);

    let events = crate::log_events(&data);
    let approval =
        events.iter().find(|e| matches!(e.payload, sv0_domain::events::EventPayload::ApprovalRecorded(_))).unwrap();
    assert_eq!(approval.meta.actor, "api:riley@contoso.example");
    assert_eq!(approval.meta.credential, Some(format!("token:{}", id_of(&approver))));
    let scan = events
        .iter()
        .find(|e| matches!(&e.payload, sv0_domain::events::EventPayload::ScanStarted(s) if s.observed_at.to_rfc3339() == "2026-03-03T14:00:00Z"))
        .unwrap();
    assert_eq!(scan.meta.actor, "api:ci@contoso.example");
    assert_eq!(scan.meta.credential, Some(format!("token:{}", id_of(&analyst))));
}

/// What-if through the API: a pipeline posts its plan and reads the predicted delta; an approver
/// approves with the plan as the declared intent.
#[test]
fn a_plan_posted_to_the_api_is_judged_and_can_be_approved_as_intent() {
    let dir = TempDir::new();
    let data = dir.join("data");
    let first = dir.join("first.json");
    std::fs::write(&first, snapshot(0)).unwrap();
    assert_eq!(sv0_in(&data, &["scan", "import", first.to_str().unwrap()]).0, 0);
    let analyst = token(&data, "contoso", &["analyst"], "ci@contoso.example");
    let approver = token(&data, "contoso", &["approver"], "riley@contoso.example");
    let server = Server::start(&data, &[]);
    let plan = std::fs::read(crate::repo_root().join("tests/data/plans/terraform-hr-release.json")).unwrap();
    let head = server.log_head();
    let reply = server.post("/api/v1/whatif?scope=project:HR-Automation", Some(&analyst), "application/json", &plan);
    assert_eq!(reply.status, 200, "{reply:?}");
    let report = reply.json();
    assert!(
        report["entries"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["caused_by"] == serde_json::json!(["module.hr_agent.azurerm_role_assignment.finance_ledgers"]))
    );
    assert_eq!(report["skipped"].as_array().unwrap().len(), 2);
    assert_eq!(server.log_head(), head, "a what-if records nothing");
    let bad =
        server.post("/api/v1/whatif?scope=project:HR-Automation", Some(&analyst), "application/json", b"{\"x\":1}");
    assert_eq!((bad.status, bad.problem()), (400, "invalid-request".to_string()), "{bad:?}");

    // `sv0 gate --plan` in a pipeline: the planned Finance write needs review (exit 1), with
    // the plan address in the Markdown; a plan that grants nothing passes (exit 0).
    let token_file = dir.join("token");
    std::fs::write(&token_file, &analyst).unwrap();
    let url = format!("http://{}", server.addr);
    let gate = |plan: &std::path::Path| {
        crate::sv0(&[
            "gate",
            "--url",
            &url,
            "--token-file",
            token_file.to_str().unwrap(),
            "--scope",
            "project:HR-Automation",
            "--environment",
            "production",
            "--plan",
            plan.to_str().unwrap(),
        ])
    };
    let (code, out) = gate(&crate::repo_root().join("tests/data/plans/terraform-hr-release.json"));
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("## SV0 deployment gate (plan): requires_review"), "{out}");
    assert!(out.contains("module.hr_agent.azurerm_role_assignment.finance_ledgers"), "{out}");
    assert!(out.contains("### Not modelled"), "{out}");
    let empty = dir.join("empty-plan.json");
    std::fs::write(&empty, br#"{"format_version": "1.2", "resource_changes": []}"#).unwrap();
    let (code, out) = gate(&empty);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("## SV0 deployment gate (plan): approved"), "{out}");
    assert_eq!(server.log_head(), head, "the gate recorded nothing");

    let plan_value: Value = serde_json::from_slice(&plan).unwrap();
    let body = serde_json::json!({"scope": "project:HR-Automation", "note": "as planned", "plan": plan_value});
    let approved = server.post("/api/v1/approvals", Some(&approver), "application/json", body.to_string().as_bytes());
    assert_eq!(approved.status, 201, "{approved:?}");
    let baseline = &approved.json()["baseline"];
    assert_eq!(baseline["intent"].as_array().unwrap().len(), 1, "{baseline}");
    assert!(baseline["plan_digest"].as_str().unwrap().starts_with("sha256:"));
}

/// Reads what the server sends on `stream` until it closes it or `within` passes: the bytes
/// and whether it closed.
fn read_until_closed(stream: &mut TcpStream, within: Duration) -> (String, bool) {
    stream.set_read_timeout(Some(within)).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return (String::from_utf8_lossy(&got).into_owned(), true),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            // Closed with what we sent still unread on the server's side: a reset.
            Err(e)
                if matches!(e.kind(), std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::ConnectionAborted) =>
            {
                return (String::from_utf8_lossy(&got).into_owned(), true);
            }
            Err(_) => return (String::from_utf8_lossy(&got).into_owned(), false),
        }
    }
}

/// An anonymous client cannot make the server read a large body, hold a connection open by
/// sending its headers slowly, or take every connection: it is answered from the headers,
/// routes other than snapshots, plans and the policy take 64 KiB, slow headers are cut off,
/// and connections beyond the cap are closed as they arrive.
#[test]
fn the_server_authenticates_before_reading_and_closes_slow_and_surplus_clients() {
    let f = fixture();
    let server = Server::start(&f.data, &["--max-connections", "4"]);
    // 10 MB announced, none sent: the answer comes from the headers alone.
    let mut stream = TcpStream::connect(&server.addr).unwrap();
    let head = format!(
        "POST /api/v1/scans HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: 10485760\r\n\r\n",
        server.addr
    );
    stream.write_all(head.as_bytes()).unwrap();
    let started = std::time::Instant::now();
    let (answer, _) = read_until_closed(&mut stream, Duration::from_secs(5));
    assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");
    assert!(answer.contains("missing-token"), "{answer}");
    assert!(started.elapsed() < Duration::from_secs(5));
    drop(stream);
    // The same for a forbidden role on a route that takes a body.
    let viewer = &f.roles.iter().find(|(r, _)| *r == Role::Viewer).unwrap().1;
    let mut stream = TcpStream::connect(&server.addr).unwrap();
    let head = format!(
        "POST /api/v1/approvals HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {viewer}\r\nContent-Type: application/json\r\nContent-Length: 10485760\r\n\r\n",
        server.addr
    );
    stream.write_all(head.as_bytes()).unwrap();
    let (answer, _) = read_until_closed(&mut stream, Duration::from_secs(5));
    assert!(answer.starts_with("HTTP/1.1 403"), "{answer}");
    drop(stream);

    // 100 KiB to a small route, as an admin: refused as too large.
    let admin = &f.roles.iter().find(|(r, _)| *r == Role::Admin).unwrap().1;
    let big = format!(r#"{{"name":"{}","principal":"x@contoso.example","roles":["viewer"]}}"#, "n".repeat(100 * 1024));
    let reply = server.post("/api/v1/tokens", Some(admin), "application/json", big.as_bytes());
    assert_eq!((reply.status, reply.problem()), (413, "body-too-large".to_string()), "{reply:?}");
    assert!(reply.body.contains("65536"), "{reply:?}");

    // Slow headers: cut off after the header read timeout.
    let mut slow = TcpStream::connect(&server.addr).unwrap();
    slow.write_all(b"GET /api/v1/paths HTTP/1.1\r\nHost: x\r\n").unwrap();
    let (_, closed) = read_until_closed(&mut slow, sv0_api::HEADER_READ_TIMEOUT + Duration::from_secs(5));
    assert!(closed, "a client that never finishes its headers is disconnected");
    drop(slow);

    // Four idle connections hold every slot; a fifth is closed at once, and a slot freed
    // serves again.
    let idle: Vec<TcpStream> = (0..4).map(|_| TcpStream::connect(&server.addr).unwrap()).collect();
    std::thread::sleep(Duration::from_millis(300));
    let mut surplus = TcpStream::connect(&server.addr).unwrap();
    let _ = surplus.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    let (answer, closed) = read_until_closed(&mut surplus, Duration::from_secs(3));
    assert!(closed && answer.is_empty(), "the connection over the cap is closed unanswered: {answer:?}");
    drop(idle);
    std::thread::sleep(Duration::from_millis(300));
    let reply = server.get("/healthz", None);
    assert_eq!(reply.status, 200, "{reply:?}");
}

/// The fold trusts the subject an event was appended on, not its payload: a `token.issued` for
/// tenant B written on tenant A's subject grants nothing; the same event on B's own subject
/// does (so the refusal is the subject's doing).
#[test]
fn an_event_on_another_tenants_subject_grants_nothing() {
    use sv0_log::EventLog;
    let dir = TempDir::new();
    let data = dir.join("data");
    std::fs::create_dir_all(&data).unwrap();
    crate::block_on(async {
        let mut service = sv0_service::Service::open(&data).await.unwrap();
        let secret = "5e".repeat(32);
        // SHA-256 of the secret, as `token.issued` records it.
        let secret_sha256 = "8414cd6b08e92be7f34132d9f8fabaa0cf0f072bab807b434e7ff02efc918a1e";
        let forged = |tenant: &str, id: &str| {
            let tenant = sv0_domain::TenantId::new(tenant).unwrap();
            let event = sv0_domain::events::Event::by(
                sv0_domain::EventId([id.as_bytes()[15]; 16]),
                &tenant,
                sv0_domain::Timestamp::now(),
                &sv0_domain::events::Actor::host("mallory@contoso.example"),
                sv0_domain::events::EventPayload::TokenIssued(sv0_domain::events::TokenIssued {
                    token_id: id.to_string(),
                    name: "forged".into(),
                    principal: "mallory@fabrikam.example".into(),
                    roles: vec![Role::Admin],
                    secret_sha256: secret_sha256.to_string(),
                    expires_at: None,
                }),
            );
            sv0_service::import::new_event(&event).unwrap()
        };
        let log = service.log().clone();
        log.append("contoso.token", sv0_log::Expected::Any, vec![forged("fabrikam", "00000000000000aa")])
            .await
            .unwrap();
        log.append("fabrikam.scan", sv0_log::Expected::Any, vec![forged("fabrikam", "00000000000000bb")])
            .await
            .unwrap();
        log.append("fabrikam.token", sv0_log::Expected::Any, vec![forged("fabrikam", "00000000000000cc")])
            .await
            .unwrap();
        service.sync().await.unwrap();
        let views = service.views();
        for id in ["00000000000000aa", "00000000000000bb"] {
            let token = format!("sv0_{id}_{secret}");
            assert!(sv0_service::tokens::authenticate(views, &token).is_err(), "{id} on the wrong subject");
        }
        let token = format!("sv0_00000000000000cc_{secret}");
        let record = sv0_service::tokens::authenticate(views, &token).expect("on its own subject");
        assert_eq!(record.tenant.as_str(), "fabrikam");
    });
}

/// `/metrics` is the operator's: not on the API's port, no tenant named unless asked for, and
/// no series a client can multiply (made-up methods are `other`, unknown paths `unmatched`).
#[test]
fn metrics_are_served_apart_name_no_tenant_and_cannot_be_grown() {
    let f = fixture();
    let server = Server::start(&f.data, &[]);
    let reply = server.get("/metrics", None);
    assert_eq!(reply.status, 404, "{reply:?}");
    for n in 0..5 {
        let _ = request(&server.addr, &format!("BREW{n}"), "/api/v1/paths", &[], b"");
        let _ = request(&server.addr, "GET", &format!("/api/v1/nothing-{n}"), &[], b"");
    }
    let metrics = server.metrics();
    assert!(!metrics.contains("contoso") && !metrics.contains("fabrikam"), "{metrics}");
    assert!(metrics.contains("sv0_findings_open "), "totals without labels: {metrics}");
    assert!(!metrics.contains("BREW") && !metrics.contains("nothing-"), "{metrics}");
    assert!(metrics.contains("method=\"other\""), "{metrics}");
    drop(server);
    let labelled = Server::start(&f.data, &["--metrics-tenant-labels"]);
    assert!(labelled.metrics().contains("sv0_findings_open{tenant=\"contoso\"}"));
}

/// A pushed scan cannot claim to come from the future.
#[test]
fn a_pushed_scan_cannot_be_dated_in_the_future() {
    let f = fixture();
    let server = Server::start(&f.data, &[]);
    let analyst = &f.roles.iter().find(|(r, _)| *r == Role::Analyst).unwrap().1;
    let mut snapshot: Value = serde_json::from_slice(&snapshot(2)).unwrap();
    snapshot["scan"]["observed_at"] = "2099-01-01T00:00:00Z".into();
    let reply = server.post("/api/v1/scans", Some(analyst), "application/json", snapshot.to_string().as_bytes());
    assert_eq!(reply.status, 400, "{reply:?}");
    assert!(reply.body.contains("after this server's clock"), "{reply:?}");
    drop(server);
    // Nothing of it was appended. (Who pushed a scan is in its events' `actor` and
    // `credential`: `an_api_approval_names_the_posture_and_intent_and_events_record_the_credential`.)
    let pushed = crate::log_events(&f.data).into_iter().any(|e| {
        matches!(&e.payload, sv0_domain::events::EventPayload::ScanStarted(s) if s.observed_at.to_rfc3339().starts_with("2099"))
    });
    assert!(!pushed);
}

/// A token may carry an expiry (`tokens create --expires-in`, or `expires_at` over the API):
/// it authenticates until then and is refused after, like a revoked one; `tokens list` says
/// which; an expiry that is not in the future is refused.
#[test]
fn a_token_with_an_expiry_stops_authenticating_when_it_expires() {
    let f = fixture();
    let args = ["--tenant", "contoso", "tokens", "create", "--role", "viewer", "--name", "short", "--expires-in", "3s"];
    let (code, out) = sv0_in(&f.data, &args);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("it stops authenticating at "), "{out}");
    let short = out.lines().last().unwrap().to_string();
    let (code, out) = sv0_in(&f.data, &["--tenant", "contoso", "tokens", "list"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("active until "), "{out}");
    let (code, out) =
        sv0_in(&f.data, &["--tenant", "contoso", "tokens", "create", "--role", "viewer", "--expires-in", "0s"]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("expiry must be in the future"), "{out}");
    let server = Server::start(&f.data, &["--auth-failures-per-minute", "100000"]);
    assert_eq!(server.get("/api/v1/paths?limit=1", Some(&short)).status, 200);
    let admin = &f.roles.iter().find(|(r, _)| *r == Role::Admin).unwrap().1;
    let past =
        br#"{"name":"old","principal":"old@contoso.example","roles":["viewer"],"expires_at":"2020-01-01T00:00:00Z"}"#;
    let reply = server.post("/api/v1/tokens", Some(admin), "application/json", past);
    assert_eq!(reply.status, 400, "{reply:?}");
    // A date that is not one gets the message the CLI gives.
    let analyst = &f.roles.iter().find(|(r, _)| *r == Role::Analyst).unwrap().1;
    let bad = br#"{"acknowledge":[{"finding_id":"F-000000000000","due":"31/12/2099"}],"note":"x"}"#;
    let reply = server.post("/api/v1/findings/acknowledgements", Some(analyst), "application/json", bad);
    assert_eq!(reply.status, 400, "{reply:?}");
    assert!(format!("{reply:?}").contains(crate::cli::DATE_WORDS), "{reply:?}");
    let later = br#"{"name":"later","principal":"later@contoso.example","roles":["viewer"],"expires_at":"2099-01-01T00:00:00Z"}"#;
    let reply = server.post("/api/v1/tokens", Some(admin), "application/json", later);
    assert_eq!(reply.status, 201, "{reply:?}");
    assert_eq!(reply.json()["record"]["expires_at"], "2099-01-01T00:00:00Z");
    std::thread::sleep(std::time::Duration::from_millis(3_500));
    let refused = server.get("/api/v1/paths?limit=1", Some(&short));
    assert_eq!((refused.status, refused.problem()), (401, "invalid-token".to_string()), "{refused:?}");
    drop(server);
    let (_, out) = sv0_in(&f.data, &["--tenant", "contoso", "tokens", "list"]);
    assert!(out.contains("expired "), "{out}");
}

/// While `sv0 serve` holds an embedded data directory, the CLI's commands on it run through the
/// server (its socket in the directory, 0600): queries answer as they did before it started,
/// a token created beside it authenticates, a scan and an approval are appended, relative paths
/// are the caller's, errors and exit codes are the command's, and what cannot run beside a
/// server says so. A socket left by a killed server is ignored, and replaced by the next one.
#[test]
fn the_cli_runs_through_serve_while_it_holds_the_data_directory() {
    use std::os::unix::fs::PermissionsExt;
    let dir = TempDir::new();
    let data = approved_first_scan(&dir, "");
    let (code, paths_before) = sv0_in(&data, &["paths", "--json"]);
    assert_eq!(code, 0, "{paths_before}");
    let server = Server::start(&data, &[]);
    let socket = data.join("sv0.sock");
    assert_eq!(std::fs::metadata(&socket).unwrap().permissions().mode() & 0o777, 0o600);

    let (code, paths) = sv0_in(&data, &["paths", "--json"]);
    assert_eq!((code, &paths), (0, &paths_before), "the same answer through the server");
    let (code, out) = sv0_in(&data, &["--tenant", "contoso", "findings", "--scope", "project:HR-Automaton"]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("Did you mean project:HR-Automation?"), "the command's own error: {out}");

    let viewer = token(&data, "contoso", &["viewer"], "beside@contoso.example");
    assert_eq!(server.get("/api/v1/paths?limit=1", Some(&viewer)).status, 200, "a token created beside the server");

    let head = server.log_head();
    let second = dir.join("second.json");
    std::fs::write(&second, snapshot(1)).unwrap();
    let (code, out) = sv0_in(&data, &["scan", "import", second.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}");
    let (code, out) = sv0_in(&data, &["approve", "--scope", "project:HR-Automation", "--note", "v2", "--yes"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("v2"), "{out}");
    assert!(server.log_head() > head);
    let (code, out) = sv0_in(&data, &["baselines", "--json"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("\"version\": 2"), "{out}");

    // Relative paths are the caller's: a process in another directory exports there.
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_sv0"))
        .current_dir(dir.path())
        .args(["--data-dir", data.to_str().unwrap(), "export", "packs", "--out", "exported"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    assert!(dir.join("exported/checkpoint.txt").exists(), "{output:?}");
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_sv0"))
        .current_dir(dir.path())
        .args(["verify", "--packs", "exported", "--public-key", "exported/public-key.pem"])
        .args(["--checkpoint", "exported/checkpoint.txt"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");

    for refused in [&["rebuild"][..], &["keys", "rotate"], &["serve"]] {
        let (code, out) = sv0_in(&data, refused);
        assert_eq!(code, 2, "{out}");
        assert!(out.contains("is held by `sv0 serve`"), "{refused:?}: {out}");
    }

    // Killed: its socket stays and answers nothing; commands open the directory themselves.
    drop(server);
    assert!(socket.exists());
    let (code, out) = sv0_in(&data, &["baselines", "--json"]);
    assert_eq!(code, 0, "{out}");
    let mut server = Server::start(&data, &[]);
    let (code, out) = sv0_in(&data, &["scopes"]);
    assert_eq!(code, 0, "{out}");
    let _ = std::process::Command::new("kill").args(["-TERM", &server.child.id().to_string()]).status();
    assert!(server.child.wait().unwrap().success());
    assert!(!socket.exists(), "a server that stops removes its socket");
}
