//! Where API responses come from: a live HTTP source (OAuth2 client credentials, paging,
//! throttling, retries, per-service concurrency, timeouts) or an export directory of the same
//! responses saved as JSON files. Connectors ask for an API's items and never see the difference.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::Value;
use tokio::sync::Semaphore;

use crate::auth::TokenSource;
use crate::{ConnectorError, Progress};

mod export;

pub use export::ExportDir;

/// Largest response page read live.
pub const MAX_PAGE_BYTES: u64 = 256 * 1024 * 1024;

/// Largest export file read (AzureHound writes a whole tenant into one file).
pub const MAX_EXPORT_FILE_BYTES: u64 = 4 * 1024 * 1024 * 1024;

/// The source systems' APIs, each with its own base URL, token audience and concurrency limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Service {
    /// Microsoft Graph.
    Graph,
    /// Azure Resource Manager.
    Arm,
    /// Azure Monitor Log Analytics (query API).
    LogAnalytics,
    /// A ServiceNow instance's REST API.
    ServiceNow,
    /// An Azure AI Foundry project endpoint.
    Foundry,
}

impl Service {
    /// Every service.
    pub const ALL: [Service; 5] =
        [Service::Graph, Service::Arm, Service::LogAnalytics, Service::ServiceNow, Service::Foundry];

    /// Its name in configuration and messages.
    pub fn name(&self) -> &'static str {
        match self {
            Service::Graph => "graph",
            Service::Arm => "arm",
            Service::LogAnalytics => "log-analytics",
            Service::ServiceNow => "servicenow",
            Service::Foundry => "foundry",
        }
    }
}

/// How an API pages its results.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Paging {
    /// Microsoft Graph: items in `value`, the next page's full URL in `@odata.nextLink`.
    OData,
    /// Azure Resource Manager: items in `value`, the next page's full URL in `nextLink`.
    Arm,
    /// ServiceNow Table API: items in `result`, the next page in the `Link` header (`rel="next"`).
    LinkHeader,
    /// OpenAI-style lists (Foundry agents, threads, runs, steps): items in `data`, `has_more`
    /// and `last_id`, the next page asked for with `after=<last_id>`.
    Cursor,
    /// A Log Analytics query result: one table of columns and rows, no paging.
    Table,
}

