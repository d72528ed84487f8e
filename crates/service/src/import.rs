//! Turning a snapshot into scan events: `scan.started`, one or more `scan.chunk`, then
//! `scan.completed`, appended as one batch. Ids derive from the content, so importing the same
//! snapshot twice appends nothing the second time.

use sv0_domain::events::{
    Actor, Bytes, Event, EventFragment, EventMeta, EventPayload, ScanChunk, ScanCompleted, ScanStarted, derived_id,
};
use sv0_domain::ids::stable_hash;
use sv0_domain::snapshot::{Coverage, Entities, ScanTrigger, Snapshot, ValidSnapshot};
use sv0_log::NewEvent;

use crate::error::ServiceError;

/// Bytes kept free in every chunk event for the envelope, the chunk's fields and the lists'
/// headers (measured: under 600 bytes; kept generous).
const CHUNK_OVERHEAD: usize = 2048;

/// Parses and validates snapshot JSON; nothing is appended when this fails.
pub fn parse_snapshot(json: &[u8]) -> Result<ValidSnapshot, ServiceError> {
    // The error names the first bad field by its JSON path (`grants[3].permissions[0]`), not
    // only its line and column.
    let snapshot: Snapshot = sv0_codec::json::from_slice(json).map_err(|first| {
        let problems = type_problems(json, &first);
        if problems.len() > 1 {
            ServiceError::Snapshot(sv0_domain::SnapshotInvalid { problems })
        } else {
            ServiceError::SnapshotJson(first.to_string())
        }
    })?;
    Ok(snapshot.validate()?)
}

/// Snapshots up to this size have every field of the wrong type listed; a larger one names the
/// first (listing them all would hold the whole document as a JSON tree).
const LIST_TYPE_PROBLEMS_UP_TO: usize = 64 * 1024 * 1024;
/// At most this many type problems are listed.
const MAX_TYPE_PROBLEMS: usize = 1000;

/// Every field of a snapshot that the reader refused (`first`: the reader stops at the first)
/// that breaks the snapshot's JSON Schema: `first` itself (with its line and column), then the
/// others, each at its JSON path. The schema is the one `schemas/snapshot.schema.json` holds,
/// generated from the same types, and a JSON Schema validator (`jsonschema`) checks it, so a
/// snapshot's author fixes every wrong type in one go. Syntax errors have only the first.
fn type_problems(json: &[u8], first: &sv0_codec::json::JsonError) -> Vec<String> {
    let mut problems = vec![first.to_string()];
    if json.len() > LIST_TYPE_PROBLEMS_UP_TO {
        return problems;
    }
    // Syntax errors, and a document that is not an object at all, have only the first.
    let Ok(value @ serde_json::Value::Object(_)) = serde_json::from_slice::<serde_json::Value>(json) else {
        return problems;
    };
    let schema = serde_json::to_value(schemars::schema_for!(Snapshot)).unwrap_or_default();
    let Ok(validator) = jsonschema::options().with_draft(jsonschema::Draft::Draft202012).build(&schema) else {
        return problems;
    };
    for error in validator.iter_errors(&value) {
        let path = dotted(&error.instance_path().to_string());
        if path == first.path {
            continue;
        }
        let message = sv0_codec::json::plain_words(&error.to_string());
        problems.push(if path.is_empty() { message } else { format!("at {path}: {message}") });
        if problems.len() >= MAX_TYPE_PROBLEMS {
            break;
        }
    }
    problems
}

/// A JSON pointer (`/grants/3/identity`) as the reader's JSON path (`grants[3].identity`).
fn dotted(pointer: &str) -> String {
    let mut path = String::new();
    for segment in pointer.split('/').skip(1) {
        let segment = segment.replace("~1", "/").replace("~0", "~");
        if !segment.is_empty() && segment.bytes().all(|b| b.is_ascii_digit()) {
            path.push_str(&format!("[{segment}]"));
        } else {
            if !path.is_empty() {
                path.push('.');
            }
            path.push_str(&segment);
        }
    }
    path
}

/// The events of one scan, ready to append.
pub struct ScanEvents {
    /// The scan id.
    pub scan_id: String,
    /// Chunks.
    pub chunk_count: u32,
    /// Entities.
    pub entity_count: u64,
    /// Encoded events, in order.
    pub events: Vec<NewEvent>,
}

