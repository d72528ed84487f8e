//! The connectors against a local fake of Microsoft Graph, Azure Resource Manager, Log
//! Analytics, ServiceNow and Foundry that serves the recorded responses in
//! `tests/data/connectors/contoso` (built from the vendors' documented examples and field
//! names), with paging across pages, a 429 with Retry-After, a 403 on one API and a malformed
//! page; the same files read as an export directory; and AzureHound output.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use serde_json::Value;
use sv0_tests::TempDir;

use crate::fake_http::{Received, Reply, fake_server_with};
use crate::{repo_root, sv0_in};

pub(crate) const TENANT_ID: &str = "6e1d1c5a-4b1f-4b5a-9d6c-2f4a8e7b9c10";
pub(crate) const CLIENT_ID: &str = "sv0-test-client";
pub(crate) const CLIENT_SECRET: &str = "s3cr3t-Value-0f-the-app~";
const OBSERVED: &str = "2026-11-25T09:00:00Z";
const ALL: [&str; 8] =
    ["--connector", "entra", "--connector", "azure-rbac", "--connector", "servicenow", "--connector", "foundry"];

fn fixtures() -> PathBuf {
    repo_root().join("tests/data/connectors/contoso")
}

/// The fake: its URL, every request it answered (method and path), every token scope asked
/// for, the fixture directories it serves (the first holding a file wins), the APIs it answers
/// 403 and the token scope its identity provider refuses.
pub(crate) struct Fake {
    pub(crate) url: String,
    pub(crate) requests: Arc<Mutex<Vec<String>>>,
    pub(crate) scopes: Arc<Mutex<Vec<String>>>,
    pub(crate) dirs: Arc<Mutex<Vec<PathBuf>>>,
    pub(crate) forbidden: Arc<Mutex<Vec<&'static str>>>,
    pub(crate) refused_scope: Arc<Mutex<Option<String>>>,
    /// Graph answers every delta link with `410 Gone` (a synchronization reset).
    pub(crate) gone: Arc<AtomicBool>,
}

