//! Synthetic tenants in the snapshot format, deterministic for a size and a seed: the input of
//! `sv0 synth`, `sv0 bench` and the property tests.
//!
//! The shape follows what SV0 meets in an enterprise tenant: about 100 paths per workload (one
//! workload in a hundred is a platform agent with 1,000), two identities per workload (a managed
//! identity it runs as and a service principal its tools connect with), ten workloads per
//! project, one destination per 20 paths, of seven kinds with their real host names, data domains
//! from tags (a fifth untagged), execution logs off on a tenth of destinations, owners who left,
//! were disabled or went silent, long-lived secrets, and evidence: exact records for a fifth of
//! grants (some outside the window), service-level activity for a fifth of identities. So 1M
//! paths ≈ 10k workloads, 20k identities, 50k destinations.

use std::collections::{BTreeMap, BTreeSet};

use sv0_domain::model::{
    Binding, ClassificationRule, Credential, CredentialKind, DataDomain, Destination, DestinationKind, Evidence, Grant,
    GrantSource, Identity, IdentityKind, LogState, Owner, OwnerStatus, Permission, Workload, WorkloadKind,
};
use sv0_domain::snapshot::{ScanInfo, ScanTrigger, Snapshot};
use sv0_domain::{InvalidInput, TenantId, Timestamp};

/// Paths per ordinary workload, on average.
pub const PATHS_PER_WORKLOAD: usize = 100;
/// Paths of a platform agent (one workload in a hundred, in tenants of 100 workloads or more).
pub const HEAVY_WORKLOAD_PATHS: usize = 1_000;
/// Workloads per project; a project scope holds about 1,000 paths.
pub const WORKLOADS_PER_PROJECT: usize = 10;
/// The tenant id of synthetic tenants.
pub const TENANT: &str = "synthetic";
/// When a synthetic tenant's first scan reads its sources, unless told otherwise.
pub const OBSERVED_AT: &str = "2026-03-02T09:00:00Z";

/// Deterministic pseudo-random numbers (splitmix64).
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64, stream: u64) -> Rng {
        Rng(seed ^ stream.wrapping_mul(0xd6e8_feb8_6659_fd93))
    }

    pub(crate) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    pub(crate) fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    /// True with probability `percent` %.
    pub(crate) fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
}

pub(crate) const DOMAINS: [(&str, &str, bool); 7] = [
    ("finance", "Finance", true),
    ("hr", "HR", true),
    ("customer-pii", "Customer PII", true),
    ("source-code", "Source Code", true),
    ("directory", "Employee Directory", false),
    ("itsm", "IT Service Management", false),
    ("public", "Public", false),
];

/// What a destination of each kind looks like: kind, name stem, host, roles granted on it.
struct KindShape {
    kind: DestinationKind,
    stem: &'static str,
    roles: &'static [(&'static str, GrantSource, &'static [Permission])],
}

const READ: &[Permission] = &[Permission::Read];
const READ_WRITE: &[Permission] = &[Permission::Read, Permission::Write];
const CONTRIBUTE: &[Permission] = &[Permission::Read, Permission::Write, Permission::Delete];
const EXECUTE: &[Permission] = &[Permission::Execute];
const OWN: &[Permission] = &[Permission::Read, Permission::Write, Permission::Delete, Permission::Admin];