/// The list and id of the entity at `index` in `Entities::visit` order (the order of the sizes
/// `entities_digest` gives), to name an entity in an error.
fn nth_entity(entities: &sv0_domain::snapshot::Entities, index: usize) -> (String, String) {
    struct Nth {
        index: usize,
        at: usize,
        found: Option<(String, String)>,
    }
    impl sv0_domain::snapshot::EntityVisitor for Nth {
        type Error = std::convert::Infallible;
        fn visit<T: serde::Serialize>(&mut self, list: &'static str, item: &T) -> Result<(), Self::Error> {
            if self.at == self.index {
                let id = serde_json::to_value(item)
                    .ok()
                    .and_then(|v| v.get("id").and_then(|id| id.as_str().map(str::to_string)))
                    .unwrap_or_default();
                self.found = Some((list.to_string(), id));
            }
            self.at += 1;
            Ok(())
        }
    }
    let mut nth = Nth { index, at: 0, found: None };
    let Ok(()) = entities.visit(&mut nth);
    nth.found.unwrap_or_else(|| ("an entity".to_string(), String::new()))
}

/// Builds a scan's events, splitting entities into chunks that each fit `max_event_size`.
/// A scan pushed through the API names who pushed it (`pushed_by`); otherwise its actor is
/// its connector.
pub fn scan_events(
    snapshot: ValidSnapshot,
    trigger: Option<ScanTrigger>,
    max_event_size: usize,
    pushed_by: Option<&Actor>,
) -> Result<ScanEvents, ServiceError> {
    let ValidSnapshot { tenant, mut scan, entities, .. } = snapshot;
    if let Some(trigger) = trigger {
        scan.trigger = trigger;
    }
    let hashed = sv0_codec::entities_digest(&entities).map_err(sv0_codec::EventError::from)?;
    let digest = hashed.digest.clone();
    let scan_id = format!(
        "scan-{}",
        stable_hash(
            "sv0.scan-id.v1",
            &[tenant.as_str(), &digest, scan.trigger.as_str(), &scan.connector, &scan.observed_at.to_rfc3339()],
            20
        )
    );
    let entity_count = entities.len() as u64;
    let meta = |label: &str| EventMeta {
        event_id: derived_id("sv0.scan-event.v1", &tenant, &[scan_id.as_bytes(), label.as_bytes()]),
        tenant_id: tenant.clone(),
        occurred_at: scan.observed_at,
        actor: pushed_by.map_or_else(|| format!("connector:{}", scan.connector), |by| by.actor.clone()),
        causation_id: None,
        correlation_id: None,
        credential: pushed_by.and_then(|by| by.credential.clone()),
    };
    let started = Event {
        meta: meta("started"),
        payload: EventPayload::ScanStarted(ScanStarted {
            scan_id: scan_id.clone(),
            connector: scan.connector.clone(),
            trigger: scan.trigger,
            observed_at: scan.observed_at,
            deployment: scan.deployment.clone(),
            coverage: scan.coverage.clone().unwrap_or_else(Coverage::complete),
        }),
    };
    let correlation = Some(started.meta.event_id);
    let mut encoded = vec![new_event(&started)?];

    let chunk_event = |index: u32, entities: Entities| Event {
        meta: EventMeta { correlation_id: correlation, ..meta(&format!("chunk-{index}")) },
        payload: EventPayload::ScanChunk(ScanChunk { scan_id: scan_id.clone(), index, entities }),
    };
    // Each chunk's entities fill at most the event limit less room for the envelope and the
    // chunk's own field names; an entity that alone exceeds the limit is refused.
    let budget = max_event_size.saturating_sub(CHUNK_OVERHEAD);
    if let Some((index, &size)) = hashed.sizes.iter().enumerate().find(|(_, size)| **size > budget) {
        let (list, id) = nth_entity(&entities, index);
        return Err(ServiceError::EntityTooLarge { list, id, size, max: max_event_size });
    }
    let chunks = entities.split_weighted(&hashed.sizes, budget);
    let chunk_count = chunks.len() as u32;
    for (index, part) in chunks.into_iter().enumerate() {
        let event = new_event(&chunk_event(index as u32, part))?;
        if event.data.len() > max_event_size {
            return Err(ServiceError::EntityTooLarge {
                list: "a chunk".to_string(),
                id: format!("chunk-{index}"),
                size: event.data.len(),
                max: max_event_size,
            });
        }
        encoded.push(event);
    }
    let completed = Event {
        meta: EventMeta { correlation_id: correlation, ..meta("completed") },
        payload: EventPayload::ScanCompleted(ScanCompleted {
            scan_id: scan_id.clone(),
            chunk_count,
            entity_count,
            snapshot_digest: digest,
        }),
    };
    encoded.push(new_event(&completed)?);
    Ok(ScanEvents { scan_id, chunk_count, entity_count, events: encoded })
}

