//! Codec: golden byte vectors for every event type (decoded and re-encoded byte for byte), and
//! the typed errors for unknown versions, unknown types and malformed bytes.
//!
//! Vectors live in `schemas/vectors/<type>.cbor.hex`. After an intended format change,
//! regenerate them with `SV0_BLESS=1 cargo test --test it codec` and review the diff.

use std::collections::BTreeMap;
use std::path::PathBuf;

use ciborium::Value;
use sv0_codec::{EventError, decode_event, encode_event};
use sv0_domain::events::{
    Acknowledgement, ApprovalRecorded, Bytes, Event, EventFragment, EventMeta, EventPayload, KeyRegistered, KeyRotated,
    PackSealed, PolicySet, ScanChunk, ScanCompleted, ScanQuarantined, ScanReleased, ScanStarted, TokenIssued,
    TokenRevoked,
};
use sv0_domain::model::{
    Binding, DataDomain, Destination, DestinationKind, Evidence, Grant, GrantSource, Identity, IdentityKind, Owner,
    OwnerStatus, Permission, Workload, WorkloadKind,
};
use sv0_domain::paths::compute_paths;
use sv0_domain::policy::Policy;
use sv0_domain::scope::Scope;
use sv0_domain::snapshot::{DeploymentRef, Entities, ScanTrigger};
use sv0_domain::{EventId, TenantId, Timestamp};

fn vectors_dir() -> PathBuf {
    crate::repo_root().join("schemas/vectors")
}

fn t(text: &str) -> Timestamp {
    Timestamp::parse(text).unwrap()
}

fn meta(n: u8) -> EventMeta {
    EventMeta {
        event_id: EventId([n; 16]),
        tenant_id: TenantId::new("contoso").unwrap(),
        occurred_at: t("2026-03-02T09:00:00Z"),
        actor: "connector:snapshot".to_string(),
        causation_id: None,
        correlation_id: Some(EventId([0xc0; 16])),
        credential: None,
    }
}

fn entities() -> Entities {
    Entities {
        domains: vec![DataDomain { id: "hr".into(), name: "HR".into(), sensitive: true }],
        classification_rules: vec![],
        owners: vec![Owner {
            id: "alice@contoso.example".into(),
            name: "Alice".into(),
            status: OwnerStatus::Active,
            last_active_at: Some(t("2026-03-01T08:00:00Z")),
        }],
        workloads: vec![Workload {
            id: "agent-hr".into(),
            name: "HR assistant".into(),
            kind: WorkloadKind::FoundryAgent,
            project: Some("HR-Automation".into()),
            tags: BTreeMap::from([("env".to_string(), "prod".to_string())]),
            owners: vec!["alice@contoso.example".into()],
        }],
        identities: vec![Identity {
            id: "mi-hr".into(),
            name: "mi-hr-assistant".into(),
            kind: IdentityKind::ManagedIdentity,
            enabled: true,
            home_tenant: None,
            owners: vec![],
            presence: Default::default(),
        }],
        credentials: vec![],
        destinations: vec![Destination {
            id: "st-hr/policies".into(),
            name: "hr policies".into(),
            kind: DestinationKind::StorageContainer,
            service: Some("storage:sthr".into()),
            host: None,
            domain: Some("hr".into()),
            egress: None,
            tags: BTreeMap::new(),
            execution_logs: Some(sv0_domain::model::LogState::Enabled),
            execution_log_source: Some("diagnostic logs on storage account sthr".into()),
        }],
        grants: vec![Grant {
            id: "ra-1".into(),
            identity: "mi-hr".into(),
            destination: "st-hr/policies".into(),
            permissions: vec![Permission::Read],
            source: GrantSource::AzureRoleAssignment,
            role: "Storage Blob Data Reader".into(),
            scope: "/subscriptions/s/resourceGroups/hr/providers/Microsoft.Storage/storageAccounts/sthr".into(),
            consent: None,
        }],
        bindings: vec![Binding { id: "b-1".into(), workload: "agent-hr".into(), identity: "mi-hr".into(), tool: None }],
        evidence: vec![Evidence {
            id: "log-1".into(),
            source: "storage_blob_logs".into(),
            at: t("2026-03-01T12:00:00Z"),
            identity: Some("mi-hr".into()),
            workload: None,
            destination: Some("st-hr/policies".into()),
            service: None,
            credential: None,
        }],
        deleted: vec![],
    }
}