const KINDS: [KindShape; 7] = [
    KindShape {
        kind: DestinationKind::StorageContainer,
        stem: "st",
        roles: &[
            ("Storage Blob Data Reader", GrantSource::AzureRoleAssignment, READ),
            ("Storage Blob Data Contributor", GrantSource::AzureRoleAssignment, CONTRIBUTE),
        ],
    },
    KindShape {
        kind: DestinationKind::GraphApi,
        stem: "graph",
        roles: &[
            ("Sites.Read.All", GrantSource::AppRoleAssignment, READ),
            ("Mail.Send", GrantSource::AppRoleAssignment, READ_WRITE),
        ],
    },
    KindShape {
        kind: DestinationKind::ServicenowTable,
        stem: "snow",
        roles: &[
            ("itil", GrantSource::ServicenowRole, READ_WRITE),
            ("snc_read_only", GrantSource::ServicenowRole, READ),
        ],
    },
    KindShape {
        kind: DestinationKind::LlmDeployment,
        stem: "aoai",
        roles: &[("Cognitive Services OpenAI User", GrantSource::AzureRoleAssignment, EXECUTE)],
    },
    KindShape {
        kind: DestinationKind::HttpEndpoint,
        stem: "api",
        roles: &[("connection", GrantSource::Connection, EXECUTE)],
    },
    KindShape {
        kind: DestinationKind::Database,
        stem: "sql",
        roles: &[
            ("db_datareader", GrantSource::AzureRoleAssignment, READ),
            ("db_owner", GrantSource::AzureRoleAssignment, OWN),
        ],
    },
    KindShape {
        kind: DestinationKind::Queue,
        stem: "sb",
        roles: &[("Azure Service Bus Data Sender", GrantSource::AzureRoleAssignment, READ_WRITE)],
    },
];

fn kind_of(destination: usize) -> &'static KindShape {
    &KINDS[destination % KINDS.len()]
}

fn destination_id(n: usize) -> String {
    format!(
        "/subscriptions/00000000-0000-0000-0000-{:012}/resourceGroups/rg-{:03}/providers/dest-{n:07}",
        n % 41,
        n % 97
    )
}

fn grant_id(identity: &str, n: usize) -> String {
    format!("/providers/Microsoft.Authorization/roleAssignments/{identity}-{n:04}")
}

fn destination(n: usize, rng: &mut Rng) -> Destination {
    let shape = kind_of(n);
    let name = format!("{}{n:07}", shape.stem);
    let (service, host) = match shape.kind {
        DestinationKind::StorageContainer => {
            let account = format!("st{:05}", n / 20);
            (format!("storage:{account}"), format!("{account}.blob.core.windows.net"))
        }
        DestinationKind::GraphApi => ("graph".to_string(), "graph.microsoft.com".to_string()),
        DestinationKind::ServicenowTable => ("servicenow".to_string(), "contoso.service-now.com".to_string()),
        DestinationKind::LlmDeployment => {
            let account = format!("aoai-{:04}", n / 50);
            (format!("openai:{account}"), format!("{account}.openai.azure.com"))
        }
        DestinationKind::HttpEndpoint => {
            let partner = n % 300;
            (format!("http:partner{partner}"), format!("api.partner{partner}.example"))
        }
        DestinationKind::Database => {
            let server = format!("sql-{:04}", n / 30);
            (format!("sql:{server}"), format!("{server}.database.windows.net"))
        }
        _ => {
            let namespace = format!("sb-{:04}", n / 40);
            (format!("servicebus:{namespace}"), format!("{namespace}.servicebus.windows.net"))
        }
    };
    let mut tags = BTreeMap::new();
    if !rng.chance(20) {
        tags.insert("data-domain".to_string(), DOMAINS[rng.below(DOMAINS.len())].0.to_string());
    }
    let execution_logs = match rng.below(10) {
        0 => Some(LogState::Disabled),
        1 => None,
        _ => Some(LogState::Enabled),
    };
    Destination {
        id: destination_id(n),
        execution_log_source: Some(format!("diagnostic logs on {name}")),
        name,
        kind: shape.kind,
        service: Some(service),
        host: Some(host),
        domain: None,
        egress: None,
        tags,
        execution_logs,
    }
}

