//! The review screens over HTTP (the browser tests drive the same pages in Chromium): sign-in
//! with a token into a strict session cookie, CSRF on every form, the roles of the API's
//! permission table, tenant isolation, the posture digest that binds an approval to the page,
//! and history pages marked as such.

use std::collections::BTreeMap;

use sv0_domain::access::Role;

use crate::api::{Reply, Server, fixture, request};

/// A browser's session: the cookies the server set.
pub(crate) struct Session<'a> {
    server: &'a Server,
    cookies: BTreeMap<String, String>,
}

impl<'a> Session<'a> {
    pub(crate) fn new(server: &'a Server) -> Session<'a> {
        Session { server, cookies: BTreeMap::new() }
    }

    fn keep_cookies(&mut self, reply: &Reply) {
        for set in reply.header_values("set-cookie") {
            let pair = set.split(';').next().unwrap_or("");
            if let Some((name, value)) = pair.split_once('=') {
                if value.is_empty() {
                    self.cookies.remove(name);
                } else {
                    self.cookies.insert(name.to_string(), value.to_string());
                }
            }
        }
    }

    fn cookie_header(&self) -> String {
        self.cookies.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("; ")
    }

    pub(crate) fn get(&mut self, path: &str) -> Reply {
        let cookie = self.cookie_header();
        let reply = request(&self.server.addr, "GET", path, &[("Cookie", cookie.as_str())], b"");
        self.keep_cookies(&reply);
        reply
    }

    pub(crate) fn post(&mut self, path: &str, fields: &[(&str, &str)]) -> Reply {
        let cookie = self.cookie_header();
        let body = fields.iter().map(|(k, v)| format!("{}={}", encode(k), encode(v))).collect::<Vec<_>>().join("&");
        let headers = [("Cookie", cookie.as_str()), ("Content-Type", "application/x-www-form-urlencoded")];
        let reply = request(&self.server.addr, "POST", path, &headers, body.as_bytes());
        self.keep_cookies(&reply);
        reply
    }

    /// Signs in with `token` through the sign-in form; the reply to the form's POST.
    pub(crate) fn sign_in(&mut self, token: &str) -> Reply {
        let form = self.get("/login");
        assert_eq!(form.status, 200, "{form:?}");
        let csrf = input_value(&form.body, "csrf");
        self.post("/login", &[("csrf", &csrf), ("token", token)])
    }
}

fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// The `value` of the (first) input named `name` in a page.
pub(crate) fn input_value(page: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = page.find(&marker).unwrap_or_else(|| panic!("no input {name} in the page: {page}")) + marker.len();
    page[start..].split('"').next().unwrap_or("").to_string()
}

fn location(reply: &Reply) -> &str {
    reply.header_values("location").first().copied().unwrap_or("")
}

const HR: &str = "/scopes/project:HR-Automation";

#[test]
fn the_review_screens_sign_in_with_a_token_and_show_only_what_the_role_and_tenant_may_see() {
    let fixture = fixture();
    let server = Server::start(&fixture.data, &[]);
    let mut anonymous = Session::new(&server);
    let page = anonymous.get("/");
    assert_eq!((page.status, location(&page)), (303, "/login"), "no session, no page");
    assert!(page.header_values("content-security-policy")[0].contains("default-src 'none'"));

    // A wrong token: 401, the form again, no session.
    let refused = anonymous.sign_in("sv0_nothing-of-the-kind");
    assert_eq!(refused.status, 401, "{refused:?}");
    assert!(refused.body.contains("Not signed in"), "{}", refused.body);
    assert!(!anonymous.cookies.contains_key("sv0_session"));
    // A sign-in form posted without its CSRF cookie is refused.
    let mut forged = Session::new(&server);
    let no_csrf = forged.post("/login", &[("csrf", "0123"), ("token", fixture.token(Role::Viewer))]);
    assert_eq!(no_csrf.status, 403, "{no_csrf:?}");

    let mut viewer = Session::new(&server);
    let signed = viewer.sign_in(fixture.token(Role::Viewer));
    assert_eq!((signed.status, location(&signed)), (303, "/"));
    let cookie = signed.header_values("set-cookie").into_iter().find(|c| c.starts_with("sv0_session=")).unwrap();
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"), "{cookie}");
    let overview = viewer.get("/");
    assert_eq!(overview.status, 200, "{overview:?}");
    assert!(overview.body.contains("project:HR-Automation") && overview.body.contains("authority paths"));
    // Each baselined scope names who approved its version (read without decoding its paths).
    let baselines = server.get("/api/v1/baselines", Some(fixture.token(Role::Viewer))).json();
    let approver = baselines.to_string();
    let approver = ["approver", "approved_by"]
        .iter()
        .find_map(|field| baselines.pointer(&format!("/items/0/{field}")).and_then(|v| v.as_str()))
        .unwrap_or_else(|| panic!("no approver in {approver}"));
    assert!(overview.body.contains(&format!(" by {approver}")), "the Overview does not name {approver}");
    // The open findings the Overview counts are those the API lists open.
    let open = server.get("/api/v1/findings?status=open&limit=1000", Some(fixture.token(Role::Viewer))).json();
    let listed = open["items"].as_array().unwrap().len();
    assert!(listed > 0);
    let card = format!("<div class=\"big\">{listed}</div>open findings");
    assert!(overview.body.contains(&card), "the Overview does not show {listed} open findings");
    let brief = viewer.get(HR);
    assert_eq!(brief.status, 200);
    assert!(brief.body.contains("Sensitive data reachable") && brief.body.contains("Posture digest"));
    assert!(brief.body.contains("Only approvers can approve"), "a viewer sees no approve form");
    assert!(!brief.body.contains("Approve this posture"));
    // ... and cannot approve by posting the form anyway.
    let csrf = input_value(&overview.body, "csrf");
    let digest = input_value(&approver_brief(&fixture, &server), "posture_digest");
    let posted = viewer.post(&format!("{HR}/approve"), &[("csrf", &csrf), ("posture_digest", &digest), ("note", "x")]);
    assert_eq!(posted.status, 403, "{posted:?}");
    assert_eq!(viewer.get("/evidence").status, 403, "evidence is for auditors and admins");
    assert_eq!(viewer.get("/scopes/project:No-Such-Project").status, 404);

    // Another tenant's caller finds none of contoso's scopes.
    let mut other = Session::new(&server);
    assert_eq!(other.sign_in(&fixture.other).status, 303);
    assert_eq!(other.get(HR).status, 404);
    assert!(!other.get("/").body.contains("HR-Automation"));

    // Sign-out ends the session; the cookie no longer opens a page.
    let stolen = viewer.cookie_header();
    assert_eq!(viewer.post("/logout", &[("csrf", &csrf)]).status, 303);
    let after = request(&server.addr, "GET", "/", &[("Cookie", stolen.as_str())], b"");
    assert_eq!((after.status, location(&after)), (303, "/login"));

    // A revoked token ends its sessions at once.
    let mut auditor = Session::new(&server);
    assert_eq!(auditor.sign_in(fixture.token(Role::Auditor)).status, 303);
    assert_eq!(auditor.get("/evidence").status, 200);
    let (code, out) = crate::sv0_in(&fixture.data, &["tokens", "revoke", "auditor@contoso.example"]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(auditor.get("/evidence").status, 303, "a revoked token's session is over");
}

/// The brief as an approver sees it.
fn approver_brief(fixture: &crate::api::Fixture, server: &Server) -> String {
    let mut approver = Session::new(server);
    assert_eq!(approver.sign_in(fixture.token(Role::Approver)).status, 303);
    approver.get(HR).body
}

#[test]
fn approving_from_the_brief_needs_the_csrf_token_and_the_posture_on_the_page() {
    let fixture = fixture();
    let server = Server::start(&fixture.data, &[]);
    let mut approver = Session::new(&server);
    assert_eq!(approver.sign_in(fixture.token(Role::Approver)).status, 303);
    let brief = approver.get(HR);
    assert!(brief.body.contains("Approve this posture"), "an approver sees the form");
    let csrf = input_value(&brief.body, "csrf");
    let digest = input_value(&brief.body, "posture_digest");
    let position = input_value(&brief.body, "log_position");
    let finding = input_value(&brief.body, "ack");
    let head = server.log_head();
    let approve = |session: &mut Session<'_>, fields: &[(&str, &str)]| session.post(&format!("{HR}/approve"), fields);

    let no_csrf = approve(&mut approver, &[("posture_digest", &digest), ("note", "reviewed"), ("force", "true")]);
    assert_eq!(no_csrf.status, 403, "{no_csrf:?}");
    let wrong_csrf = approve(
        &mut approver,
        &[("csrf", "beef"), ("posture_digest", &digest), ("note", "reviewed"), ("force", "true")],
    );
    assert_eq!(wrong_csrf.status, 403);
    // The posture of the past (the page as of position 6) is not the posture now.
    let old = approver.get(&format!("{HR}?as_of=6"));
    assert!(old.body.contains("Historical view") && old.body.contains("cannot be approved"), "{}", old.body);
    let stale = old.body.split("Posture digest: <code>").nth(1).and_then(|s| s.split("</code>").next()).unwrap();
    assert_ne!(stale, digest);
    let refused =
        approve(&mut approver, &[("csrf", &csrf), ("posture_digest", stale), ("note", "reviewed"), ("force", "true")]);
    assert_eq!(refused.status, 409, "{}", refused.body);
    assert_eq!(server.log_head(), head, "refused approvals append nothing");

    let done = approve(
        &mut approver,
        &[
            ("csrf", &csrf),
            ("posture_digest", &digest),
            ("log_position", &position),
            ("note", "reviewed with the HR platform team"),
            ("ack", &finding),
            (&format!("due:{finding}"), "2099-01-31"),
            ("force", "true"),
        ],
    );
    assert_eq!((done.status, location(&done)), (303, "/scopes/project:HR-Automation?approved=3"), "{done:?}");
    assert!(approver.get(location(&done)).body.contains("baseline version 3 is locked"));
    let approvals =
        server.get("/api/v1/approvals?scope=project:HR-Automation", Some(fixture.token(Role::Auditor))).json();
    let last = approvals["items"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["approver"], "approver@contoso.example", "{last}");
    assert_eq!(last["acknowledged"][0]["finding_id"], finding.as_str());
}

/// Every control a person fills in has a label: a `<label for>` naming its id, or a `<label>`
/// around it. Hidden inputs and buttons (labelled by their text) are left out.
fn unlabelled_controls(page: &str) -> Vec<String> {
    let mut missing = Vec::new();
    let mut inside_label = 0usize;
    let mut rest = page;
    while let Some(start) = rest.find('<') {
        let tag_end = rest[start..].find('>').map_or(rest.len(), |e| start + e + 1);
        let tag = &rest[start..tag_end];
        let name = tag.trim_start_matches('<').split(|c: char| c.is_whitespace() || c == '>').next().unwrap_or("");
        match name {
            "label" => inside_label += 1,
            "/label" => inside_label = inside_label.saturating_sub(1),
            "input" | "select" | "textarea" if !tag.contains("type=\"hidden\"") && !tag.contains("type=\"submit\"") => {
                let id = tag.split("id=\"").nth(1).and_then(|s| s.split('"').next());
                let labelled = inside_label > 0 || id.is_some_and(|id| page.contains(&format!("for=\"{id}\"")));
                if !labelled {
                    missing.push(tag.to_string());
                }
            }
            _ => {}
        }
        rest = &rest[tag_end..];
    }
    missing
}

#[test]
fn every_screen_labels_its_controls_and_declares_its_language() {
    assert_eq!(unlabelled_controls("<p><input id=\"x\" name=\"y\"></p>").len(), 1, "the check finds a bare input");
    assert!(unlabelled_controls("<label for=\"x\">X</label><input id=\"x\">").is_empty());
    let fixture = fixture();
    let server = Server::start(&fixture.data, &[]);
    let mut login = Session::new(&server);
    let form = login.get("/login");
    assert_eq!(unlabelled_controls(&form.body), Vec::<String>::new(), "the sign-in form");
    let mut approver = Session::new(&server);
    assert_eq!(approver.sign_in(fixture.token(Role::Approver)).status, 303);
    let mut auditor = Session::new(&server);
    assert_eq!(auditor.sign_in(fixture.token(Role::Auditor)).status, 303);
    let brief = approver.get(HR);
    let path =
        brief.body.split("href=\"/paths/").nth(1).and_then(|s| s.split('"').next()).unwrap().replace("&amp;", "&");
    let pages = [
        approver.get("/"),
        brief,
        approver.get(&format!("{HR}/delta")),
        approver.get(&format!("/paths/{path}")),
        approver.get(&format!("{HR}?as_of=6")),
        auditor.get("/evidence"),
    ];
    for page in &pages {
        assert_eq!(page.status, 200, "{page:?}");
        assert!(page.body.starts_with("<!DOCTYPE html><html lang=\"en\">"), "{}", &page.body[..80]);
        assert!(page.body.contains("<main id=\"main\""), "a main landmark the skip link reaches");
        assert_eq!(unlabelled_controls(&page.body), Vec::<String>::new());
        assert!(!page.body.contains("style=") && !page.body.contains("<script"), "nothing the CSP would block");
    }
}

/// With `[oidc]` naming the provider's endpoints, the sign-in page offers the provider: the
/// authorization code flow with PKCE (S256), bound to the browser that started it, each
/// sign-in used once, the token verified as a bearer JWT is.
#[test]
fn the_screens_sign_in_through_the_identity_provider_with_pkce() {
    use base64::Engine as _;
    use sha2::Digest as _;
    use std::sync::{Arc, Mutex};
    let f = fixture();
    let jwks = f.data.join("jwks.json");
    std::fs::copy(crate::repo_root().join("tests/data/oidc-test-jwks.json"), &jwks).unwrap();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    let jwt = crate::api::provider_jwt(
        &serde_json::json!({
            "iss": "https://login.example/contoso/v2.0", "aud": "api://sv0", "sub": "00000000-riley",
            "roles": ["SV0.Approver"], "nbf": now - 10, "exp": now + 600,
        }),
        "test-key-1",
    );
    // The provider's token endpoint: it redeems `good-code` only with the verifier whose S256
    // challenge the authorization request carried.
    let challenge = Arc::new(Mutex::new(String::new()));
    let redeemed = Arc::new(Mutex::new(Vec::<String>::new()));
    let (expected, seen) = (Arc::clone(&challenge), Arc::clone(&redeemed));
    let idp = crate::fake_http::fake_server(move |r| {
        let body = String::from_utf8_lossy(&r.body).into_owned();
        let field = |name: &str| {
            body.split('&').find_map(|p| p.strip_prefix(&format!("{name}="))).unwrap_or_default().to_string()
        };
        seen.lock().unwrap().push(body.clone());
        let verifier = field("code_verifier");
        let s256 = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(verifier.as_bytes()));
        let fine = r.path == "/token"
            && field("grant_type") == "authorization_code"
            && field("code") == "good-code"
            && field("client_id") == "sv0-app"
            && s256 == *expected.lock().unwrap();
        if fine {
            ("200 OK", serde_json::json!({ "access_token": jwt, "token_type": "Bearer" }).to_string())
        } else {
            ("400 Bad Request", r#"{"error":"invalid_grant"}"#.to_string())
        }
    });
    let config = std::fs::read_to_string(f.data.join("sv0.toml")).unwrap_or_default();
    std::fs::write(
        f.data.join("sv0.toml"),
        format!(
            "{config}\n[oidc]\nissuer = \"https://login.example/contoso/v2.0\"\naudience = \"api://sv0\"\ntenant = \"contoso\"\njwks_file = {jwks:?}\nauthorization_endpoint = \"{idp}/authorize\"\ntoken_endpoint = \"{idp}/token\"\nclient_id = \"sv0-app\"\nredirect_url = \"http://127.0.0.1/login/oidc/callback\"\n"
        ),
    )
    .unwrap();
    let server = Server::start(&f.data, &[]);
    let mut browser = Session::new(&server);
    assert!(browser.get("/login").body.contains("Sign in with your identity provider"));
    let go = browser.get("/login/oidc");
    assert_eq!(go.status, 303, "{go:?}");
    let to = location(&go).to_string();
    assert!(to.starts_with(&format!("{idp}/authorize?")), "{to}");
    let param = |name: &str| {
        to.split(['?', '&']).find_map(|p| p.strip_prefix(&format!("{name}="))).unwrap_or_default().to_string()
    };
    assert_eq!(param("code_challenge_method"), "S256");
    assert_eq!(param("response_type"), "code");
    assert_eq!(param("client_id"), "sv0-app");
    *challenge.lock().unwrap() = param("code_challenge");
    let state = param("state");
    let bind = go.header_values("set-cookie").into_iter().find(|c| c.starts_with("sv0_oidc=")).unwrap().to_string();
    assert!(bind.contains("HttpOnly") && bind.contains("SameSite=Lax"), "{bind}");
    let callback = format!("/login/oidc/callback?code=good-code&state={state}");

    // Another browser holding the link (a login CSRF) is refused, and redeems nothing.
    assert_eq!(Session::new(&server).get(&callback).status, 403);
    assert!(redeemed.lock().unwrap().is_empty());
    let back = browser.get(&callback);
    assert_eq!(back.status, 200, "{back:?}");
    assert!(back.body.contains("Signed in as https://login.example/contoso/v2.0#00000000-riley"), "{}", back.body);
    assert!(back.body.contains("http-equiv=\"refresh\""));
    let overview = browser.get("/");
    assert_eq!(overview.status, 200);
    assert!(overview.body.contains("00000000-riley"));
    assert!(browser.get(HR).body.contains("Approve this posture"), "the provider's roles claim makes an approver");
    // A sign-in is used once.
    assert_eq!(browser.get(&callback).status, 403);
    assert_eq!(redeemed.lock().unwrap().len(), 1);
}