/// One fixture per event type; the vector file is named after the type.
fn fixtures() -> Vec<Event> {
    let paths = compute_paths(&entities(), t("2026-03-02T09:00:00Z"), &Policy::default());
    let payloads = vec![
        EventPayload::ScanStarted(ScanStarted {
            scan_id: "scan-1".into(),
            connector: "snapshot".into(),
            trigger: ScanTrigger::Deployment,
            observed_at: t("2026-03-02T09:00:00Z"),
            deployment: Some(DeploymentRef {
                repository: Some("contoso/hr-agents".into()),
                run_id: Some("4711".into()),
                environment: Some("production".into()),
                commit: Some("9f2c1e7".into()),
            }),
            coverage: sv0_domain::snapshot::Coverage {
                mode: sv0_domain::snapshot::CoverageMode::Targeted,
                targets: vec!["agent-hr".into()],
                base_scan: None,
                apis: vec![sv0_domain::snapshot::ApiCoverage {
                    name: "arm.roleAssignments".into(),
                    lists: vec![sv0_domain::snapshot::EntityList::Grants],
                    status: sv0_domain::snapshot::ApiStatus::Failed,
                    error: Some("429 Too Many Requests".into()),
                }],
            },
        }),
        EventPayload::ScanChunk(ScanChunk { scan_id: "scan-1".into(), index: 0, entities: entities() }),
        EventPayload::ScanCompleted(ScanCompleted {
            scan_id: "scan-1".into(),
            chunk_count: 1,
            entity_count: 7,
            snapshot_digest: "5f".repeat(32),
        }),
        EventPayload::ApprovalRecorded(ApprovalRecorded {
            scope: Scope::parse("project:HR-Automation").unwrap(),
            baseline_version: 1,
            approver: "alice@contoso.example".into(),
            note: "reviewed with the HR platform team".into(),
            acknowledged: vec![Acknowledgement { finding_id: "F-0123456789ab".into(), due: t("2026-03-15T00:00:00Z") }],
            posture_seq: 3,
            paths,
            open_findings: vec!["F-0123456789ab".into()],
            // Left out, as before approvals had them: the golden vector still decodes.
            posture_digest: None,
            intent: None,
            plan_digest: None,
        }),
        EventPayload::KeyRegistered(KeyRegistered {
            key_id: "21fe31dfa154a261626bf854046fd2271b7bed4b6abe45aa58877ef47f9721b9".into(),
            algorithm: "ed25519".into(),
            public_key: "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a".into(),
            // Left out, as before keys had validity ranges: the golden vector written then still
            // decodes (`a_key_registration_with_a_validity_start_round_trips` covers the field).
            valid_from: None,
        }),
        EventPayload::PackSealed(PackSealed {
            pack_id: "pk-0001".into(),
            index: 1,
            assessed_seq: 4,
            digest: format!("sha256:{}", "ab".repeat(32)),
            previous_pack_id: None,
            previous_digest: None,
            key_id: "21fe31dfa154a261626bf854046fd2271b7bed4b6abe45aa58877ef47f9721b9".into(),
            signature: "cd".repeat(64),
            body: "{\"format\":\"sv0.pack.v1\"}".into(),
        }),
        EventPayload::Fragment(EventFragment {
            of: EventId([0xf0; 16]),
            index: 1,
            count: 3,
            bytes: Bytes(vec![0xa1, 0x61, 0x76, 0x01]),
        }),
        EventPayload::PolicySet(PolicySet {
            policy: Policy {
                evidence_window_days: 45,
                owner_silence_days: 60,
                internal_host_suffixes: vec!["contoso.com".into()],
                classification_rules: vec![sv0_domain::model::ClassificationRule {
                    id: "rule-finance".into(),
                    tag: "data-domain".into(),
                    value: "finance".into(),
                    domain: "finance".into(),
                }],
                breaker: sv0_domain::policy::BreakerPolicy { max_removed_percent: 10, min_removed: 20 },
                // Left out, as before these settings existed: the golden vector written then
                // still decodes (`a_policy_with_the_newer_settings_round_trips` covers them).
                drift_threshold: None,
                rego: None,
                classification: Default::default(),
                fold_budget_paths: None,
            },
        }),
        EventPayload::ScanQuarantined(ScanQuarantined {
            scan_id: "scan-2".into(),
            reason: "it would remove 60 of 100 grants (the breaker allows 20 %)".into(),
            removed_entities: 60,
            removed_paths: 0,
        }),
        EventPayload::ScanReleased(ScanReleased {
            scan_id: "scan-2".into(),
            released_by: "riley.chen@contoso.example".into(),
            note: "the grants were revoked on purpose (ticket CHG-1042)".into(),
        }),
        EventPayload::KeyRotated(KeyRotated {
            retired_key_id: "21fe31dfa154a261626bf854046fd2271b7bed4b6abe45aa58877ef47f9721b9".into(),
            key_id: "39f713d0a644253f04529421b9f51b9b08979d08295959c4f3990ee617f5139f".into(),
            algorithm: "ed25519".into(),
            public_key: "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c".into(),
            valid_from: 6,
            reason: "scheduled rotation".into(),
        }),
        EventPayload::TokenIssued(TokenIssued {
            token_id: "0f1e2d3c4b5a6978".into(),
            name: "ci-deploy".into(),
            principal: "github-actions@contoso.example".into(),
            roles: vec![sv0_domain::access::Role::Analyst, sv0_domain::access::Role::Viewer],
            secret_sha256: "9f".repeat(32),
            expires_at: None,
        }),
        EventPayload::TokenRevoked(TokenRevoked {
            token_id: "0f1e2d3c4b5a6978".into(),
            reason: "the pipeline was retired".into(),
        }),
        EventPayload::FindingsAcknowledged(sv0_domain::events::FindingsAcknowledged {
            acknowledged: vec![Acknowledgement { finding_id: "F-0123456789ab".into(), due: t("2026-04-30T00:00:00Z") }],
            by: "sam.analyst@contoso.example".into(),
            note: "a fix is scheduled in sprint 14".into(),
        }),
        EventPayload::PolicyApproved(sv0_domain::events::PolicyApproved {
            digest: format!("sha256:{}", "5e".repeat(32)),
            approved_by: "sam.approver@contoso.example".into(),
            note: "reviewed with the CISO: it only approves the sandbox projects".into(),
        }),
        EventPayload::CheckpointTimestamped(sv0_domain::events::CheckpointTimestamped {
            size: 5,
            root: "6d".repeat(32),
            checkpoint: "sv0.dev/packs/contoso\n5\nbW1tbQ==\n\n\u{2014} sv0.dev/packs/contoso AbCdEf==\n".into(),
            tsa: "https://tsa.example/tsr".into(),
            request: sv0_domain::events::Bytes(vec![0x30, 0x03, 0x02, 0x01, 0x01]),
            response: sv0_domain::events::Bytes(vec![0x30, 0x05, 0x30, 0x03, 0x02, 0x01, 0x00]),
        }),
    ];
    payloads.into_iter().enumerate().map(|(n, payload)| Event { meta: meta(n as u8 + 1), payload }).collect()
}