/// One API request (and the pages that follow it).
#[derive(Debug, Clone)]
pub struct Call {
    /// The API's name, as coverage records it (e.g. `graph.servicePrincipals`); also the stem
    /// of its file in an export directory.
    pub api: &'static str,
    /// The service it belongs to.
    pub service: Service,
    /// Path and query, relative to the service's base URL.
    pub path: String,
    /// How the results are paged.
    pub paging: Paging,
    /// A JSON body to POST instead of a GET.
    pub body: Option<Value>,
    /// A field set on every item read (e.g. `groupId` on a group's members), so that items of
    /// a fan-out name the call they came from, as an export file's items must.
    pub tag: Option<(&'static str, String)>,
    /// Request headers the API requires (e.g. Graph's `ConsistencyLevel: eventual` for OData
    /// casts and `$count`).
    pub headers: Vec<(&'static str, String)>,
    /// What every item must be (`schema::of(api)`): an item that is not such a record fails
    /// its page's API rather than silently shrinking the list.
    pub keys: &'static [crate::schema::Field],
}

impl Call {
    /// A GET.
    pub fn get(api: &'static str, service: Service, path: impl Into<String>, paging: Paging) -> Call {
        Call {
            api,
            service,
            path: path.into(),
            paging,
            body: None,
            tag: None,
            headers: Vec::new(),
            keys: crate::schema::of(api),
        }
    }

    /// The same call, with a request header.
    pub fn header(mut self, name: &'static str, value: impl Into<String>) -> Call {
        self.headers.push((name, value.into()));
        self
    }

    /// The same call, checking each item for these fields instead of its API's record.
    pub fn keys(mut self, keys: &'static [crate::schema::Field]) -> Call {
        self.keys = keys;
        self
    }

    /// The same call, setting `key` to `value` on every item read.
    pub fn tagged(mut self, key: &'static str, value: impl Into<String>) -> Call {
        self.tag = Some((key, value.into()));
        self
    }
}

/// How one API's calls ended, for the coverage record.
#[derive(Debug, Clone, Default)]
pub struct ApiOutcome {
    /// Calls made (pages are not counted separately).
    pub calls: u64,
    /// Pages read.
    pub pages: u64,
    /// Items read.
    pub items: u64,
    /// Calls that failed.
    pub failed: u64,
    /// The first failure, in words (e.g. `HTTP 403 Forbidden: ...`).
    pub first_error: Option<String>,
    /// Retries after throttling or transport errors.
    pub retries: u64,
}

/// Live HTTP settings.
#[derive(Debug, Clone)]
pub struct HttpSettings {
    /// Base URL of each service.
    pub base_urls: BTreeMap<Service, String>,
    /// Concurrent requests per service.
    pub concurrency: usize,
    /// Retries of one request after 429, 503, 504 or a transport error.
    pub max_retries: u32,
    /// Longest wait honoured from a `Retry-After` header (longer ones are cut to this).
    pub max_retry_wait: Duration,
    /// Time allowed for one request, response body included.
    pub timeout: Duration,
    /// Host suffixes a service's absolute endpoint URLs (Foundry project endpoints read from
    /// Azure Resource Manager) must end with when the service has no base URL; with a base
    /// URL (a proxy, a test server) they are sent there instead.
    pub endpoint_suffixes: BTreeMap<Service, String>,
}

impl Default for HttpSettings {
    fn default() -> Self {
        HttpSettings {
            base_urls: BTreeMap::new(),
            concurrency: 4,
            max_retries: 4,
            max_retry_wait: Duration::from_secs(60),
            timeout: Duration::from_secs(60),
            endpoint_suffixes: BTreeMap::new(),
        }
    }
}

/// Where the responses come from.
pub enum Source {
    /// Live over HTTP.
    Live(Box<Live>),
    /// From an export directory.
    Export(ExportDir),
}

/// What a list of calls gives: every item read, and whether every call succeeded.
#[derive(Debug, Default)]
pub struct Listing {
    /// Items in call order, page order within a call.
    pub items: Vec<Value>,
    /// False when a call failed (its items read before the failure are kept).
    pub complete: bool,
}

/// Records each API's outcome and reports progress.
pub struct Ledger {
    outcomes: Mutex<BTreeMap<&'static str, ApiOutcome>>,
    progress: Arc<dyn Progress>,
}

impl Ledger {
    /// An empty ledger reporting to `progress`.
    pub fn new(progress: Arc<dyn Progress>) -> Ledger {
        Ledger { outcomes: Mutex::new(BTreeMap::new()), progress }
    }

    fn with(&self, api: &'static str, f: impl FnOnce(&mut ApiOutcome)) {
        let mut outcomes = self.outcomes.lock().unwrap_or_else(|e| e.into_inner());
        f(outcomes.entry(api).or_default());
    }

    /// Marks an API as called (and failed) without a request, e.g. when what it depends on failed.
    pub fn skipped(&self, api: &'static str, reason: &str) {
        self.with(api, |o| {
            o.calls += 1;
            o.failed += 1;
            o.first_error.get_or_insert_with(|| reason.to_string());
        });
    }

    /// Every API's outcome, by name.
    pub fn outcomes(&self) -> BTreeMap<&'static str, ApiOutcome> {
        self.outcomes.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn page(&self, api: &'static str, items: usize) {
        self.with(api, |o| {
            o.pages += 1;
            o.items += items as u64;
        });
        self.progress.page(api, items);
    }

    /// Records one call of an API (all its pages) and how it ended.
    pub(crate) fn finished(&self, api: &'static str, error: Option<&str>) {
        self.with(api, |o| {
            o.calls += 1;
            if let Some(error) = error {
                o.failed += 1;
                o.first_error.get_or_insert_with(|| error.to_string());
            }
        });
        self.progress.call_done(api, error);
    }

    fn retried(&self, api: &'static str) {
        self.with(api, |o| o.retries += 1);
    }
}

impl Source {
    /// Whether this is an export directory.
    pub fn is_export(&self) -> bool {
        matches!(self, Source::Export(_))
    }

    /// Whether the service can be called (live: it has a base URL or endpoints of its own;
    /// export: always).
    pub fn has(&self, service: Service) -> bool {
        match self {
            Source::Live(live) => {
                live.settings.base_urls.contains_key(&service) || live.settings.endpoint_suffixes.contains_key(&service)
            }
            Source::Export(_) => true,
        }
    }

    /// Acquires a token for every service before anything is read: a scan that cannot
    /// authenticate to a service it needs reads nothing, rather than a partial tenant.
    pub async fn authenticate(&self) -> Result<(), ConnectorError> {
        let Source::Live(live) = self else { return Ok(()) };
        for (service, tokens) in &live.tokens {
            if let Err(error) = tokens.token(&live.client, false).await {
                let reason = match error {
                    ConnectorError::Token(reason)
                    | ConnectorError::Setup(reason)
                    | ConnectorError::NothingRead(reason) => reason,
                };
                return Err(ConnectorError::Token(format!(
                    "{} (scope {}): {reason}",
                    service.name(),
                    tokens.scope().unwrap_or("none")
                )));
            }
        }
        Ok(())
    }

    /// One API's items.
    pub async fn list(&self, call: Call, ledger: &Ledger) -> Listing {
        self.list_each(call.api, vec![call], ledger).await
    }

    /// The items of several calls of one API (e.g. one per service principal), in call order.
    /// Live, they run concurrently up to the service's limit; an export directory holds the
    /// API's items in one file (or its pages), read once.
    pub async fn list_each(&self, api: &'static str, calls: Vec<Call>, ledger: &Ledger) -> Listing {
        match self {
            Source::Export(dir) => {
                let (paging, keys) = calls.first().map(|c| (c.paging, c.keys)).unwrap_or((Paging::OData, &[]));
                let (items, error) = dir.read(api, paging, keys, ledger);
                ledger.finished(api, error.as_deref());
                Listing { items, complete: error.is_none() }
            }
            Source::Live(live) => {
                if calls.is_empty() {
                    return Listing { items: Vec::new(), complete: true };
                }
                ledger.progress.planned(calls.len());
                let limit = live.settings.concurrency.max(1);
                let results: Vec<Fetched> =
                    futures::stream::iter(calls.into_iter().map(|call| live.fetch_all(call, ledger)))
                        .buffered(limit)
                        .collect()
                        .await;
                let mut listing = Listing { items: Vec::new(), complete: true };
                for fetched in results {
                    let error = fetched.failure.map(|f| f.text);
                    ledger.finished(api, error.as_deref());
                    listing.complete &= error.is_none();
                    listing.items.extend(fetched.items);
                }
                listing
            }
        }
    }

    /// Follows a Microsoft Graph delta query (`.../delta?$deltaToken=latest` to start one, or
    /// the `@odata.deltaLink` a previous round ended with) through its pages: the changes
    /// since, and the link to ask with next time. Live only; the API's outcome is left to the
    /// caller, who may fall back to a full read.
    pub async fn changes(&self, call: Call, ledger: &Ledger) -> Changes {
        let Source::Live(live) = self else {
            return Changes::Failed("an export directory has no change tracking".into());
        };
        let api = call.api;
        let fetched = live.fetch_all(call, ledger).await;
        match (fetched.failure, fetched.delta_link) {
            (Some(failure), _) if failure.resync => Changes::Resync(failure.text),
            (Some(failure), _) => Changes::Failed(failure.text),
            (None, Some(link)) => Changes::Read { items: fetched.items, delta_link: link },
            (None, None) => Changes::Failed(format!("{api}: the delta query ended without an @odata.deltaLink")),
        }
    }
}

/// What a delta query gave.
#[derive(Debug)]
pub enum Changes {
    /// The changed items (removed ones carry `@removed`), and the link for the next round.
    Read {
        /// Created, updated (perhaps only the changed properties) and removed items, in order.
        items: Vec<Value>,
        /// The `@odata.deltaLink`.
        delta_link: String,
    },
    /// The service asks for a full read (`410 Gone`, an expired or unknown sync state).
    Resync(String),
    /// Another failure.
    Failed(String),
}

/// A live HTTP source.
pub struct Live {
    client: reqwest::Client,
    settings: HttpSettings,
    tokens: BTreeMap<Service, Arc<TokenSource>>,
    gates: BTreeMap<Service, Arc<Semaphore>>,
}

impl Live {
    /// A live source over `settings`, with a token source per service.
    pub fn new(settings: HttpSettings, tokens: BTreeMap<Service, Arc<TokenSource>>) -> Result<Live, ConnectorError> {
        let client = reqwest::Client::builder()
            .timeout(settings.timeout)
            .connect_timeout(Duration::from_secs(10).min(settings.timeout))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("sv0/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ConnectorError::Setup(format!("cannot build the HTTP client: {e}")))?;
        let gates = Service::ALL.iter().map(|s| (*s, Arc::new(Semaphore::new(settings.concurrency.max(1))))).collect();
        Ok(Live { client, settings, tokens, gates })
    }

    /// A service's base URL.
    pub fn base_url(&self, service: Service) -> Option<&str> {
        self.settings.base_urls.get(&service).map(String::as_str)
    }

    /// Reads every page of one call: the items read, the delta link that ended a Graph delta
    /// query, and, when a page failed, why.
    async fn fetch_all(&self, call: Call, ledger: &Ledger) -> Fetched {
        let mut fetched = Fetched::default();
        let first = match self.first_url(&call) {
            Ok(url) => url,
            Err(error) => return fetched.failed(error),
        };
        let mut next = Some(first.clone());
        let mut page_number = 0u32;
        while let Some(url) = next.take() {
            page_number += 1;
            if !same_origin(&first, &url) {
                return fetched
                    .failed(format!("page {page_number} of {} points to another host; not followed", call.api));
            }
            let (body, link) = match self.request(&call, &url, ledger).await {
                Ok(page) => page,
                Err(failure) => {
                    fetched.failure = Some(failure);
                    return fetched;
                }
            };
            let mut page = match parse_page(&body, call.paging) {
                Ok(page) => page,
                Err(error) => {
                    return fetched.failed(format!("page {page_number} of {} is malformed: {error}", call.api));
                }
            };
            if let Some((key, value)) = &call.tag {
                for item in &mut page.items {
                    if let Some(map) = item.as_object_mut() {
                        map.insert(key.to_string(), Value::String(value.clone()));
                    }
                }
            }
            if let Err(error) = crate::schema::check(&page.items, call.keys) {
                return fetched.failed(format!("page {page_number} of {} is malformed: {error}", call.api));
            }
            ledger.page(call.api, page.items.len());
            fetched.items.extend(page.items);
            fetched.delta_link = page.delta_link;
            next = match call.paging {
                Paging::OData | Paging::Arm => page.next,
                Paging::LinkHeader => link,
                Paging::Cursor => page.next.map(|after| with_query(&url, "after", &after)),
                Paging::Table => None,
            };
            if page_number > 100_000 {
                return fetched.failed(format!("{} returned more than 100,000 pages; stopped", call.api));
            }
        }
        fetched
    }

    /// The URL of a call's first page: its path under the service's base URL; an absolute
    /// endpoint (a Foundry project's) rebased onto the base URL when there is one, else sent
    /// only over https to a host of the service's own suffix, so a token never goes elsewhere.
    fn first_url(&self, call: &Call) -> Result<String, String> {
        let absolute = call.path.starts_with("https://") || call.path.starts_with("http://");
        match (self.settings.base_urls.get(&call.service), absolute) {
            (Some(base), false) => Ok(join_url(base, &call.path)),
            (Some(base), true) => {
                let rest = call.path.split_once("://").map(|(_, r)| r).unwrap_or(&call.path);
                let path = rest.find('/').map(|i| &rest[i..]).unwrap_or("/");
                Ok(join_url(base, path))
            }
            (None, true) => {
                let suffix = self.settings.endpoint_suffixes.get(&call.service);
                let host = crate::json::host_of(&call.path).unwrap_or_default();
                match suffix {
                    Some(suffix) if call.path.starts_with("https://") && host.ends_with(suffix.as_str()) => {
                        Ok(call.path.clone())
                    }
                    _ => Err(format!(
                        "{} endpoint {host} is not a {} host; not called",
                        call.service.name(),
                        suffix.map(String::as_str).unwrap_or("known")
                    )),
                }
            }
            (None, false) => Err(format!("no base URL for {}", call.service.name())),
        }
    }

    /// One request with retries: 429, 503 and 504 wait for `Retry-After` (cut to the limit) or
    /// back off exponentially with jitter; a 401 renews the token once.
    async fn request(&self, call: &Call, url: &str, ledger: &Ledger) -> Result<(Vec<u8>, Option<String>), Failure> {
        let gate = self.gates.get(&call.service).cloned().unwrap_or_else(|| Arc::new(Semaphore::new(1)));
        let mut attempt = 0u32;
        let mut renewed = false;
        loop {
            let token = match self.tokens.get(&call.service) {
                Some(source) => {
                    Some(source.token(&self.client, renewed).await.map_err(|e| Failure::from(e.to_string()))?)
                }
                None => None,
            };
            let permit = gate.acquire().await.map_err(|_| Failure::from("the scan was stopped".to_string()))?;
            let mut request = match &call.body {
                Some(body) => self.client.post(url).json(body),
                None => self.client.get(url),
            };
            request = request.header("accept", "application/json");
            for (name, value) in &call.headers {
                request = request.header(*name, value);
            }
            if let Some(token) = &token {
                request = request.bearer_auth(token.expose());
            }
            let started = Instant::now();
            let outcome = request.send().await;
            let wait = match outcome {
                Ok(response) => {
                    let status = response.status();
                    if status.is_success() {
                        let link = next_link_header(response.headers());
                        if response.content_length().is_some_and(|n| n > MAX_PAGE_BYTES) {
                            return Err(format!("a page of {} is larger than {MAX_PAGE_BYTES} bytes", call.api).into());
                        }
                        let body = response
                            .bytes()
                            .await
                            .map_err(|e| Failure::from(format!("reading {}: {}", call.api, clean(&e))))?;
                        drop(permit);
                        tracing::debug!(api = call.api, ms = started.elapsed().as_millis() as u64, "page read");
                        return Ok((body.to_vec(), link));
                    }
                    let retry_after = retry_after(response.headers());
                    let body = response.text().await.unwrap_or_default();
                    drop(permit);
                    if status.as_u16() == 401 && token.is_some() && !renewed {
                        renewed = true;
                        continue;
                    }
                    let retryable = matches!(status.as_u16(), 429 | 503 | 504);
                    if !retryable || attempt >= self.settings.max_retries {
                        return Err(http_error(status, &body, attempt));
                    }
                    retry_after.map(|d| d.min(self.settings.max_retry_wait)).unwrap_or_else(|| backoff(attempt))
                }
                Err(error) => {
                    drop(permit);
                    if attempt >= self.settings.max_retries {
                        return Err(format!("{} after {} attempt(s): {}", call.api, attempt + 1, clean(&error)).into());
                    }
                    backoff(attempt)
                }
            };
            attempt += 1;
            ledger.retried(call.api);
            tracing::info!(api = call.api, attempt, wait_ms = wait.as_millis() as u64, "throttled or failed; retrying");
            tokio::time::sleep(wait).await;
        }
    }
}

/// A reqwest error without the URL (which may carry tokens in a `$skiptoken`).
fn clean(error: &reqwest::Error) -> String {
    let kind = if error.is_timeout() {
        "timed out"
    } else if error.is_connect() {
        "could not connect"
    } else if error.is_decode() || error.is_body() {
        "the response body broke off"
    } else {
        "request failed"
    };
    kind.to_string()
}

/// Why a request failed: `HTTP 403 Forbidden: <the service's message>`, and whether the
/// service asks for its change tracking to start again (Graph answers a delta link it no
/// longer honours with `410 Gone`, or a 4xx whose code names the sync state, e.g.
/// `syncStateNotFound`: learn.microsoft.com/graph/delta-query-overview#synchronization-reset).
fn http_error(status: reqwest::StatusCode, body: &str, retries: u32) -> Failure {
    let error = serde_json::from_str::<Value>(body).ok().and_then(|v| v.get("error").cloned());
    let code = error.as_ref().and_then(|e| e.get("code")).and_then(Value::as_str).unwrap_or("").to_ascii_lowercase();
    let resync =
        status.as_u16() == 410 || (status.is_client_error() && (code.contains("syncstate") || code.contains("resync")));
    let message = error
        .as_ref()
        .and_then(|error| {
            error
                .get("message")
                .and_then(Value::as_str)
                .map(str::to_string)
                .or_else(|| error.as_str().map(str::to_string))
                .or_else(|| error.get("detail").and_then(Value::as_str).map(str::to_string))
        })
        .unwrap_or_default();
    let mut text = format!("HTTP {status}");
    if !message.is_empty() {
        text.push_str(": ");
        text.extend(message.chars().take(200));
    }
    if retries > 0 {
        text.push_str(&format!(" (after {retries} retries)"));
    }
    Failure { text, resync }
}

/// Why a call failed.
#[derive(Debug)]
struct Failure {
    text: String,
    /// The service no longer honours the change-tracking link: read everything again.
    resync: bool,
}

impl From<String> for Failure {
    fn from(text: String) -> Failure {
        Failure { text, resync: false }
    }
}

/// What one call's pages gave.
#[derive(Debug, Default)]
struct Fetched {
    items: Vec<Value>,
    /// The `@odata.deltaLink` of the last page, when the call was a Graph delta query.
    delta_link: Option<String>,
    failure: Option<Failure>,
}

impl Fetched {
    fn failed(mut self, text: String) -> Fetched {
        self.failure = Some(text.into());
        self
    }
}

/// Exponential backoff with full jitter: a random wait up to 0.5 s × 2^attempt, at most 30 s.
fn backoff(attempt: u32) -> Duration {
    let ceiling = 500u64.saturating_mul(1 << attempt.min(6)).min(30_000);
    let mut bytes = [0u8; 8];
    let random = if getrandom::fill(&mut bytes).is_ok() { u64::from_le_bytes(bytes) } else { ceiling / 2 };
    Duration::from_millis(ceiling / 2 + random % (ceiling / 2 + 1))
}

/// `Retry-After` as seconds or an HTTP date.
fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let value = headers.get("retry-after")?.to_str().ok()?.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(std::time::SystemTime::now()).unwrap_or_default())
}

/// The `rel="next"` URL of a `Link` header (URLs may hold commas, e.g. in `sysparm_fields`, so
/// entries are split at the `<` that opens each target, not at commas).
fn next_link_header(headers: &reqwest::header::HeaderMap) -> Option<String> {
    for value in headers.get_all("link") {
        let Ok(mut rest) = value.to_str() else { continue };
        while let Some(open) = rest.find('<') {
            let Some(close) = rest[open..].find('>').map(|c| open + c) else { break };
            let target = &rest[open + 1..close];
            let params_end = rest[close..].find('<').map(|n| close + n).unwrap_or(rest.len());
            let params = &rest[close + 1..params_end];
            let is_next = params.split(';').any(|p| {
                let p = p.trim().trim_end_matches(',').trim();
                p.eq_ignore_ascii_case("rel=\"next\"") || p.eq_ignore_ascii_case("rel=next")
            });
            if is_next {
                return Some(target.to_string());
            }
            rest = &rest[params_end..];
        }
    }
    None
}

/// `base` + `path`, with exactly one slash between them.
pub fn join_url(base: &str, path: &str) -> String {
    if path.starts_with("http://") || path.starts_with("https://") {
        return path.to_string();
    }
    format!("{}/{}", base.trim_end_matches('/'), path.trim_start_matches('/'))
}

/// Whether two URLs share scheme, host and port (a next link elsewhere would get the token).
fn same_origin(a: &str, b: &str) -> bool {
    fn origin(url: &str) -> Option<&str> {
        let (scheme, rest) = url.split_once("://")?;
        let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        Some(&url[..scheme.len() + 3 + end])
    }
    matches!((origin(a), origin(b)), (Some(x), Some(y)) if x.eq_ignore_ascii_case(y))
}

/// `url` with query parameter `key` set to `value` (replacing it when present).
fn with_query(url: &str, key: &str, value: &str) -> String {
    let (head, query) = url.split_once('?').unwrap_or((url, ""));
    let mut pairs: Vec<String> =
        query.split('&').filter(|p| !p.is_empty() && p.split('=').next() != Some(key)).map(str::to_string).collect();
    pairs.push(format!("{key}={}", encode_query_value(value)));
    format!("{head}?{}", pairs.join("&"))
}

/// Percent-encodes a query value (unreserved characters stay).
pub fn encode_query_value(value: &str) -> String {
    let mut out = String::new();
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// A parsed page: its items and, for OData/ARM, the next page's URL; for cursors, the cursor.
struct Page {
    items: Vec<Value>,
    next: Option<String>,
    /// Graph's `@odata.deltaLink` on the last page of a delta query.
    delta_link: Option<String>,
}

/// Parses one response page of the given paging style; a bare JSON array is also accepted (for
/// hand-assembled exports).
fn parse_page(body: &[u8], paging: Paging) -> Result<Page, String> {
    let value: Value = sv0_codec::json::from_slice(body).map_err(|e| format!("not JSON ({e})"))?;
    if let Value::Array(items) = value {
        return Ok(Page { items, next: None, delta_link: None });
    }
    let Value::Object(mut map) = value else { return Err("neither an object nor an array".into()) };
    let key = match paging {
        Paging::OData | Paging::Arm => "value",
        Paging::LinkHeader => "result",
        Paging::Cursor => "data",
        Paging::Table => return table_rows(&map).map(|items| Page { items, next: None, delta_link: None }),
    };
    let items = match map.remove(key) {
        Some(Value::Array(items)) => items,
        Some(_) => return Err(format!("\"{key}\" is not an array")),
        None => return Err(format!("no \"{key}\" array")),
    };
    let next = match paging {
        Paging::OData => map.get("@odata.nextLink").and_then(Value::as_str).map(str::to_string),
        Paging::Arm => map.get("nextLink").and_then(Value::as_str).map(str::to_string),
        Paging::Cursor if map.get("has_more").and_then(Value::as_bool) == Some(true) => {
            Some(map.get("last_id").and_then(Value::as_str).ok_or("has_more without last_id")?.to_string())
        }
        _ => None,
    };
    let delta_link = match paging {
        Paging::OData => map.get("@odata.deltaLink").and_then(Value::as_str).map(str::to_string),
        _ => None,
    };
    Ok(Page { items, next, delta_link })
}

/// A Log Analytics result's first table as objects keyed by column name.
fn table_rows(map: &serde_json::Map<String, Value>) -> Result<Vec<Value>, String> {
    let table = map
        .get("tables")
        .and_then(Value::as_array)
        .and_then(|t| t.first())
        .ok_or("no \"tables\" array with a table")?;
    let columns: Vec<&str> = table
        .get("columns")
        .and_then(Value::as_array)
        .ok_or("a table without \"columns\"")?
        .iter()
        .map(|c| c.get("name").and_then(Value::as_str).unwrap_or(""))
        .collect();
    let rows = table.get("rows").and_then(Value::as_array).ok_or("a table without \"rows\"")?;
    rows.iter()
        .map(|row| {
            let cells = row.as_array().ok_or("a row that is not an array")?;
            if cells.len() != columns.len() {
                return Err(format!("a row of {} cells in a table of {} columns", cells.len(), columns.len()));
            }
            Ok(Value::Object(columns.iter().zip(cells).map(|(c, v)| (c.to_string(), v.clone())).collect()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_of_every_style_parse_and_name_their_next_page() {
        let page = parse_page(br#"{"value":[1,2],"@odata.nextLink":"https://g/next"}"#, Paging::OData).unwrap();
        assert_eq!((page.items.len(), page.next.as_deref()), (2, Some("https://g/next")));
        let page = parse_page(br#"{"value":[1],"nextLink":"https://a/n"}"#, Paging::Arm).unwrap();
        assert_eq!(page.next.as_deref(), Some("https://a/n"));
        let page =
            parse_page(br#"{"object":"list","data":[1],"has_more":true,"last_id":"x"}"#, Paging::Cursor).unwrap();
        assert_eq!(page.next.as_deref(), Some("x"));
        let page = parse_page(br#"{"result":[1,2,3]}"#, Paging::LinkHeader).unwrap();
        assert_eq!(page.items.len(), 3);
        let page = parse_page(
            br#"{"tables":[{"name":"PrimaryResult","columns":[{"name":"A","type":"string"}],"rows":[["x"],["y"]]}]}"#,
            Paging::Table,
        )
        .unwrap();
        assert_eq!(page.items[1]["A"], "y");
        assert!(parse_page(br#"{"value":{}}"#, Paging::OData).is_err());
        assert!(parse_page(b"{\"value\":[", Paging::OData).is_err());
        assert!(parse_page(br#"{"data":[],"has_more":true}"#, Paging::Cursor).is_err());
    }

    /// A server that accepts connections and never answers: the request times out, is retried
    /// once, and the API is recorded as failed without hanging the scan.
    #[test]
    fn a_silent_server_times_out_and_the_call_fails_after_bounded_retries() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        std::thread::spawn(move || {
            let mut held = Vec::new();
            for stream in listener.incoming().flatten() {
                held.push(stream);
            }
        });
        let settings = HttpSettings {
            base_urls: [(Service::Graph, url)].into_iter().collect(),
            concurrency: 1,
            max_retries: 1,
            max_retry_wait: Duration::from_secs(1),
            timeout: Duration::from_millis(300),
            endpoint_suffixes: BTreeMap::new(),
        };
        let source = Source::Live(Box::new(Live::new(settings, BTreeMap::new()).unwrap()));
        let ledger = Ledger::new(Arc::new(crate::NoProgress));
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let started = Instant::now();
        let listing = runtime
            .block_on(source.list(Call::get("graph.signIns", Service::Graph, "/beta/x", Paging::OData), &ledger));
        assert!(!listing.complete && listing.items.is_empty());
        let outcome = ledger.outcomes()["graph.signIns"].clone();
        assert_eq!((outcome.calls, outcome.failed, outcome.retries), (1, 1, 1));
        assert!(outcome.first_error.unwrap().contains("timed out"));
        assert!(started.elapsed() < Duration::from_secs(5), "bounded: {:?}", started.elapsed());
    }

    #[test]
    fn link_headers_cursors_and_origins() {
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(
            "link",
            "<https://i/api/now/table/x?sysparm_fields=a,b&sysparm_offset=0>;rel=\"first\",<https://i/api/now/table/x?sysparm_fields=a,b&sysparm_offset=2>;rel=\"next\""
                .parse()
                .unwrap(),
        );
        assert_eq!(
            next_link_header(&headers).as_deref(),
            Some("https://i/api/now/table/x?sysparm_fields=a,b&sysparm_offset=2")
        );
        assert_eq!(
            with_query("https://f/assistants?limit=2&after=a", "after", "b c"),
            "https://f/assistants?limit=2&after=b%20c"
        );
        assert!(same_origin("https://graph.microsoft.com/v1.0/x", "https://GRAPH.microsoft.com/v1.0/y?z"));
        assert!(!same_origin("https://graph.microsoft.com/v1.0/x", "https://evil.example/v1.0/x"));
        assert!(!same_origin("https://graph.microsoft.com/v1.0/x", "https://graph.microsoft.com.evil.example/"));
        assert!(backoff(0) <= Duration::from_millis(500) && backoff(10) <= Duration::from_secs(30));
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert("retry-after", "7".parse().unwrap());
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(7)));
        headers.insert("retry-after", "Wed, 21 Oct 2015 07:28:00 GMT".parse().unwrap());
        assert_eq!(retry_after(&headers), Some(Duration::ZERO), "a date in the past means now");
        headers.insert("retry-after", "soon".parse().unwrap());
        assert_eq!(retry_after(&headers), None);
    }
}
