//! Synthetic tenants of any size, deterministic for a given size and variant: the input of
//! `sv0 bench` and of property tests.

use std::collections::BTreeMap;

use sv0_domain::model::{
    Binding, ClassificationRule, Credential, CredentialKind, DataDomain, Destination, DestinationKind, Evidence, Grant,
    GrantSource, Identity, IdentityKind, LogState, Owner, OwnerStatus, Permission, Workload, WorkloadKind,
};
use sv0_domain::snapshot::{ScanInfo, ScanTrigger, Snapshot};
use sv0_domain::{InvalidInput, TenantId, Timestamp};

/// Grants (and so paths) per workload in the synthetic tenant.
pub const GRANTS_PER_WORKLOAD: usize = 10;
/// Workloads per project; a scope is one project.
pub const WORKLOADS_PER_PROJECT: usize = 100;

/// Deterministic pseudo-random numbers (splitmix64).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// A synthetic tenant with about `paths` authority paths; `variant` changes 1 % of the grants.
pub fn synthetic_snapshot(paths: usize, variant: u64, observed_at: &str) -> Result<Snapshot, InvalidInput> {
    let workloads = paths.div_ceil(GRANTS_PER_WORKLOAD).max(1);
    let destinations = (paths / 50).max(GRANTS_PER_WORKLOAD * 2);
    let at = Timestamp::parse(observed_at)?;
    let mut rng = Rng(42);
    let domains = [
        ("finance", "Finance", true),
        ("hr", "HR", true),
        ("pii", "Customer PII", true),
        ("directory", "Employee Directory", false),
        ("itsm", "IT Service Management", false),
        ("public", "Public", false),
    ];
    let domain_list: Vec<DataDomain> = domains
        .iter()
        .map(|(id, name, sensitive)| DataDomain { id: id.to_string(), name: name.to_string(), sensitive: *sensitive })
        .collect();
    let rules = domains
        .iter()
        .map(|(id, _, _)| ClassificationRule {
            id: format!("rule-{id}"),
            tag: "data-domain".to_string(),
            value: id.to_string(),
            domain: id.to_string(),
        })
        .collect();
    let owners: Vec<Owner> = (0..50)
        .map(|n| Owner {
            id: format!("owner-{n:02}@example.com"),
            name: format!("Owner {n}"),
            status: if n % 10 == 0 { OwnerStatus::Departed } else { OwnerStatus::Active },
            last_active_at: Some(at.add_days(-(n as i64))),
        })
        .collect();
    let kinds = [
        (DestinationKind::StorageContainer, "storage"),
        (DestinationKind::GraphApi, "graph"),
        (DestinationKind::ServicenowTable, "servicenow"),
        (DestinationKind::LlmDeployment, "aoai"),
        (DestinationKind::HttpEndpoint, "http"),
        (DestinationKind::Database, "sql"),
    ];
    let destination_list: Vec<Destination> = (0..destinations)
        .map(|n| {
            let (kind, service) = kinds[n % kinds.len()];
            Destination {
                id: format!("/subscriptions/0000/resourceGroups/rg-{}/providers/dest-{n:07}", n % 97),
                name: format!("{service}-{n:07}"),
                kind,
                service: Some(format!("{service}:{}", n % 13)),
                host: None,
                domain: None,
                egress: None,
                tags: BTreeMap::from([("data-domain".to_string(), domains[n % domains.len()].0.to_string())]),
                execution_logs: Some(if n % 10 == 0 { LogState::Disabled } else { LogState::Enabled }),
                execution_log_source: Some(format!("diagnostic logs on {service}-{n:07}")),
            }
        })
        .collect();
    let mut workload_list = Vec::with_capacity(workloads);
    let mut identities = Vec::with_capacity(workloads);
    let mut credentials = Vec::with_capacity(workloads);
    let mut bindings = Vec::with_capacity(workloads);
    let mut grants = Vec::with_capacity(workloads * GRANTS_PER_WORKLOAD);
    let mut evidence = Vec::new();
    for w in 0..workloads {
        let workload_id = format!("workload-{w:07}");
        let identity_id = format!("identity-{w:07}");
        workload_list.push(Workload {
            id: workload_id.clone(),
            name: format!("Agent {w}"),
            kind: WorkloadKind::FoundryAgent,
            project: Some(format!("project-{:04}", w / WORKLOADS_PER_PROJECT)),
            tags: BTreeMap::new(),
            owners: if w % 17 == 0 { vec![] } else { vec![owners[w % owners.len()].id.clone()] },
        });
        identities.push(Identity {
            id: identity_id.clone(),
            name: format!("mi-agent-{w}"),
            kind: IdentityKind::ManagedIdentity,
            enabled: true,
            home_tenant: None,
            owners: vec![],
        });
        credentials.push(Credential {
            id: format!("secret-{w:07}"),
            identity: identity_id.clone(),
            kind: CredentialKind::Password,
            created_at: Some(at.add_days(-30)),
            expires_at: Some(at.add_days(if w % 5 == 0 { 700 } else { 60 })),
        });
        bindings.push(Binding {
            id: format!("run-as-{w:07}"),
            workload: workload_id.clone(),
            identity: identity_id.clone(),
            tool: None,
        });
        let start = rng.below(destinations);
        for g in 0..GRANTS_PER_WORKLOAD {
            let d = (start + g * 7) % destinations;
            let grant_n = w * GRANTS_PER_WORKLOAD + g;
            // The variant moves 1 % of grants to other destinations: a small rescan change.
            let d = if variant > 0 && grant_n % 100 == (variant as usize % 100) { (d + 1) % destinations } else { d };
            let permissions = match grant_n % 4 {
                0 => vec![Permission::Read, Permission::Write],
                1 => vec![Permission::Execute],
                _ => vec![Permission::Read],
            };
            grants.push(Grant {
                id: format!("/subscriptions/0000/providers/Microsoft.Authorization/roleAssignments/ra-{grant_n:09}"),
                identity: identity_id.clone(),
                destination: destination_list[d].id.clone(),
                permissions,
                source: GrantSource::AzureRoleAssignment,
                role: "Synthetic Role".to_string(),
                scope: destination_list[d].id.clone(),
            });
            if grant_n.is_multiple_of(5) {
                evidence.push(Evidence {
                    id: format!("log-{grant_n:09}"),
                    source: "storage_blob_logs".to_string(),
                    at: at.add_days(-(rng.below(60) as i64)),
                    identity: Some(identity_id.clone()),
                    workload: None,
                    destination: Some(destination_list[d].id.clone()),
                    service: None,
                });
            }
        }
    }
    Ok(Snapshot {
        schema_version: sv0_domain::snapshot::SNAPSHOT_SCHEMA_VERSION,
        tenant: TenantId::new("bench")?,
        scan: ScanInfo {
            connector: "bench".to_string(),
            observed_at: at,
            trigger: ScanTrigger::Scheduled,
            deployment: None,
            coverage: None,
        },
        domains: domain_list,
        classification_rules: rules,
        owners,
        workloads: workload_list,
        identities,
        credentials,
        destinations: destination_list,
        grants,
        bindings,
        evidence,
    })
}