#[test]
fn golden_vectors_decode_and_reencode_byte_for_byte() {
    let bless = std::env::var_os("SV0_BLESS").is_some();
    let mut seen = Vec::new();
    for event in fixtures() {
        let name = event.payload.event_type();
        seen.push(name);
        let file = vectors_dir().join(format!("{name}.cbor.hex"));
        let bytes = encode_event(&event).unwrap();
        if bless {
            std::fs::write(&file, format!("{}\n", hex::encode(&bytes))).unwrap();
        }
        let golden = hex::decode(
            std::fs::read_to_string(&file)
                .unwrap_or_else(|e| panic!("{}: {e}; run with SV0_BLESS=1 to create it", file.display()))
                .trim(),
        )
        .unwrap();
        let decoded = decode_event(&golden).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(decoded, event, "{name}: the golden bytes decode to the fixture");
        assert_eq!(encode_event(&decoded).unwrap(), golden, "{name}: re-encoding gives the same bytes");
        assert_eq!(bytes, golden, "{name}: the fixture encodes to the golden bytes");
    }
    let all: Vec<&str> = EventPayload::TYPES.iter().map(|(n, _)| *n).collect();
    assert_eq!(seen, all, "every event type has a vector");
}

#[test]
fn a_key_registration_with_a_validity_start_round_trips_and_matches_the_cddl_schema() {
    let mut event = fixtures().into_iter().find(|e| e.payload.event_type() == "key.registered").unwrap();
    let EventPayload::KeyRegistered(key) = &mut event.payload else { unreachable!() };
    key.valid_from = Some(6);
    let bytes = encode_event(&event).unwrap();
    assert_eq!(decode_event(&bytes).unwrap(), event);
    let cddl = std::fs::read_to_string(crate::repo_root().join("schemas/events.cddl")).unwrap();
    cddl_cat::validate_cbor_bytes("envelope", &cddl, &bytes).expect("matches schemas/events.cddl");
}