/// A synthetic tenant of about `paths` authority paths, the same for the same size and seed.
pub fn tenant(paths: usize, seed: u64, observed_at: Timestamp) -> Result<Snapshot, InvalidInput> {
    let workloads = paths.div_ceil(PATHS_PER_WORKLOAD).max(1);
    let destinations = (paths / 20).max(20);
    let heavy = |w: usize| workloads >= 100 && w.is_multiple_of(100);
    // Ordinary workloads shrink a little so that the heavy ones keep the total near `paths`.
    let ordinary = if workloads >= 100 {
        (PATHS_PER_WORKLOAD * 100).saturating_sub(HEAVY_WORKLOAD_PATHS) / 99
    } else {
        paths.div_ceil(workloads)
    };
    let mut rng = Rng::new(seed, 1);
    let owners: Vec<Owner> = (0..(workloads / 50).clamp(10, 2_000))
        .map(|n| {
            let (status, silent_days) = match rng.below(20) {
                0 => (OwnerStatus::Departed, 200),
                1 => (OwnerStatus::Disabled, 30),
                2 | 3 => (OwnerStatus::Active, 120 + rng.below(200) as i64),
                _ => (OwnerStatus::Active, rng.below(30) as i64),
            };
            Owner {
                id: format!("owner-{n:04}@contoso.com"),
                name: format!("Owner {n}"),
                status,
                last_active_at: Some(observed_at.add_days(-silent_days)),
            }
        })
        .collect();
    let destination_list: Vec<Destination> = (0..destinations).map(|n| destination(n, &mut rng)).collect();
    let mut snapshot = Snapshot {
        schema_version: sv0_domain::snapshot::SNAPSHOT_SCHEMA_VERSION,
        tenant: TenantId::new(TENANT)?,
        scan: ScanInfo {
            connector: "synthetic".to_string(),
            observed_at,
            trigger: ScanTrigger::Scheduled,
            deployment: None,
            coverage: None,
        },
        domains: DOMAINS
            .iter()
            .map(|(id, name, sensitive)| DataDomain {
                id: id.to_string(),
                name: name.to_string(),
                sensitive: *sensitive,
            })
            .collect(),
        classification_rules: DOMAINS
            .iter()
            .map(|(id, _, _)| ClassificationRule {
                id: format!("tag-data-domain-{id}"),
                tag: "data-domain".to_string(),
                value: id.to_string(),
                domain: id.to_string(),
            })
            .collect(),
        owners,
        workloads: Vec::with_capacity(workloads),
        identities: Vec::with_capacity(workloads * 2),
        credentials: Vec::with_capacity(workloads),
        destinations: Vec::new(),
        grants: Vec::with_capacity(paths + paths / 10),
        bindings: Vec::with_capacity(workloads * 2),
        evidence: Vec::new(),
        deleted: Vec::new(),
    };
    let owner_count = snapshot.owners.len();
    for w in 0..workloads {
        let workload_id = format!("workload-{w:07}");
        let mut owners = Vec::new();
        if !rng.chance(5) {
            owners.push(snapshot.owners[rng.below(owner_count)].id.clone());
            if rng.chance(30) {
                owners.push(snapshot.owners[rng.below(owner_count)].id.clone());
            }
            owners.sort();
            owners.dedup();
        }
        snapshot.workloads.push(Workload {
            id: workload_id.clone(),
            name: format!("Agent {w}"),
            kind: [WorkloadKind::FoundryAgent, WorkloadKind::FunctionApp, WorkloadKind::Workflow][w % 3],
            project: Some(format!("project-{:04}", w / WORKLOADS_PER_PROJECT)),
            tags: BTreeMap::from([("env".to_string(), if w % 4 == 0 { "dev" } else { "prod" }.to_string())]),
            owners: owners.clone(),
        });
        let total = if heavy(w) { HEAVY_WORKLOAD_PATHS } else { ordinary.saturating_sub(9) + rng.below(19) };
        let first = total * (30 + rng.below(41)) / 100;
        for (suffix, kind, count) in
            [("mi", IdentityKind::ManagedIdentity, first), ("sp", IdentityKind::ServicePrincipal, total - first)]
        {
            let identity_id = format!("{suffix}-{w:07}");
            // Applications have the workload's owners; managed identities have none of their own.
            let identity_owners = if kind == IdentityKind::ServicePrincipal { owners.clone() } else { Vec::new() };
            snapshot.identities.push(Identity {
                id: identity_id.clone(),
                name: format!("{suffix}-agent-{w}"),
                kind,
                enabled: !rng.chance(1),
                home_tenant: None,
                owners: identity_owners,
                presence: Default::default(),
            });
            snapshot.bindings.push(Binding {
                id: format!("binding-{w:07}-{suffix}"),
                workload: workload_id.clone(),
                identity: identity_id.clone(),
                tool: (suffix == "sp").then(|| "connector".to_string()),
            });
            if kind == IdentityKind::ServicePrincipal {
                let days_left = match rng.below(10) {
                    0 => -5,
                    1 | 2 => 400 + rng.below(300) as i64,
                    _ => 30 + rng.below(150) as i64,
                };
                snapshot.credentials.push(Credential {
                    id: format!("secret-{w:07}"),
                    identity: identity_id.clone(),
                    kind: CredentialKind::Password,
                    created_at: Some(observed_at.add_days(-60)),
                    expires_at: Some(observed_at.add_days(days_left)),
                });
                if rng.chance(20) {
                    // Activity toward one service the identity holds grants on: grade B.
                    snapshot.evidence.push(Evidence {
                        id: format!("signin-{w:07}"),
                        source: "entra_sign_in".to_string(),
                        at: observed_at.add_days(-(rng.below(20) as i64)),
                        identity: Some(identity_id.clone()),
                        workload: None,
                        destination: None,
                        service: Some(destination_list[rng.below(destinations)].service.clone().unwrap_or_default()),
                        credential: None,
                    });
                }
            }
            let start = rng.below(destinations);
            for k in 0..count.min(destinations) {
                let d = (start + k) % destinations;
                let shape = kind_of(d);
                let (role, source, permissions) = shape.roles[rng.below(shape.roles.len())];
                let id = grant_id(&identity_id, k);
                if rng.chance(20) {
                    // An execution record naming this identity and destination; a quarter of
                    // them fall outside the 30-day window, so their paths decay to grade C.
                    let age = if rng.chance(25) { 31 + rng.below(60) } else { rng.below(30) };
                    snapshot.evidence.push(Evidence {
                        id: format!("log-{identity_id}-{k:04}"),
                        source: "storage_blob_logs".to_string(),
                        at: observed_at.add_days(-(age as i64)),
                        identity: Some(identity_id.clone()),
                        workload: None,
                        destination: Some(destination_list[d].id.clone()),
                        service: None,
                        credential: None,
                    });
                }
                snapshot.grants.push(Grant {
                    id,
                    identity: identity_id.clone(),
                    destination: destination_list[d].id.clone(),
                    permissions: permissions.to_vec(),
                    source,
                    role: role.to_string(),
                    scope: destination_list[d].id.clone(),
                    consent: None,
                });
            }
        }
    }
    snapshot.destinations = destination_list;
    Ok(snapshot)
}

