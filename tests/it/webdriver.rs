//! A headless Chromium driven through chromedriver, over the W3C WebDriver protocol
//! (https://www.w3.org/TR/webdriver2/): a session, navigation, elements found by CSS selector,
//! clicks, typing, text, cookies and screenshots — the nine endpoints the browser tests use.
//!
//! Written here rather than taken from a crate: fantoccini (the well-kept client) pulls a second
//! `http` (0.2), `cookie` and `icu` 1.x next to the versions the workspace already uses, which
//! `deny.toml` forbids. The protocol itself is plain JSON over HTTP.
//!
//! `SV0_CHROMIUM` and `SV0_CHROMEDRIVER` name the binaries (`ops/install-chromium.sh` sets them
//! for the test command); without them the test fails, it never skips.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sv0_tests::TempDir;

use crate::api::request;

/// The key of an element reference in WebDriver's JSON.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// A browser session, ended (and chromedriver stopped) when dropped.
pub(crate) struct Browser {
    driver: Child,
    addr: String,
    session: String,
    _profile: TempDir,
}

/// An element of the current page.
pub(crate) struct Element<'a> {
    browser: &'a Browser,
    id: String,
}

fn binary(var: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| {
        panic!("{var} is not set: run the suite with ./ops/test.sh, which installs chromium and chromium-driver")
    })
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free port")
}

impl Browser {
    /// Starts chromedriver and a headless Chromium with a fresh profile.
    pub(crate) fn start() -> Browser {
        let (chromium, chromedriver) = (binary("SV0_CHROMIUM"), binary("SV0_CHROMEDRIVER"));
        let port = free_port();
        let driver = Command::new(&chromedriver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {chromedriver}: {e}"));
        let addr = format!("127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(&addr).is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not listen on {addr} within 20 s");
            std::thread::sleep(Duration::from_millis(50));
        }
        let profile = TempDir::new();
        let mut browser = Browser { driver, addr, session: String::new(), _profile: profile };
        let args = [
            "--headless=new".to_string(),
            // The tests run as root in CI, where Chromium's sandbox cannot start.
            "--no-sandbox".to_string(),
            "--disable-gpu".to_string(),
            "--disable-dev-shm-usage".to_string(),
            "--window-size=1280,1600".to_string(),
            format!("--user-data-dir={}", browser._profile.path().display()),
        ];
        let capabilities = json!({ "capabilities": { "alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": { "binary": chromium, "args": args },
        } } });
        let created = browser.call("POST", "/session", Some(capabilities));
        browser.session = created["sessionId"].as_str().expect("a session id").to_string();
        browser
    }

    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let reply = request(&self.addr, method, path, &[("Content-Type", "application/json")], body.as_bytes());
        let value: Value = serde_json::from_str(&reply.body)
            .unwrap_or_else(|e| panic!("chromedriver answered {method} {path} with non-JSON ({e}): {}", reply.body));
        assert_eq!(reply.status, 200, "chromedriver refused {method} {path}: {value}");
        value["value"].clone()
    }

    fn session_call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        self.call(method, &format!("/session/{}{path}", self.session), body)
    }

    /// Opens a URL.
    pub(crate) fn goto(&self, url: &str) {
        self.session_call("POST", "/url", Some(json!({ "url": url })));
    }

    /// The current URL.
    pub(crate) fn url(&self) -> String {
        self.session_call("GET", "/url", None).as_str().unwrap_or_default().to_string()
    }

    /// The page's text as a person sees it.
    pub(crate) fn text(&self) -> String {
        self.find("body").text()
    }

    /// The first element a CSS selector matches (the test fails when none does).
    pub(crate) fn find(&self, css: &str) -> Element<'_> {
        let found = self.session_call("POST", "/element", Some(json!({ "using": "css selector", "value": css })));
        let id = found[ELEMENT].as_str().unwrap_or_else(|| panic!("no element {css} on {}", self.url())).to_string();
        Element { browser: self, id }
    }

    /// How many elements a CSS selector matches.
    pub(crate) fn count(&self, css: &str) -> usize {
        let found = self.session_call("POST", "/elements", Some(json!({ "using": "css selector", "value": css })));
        found.as_array().map_or(0, Vec::len)
    }

    /// The value of a cookie of the current site (HttpOnly ones included: WebDriver sees them).
    pub(crate) fn cookie(&self, name: &str) -> Option<String> {
        let cookies = self.session_call("GET", "/cookie", None);
        cookies.as_array()?.iter().find(|c| c["name"] == name).and_then(|c| c["value"].as_str()).map(str::to_string)
    }

    /// The accessibility violations axe-core finds on the current page at `serious` or
    /// `critical` impact (WCAG 2 A and AA rules): each as `rule: help (n elements)`.
    /// `SV0_AXE` names axe.min.js (`ops/install-axe.sh`). The script runs through WebDriver,
    /// which the page's Content-Security-Policy does not govern; the page itself runs none.
    pub(crate) fn serious_accessibility_violations(&self) -> Vec<String> {
        let path = binary("SV0_AXE");
        let axe = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {path}: {e}"));
        let script = format!(
            "const done = arguments[arguments.length - 1];\n{axe}\n\
             axe.run(document, {{ runOnly: {{ type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'] }} }})\
             .then(r => done(r.violations.map(v => ({{ id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.length }}))))\
             .catch(e => done([{{ id: 'axe-failed', impact: 'critical', help: String(e), nodes: 0 }}]));"
        );
        let found = self.session_call("POST", "/execute/async", Some(json!({ "script": script, "args": [] })));
        found
            .as_array()
            .expect("axe's violations")
            .iter()
            .filter(|v| matches!(v["impact"].as_str(), Some("serious" | "critical")))
            .map(|v| format!("{}: {} ({} elements)", v["id"], v["help"], v["nodes"]))
            .collect()
    }

    /// Writes a PNG of the viewport to `path`.
    pub(crate) fn screenshot(&self, path: &std::path::Path) {
        use base64::Engine as _;
        let png = self.session_call("GET", "/screenshot", None);
        let bytes =
            base64::engine::general_purpose::STANDARD.decode(png.as_str().unwrap_or_default()).expect("base64 PNG");
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).expect("screenshot directory");
        }
        std::fs::write(path, bytes).expect("write screenshot");
    }
}

impl Element<'_> {
    fn call(&self, method: &str, what: &str, body: Option<Value>) -> Value {
        self.browser.session_call(method, &format!("/element/{}{what}", self.id), body)
    }

    /// Clicks it.
    pub(crate) fn click(&self) {
        self.call("POST", "/click", Some(json!({})));
    }

    /// Clicks a link or a submit button and waits (at most 20 s) until the browser is on
    /// another page; returns its URL.
    pub(crate) fn click_to_navigate(&self) -> String {
        let before = self.browser.url();
        self.click();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let now = self.browser.url();
            if now != before {
                return now;
            }
            assert!(Instant::now() < deadline, "the click left the browser on {before}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Types `text` into it.
    pub(crate) fn type_text(&self, text: &str) {
        self.call("POST", "/value", Some(json!({ "text": text })));
    }

    /// Its visible text.
    pub(crate) fn text(&self) -> String {
        self.call("GET", "/text", None).as_str().unwrap_or_default().to_string()
    }

    /// A property (e.g. `value` of an input).
    pub(crate) fn property(&self, name: &str) -> Value {
        self.call("GET", &format!("/property/{name}"), None)
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let path = format!("/session/{}", self.session);
            let _ = std::panic::catch_unwind(|| request(&self.addr, "DELETE", &path, &[], b""));
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}