/// Issue 14's additions: an approval naming the posture reviewed and the declared intent, by an
/// API caller whose credential the envelope records. The golden vector (written before them)
/// still decodes, with neither: an old approval reads as "no declared intent".
#[test]
fn an_approval_with_posture_intent_and_credential_round_trips_and_matches_the_cddl_schema() {
    let mut event = fixtures().into_iter().find(|e| e.payload.event_type() == "approval.recorded").unwrap();
    event.meta.actor = "api:alice@contoso.example".into();
    event.meta.credential = Some("token:0123456789abcdef".into());
    let EventPayload::ApprovalRecorded(approval) = &mut event.payload else { unreachable!() };
    approval.posture_digest = Some(format!("sha256:{}", "ab".repeat(32)));
    approval.intent = Some(vec![sv0_domain::intent::IntentItem {
        workload: None,
        identity: Some("5f0c2a7e-*".into()),
        destination: Some("graph:/users".into()),
        permissions: vec![sv0_domain::model::Permission::Read],
        note: Some("profiles".into()),
        identity_name: Some("mi-hr-onboarding-prod".into()),
        planned_by: Some("module.hr_agent.azuread_app_role_assignment.users".into()),
    }]);
    let bytes = encode_event(&event).unwrap();
    assert_eq!(decode_event(&bytes).unwrap(), event);
    let cddl = std::fs::read_to_string(crate::repo_root().join("schemas/events.cddl")).unwrap();
    cddl_cat::validate_cbor_bytes("envelope", &cddl, &bytes).expect("matches schemas/events.cddl");
}

#[test]
fn evidence_naming_the_credential_used_round_trips_and_matches_the_cddl_schema() {
    let mut event = fixtures().into_iter().find(|e| e.payload.event_type() == "scan.chunk").unwrap();
    let EventPayload::ScanChunk(chunk) = &mut event.payload else { unreachable!() };
    chunk.entities.evidence[0].credential = Some("e5c2a1f0-7b3d-4c8e-9a6f-2d1b0c9e8f7a".into());
    let bytes = encode_event(&event).unwrap();
    assert_eq!(decode_event(&bytes).unwrap(), event);
    let cddl = std::fs::read_to_string(crate::repo_root().join("schemas/events.cddl")).unwrap();
    cddl_cat::validate_cbor_bytes("envelope", &cddl, &bytes).expect("matches schemas/events.cddl");
}

#[test]
fn a_policy_with_the_newer_settings_round_trips_and_matches_the_cddl_schema() {
    let mut event = fixtures().into_iter().find(|e| e.payload.event_type() == "policy.set").unwrap();
    let EventPayload::PolicySet(set) = &mut event.payload else { unreachable!() };
    set.policy.drift_threshold = Some(3);
    set.policy.rego = Some(sv0_domain::policy::RegoPolicy {
        mode: sv0_domain::policy::RegoMode::Extend,
        source: "package sv0\n\ndefault decision := \"approved\"\n".into(),
    });
    set.policy.classification.tag_keys.push("cost-center".into());
    set.policy.classification.values.insert("FIN".into(), "finance".into());
    let bytes = encode_event(&event).unwrap();
    assert_eq!(decode_event(&bytes).unwrap(), event);
    let cddl = std::fs::read_to_string(crate::repo_root().join("schemas/events.cddl")).unwrap();
    cddl_cat::validate_cbor_bytes("envelope", &cddl, &bytes).expect("matches schemas/events.cddl");
}