/// A rescan of `base` a day later with `percent` % of its grants changed, the same for the
/// same base, share and seed: half of the changed grants are revoked and replaced by a grant on
/// another destination (a new id), half keep their id and change permissions.
pub fn rescan(base: &Snapshot, percent: f64, seed: u64, observed_at: Timestamp) -> Result<Snapshot, InvalidInput> {
    if !(0.0..=100.0).contains(&percent) {
        return Err(InvalidInput::new(format!("--change must be between 0% and 100%, not {percent}%")));
    }
    let mut next = base.clone();
    next.scan.observed_at = observed_at;
    let destinations = base.destinations.len().max(1);
    let grants = next.grants.len();
    let changes = ((grants as f64) * percent / 100.0).round() as usize;
    let mut rng = Rng::new(seed, 2);
    // A seeded partial shuffle picks which grants change.
    let mut order: Vec<usize> = (0..grants).collect();
    for n in 0..changes.min(grants) {
        let pick = n + rng.below(grants - n);
        order.swap(n, pick);
    }
    for (n, &g) in order.iter().take(changes).enumerate() {
        let grant = &mut next.grants[g];
        if n % 2 == 0 {
            let d = rng.below(destinations);
            let destination = base.destinations[d].id.clone();
            grant.id = next_generation(&grant.id);
            grant.destination = destination.clone();
            grant.scope = destination;
            let shape = &base.destinations[d];
            let roles = KINDS.iter().find(|k| k.kind == shape.kind).map_or(KINDS[0].roles, |k| k.roles);
            let (role, source, permissions) = roles[rng.below(roles.len())];
            grant.role = role.to_string();
            grant.source = source;
            grant.permissions = permissions.to_vec();
        } else {
            let role = role_of(&grant.role);
            let (permissions, change) =
                if grant.permissions.contains(&Permission::Write) { (READ, "reduced") } else { (OWN, "elevated") };
            grant.permissions = permissions.to_vec();
            grant.role = format!("{role} ({change})");
        }
    }
    Ok(next)
}