/// Encodes an event for the log as one record.
pub fn new_event(event: &Event) -> Result<NewEvent, ServiceError> {
    Ok(NewEvent { event_id: event.meta.event_id.0, data: sv0_codec::encode_event(event)? })
}

/// Bytes kept free in each fragment record for its envelope and fields.
const FRAGMENT_OVERHEAD: usize = 1024;

/// Encodes an event for the log: one record when it fits `max_event_size`, otherwise
/// `event.fragment` records that readers reassemble (append them in one batch).
pub fn log_records(event: &Event, max_event_size: usize) -> Result<Vec<NewEvent>, ServiceError> {
    let whole = new_event(event)?;
    if whole.data.len() <= max_event_size {
        return Ok(vec![whole]);
    }
    let piece = max_event_size.saturating_sub(FRAGMENT_OVERHEAD).max(1);
    let pieces: Vec<&[u8]> = whole.data.chunks(piece).collect();
    let count = pieces.len() as u32;
    pieces
        .into_iter()
        .enumerate()
        .map(|(index, bytes)| {
            let index = index as u32;
            let fragment = Event {
                meta: EventMeta {
                    event_id: derived_id(
                        "sv0.fragment.v1",
                        &event.meta.tenant_id,
                        &[&event.meta.event_id.0, &index.to_be_bytes()],
                    ),
                    correlation_id: Some(event.meta.event_id),
                    credential: None,
                    causation_id: None,
                    ..event.meta.clone()
                },
                payload: EventPayload::Fragment(EventFragment {
                    of: event.meta.event_id,
                    index,
                    count,
                    bytes: Bytes(bytes.to_vec()),
                }),
            };
            let record = new_event(&fragment)?;
            if record.data.len() > max_event_size {
                return Err(ServiceError::EntityTooLarge {
                    list: "a piece of an event".to_string(),
                    id: format!("{}/{count}", index + 1),
                    size: record.data.len(),
                    max: max_event_size,
                });
            }
            Ok(record)
        })
        .collect()
}

/// Puts fragmented events back together while reading the log in order.
#[derive(Default)]
pub struct Reassembler {
    pending: std::collections::BTreeMap<sv0_domain::EventId, Vec<Option<Vec<u8>>>>,
}

impl Reassembler {
    /// Takes the next event read; returns it, or the whole event its last missing piece
    /// completes, or nothing while pieces are missing.
    pub fn accept(&mut self, event: Event) -> Result<Option<Event>, ServiceError> {
        let EventPayload::Fragment(fragment) = event.payload else {
            return Ok(Some(event));
        };
        if fragment.count > sv0_domain::events::MAX_FRAGMENTS {
            return Err(ServiceError::Event(sv0_codec::EventError::InvalidPayload {
                event_type: "event.fragment".to_string(),
                reason: format!(
                    "event {} claims {} pieces; at most {} are read",
                    fragment.of,
                    fragment.count,
                    sv0_domain::events::MAX_FRAGMENTS
                ),
            }));
        }
        let count = fragment.count as usize;
        let pieces = self.pending.entry(fragment.of).or_insert_with(|| vec![None; count]);
        if pieces.len() != count || fragment.index as usize >= count {
            return Err(ServiceError::Event(sv0_codec::EventError::InvalidPayload {
                event_type: "event.fragment".to_string(),
                reason: format!("piece {} of {} does not fit event {}", fragment.index, count, fragment.of),
            }));
        }
        pieces[fragment.index as usize] = Some(fragment.bytes.0);
        if pieces.iter().any(Option::is_none) {
            return Ok(None);
        }
        let bytes: Vec<u8> = self.pending.remove(&fragment.of).into_iter().flatten().flatten().flatten().collect();
        let whole = sv0_codec::decode_event(&bytes)?;
        if whole.meta.event_id != fragment.of || matches!(whole.payload, EventPayload::Fragment(_)) {
            return Err(ServiceError::Event(sv0_codec::EventError::InvalidPayload {
                event_type: "event.fragment".to_string(),
                reason: format!("pieces of {} do not make that event", fragment.of),
            }));
        }
        Ok(Some(whole))
    }
}