#[test]
fn golden_vectors_match_the_cddl_schema() {
    let cddl = std::fs::read_to_string(crate::repo_root().join("schemas/events.cddl")).unwrap();
    for event in fixtures() {
        let bytes = encode_event(&event).unwrap();
        if let Err(e) = cddl_cat::validate_cbor_bytes("envelope", &cddl, &bytes) {
            panic!("{}: does not match schemas/events.cddl: {e}", event.payload.event_type());
        }
    }
    // The schema is not vacuous: a payload of the wrong shape does not match.
    let wrong = with_field("payload", Value::Map(vec![(Value::from("scan_id"), Value::from(7))]));
    assert!(cddl_cat::validate_cbor_bytes("envelope", &cddl, &wrong).is_err());
}

#[test]
fn encoding_is_deterministic_across_calls() {
    for event in fixtures() {
        assert_eq!(encode_event(&event).unwrap(), encode_event(&event.clone()).unwrap());
    }
}

/// Re-encodes the envelope of a valid event with one field replaced.
fn with_field(name: &str, value: Value) -> Vec<u8> {
    let bytes = encode_event(&fixtures()[0]).unwrap();
    let mut envelope: Value = ciborium::from_reader(bytes.as_slice()).unwrap();
    let Value::Map(entries) = &mut envelope else { panic!("envelope is a map") };
    for (k, v) in entries.iter_mut() {
        if k.as_text() == Some(name) {
            *v = value.clone();
        }
    }
    // Canonical order is preserved because only values changed and keys are unchanged.
    let mut out = Vec::new();
    ciborium::into_writer(&envelope, &mut out).unwrap();
    out
}

#[test]
fn unknown_envelope_version_is_a_typed_error() {
    let err = decode_event(&with_field("v", Value::from(2))).unwrap_err();
    assert!(matches!(err, EventError::UnknownEnvelopeVersion { found: 2 }), "{err}");
}

#[test]
fn unknown_event_type_is_a_typed_error() {
    let err = decode_event(&with_field("event_type", Value::from("scan.exploded"))).unwrap_err();
    assert!(matches!(&err, EventError::UnknownEventType { event_type } if event_type == "scan.exploded"), "{err}");
}

#[test]
fn newer_schema_version_is_a_typed_error_not_a_skip() {
    let err = decode_event(&with_field("schema_version", Value::from(2))).unwrap_err();
    match err {
        EventError::UnsupportedSchemaVersion { event_type, found, supported } => {
            assert_eq!((event_type.as_str(), found, supported), ("scan.started", 2, 1));
        }
        other => panic!("expected UnsupportedSchemaVersion, got {other}"),
    }
}

#[test]
fn payload_of_the_wrong_shape_is_a_typed_error() {
    let err = decode_event(&with_field("payload", Value::Map(vec![]))).unwrap_err();
    assert!(matches!(&err, EventError::InvalidPayload { event_type, .. } if event_type == "scan.started"), "{err}");
}

#[test]
fn malformed_and_non_canonical_bytes_are_typed_errors() {
    let good = encode_event(&fixtures()[0]).unwrap();
    let truncated = &good[..good.len() - 3];
    assert!(matches!(decode_event(truncated), Err(EventError::Bytes(_))));
    assert!(matches!(decode_event(b"not cbor at all"), Err(EventError::Bytes(_))));
    let mut trailing = good.clone();
    trailing.push(0);
    assert!(matches!(decode_event(&trailing), Err(EventError::Bytes(_))));
    // The same envelope with its keys in reverse order.
    let mut envelope: Value = ciborium::from_reader(good.as_slice()).unwrap();
    if let Value::Map(entries) = &mut envelope {
        entries.reverse();
    }
    let mut reordered = Vec::new();
    ciborium::into_writer(&envelope, &mut reordered).unwrap();
    assert!(matches!(decode_event(&reordered), Err(EventError::Bytes(sv0_codec::DecodeError::NonCanonical))));
}