/// What a targeted rescan of one workload reads: the workload, its run-as bindings, its
/// identities with their credentials, grants and evidence, and the destinations, owners,
/// domains and rules they refer to; with coverage `targeted` at that workload.
pub fn targeted(snapshot: &Snapshot, workload: &str) -> Snapshot {
    use sv0_domain::snapshot::{Coverage, CoverageMode};
    let mut s = snapshot.clone();
    s.workloads.retain(|w| w.id == workload);
    s.bindings.retain(|b| b.workload == workload);
    let identities: BTreeSet<String> = s.bindings.iter().map(|b| b.identity.clone()).collect();
    s.identities.retain(|i| identities.contains(&i.id));
    s.credentials.retain(|c| identities.contains(&c.identity));
    s.grants.retain(|g| identities.contains(&g.identity));
    s.evidence.retain(|e| {
        e.identity.as_ref().is_some_and(|i| identities.contains(i)) || e.workload.as_deref() == Some(workload)
    });
    let destinations: BTreeSet<&str> = s
        .grants
        .iter()
        .map(|g| g.destination.as_str())
        .chain(s.evidence.iter().filter_map(|e| e.destination.as_deref()))
        .collect();
    s.destinations.retain(|d| destinations.contains(d.id.as_str()));
    let owners: BTreeSet<String> = s
        .workloads
        .iter()
        .flat_map(|w| w.owners.clone())
        .chain(s.identities.iter().flat_map(|i| i.owners.clone()))
        .collect();
    s.owners.retain(|o| owners.contains(&o.id));
    s.scan.coverage =
        Some(Coverage { mode: CoverageMode::Targeted, targets: vec![workload.to_string()], ..Coverage::complete() });
    s
}

/// The id of the grant that replaces `id`: the original id with a generation counter
/// (`…-r1`, `…-r2`), so that ids stay unique and short over any number of chained rescans.
fn next_generation(id: &str) -> String {
    match id.rsplit_once("-r") {
        Some((root, generation)) if !generation.is_empty() && generation.bytes().all(|b| b.is_ascii_digit()) => {
            let next = generation.parse::<u64>().map_or(1, |g| g.saturating_add(1));
            format!("{root}-r{next}")
        }
        _ => format!("{id}-r1"),
    }
}

/// A role name without the change an earlier rescan marked on it.
fn role_of(role: &str) -> &str {
    role.strip_suffix(" (reduced)").or_else(|| role.strip_suffix(" (elevated)")).unwrap_or(role)
}

/// The synthetic tenant of the tests: `tenant(paths, 42, observed_at)`, and for `variant` > 0
/// a rescan of it with 1 % of grants changed (seeded by the variant).
pub fn synthetic_snapshot(paths: usize, variant: u64, observed_at: &str) -> Result<Snapshot, InvalidInput> {
    let at = Timestamp::parse(observed_at)?;
    let base = tenant(paths, 42, at)?;
    if variant == 0 { Ok(base) } else { rescan(&base, 1.0, variant, at) }
}