/// Which items of a recorded API a request asks for.
enum Filter {
    All,
    /// Items whose field has this value (`resourceId` of an app role assignment).
    Field(&'static str, String),
    /// Items whose `id` starts with this ARM path (a project's connections, an account's
    /// containers), compared without regard to case as ARM does.
    IdPrefix(String),
    /// Items whose `id` is one of these (Graph's `$filter=id in (...)`).
    Ids(Vec<String>),
}

/// Percent-decodes a query.
fn decoded(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Ok(b) = u8::from_str_radix(&text[i + 1..i + 3], 16)
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(if bytes[i] == b'+' { b' ' } else { bytes[i] });
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Which recorded API a request asks for, and which of its items.
fn route(path: &str) -> Option<(&'static str, Filter)> {
    let (path, query) = path.split_once('?').unwrap_or((path, ""));
    let query = decoded(query);
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    // A Foundry project's data plane: /api/projects/<project>/...
    if let ["api", "projects", _project, rest @ ..] = segments.as_slice() {
        return Some(match rest {
            ["assistants"] => ("foundry.agents", Filter::All),
            ["threads"] => ("foundry.threads", Filter::All),
            ["threads", thread, "runs"] => ("foundry.runs", Filter::Field("thread_id", thread.to_string())),
            ["threads", _, "runs", run, "steps"] => ("foundry.runSteps", Filter::Field("run_id", run.to_string())),
            _ => return None,
        });
    }
    let lower: Vec<String> = segments.iter().map(|s| s.to_ascii_lowercase()).collect();
    let lower: Vec<&str> = lower.iter().map(String::as_str).collect();
    let prefix = |n: usize| format!("/{}", segments[..segments.len() - n].join("/"));
    Some(match lower.as_slice() {
        ["v1.0", "serviceprincipals"] => ("graph.servicePrincipals", Filter::All),
        ["v1.0", "serviceprincipals", "delta"] => ("graph.servicePrincipals.delta", Filter::All),
        ["v1.0", "applications", "delta"] => ("graph.applications.delta", Filter::All),
        ["v1.0", "serviceprincipals", _, "owners"] => ("graph.servicePrincipals.owners", Filter::All),
        ["v1.0", "applications", _, "owners"] => ("graph.applications.owners", Filter::All),
        ["v1.0", "serviceprincipals", id, "approleassignedto"] => {
            ("graph.appRoleAssignments", Filter::Field("resourceId", id.to_string()))
        }
        ["v1.0", "applications"] => ("graph.applications", Filter::All),
        ["v1.0", "oauth2permissiongrants"] => ("graph.oauth2PermissionGrants", Filter::All),
        ["v1.0", "groups", id, "transitivemembers", "microsoft.graph.serviceprincipal"] => {
            ("graph.groupMembers", Filter::Field("groupId", id.to_string()))
        }
        ["v1.0", "users"] => {
            let ids = query
                .split_once("id in (")
                .and_then(|(_, rest)| rest.split_once(')'))
                .map(|(list, _)| list.split(',').map(|i| i.trim().trim_matches('\'').to_string()).collect())
                .unwrap_or_default();
            let api =
                if query.contains("signInActivity") { "graph.ownerSignInActivity" } else { "graph.ownerAccounts" };
            (api, Filter::Ids(ids))
        }
        ["v1.0", "rolemanagement", "directory", "roledefinitions"] => ("graph.directoryRoleDefinitions", Filter::All),
        ["v1.0", "rolemanagement", "directory", "roleassignments"] => ("graph.directoryRoleAssignments", Filter::All),
        ["beta", "auditlogs", "signins"] => ("graph.signIns", Filter::All),
        ["subscriptions"] => ("arm.subscriptions", Filter::All),
        ["subscriptions", _, "providers", "microsoft.authorization", "roleassignments"] => {
            ("arm.roleAssignments", Filter::All)
        }
        ["subscriptions", _, "providers", "microsoft.authorization", "roledefinitions"] => {
            ("arm.roleDefinitions", Filter::All)
        }
        ["subscriptions", _, "providers", "microsoft.cognitiveservices", "accounts"] => {
            ("arm.cognitiveServicesAccounts", Filter::All)
        }
        ["subscriptions", _, "providers", "microsoft.operationalinsights", "workspaces"] => {
            ("arm.logAnalyticsWorkspaces", Filter::All)
        }
        ["subscriptions", _, "resources"] => ("arm.resources", Filter::All),
        ["subscriptions", _, "resourcegroups"] => ("arm.resourceGroups", Filter::All),
        [.., "microsoft.cognitiveservices", "accounts", _, "projects"] => {
            ("arm.foundryProjects", Filter::IdPrefix(format!("{}/projects/", prefix(1))))
        }
        [.., "connections"] => ("foundry.connections", Filter::IdPrefix(format!("{}/connections/", prefix(1)))),
        [.., "blobservices", "default", "containers"] => {
            ("arm.blobContainers", Filter::IdPrefix(format!("{}/containers/", prefix(1))))
        }
        [.., "providers", "microsoft.insights", "diagnosticsettings"] => {
            ("arm.diagnosticSettings", Filter::IdPrefix(format!("{}/providers/microsoft.insights/", prefix(2))))
        }
        ["providers", "microsoft.management", "managementgroups", group, "descendants"] => {
            ("arm.managementGroupDescendants", Filter::Field("managementGroup", group.to_string()))
        }
        ["v1", "workspaces", _, "query"] => ("arm.storageBlobLogs", Filter::All),
        ["api", "now", "table", "sys_user"] => ("servicenow.users", Filter::All),
        ["api", "now", "table", "sys_user_has_role"] => ("servicenow.userRoles", Filter::All),
        ["api", "now", "table", "sys_security_acl"] => ("servicenow.acls", Filter::All),
        ["api", "now", "table", "sys_security_acl_role"] => ("servicenow.aclRoles", Filter::All),
        ["api", "now", "table", "oauth_entity"] => ("servicenow.oauthEntities", Filter::All),
        ["api", "now", "table", "sys_rest_message"] => ("servicenow.restMessages", Filter::All),
        ["api", "now", "table", "syslog_transaction"] => ("servicenow.transactions", Filter::All),
        _ => return None,
    })
}

/// The token scope each service's requests must carry: the audience of the real service,
/// whatever URL the scan was pointed at.
fn scope_of(path: &str) -> &'static str {
    if path.starts_with("/v1.0/") || path.starts_with("/beta/") {
        "https://graph.microsoft.com/.default"
    } else if path.starts_with("/v1/workspaces/") {
        "https://api.loganalytics.io/.default"
    } else if path.starts_with("/api/projects/") {
        "https://ai.azure.com/.default"
    } else {
        "https://management.azure.com/.default"
    }
}

/// Which page a request asks for: the second when it carries the next-page token the first
/// page handed out (`$skiptoken`, `$skipToken`, `sysparm_offset=1000`, `after=`).
fn page_of(path: &str) -> u32 {
    let query = path.split_once('?').map(|(_, q)| q).unwrap_or("");
    let second = query.split('&').any(|p| {
        p.starts_with("$skiptoken=")
            || p.starts_with("$skipToken=")
            || p == "sysparm_offset=1000"
            || p.starts_with("after=")
    });
    if second { 2 } else { 1 }
}

/// The recorded page (from the first directory holding it), with `{BASE}` replaced by the
/// fake's URL and items filtered.
fn recorded(dirs: &[PathBuf], api: &str, page: u32, base: &str, filter: &Filter) -> Option<String> {
    let name = if page == 1 { format!("{api}.json") } else { format!("{api}.{page}.json") };
    let text = dirs.iter().find_map(|d| std::fs::read_to_string(d.join(&name)).ok())?.replace("{BASE}", base);
    if matches!(filter, Filter::All) {
        return Some(text);
    }
    let mut page: Value = serde_json::from_str(&text).unwrap();
    for key in ["value", "data"] {
        if let Some(items) = page.get_mut(key).and_then(Value::as_array_mut) {
            items.retain(|i| match filter {
                Filter::All => true,
                Filter::Field(field, value) => i[*field].as_str().is_some_and(|v| v.eq_ignore_ascii_case(value)),
                Filter::IdPrefix(prefix) => {
                    i["id"].as_str().is_some_and(|v| v.to_ascii_lowercase().starts_with(&prefix.to_ascii_lowercase()))
                }
                Filter::Ids(ids) => i["id"].as_str().is_some_and(|v| ids.iter().any(|x| x.eq_ignore_ascii_case(v))),
            });
            // Graph's members and ARM's descendants do not carry the field an export's items
            // add to name their group.
            if let Filter::Field(field @ ("groupId" | "managementGroup"), _) = filter {
                items.iter_mut().for_each(|i| drop(i.as_object_mut().map(|m| m.remove(*field))));
            }
        }
    }
    Some(page.to_string())
}

fn form_has(body: &[u8], key: &str, value: &str) -> bool {
    String::from_utf8_lossy(body).split('&').any(|pair| pair == format!("{key}={value}"))
}

fn form_value(body: &[u8], key: &str) -> Option<String> {
    String::from_utf8_lossy(body).split('&').find_map(|pair| pair.strip_prefix(&format!("{key}=")).map(decoded))
}

/// Starts the fake over the contoso fixtures. With `faults`, the first oauth2PermissionGrants
/// request is throttled (429, Retry-After: 1), the first ARM resources request is busy (503,
/// Retry-After: 1), sign-ins and Foundry connections answer 403, and the second page of REST
/// messages is cut off.
fn fake_tenant(faults: bool) -> Fake {
    fake_over(vec![fixtures()], TENANT_ID, faults)
}

/// Starts the fake over fixture directories, for the Entra tenant `tenant`.
pub(crate) fn fake_over(dirs: Vec<PathBuf>, tenant: &'static str, faults: bool) -> Fake {
    let requests = Arc::new(Mutex::new(Vec::new()));
    let scopes = Arc::new(Mutex::new(Vec::new()));
    let dirs = Arc::new(Mutex::new(dirs));
    let forbidden: Arc<Mutex<Vec<&'static str>>> = Arc::new(Mutex::new(Vec::new()));
    let refused_scope: Arc<Mutex<Option<String>>> = Arc::new(Mutex::new(None));
    let (forbid, refuse) = (forbidden.clone(), refused_scope.clone());
    let throttled = Arc::new(AtomicBool::new(false));
    let resources_throttled = Arc::new(AtomicBool::new(false));
    let base = Arc::new(Mutex::new(String::new()));
    let gone = Arc::new(AtomicBool::new(false));
    let gone_now = gone.clone();
    let (log, asked, served, shared_base) = (requests.clone(), scopes.clone(), dirs.clone(), base.clone());
    let url = fake_server_with(move |r: &Received| {
        log.lock().unwrap().push(format!("{} {}", r.method, r.path));
        let base = shared_base.lock().unwrap().clone();
        let dirs = served.lock().unwrap().clone();
        let secret = crate::connectors::url_encoded(CLIENT_SECRET);
        if r.path.ends_with("/oauth2/v2.0/token") || r.path == "/oauth_token.do" {
            let valid = r.method == "POST"
                && form_has(&r.body, "grant_type", "client_credentials")
                && form_has(&r.body, "client_id", CLIENT_ID)
                && form_has(&r.body, "client_secret", &secret)
                && (r.path == "/oauth_token.do" || r.path == format!("/{tenant}/oauth2/v2.0/token"));
            if !valid {
                return Reply::json(
                    "401 Unauthorized",
                    r#"{"error":"invalid_client","error_description":"AADSTS7000215: Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID.\r\nTrace ID: 03da4b8e-5ffe-48ca-9754-aff4276f0100\r\nCorrelation ID: 7b12f9bb-2eef-42e3-ad75-eee69ec9088d\r\nTimestamp: 2026-11-25 09:00:00Z","error_codes":[7000215],"timestamp":"2026-11-25 09:00:00Z","trace_id":"03da4b8e-5ffe-48ca-9754-aff4276f0100","correlation_id":"7b12f9bb-2eef-42e3-ad75-eee69ec9088d","error_uri":"https://login.microsoftonline.com/error?code=7000215"}"#,
                );
            }
            let token = match form_value(&r.body, "scope") {
                Some(scope) => {
                    asked.lock().unwrap().push(scope.clone());
                    if refuse.lock().unwrap().as_deref() == Some(scope.as_str()) {
                        // As Entra answers a scope whose resource has no service principal in the tenant.
                        return Reply::json(
                            "400 Bad Request",
                            format!(
                                r#"{{"error":"invalid_resource","error_description":"AADSTS500011: The resource principal named {} was not found in the tenant named Contoso. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You might have sent your authentication request to the wrong tenant.\r\nTrace ID: 0000aaaa-11bb-cccc-dd33-eeeeee333333\r\nCorrelation ID: aaaa0000-bb11-2222-33cc-444444dddddd\r\nTimestamp: 2026-11-25 09:00:00Z","error_codes":[500011],"timestamp":"2026-11-25 09:00:00Z","trace_id":"0000aaaa-11bb-cccc-dd33-eeeeee333333","correlation_id":"aaaa0000-bb11-2222-33cc-444444dddddd","error_uri":"https://login.microsoftonline.com/error?code=500011"}}"#,
                                scope.trim_end_matches("/.default")
                            ),
                        );
                    }
                    format!("token:{scope}")
                }
                None => "servicenow-token".to_string(),
            };
            return Reply::json(
                "200 OK",
                format!(r#"{{"token_type":"Bearer","expires_in":3599,"access_token":"{token}"}}"#),
            );
        }
        let expected = if r.path.starts_with("/api/now/") {
            "Bearer servicenow-token".to_string()
        } else {
            format!("Bearer token:{}", scope_of(&r.path))
        };
        if r.authorization != expected {
            return Reply::json(
                "401 Unauthorized",
                r#"{"error":{"code":"InvalidAuthenticationToken","message":"Access token validation failure. Invalid audience."}}"#,
            );
        }
        let Some((api, filter)) = route(&r.path) else {
            return Reply::json("404 Not Found", r#"{"error":{"code":"NotFound","message":"no such API"}}"#);
        };
        // An OData cast on transitiveMembers is an advanced query (learn.microsoft.com/graph/aad-advanced-queries).
        if api == "graph.groupMembers"
            && (r.header("consistencylevel") != Some("eventual") || !r.path.contains("$count=true"))
        {
            return Reply::json(
                "400 Bad Request",
                r#"{"error":{"code":"Request_UnsupportedQuery","message":"The requested query is not supported: OData casts need $count=true and the ConsistencyLevel:eventual header."}}"#,
            );
        }
        if forbid.lock().unwrap().contains(&api) {
            // As Graph answers signInActivity without a P1/P2 licence.
            return Reply::json(
                "403 Forbidden",
                r#"{"error":{"code":"Authentication_RequestFromNonPremiumTenantOrB2CTenant","message":"Neither tenant is B2C or tenant doesn't have premium license"}}"#,
            );
        }
        if let Some(reply) = graph_tracking(&r.path, api, &dirs, &base, gone_now.load(Ordering::SeqCst)) {
            return reply;
        }
        let page = page_of(&r.path);
        if faults {
            if api == "graph.oauth2PermissionGrants" && !throttled.swap(true, Ordering::SeqCst) {
                return Reply::json(
                    "429 Too Many Requests",
                    r#"{"error":{"code":"TooManyRequests","message":"Too many requests"}}"#,
                )
                .header("Retry-After", "1");
            }
            if api == "graph.signIns" {
                return Reply::json(
                    "403 Forbidden",
                    r#"{"error":{"code":"Authorization_RequestDenied","message":"Insufficient privileges to complete the operation."}}"#,
                );
            }
            if api == "arm.resources" && !resources_throttled.swap(true, Ordering::SeqCst) {
                return Reply::json("503 Service Unavailable", r#"{"error":{"code":"ServerBusy","message":"busy"}}"#)
                    .header("Retry-After", "1");
            }
            if api == "foundry.connections" {
                return Reply::json(
                    "403 Forbidden",
                    r#"{"error":{"code":"AuthorizationFailed","message":"The client does not have authorization to perform action 'Microsoft.CognitiveServices/accounts/projects/connections/read'"}}"#,
                );
            }
            if api == "servicenow.restMessages" && page == 2 {
                return Reply::json("200 OK", r#"{"result":[{"sys_id":{"value":"c1d2"#);
            }
        }
        let Some(body) = recorded(&dirs, api, page, &base, &filter) else {
            return Reply::json("404 Not Found", "{}");
        };
        let mut reply = Reply::json("200 OK", body);
        if api.starts_with("servicenow.") {
            let pages = if dirs.iter().any(|d| d.join(format!("{api}.2.json")).exists()) { 2 } else { 1 };
            reply = reply.header("X-Total-Count", "3");
            if page == 1 && pages == 2 {
                let (path, _) = r.path.split_once('?').unwrap_or((&r.path, ""));
                let query = r.path.split_once('?').map(|(_, q)| q).unwrap_or("");
                reply = reply.header(
                    "Link",
                    format!(
                        "<{base}{path}?{query}&sysparm_offset=0>;rel=\"first\",<{base}{path}?{query}&sysparm_offset=1000>;rel=\"next\",<{base}{path}?{query}&sysparm_offset=1000>;rel=\"last\""
                    ),
                );
            }
        }
        reply
    });
    *base.lock().unwrap() = url.clone();
    Fake { url, requests, scopes, dirs, forbidden, refused_scope, gone }
}

/// Graph's change tracking (learn.microsoft.com/graph/delta-query-overview): `$deltaToken=latest`
/// answers the current link and no items; a link handed out so answers the changes recorded in
/// `<collection>.delta.json` when a fixture directory holds them, any other link no changes;
/// with `gone`, every link answers `410 Gone` with the `Location` of a new initial query, as
/// after a synchronization reset. An item's owners (`/{id}/owners`) are those its full listing
/// records.
fn graph_tracking(path: &str, api: &str, dirs: &[PathBuf], base: &str, gone: bool) -> Option<Reply> {
    let (collection, owners) = match (api.strip_suffix(".delta"), api.strip_suffix(".owners")) {
        (Some(collection), _) => (collection, false),
        (None, Some(collection)) => (collection, true),
        (None, None) => return None,
    };
    let resource = collection.trim_start_matches("graph.");
    let context = format!("https://graph.microsoft.com/v1.0/$metadata#{resource}");
    if owners {
        let id = path.split('/').nth(3).unwrap_or_default().to_ascii_lowercase();
        let owners = (1..=2)
            .filter_map(|page| recorded(dirs, collection, page, base, &Filter::All))
            .flat_map(|text| serde_json::from_str::<Value>(&text).unwrap()["value"].as_array().cloned().unwrap())
            .find(|item| item["id"].as_str().is_some_and(|i| i.eq_ignore_ascii_case(&id)))
            .map(|item| item["owners"].clone())?;
        return Some(Reply::json(
            "200 OK",
            serde_json::json!({ "@odata.context": context, "value": owners }).to_string(),
        ));
    }
    let query = decoded(path.split_once('?').map(|(_, q)| q).unwrap_or(""));
    let link = |token: &str| format!("{base}/v1.0/{resource}/delta?$deltatoken={token}");
    let answer = |token: &str| {
        let page = serde_json::json!({ "@odata.context": context, "@odata.deltaLink": link(token), "value": [] });
        Some(Reply::json("200 OK", page.to_string()))
    };
    if query.eq_ignore_ascii_case("$deltatoken=latest") {
        return answer("latest-1");
    }
    if gone {
        return Some(
            Reply::json(
                "410 Gone",
                r#"{"error":{"code":"syncStateNotFound","message":"The sync state was not found; restart with a full synchronization."}}"#,
            )
            .header("Location", format!("{base}/v1.0/{resource}/delta?$deltatoken=")),
        );
    }
    match recorded(dirs, api, 1, base, &Filter::All) {
        Some(changes) if query == "$deltatoken=latest-1" => Some(Reply::json("200 OK", changes)),
        _ => answer("unchanged"),
    }
}

/// `application/x-www-form-urlencoded` form of a value.
pub fn url_encoded(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'*' => (b as char).to_string(),
            b' ' => "+".to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A data directory whose sv0.toml points the connectors at the fake's tenant.
fn data_dir(fake: &Fake) -> TempDir {
    let dir = TempDir::new();
    std::fs::write(
        dir.path().join("sv0.toml"),
        format!(
            r#"[connectors]
azure_tenant_id = "{TENANT_ID}"
authority_url = "{url}"
servicenow_host = "contoso.service-now.com"
log_analytics_workspaces = ["4b5c6d7e-8f90-4a1b-8c2d-3e4f5a6b7c8d"]
"#,
            url = fake.url
        ),
    )
    .unwrap();
    dir
}

/// Runs the sv0 binary (secrets go through its environment); returns exit code, stdout, stderr.
pub(crate) fn sv0_process(dir: &Path, args: &[&str], secret_file: Option<&Path>) -> (i32, String, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_sv0"));
    command.arg("--data-dir").arg(dir).args(args);
    for name in ["AZURE_CLIENT_ID", "AZURE_CLIENT_SECRET", "AZURE_TENANT_ID", "SV0_AZURE_CLIENT_SECRET"] {
        command.env_remove(name);
    }
    command.env("SV0_AZURE_CLIENT_ID", CLIENT_ID).env("SV0_SERVICENOW_CLIENT_ID", CLIENT_ID).env("SV0_LOG", "embedded");
    match secret_file {
        Some(file) => command.env("SV0_AZURE_CLIENT_SECRET_FILE", file).env("SV0_SERVICENOW_CLIENT_SECRET_FILE", file),
        None => {
            command.env("SV0_AZURE_CLIENT_SECRET", CLIENT_SECRET).env("SV0_SERVICENOW_CLIENT_SECRET", CLIENT_SECRET)
        }
    };
    let output = command.output().expect("run sv0");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

fn live_run(fake: &Fake, dir: &Path, extra: &[&str], secret_file: Option<&Path>) -> (i32, String, String) {
    let mut args = vec!["--tenant", "contoso", "scan", "run"];
    args.extend(ALL);
    args.extend(["--base-url", fake.url.as_str(), "--observed-at", OBSERVED, "--max-retries", "2"]);
    args.extend(extra);
    sv0_process(dir, &args, secret_file)
}

fn export_run(dir: &Path, extra: &[&str]) -> (u8, String) {
    let fixtures = fixtures();
    let mut args = vec!["scan", "run"];
    args.extend(ALL);
    args.extend(["--from-export", fixtures.to_str().unwrap()]);
    args.extend(extra);
    sv0_in(dir, &args)
}

fn read_json(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// Every entity list of a snapshot (coverage and connector aside).
fn entities(snapshot: &Value) -> Vec<(String, Value)> {
    [
        "domains",
        "classification_rules",
        "owners",
        "workloads",
        "identities",
        "credentials",
        "destinations",
        "grants",
        "bindings",
        "evidence",
    ]
    .iter()
    .map(|list| (list.to_string(), snapshot[list].clone()))
    .collect()
}

fn api<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["apis"].as_array().unwrap().iter().find(|a| a["api"] == name).unwrap_or_else(|| panic!("{name} in {report}"))
}

#[test]
fn a_live_scan_reads_every_page_and_equals_the_same_responses_read_as_an_export() {
    let fake = fake_tenant(false);
    let dir = data_dir(&fake);
    let secret = dir.path().join("client-secret");
    std::fs::write(&secret, format!("{CLIENT_SECRET}\n")).unwrap();
    let live = dir.path().join("live.json");
    let (code, stdout, stderr) =
        live_run(&fake, dir.path(), &["--dry-run", "--json", "--out", live.to_str().unwrap()], Some(&secret));
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert!(!stdout.contains(CLIENT_SECRET) && !stderr.contains(CLIENT_SECRET), "the secret leaked");
    let report: Value = serde_json::from_str(&stdout).unwrap();
    assert!(report["apis"].as_array().unwrap().iter().all(|a| a["failed"] == 0), "{report:#}");
    // Paging: every second page was asked for, through the link each first page gave.
    let requests = fake.requests.lock().unwrap().clone();
    for second in ["$skiptoken=", "$skipToken=", "sysparm_offset=1000", "after=asst_"] {
        assert!(requests.iter().any(|r| r.contains(second)), "no request with {second}: {requests:#?}");
    }
    // App role assignments: one call per resource, a service principal that defines app roles.
    let assigned: Vec<&String> = requests.iter().filter(|r| r.contains("/appRoleAssignedTo")).collect();
    assert_eq!(
        assigned,
        [&"GET /v1.0/servicePrincipals/7e8b1c2d-3f4a-4b5c-8d6e-9f0a1b2c3d4e/appRoleAssignedTo?$top=999".to_string()]
    );
    assert!(requests.iter().any(|r| r.starts_with("POST /v1/workspaces/")), "the storage logs were queried");
    // Tokens are asked for each service's real audience, not for the URL the scan was pointed at.
    let scopes = fake.scopes.lock().unwrap().clone();
    for scope in [
        "https://graph.microsoft.com/.default",
        "https://management.azure.com/.default",
        "https://api.loganalytics.io/.default",
        "https://ai.azure.com/.default",
    ] {
        assert!(scopes.iter().any(|s| s == scope), "no token for {scope}: {scopes:?}");
    }
    assert!(scopes.iter().all(|s| !s.contains("127.0.0.1")), "{scopes:?}");
    // Every project ARM lists is read at its own endpoint (here rebased on the fake).
    assert!(requests.iter().any(|r| r.starts_with("GET /api/projects/contoso-agents/assistants?")), "{requests:#?}");
    assert_eq!(api(&report, "graph.servicePrincipals")["pages"], 2);

    let export = dir.path().join("export.json");
    let (code, out) = export_run(dir.path(), &["--dry-run", "--out", export.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}");
    let (live, export) = (read_json(&live), read_json(&export));
    for ((list, a), (_, b)) in entities(&live).iter().zip(entities(&export).iter()) {
        assert_eq!(a, b, "{list} differs between the live scan and the export");
        assert!(!a.as_array().unwrap().is_empty() || list == "classification_rules", "{list} is empty");
    }
    assert_eq!(live["scan"]["observed_at"], OBSERVED);
    assert!(
        std::fs::read_dir(dir.path()).unwrap().all(|e| !e.unwrap().file_name().to_string_lossy().ends_with(".redb")),
        "a dry run wrote a log"
    );
}

#[test]
fn a_partial_live_scan_records_the_failed_apis_and_keeps_what_they_would_have_shown() {
    let fake = fake_tenant(true);
    let dir = data_dir(&fake);
    let (code, out) = export_run(dir.path(), &["--json"]);
    assert_eq!(code, 0, "{out}");
    let first: Value = serde_json::from_str(&out).unwrap();
    let paths_before = first["paths_total"].as_u64().unwrap();

    let (code, stdout, stderr) = live_run(&fake, dir.path(), &["--json"], None);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    let report: Value = serde_json::from_str(&stdout).unwrap();
    let sign_ins = api(&report, "graph.signIns");
    assert_eq!(sign_ins["failed"], 1);
    assert!(sign_ins["error"].as_str().unwrap().contains("403"), "{sign_ins}");
    let grants = api(&report, "graph.oauth2PermissionGrants");
    assert_eq!(
        (grants["failed"].as_u64(), grants["retries"].as_u64()),
        (Some(0), Some(1)),
        "429 then success: {grants}"
    );
    let resources = api(&report, "arm.resources");
    assert_eq!(
        (resources["failed"].as_u64(), resources["retries"].as_u64()),
        (Some(0), Some(1)),
        "503 then success: {resources}"
    );
    let connections = api(&report, "foundry.connections");
    assert!(connections["error"].as_str().unwrap().contains("403"), "{connections}");
    let rest = api(&report, "servicenow.restMessages");
    assert!(rest["error"].as_str().unwrap().contains("malformed"), "{rest}");
    assert_eq!(rest["items"], 1, "the first page's item is kept");
    assert_eq!(report["status"], "applied", "{report:#}");
    // What the failed APIs would have shown is kept, marked unobserved, not removed.
    assert_eq!(report["paths_total"].as_u64(), Some(paths_before), "{report:#}");
    let (code, out) = sv0_in(dir.path(), &["--tenant", "contoso", "scan", "unobserved", "--json"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("signin:66ea54eb-6301-4ee5-be62-ff5a759b0100"), "sign-in evidence kept: {out}");
    assert!(out.contains("servicenow-rest:c1d2e3f4a5b60718293a4b5c6d7e8f92"), "the unread REST message kept: {out}");
    assert!(
        out.contains("foundry-connection:contoso-ai/contoso-agents/bing-grounding"),
        "the unread connection kept: {out}"
    );
    let (_, list) = sv0_in(dir.path(), &["--tenant", "contoso", "scan", "list", "--json"]);
    assert_eq!(serde_json::from_str::<Value>(&list).unwrap().as_array().map(Vec::len), Some(2), "{list}");
}

#[test]
fn a_wrong_client_secret_imports_nothing_and_is_never_printed() {
    let fake = fake_tenant(false);
    let dir = data_dir(&fake);
    let secret = dir.path().join("wrong-secret");
    std::fs::write(&secret, "not-the-secret-42").unwrap();
    let (code, stdout, stderr) = live_run(&fake, dir.path(), &[], Some(&secret));
    assert_ne!(code, 0, "{stdout}");
    assert!(stderr.contains("invalid_client") || stderr.contains("401"), "{stderr}");
    assert!(stderr.contains("nothing was imported"), "{stderr}");
    assert!(!stderr.contains("not-the-secret-42") && !stdout.contains("not-the-secret-42"));
    assert!(!dir.path().join("log.redb").exists(), "no log was written");
    // No credentials at all: a clear error before any request.
    let mut command = Command::new(env!("CARGO_BIN_EXE_sv0"));
    for name in ["AZURE_CLIENT_ID", "SV0_AZURE_CLIENT_ID"] {
        command.env_remove(name);
    }
    let output = command
        .args([
            "--data-dir",
            dir.path().to_str().unwrap(),
            "--tenant",
            "contoso",
            "scan",
            "run",
            "--connector",
            "entra",
        ])
        .args(["--base-url", &fake.url])
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("SV0_AZURE_CLIENT_ID"));
}

#[test]
fn vendor_facts_survive_the_conversion() {
    let dir = TempDir::new();
    let out = dir.path().join("snapshot.json");
    let (code, text) = export_run(dir.path(), &["--out", out.to_str().unwrap()]);
    assert_eq!(code, 0, "{text}");
    let snapshot = read_json(&out);
    let find = |list: &str, id: &str| -> Value {
        snapshot[list]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["id"] == id)
            .cloned()
            .unwrap_or_else(|| panic!("{list} {id}"))
    };
    // App role ids resolve to permission names through the resource's appRoles.
    let mail = find("grants", "jtTcW5gAEkOBe0pnSLyK0AqKoNZ8sdBGuXxZ3BrzUoQ");
    assert_eq!((mail["role"].as_str(), mail["destination"].as_str()), (Some("Mail.Read"), Some("graph/Mail")));
    let escalation = find("grants", "a04NPnp8xE6J-7Yc3KqB9Wv6uR1kT0sLx4mPqZ2yH8c");
    assert!(escalation["permissions"].as_array().unwrap().contains(&"admin".into()));
    // Tenant-wide consent, one grant per delegated scope.
    assert_eq!(
        find("grants", "n45ePKGqq0yq1a2JeH4zqkx2DVu6NBdDnZQbgbp8nGk/Files.Read.All")["consent"],
        "all_principals"
    );
    // Credentials of the application registration belong to its service principal.
    let secret = find("credentials", "e5c2a1f0-7b3d-4c8e-9a6f-2d1b0c9e8f7a");
    assert_eq!(
        (secret["identity"].as_str(), secret["kind"].as_str()),
        (Some("5b6c7d8e-9fa0-4b1c-8d2e-3f4a5b6c7d8e"), Some("password"))
    );
    assert_eq!(secret["expires_at"], "2028-01-10T00:00:00Z");
    // A successful sign-in names the credential used; a failed one is no evidence.
    assert_eq!(
        find("evidence", "signin:66ea54eb-6301-4ee5-be62-ff5a759b0100")["credential"],
        "e5c2a1f0-7b3d-4c8e-9a6f-2d1b0c9e8f7a"
    );
    assert!(
        !text.is_empty()
            && !snapshot["evidence"]
                .as_array()
                .unwrap()
                .iter()
                .any(|e| e["id"] == "signin:66ea54eb-6301-4ee5-be62-ff5a759b0101")
    );
    // Identity kinds, a disabled foreign app, a management-group scope.
    assert_eq!(find("identities", "3e4f5a6b-7c8d-4e9f-8a0b-1c2d3e4f5a6b")["kind"], "agent_identity");
    let acme = find("identities", "9f8e7d6c-5b4a-4c3d-8e2f-1a0b9c8d7e6f");
    assert_eq!(
        (acme["enabled"].as_bool(), acme["home_tenant"].as_str()),
        (Some(false), Some("a1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d"))
    );
    assert_eq!(
        find("destinations", "/providers/microsoft.management/managementgroups/contoso-root")["name"],
        "management group contoso-root"
    );
    // A role assignment to a group reaches the service principals in it.
    let through_group = find(
        "grants",
        "/subscriptions/0b1f6471-1bf0-4dda-aec3-111122223333/resourcegroups/rg-finance-ai/providers/microsoft.authorization/roleassignments/b9c0d1e2-f3a4-4b5c-8d6e-7f8a9b0c1d2e#member:2c3d4e5f-6a7b-4c8d-9e0f-1a2b3c4d5e6f",
    );
    assert_eq!(through_group["role"], "Storage Blob Data Reader (through group c9d0e1f2-a3b4-4c5d-8e6f-7a8b9c0d1e2f)");
    assert_eq!(through_group["identity"], "2c3d4e5f-6a7b-4c8d-9e0f-1a2b3c4d5e6f");
    // ServiceNow: record ACLs open tables to roles; field ACLs do not; tables are classified.
    let hr = find("grants", "2d8f1e3a2c3b4d5e6f708192a3b4c5d6/sn_hr_core_case");
    assert_eq!(hr["permissions"], serde_json::json!(["read", "write"]));
    assert_eq!(find("identities", "servicenow-user:46d44a23a9fe19810012d100cca80666")["enabled"], false);

    let paths = |filter: &[&str]| -> Vec<Value> {
        let mut args = vec!["--tenant", "contoso", "paths", "--json"];
        args.extend(filter);
        let (code, out) = sv0_in(dir.path(), &args);
        assert_eq!(code, 0, "{out}");
        let value: Value = serde_json::from_str(&out).unwrap();
        value.as_array().cloned().unwrap_or_default()
    };
    // Storage logs make the function app's path to the container grade A.
    let func = paths(&[
        "--workload",
        "/subscriptions/0b1f6471-1bf0-4dda-aec3-111122223333/resourcegroups/rg-finance-ai/providers/microsoft.web/sites/func-invoice-sync",
        "--grade",
        "A",
    ]);
    assert_eq!(func.len(), 1, "{func:#?}");
    assert_eq!(func[0]["domain"]["id"], "finance");
    // An agent reaches its own tools and the project identity's RBAC grants, not another agent's tools.
    let research = paths(&["--workload", "foundry:contoso-ai/contoso-agents/asst_Qw3eR5tY7uI9oP1aS3dF5gH7"]);
    let reached: Vec<&str> = research.iter().filter_map(|p| p["destination"]["id"].as_str()).collect();
    assert!(reached.iter().any(|d| d.ends_with("/storageaccounts/stfinance01")), "{reached:?}");
    assert!(reached.contains(&"foundry-target:https://api.bing.microsoft.com/"), "{reached:?}");
    assert!(!reached.iter().any(|d| d.contains("invoice_api") || d.contains("ledger-in")), "{reached:?}");
    let hr_paths = paths(&["--domain", "hr"]);
    assert_eq!(hr_paths.len(), 1, "{hr_paths:#?}");
}

#[test]
fn azurehound_output_imports_as_a_scan() {
    let dir = TempDir::new();
    let file = repo_root().join("tests/data/connectors/azurehound.json");
    let out = dir.path().join("snapshot.json");
    let (code, text) = sv0_in(
        dir.path(),
        &[
            "--tenant",
            "contoso",
            "scan",
            "run",
            "--connector",
            "azurehound",
            "--from-export",
            file.to_str().unwrap(),
            "--observed-at",
            OBSERVED,
            "--out",
            out.to_str().unwrap(),
        ],
    );
    assert_eq!(code, 0, "{text}");
    let snapshot = read_json(&out);
    let ids = |list: &str| -> Vec<String> {
        snapshot[list].as_array().unwrap().iter().map(|e| e["id"].as_str().unwrap().to_string()).collect()
    };
    // Upper-cased object ids are kept lower-case, so they join with Graph and ARM ids.
    assert!(ids("identities").contains(&"5b6c7d8e-9fa0-4b1c-8d2e-3f4a5b6c7d8e".to_string()), "{:?}", ids("identities"));
    let sp = snapshot["identities"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["id"] == "5b6c7d8e-9fa0-4b1c-8d2e-3f4a5b6c7d8e")
        .unwrap();
    assert_eq!(sp["owners"], serde_json::json!(["dana.reyes@contoso.com"]), "owners from AZServicePrincipalOwner");
    let grants = snapshot["grants"].as_array().unwrap();
    assert!(grants.iter().any(|g| g["role"] == "User.Read.All" && g["source"] == "app_role_assignment"), "{grants:#?}");
    assert!(
        grants.iter().any(|g| g["role"] == "Storage Blob Data Contributor" && g["source"] == "azure_role_assignment"),
        "{grants:#?}"
    );
    assert!(grants.iter().any(|g| g["role"] == "Application Administrator"), "{grants:#?}");
    // AZGroupMember records expand a group's role assignment to its service-principal members.
    assert!(
        grants.iter().any(|g| g["role"] == "Reader (through group c9d0e1f2-a3b4-4c5d-8e6f-7a8b9c0d1e2f)"
            && g["identity"] == "2c3d4e5f-6a7b-4c8d-9e0f-1a2b3c4d5e6f"),
        "{grants:#?}"
    );
    assert!(
        ids("workloads").iter().any(|w| w.ends_with("/microsoft.web/sites/func-invoice-sync")),
        "{:?}",
        ids("workloads")
    );
    assert!(text.contains("authority paths now"), "{text}");
    // A file that is not AzureHound output is refused and imports nothing.
    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, "{\"meta\":{\"type\":\"azure\"},\"data\":").unwrap();
    let (code, text) = sv0_in(
        dir.path(),
        &["--tenant", "contoso", "scan", "run", "--connector", "azurehound", "--from-export", bad.to_str().unwrap()],
    );
    assert_ne!(code, 0, "{text}");
    assert!(text.contains("malformed") && text.contains("nothing was imported"), "{text}");
    let (_, list) = sv0_in(dir.path(), &["--tenant", "contoso", "scan", "list", "--json"]);
    assert_eq!(serde_json::from_str::<Value>(&list).unwrap().as_array().map(Vec::len), Some(1), "{list}");
}

#[test]
fn a_synthetic_vendor_export_is_deterministic_and_imports_completely() {
    let dir = TempDir::new();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    for target in [&a, &b] {
        let (code, out) =
            crate::sv0(&["synth", "--vendor-export", target.to_str().unwrap(), "--identities", "3000", "--seed", "7"]);
        assert_eq!(code, 0, "{out}");
    }
    let mut names: Vec<String> =
        std::fs::read_dir(&a).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    assert!(names.contains(&"graph.servicePrincipals.4.json".to_string()), "Graph pages of 999: {names:?}");
    for name in &names {
        assert_eq!(std::fs::read(a.join(name)).unwrap(), std::fs::read(b.join(name)).unwrap(), "{name} differs");
    }
    let data = dir.path().join("data");
    let mut args = vec!["scan", "run"];
    args.extend(ALL);
    args.extend(["--from-export", a.to_str().unwrap(), "--json"]);
    let (code, out) = sv0_in(&data, &args);
    assert_eq!(code, 0, "{out}");
    let report: Value = serde_json::from_str(&out).unwrap();
    assert!(report["apis"].as_array().unwrap().iter().all(|a| a["failed"] == 0), "{report:#}");
    assert_eq!(api(&report, "graph.servicePrincipals")["items"], 3000);
    assert!(report["dropped"].as_object().unwrap().is_empty(), "every reference resolves: {report:#}");
    assert!(report["paths_total"].as_u64().unwrap() > 1500, "{report:#}");
    let (_, findings) = sv0_in(&data, &["findings", "--json"]);
    for rule in ["SV0-E002", "SV0-E006", "SV0-E007", "SV0-E008"] {
        assert!(findings.contains(rule), "the synthetic tenant triggers {rule}");
    }
}

#[test]
fn watch_runs_the_connectors_each_round() {
    let dir = TempDir::new();
    let fixtures = fixtures();
    let mut args = vec!["watch", "--every", "1s", "--ticks", "2", "--json"];
    args.extend(ALL);
    args.extend(["--from-export", fixtures.to_str().unwrap()]);
    let (code, out) = sv0_in(dir.path(), &args);
    assert_eq!(code, 0, "{out}");
    let rounds: Vec<Value> = out.lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
    let sources: Vec<&Value> =
        rounds.iter().filter(|l| l["source"].as_str().is_some_and(|s| s.starts_with("connectors"))).collect();
    assert_eq!(sources.len(), 2, "{out}");
    assert_eq!(sources[0]["source"], "connectors entra+azure-rbac+servicenow+foundry");
    assert_eq!(
        (sources[0]["imported"].as_bool(), sources[1]["imported"].as_bool()),
        (Some(true), Some(false)),
        "the same export appends nothing twice: {out}"
    );
    assert_eq!(sources[0]["failed_apis"], serde_json::json!([]));
    assert_eq!(sources[0]["mode"], "full", "the first round sends the scan whole: {out}");
}

#[test]
fn a_connector_scan_lands_on_jetstream_as_on_the_embedded_log() {
    let server = sv0_tests::nats::NatsServer::start();
    let url = server.url();
    let (embedded, jetstream) = (TempDir::new(), TempDir::new());
    let (code, local) = export_run(embedded.path(), &["--json"]);
    assert_eq!(code, 0, "{local}");
    let fixtures = fixtures();
    let mut args = vec!["--log", url.as_str(), "scan", "run"];
    args.extend(ALL);
    args.extend(["--from-export", fixtures.to_str().unwrap(), "--json"]);
    let (code, remote) = sv0_in(jetstream.path(), &args);
    assert_eq!(code, 0, "{remote}");
    let (local, remote): (Value, Value) =
        (serde_json::from_str(&local).unwrap(), serde_json::from_str(&remote).unwrap());
    assert_eq!(
        (remote["scan_id"].clone(), remote["paths_total"].clone()),
        (local["scan_id"].clone(), local["paths_total"].clone())
    );
    let paths = |dir: &Path, log: &[&str]| {
        let mut args = log.to_vec();
        args.extend(["--tenant", "contoso", "paths", "--json"]);
        sv0_in(dir, &args).1
    };
    assert_eq!(
        paths(jetstream.path(), &["--log", url.as_str()]),
        paths(embedded.path(), &[]),
        "the same paths on both logs"
    );
}

/// Between full rounds, `sv0 watch` sends what changed at the vendors as a delta scan: a role
/// assignment deleted in Azure after the first round is the one grant the second round removes.
#[test]
fn watch_sends_what_changed_between_full_rounds_as_a_delta_scan() {
    let fake = fake_tenant(false);
    let dir = data_dir(&fake);
    // The tenant after the first round: one role assignment of the first page deleted.
    let changed = TempDir::new();
    let mut page = read_json(&fixtures().join("arm.roleAssignments.json"));
    let deleted = page["value"].as_array_mut().unwrap().remove(0);
    let deleted_id = deleted["id"].as_str().unwrap().to_string();
    std::fs::write(changed.path().join("arm.roleAssignments.json"), serde_json::to_vec(&page).unwrap()).unwrap();

    let mut watch = Watch::start(&fake, dir.path(), 2, 5);
    let first = watch.round(1);
    assert_eq!((&first["mode"], &first["status"]), (&"full".into(), &"applied".into()), "{first}");
    fake.dirs.lock().unwrap().insert(0, changed.path().to_path_buf());
    let second = watch.round(2);
    watch.finish();
    assert_eq!((&second["mode"], &second["status"]), (&"delta".into(), &"applied".into()), "{second}");
    assert_eq!(second["imported"], true);

    let diff = scan_diff(dir.path(), &second);
    let removed = ids(&diff["removed"]["grants"]);
    assert!(
        removed.iter().any(|id| id.starts_with(&deleted_id.to_lowercase())),
        "the deleted role assignment {deleted_id} is the grant the delta removes: {diff:#}"
    );
    assert!(unchanged(&diff["added"]), "{diff:#}");
    let (_, scans) = sv0_in(dir.path(), &["--tenant", "contoso", "scan", "list", "--json"]);
    assert!(scans.contains("\"delta\""), "{scans}");
}

/// Between full rounds, `sv0 watch` asks Graph only for what changed (delta queries from the
/// link the full round kept): a service principal deleted, one created (its owners read apart)
/// and one updated reach the scan without listing the collection again, and the next full round
/// of the same tenant finds nothing more to change.
#[test]
fn watch_asks_graph_only_for_what_changed_between_full_rounds() {
    let fake = fake_tenant(false);
    let dir = data_dir(&fake);
    let mut watch = Watch::start(&fake, dir.path(), 3, 2);
    let first = watch.round(1);
    assert_eq!(
        first["change_tracking"]["graph.servicePrincipals"],
        serde_json::json!({"read": "full", "tracked": true})
    );
    let asked_before = fake.requests.lock().unwrap().len();
    fake.dirs.lock().unwrap().insert(0, repo_root().join("tests/data/connectors/contoso-day2"));
    let second = watch.round(2);
    let asked: Vec<String> = fake.requests.lock().unwrap()[asked_before..].to_vec();
    let third = watch.round(3);
    watch.finish();

    assert_eq!((&second["mode"], &second["status"]), (&"delta".into(), &"applied".into()), "{second}");
    assert_eq!(
        second["change_tracking"],
        serde_json::json!({
            "graph.applications": {"read": "changes", "changed": 0, "removed": 0},
            "graph.servicePrincipals": {"read": "changes", "changed": 2, "removed": 1},
        }),
        "{second}"
    );
    assert!(asked.contains(&"GET /v1.0/servicePrincipals/delta?$deltatoken=latest-1".to_string()), "{asked:#?}");
    assert!(
        asked.iter().any(|r| r.starts_with("GET /v1.0/servicePrincipals/5d6e7f80-91a2-4b3c-8d4e-5f6a7b8c9d0e/owners?")),
        "the new principal's owners are read apart: {asked:#?}"
    );
    assert!(
        !asked
            .iter()
            .any(|r| r.starts_with("GET /v1.0/servicePrincipals?") || r.starts_with("GET /v1.0/applications?")),
        "a tracked round lists neither collection: {asked:#?}"
    );
    let diff = scan_diff(dir.path(), &second);
    assert_eq!(ids(&diff["added"]["identities"]), ["5d6e7f80-91a2-4b3c-8d4e-5f6a7b8c9d0e"], "{diff:#}");
    // A grant still names the deleted principal: it stays, marked deleted, as a full read has it.
    assert_eq!(ids(&diff["changed"]["identities"]), ["9f8e7d6c-5b4a-4c3d-8e2f-1a0b9c8d7e6f"], "{diff:#}");
    assert!(unchanged(&diff["removed"]), "{diff:#}");

    assert_eq!((&third["mode"], &third["status"]), (&"full".into(), &"applied".into()), "{third}");
    assert_eq!(third["change_tracking"]["graph.servicePrincipals"]["read"], "full", "{third}");
    let diff = scan_diff(dir.path(), &third);
    assert!(
        unchanged(&diff["added"]) && unchanged(&diff["removed"]) && unchanged(&diff["changed"]),
        "a full read finds the same tenant, the new principal's owner included: {diff:#}"
    );
}

/// A delta link Graph no longer honours (`410 Gone`) reads the collection whole again, and the
/// round goes on.
#[test]
fn a_delta_link_graph_no_longer_honours_reads_the_collection_whole() {
    let fake = fake_tenant(false);
    let dir = data_dir(&fake);
    let mut watch = Watch::start(&fake, dir.path(), 2, 5);
    watch.round(1);
    let asked_before = fake.requests.lock().unwrap().len();
    fake.gone.store(true, Ordering::SeqCst);
    let second = watch.round(2);
    watch.finish();
    let asked: Vec<String> = fake.requests.lock().unwrap()[asked_before..].to_vec();
    assert_eq!(second["change_tracking"]["graph.servicePrincipals"]["read"], "resync", "{second}");
    assert!(asked.iter().any(|r| r.starts_with("GET /v1.0/servicePrincipals?$top=999")), "{asked:#?}");
    assert_eq!((&second["status"], &second["failed_apis"]), (&"applied".into(), &serde_json::json!([])), "{second}");
}

/// Changes Graph refuses to give (403) fail the API for the round, so the scan removes nothing
/// it would have shown; the next round asks again from the same link and gets them.
#[test]
fn changes_graph_refuses_leave_the_round_partial_and_are_asked_for_again() {
    let fake = fake_tenant(false);
    let dir = data_dir(&fake);
    let mut watch = Watch::start(&fake, dir.path(), 3, 5);
    watch.round(1);
    fake.dirs.lock().unwrap().insert(0, repo_root().join("tests/data/connectors/contoso-day2"));
    fake.forbidden.lock().unwrap().push("graph.servicePrincipals.delta");
    let second = watch.round(2);
    fake.forbidden.lock().unwrap().clear();
    let third = watch.round(3);
    watch.finish();
    assert_eq!(second["change_tracking"]["graph.servicePrincipals"]["read"], "failed", "{second}");
    // App role assignments are listed per principal, so they are not read without them.
    assert_eq!(
        second["failed_apis"],
        serde_json::json!(["graph.appRoleAssignments", "graph.servicePrincipals"]),
        "{second}"
    );
    let diff = scan_diff(dir.path(), &second);
    assert!(unchanged(&diff["added"]) && unchanged(&diff["removed"]), "a partial round changes nothing: {diff:#}");
    assert_eq!(
        third["change_tracking"]["graph.servicePrincipals"],
        serde_json::json!({"read": "changes", "changed": 2, "removed": 1}),
        "{third}"
    );
    let diff = scan_diff(dir.path(), &third);
    assert_eq!(ids(&diff["added"]["identities"]), ["5d6e7f80-91a2-4b3c-8d4e-5f6a7b8c9d0e"], "{diff:#}");
}

/// `sv0 watch` of every connector against the fake, a round every 3 s.
struct Watch {
    child: std::process::Child,
    lines: std::io::Lines<std::io::BufReader<std::process::ChildStdout>>,
}

impl Watch {
    fn start(fake: &Fake, dir: &Path, ticks: u32, full_every: u32) -> Watch {
        use std::io::BufRead;
        let mut command = Command::new(env!("CARGO_BIN_EXE_sv0"));
        command.arg("--data-dir").arg(dir).args(["--tenant", "contoso", "watch", "--every", "3s", "--json"]);
        command.args(["--ticks", &ticks.to_string(), "--full-every", &full_every.to_string()]).args(ALL);
        command.args(["--base-url", fake.url.as_str(), "--max-retries", "2"]);
        for name in ["AZURE_CLIENT_ID", "AZURE_CLIENT_SECRET", "AZURE_TENANT_ID", "SV0_AZURE_CLIENT_SECRET"] {
            command.env_remove(name);
        }
        command.env("SV0_AZURE_CLIENT_ID", CLIENT_ID).env("SV0_SERVICENOW_CLIENT_ID", CLIENT_ID);
        command.env("SV0_AZURE_CLIENT_SECRET", CLIENT_SECRET).env("SV0_SERVICENOW_CLIENT_SECRET", CLIENT_SECRET);
        let mut child = command.env("SV0_LOG", "embedded").stdout(std::process::Stdio::piped()).spawn().unwrap();
        let lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
        Watch { child, lines }
    }

    /// Round `n`'s line for the connectors.
    fn round(&mut self, n: u64) -> Value {
        loop {
            let line = self.lines.next().expect("sv0 watch ended early").unwrap();
            let value: Value = serde_json::from_str(&line).unwrap_or(Value::Null);
            if value["round"] == n && value["source"].as_str().is_some_and(|s| s.starts_with("connectors")) {
                return value;
            }
        }
    }

    fn finish(mut self) {
        assert!(self.child.wait().unwrap().success());
    }
}

/// The entity diff of the scan a watch round imported.
fn scan_diff(dir: &Path, round: &Value) -> Value {
    let scan = round["scan"].as_str().unwrap();
    let (code, out) = sv0_in(dir, &["--tenant", "contoso", "scan", "diff", scan, "--json"]);
    assert_eq!(code, 0, "{out}");
    serde_json::from_str::<Value>(&out).unwrap()["diff"].clone()
}

/// The ids of a diff's list, lower-cased.
fn ids(list: &Value) -> Vec<String> {
    list.as_array()
        .map(|ids| ids.iter().filter_map(|id| id.as_str().map(str::to_lowercase)).collect())
        .unwrap_or_default()
}

/// Whether a diff's added (removed, changed) lists are all empty.
fn unchanged(lists: &Value) -> bool {
    lists.as_object().is_none_or(|a| a.values().all(|v| v.as_array().is_none_or(Vec::is_empty)))
}