#[test]
fn byte_and_text_strings_longer_than_the_decoders_scratch_buffer_round_trip() {
    // ciborium reads strings of up to 4 KiB through a scratch buffer and larger ones apart; a
    // fragment's piece and a pack's body are larger.
    let mut fragment = meta(9);
    fragment.credential = Some("token:t-1".into());
    let events = [
        Event {
            meta: fragment,
            payload: EventPayload::Fragment(EventFragment {
                of: EventId([0xf0; 16]),
                index: 0,
                count: 2,
                bytes: Bytes((0..100_000u32).map(|i| i as u8).collect()),
            }),
        },
        Event { meta: meta(10), payload: EventPayload::ScanStarted(scan_started_with_long_strings()) },
    ];
    for event in events {
        let bytes = encode_event(&event).unwrap();
        assert_eq!(decode_event(&bytes).unwrap(), event);
    }
}

fn scan_started_with_long_strings() -> ScanStarted {
    let EventPayload::ScanStarted(mut started) = fixtures().remove(0).payload else {
        panic!("the first fixture starts a scan")
    };
    started.scan_id = "s".repeat(10_000);
    started
}

#[test]
fn an_envelope_field_this_build_does_not_know_is_refused() {
    let good = encode_event(&fixtures()[0]).unwrap();
    let mut envelope: Value = ciborium::from_reader(good.as_slice()).unwrap();
    let Value::Map(entries) = &mut envelope else { panic!("envelope is a map") };
    // "zz" sorts after every key of the envelope (all are shorter or equal and smaller).
    entries.push((Value::from("zzzzzzzzzzzzzzzz"), Value::from(1)));
    let mut out = Vec::new();
    ciborium::into_writer(&envelope, &mut out).unwrap();
    let err = decode_event(&out).unwrap_err();
    assert!(err.to_string().contains("invalid event bytes"), "{err}");
    assert!(
        matches!(&err, EventError::Bytes(sv0_codec::DecodeError::Shape(why)) if why.contains("zzzzzzzzzzzzzzzz")),
        "{err:?}"
    );
}

/// `from_stable` reads view rows and event payloads through a direct deserializer and falls
/// back to ciborium only for what it declines: it must take every entity SV0 stores, and read
/// each exactly as ciborium does. Every entity of the bundled example's three scans (every
/// list, consents, credentials, presences, owners) and of a synthetic tenant, and each whole
/// scan.
#[test]
fn the_fast_decoder_takes_every_entity_and_reads_it_as_ciborium_does() {
    use serde::Serialize;
    use serde::de::DeserializeOwned;

    fn same<T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug>(items: &[T]) -> usize {
        for item in items {
            let bytes = sv0_codec::to_stable(item).unwrap();
            let fast: T = sv0_codec::from_stable_fast(&bytes).expect("the fast path takes what to_stable wrote");
            let slow: T = ciborium::from_reader(bytes.as_slice()).unwrap();
            assert_eq!(fast, slow);
            assert_eq!(&fast, item);
        }
        items.len()
    }
    let mut snapshots: Vec<sv0_domain::snapshot::Snapshot> =
        ["contoso-1-initial.json", "contoso-2-deployment.json", "contoso-3-remediation.json"]
            .iter()
            .map(|name| {
                let path = crate::repo_root().join("crates/sv0/demo").join(name);
                serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
            })
            .collect();
    let at = Timestamp::parse(sv0_synth::synthetic::OBSERVED_AT).unwrap();
    snapshots.push(sv0_synth::synthetic::tenant(2_000, 9, at).unwrap());
    let mut decoded = 0;
    for snapshot in &snapshots {
        let e = snapshot;
        decoded += same(&e.domains) + same(&e.classification_rules) + same(&e.owners) + same(&e.workloads);
        decoded += same(&e.identities) + same(&e.credentials) + same(&e.destinations) + same(&e.grants);
        decoded += same(&e.bindings) + same(&e.evidence) + same(std::slice::from_ref(e));
    }
    assert!(decoded > 2_000, "{decoded}");
}
