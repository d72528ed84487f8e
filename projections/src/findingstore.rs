//! Where findings are stored.
//!
//! A large tenant's findings are mostly about single paths (a sensitive write, an unused
//! sensitive reach): at a million paths, 600k of them, each naming its workload, path, record,
//! remediation sentence and rule title, 850 bytes per row. They are written, read and settled a
//! workload at a time (`scan::recompute`), so they are stored that way:
//!
//! - `finding_groups`: `(tenant, workload)` → every finding about the workload's paths or about
//!   the whole workload, open and resolved, sorted by id, as one packed row of frames tagged
//!   with each finding's subject (`store::FramedRow`, stored in pieces: `Batch::put_pieces`).
//!   The findings of a workload repeat its names, records and sentences, which compress about
//!   sevenfold. A rescan decodes only the findings whose subjects it decides and copies the
//!   others' frames as stored;
//! - `finding_locator`: `(tenant, finding_id)` → the workload whose group holds it, so that a
//!   finding is found by id (`sv0 findings show`, an acknowledgement);
//! - `findings` (with `findings_by_workload`) keeps the others, one row each: findings about
//!   identities, credentials, destinations and undeclared additions, which may concern several
//!   workloads or none.
//!
//! A finding id lives in exactly one of the two places: its subject decides which, and a
//! subject never moves between them.

use std::collections::BTreeMap;

use redb::ReadableTable;
use sv0_domain::TenantId;

use crate::batch::{Batch, Target};
use crate::error::ProjectionError;
use crate::records::FindingRecord;
use crate::store::{self, Framed, t_key, t_prefix};

/// A workload's grouped findings, by id.
pub(crate) type Group = BTreeMap<String, FindingRecord>;

/// A workload's group as stored, unpacked: each finding's frame tagged with its subject.
pub(crate) type GroupRow = store::FramedRow;

/// A finding of a group, decoded; one whose id or subject differs from its frame's is damage.
pub(crate) fn decode_record(framed: &Framed<'_>) -> Result<FindingRecord, ProjectionError> {
    let record: FindingRecord = framed.decode()?;
    if record.finding.finding_id != framed.id || record.finding.subject != framed.tag {
        return Err(framed.corrupt(format!("finding {} is framed as {}", record.finding.finding_id, framed.id)));
    }
    Ok(record)
}

fn frame(record: &FindingRecord) -> Result<Vec<u8>, ProjectionError> {
    store::frame(&record.finding.subject, record)
}

/// Encodes a group: its records' frames in id order, packed.
fn encode_group(group: &Group) -> Result<Vec<u8>, ProjectionError> {
    let frames = group.values().map(frame).collect::<Result<Vec<_>, _>>()?;
    Ok(store::pack_frames(frames.iter().map(Vec::as_slice)))
}

fn decode_group(bytes: &[u8]) -> Result<Group, ProjectionError> {
    GroupRow::parse("finding_groups", bytes)?.iter().map(|f| Ok((f.id.to_string(), decode_record(&f)?))).collect()
}

fn group_key(tenant: &TenantId, workload: &str) -> Vec<u8> {
    t_key(tenant, &[workload.as_bytes()])
}

/// The findings grouped under a workload (empty when it has none).
pub(crate) fn group(
    groups: &impl ReadableTable<&'static [u8], &'static [u8]>,
    tenant: &TenantId,
    workload: &str,
) -> Result<Group, ProjectionError> {
    match store::get_pieces(groups, "finding_groups", &group_key(tenant, workload))? {
        Some(bytes) => decode_group(&bytes),
        None => Ok(Group::new()),
    }
}

/// A workload's group as stored, undecoded, when it has one.
pub(crate) fn group_row(
    groups: &impl ReadableTable<&'static [u8], &'static [u8]>,
    tenant: &TenantId,
    workload: &str,
) -> Result<Option<GroupRow>, ProjectionError> {
    store::get_pieces(groups, "finding_groups", &group_key(tenant, workload))?
        .map(|bytes| GroupRow::parse("finding_groups", &bytes))
        .transpose()
}

/// Queues the rewrite of a workload's group: the records of `changed`, and the frames of
/// `stored` whose ids it does not hold, copied as stored; and a locator row for each id
/// `new_ids` names.
pub(crate) fn put_group<'a>(
    batch: &mut Batch,
    groups: &impl ReadableTable<&'static [u8], &'static [u8]>,
    tenant: &TenantId,
    workload: &str,
    stored: Option<&GroupRow>,
    changed: &Group,
    new_ids: impl IntoIterator<Item = &'a String>,
) -> Result<(), ProjectionError> {
    let mut written = BTreeMap::new();
    for (id, record) in changed {
        written.insert(id.as_str(), frame(record)?);
    }
    let key = group_key(tenant, workload);
    match store::repack(stored, |id| !changed.contains_key(id), &written) {
        Some(row) => batch.put_pieces(Target::FindingGroups, groups, &key, &row)?,
        None => batch.remove_pieces(Target::FindingGroups, groups, &key)?,
    }
    for id in new_ids {
        batch.put(Target::FindingLocator, t_key(tenant, &[id.as_bytes()]), workload.as_bytes().to_vec());
    }
    Ok(())
}

/// The workload whose group holds a finding, if a group does.
fn located(
    locator: &impl ReadableTable<&'static [u8], &'static [u8]>,
    tenant: &TenantId,
    finding_id: &str,
) -> Result<Option<String>, ProjectionError> {
    Ok(locator
        .get(t_key(tenant, &[finding_id.as_bytes()]).as_slice())?
        .map(|v| String::from_utf8_lossy(v.value()).into_owned()))
}

/// One finding by id, wherever it is stored.
pub(crate) fn get(
    findings: &impl ReadableTable<&'static [u8], &'static [u8]>,
    groups: &impl ReadableTable<&'static [u8], &'static [u8]>,
    locator: &impl ReadableTable<&'static [u8], &'static [u8]>,
    tenant: &TenantId,
    finding_id: &str,
) -> Result<Option<FindingRecord>, ProjectionError> {
    if let Some(record) = store::get_compact(findings, "findings", &t_key(tenant, &[finding_id.as_bytes()]))? {
        return Ok(Some(record));
    }
    match located(locator, tenant, finding_id)? {
        Some(workload) => match group_row(groups, tenant, &workload)? {
            Some(row) => row.iter().find(|f| f.id == finding_id).map(|f| decode_record(&f)).transpose(),
            None => Ok(None),
        },
        None => Ok(None),
    }
}

/// Every finding of a tenant, sorted by id.
pub(crate) fn all(
    findings: &impl ReadableTable<&'static [u8], &'static [u8]>,
    groups: &impl ReadableTable<&'static [u8], &'static [u8]>,
    tenant: &TenantId,
) -> Result<Vec<FindingRecord>, ProjectionError> {
    let start = t_prefix(tenant, &[]);
    let mut out: BTreeMap<String, FindingRecord> = BTreeMap::new();
    for (_, v) in store::scan_raw(findings, &start)? {
        let record: FindingRecord = store::decode_compact("findings", &v)?;
        out.insert(record.finding.finding_id.clone(), record);
    }
    for (_, v) in store::scan_pieces(groups, "finding_groups", &start)? {
        out.extend(decode_group(&v)?);
    }
    Ok(out.into_values().collect())
}

/// Changes one stored finding in place (an acknowledgement), wherever it is stored, and gives
/// the workloads the finding is about; an unknown id changes nothing.
pub(crate) fn update(
    findings: &mut redb::Table<'_, &'static [u8], &'static [u8]>,
    groups: &mut redb::Table<'_, &'static [u8], &'static [u8]>,
    locator: &redb::Table<'_, &'static [u8], &'static [u8]>,
    tenant: &TenantId,
    finding_id: &str,
    change: impl FnOnce(&mut FindingRecord),
) -> Result<Vec<String>, ProjectionError> {
    let key = t_key(tenant, &[finding_id.as_bytes()]);
    if let Some(mut record) = store::get_compact::<FindingRecord>(findings, "findings", &key)? {
        change(&mut record);
        store::put_compact(findings, &key, &record)?;
        return Ok(record.finding.workloads);
    }
    let Some(workload) = located(locator, tenant, finding_id)? else { return Ok(Vec::new()) };
    let mut found = group(groups, tenant, &workload)?;
    let Some(record) = found.get_mut(finding_id) else { return Ok(Vec::new()) };
    change(record);
    store::insert_pieces(groups, &group_key(tenant, &workload), &encode_group(&found)?)?;
    Ok(vec![workload])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::FindingStatus;
    use sv0_domain::Timestamp;
    use sv0_domain::findings::Finding;

    fn record(id: &str) -> FindingRecord {
        let finding = Finding {
            finding_id: id.to_string(),
            rule_id: "SV0-P001".into(),
            title: "write or delete reach into a sensitive domain".into(),
            severity: sv0_domain::findings::Severity::High,
            subject: format!("path:{id}"),
            summary: "Agent 1 can write HR data in sql1 as mi-agent-1".into(),
            workloads: vec!["workload-1".into()],
            path_ids: vec![id.to_string()],
            records: vec!["/providers/Microsoft.Authorization/roleAssignments/mi-1".into()],
            remediation: Vec::new(),
        };
        FindingRecord::opened(finding, 7, Timestamp::parse("2026-03-02T09:00:00Z").expect("time"))
    }

    #[test]
    fn a_group_round_trips_and_compresses_its_repetition() {
        let group: Group = (0..50).map(|n| (format!("F-{n:012}"), record(&format!("F-{n:012}")))).collect();
        let bytes = encode_group(&group).expect("encode");
        let plain = store::unpack("finding_groups", &bytes).expect("plain");
        assert!(bytes.len() * 4 < plain.len(), "{} of {}", bytes.len(), plain.len());
        assert_eq!(decode_group(&bytes).expect("decode"), group);
        assert_eq!(encode_group(&group).expect("again"), bytes, "deterministic");
        assert!(group.values().all(|r| r.status == FindingStatus::Open));
    }

    #[test]
    fn damaged_groups_are_errors_not_panics_or_huge_allocations() {
        let group: Group = [("F-1".to_string(), record("F-1"))].into();
        let bytes = encode_group(&group).expect("encode");
        for bad in [
            Vec::new(),
            vec![1, 2],
            [u32::MAX.to_le_bytes().as_slice(), &bytes[4..]].concat(),
            [bytes[..4].to_vec(), vec![0xff; 10]].concat(),
            bytes[..bytes.len() - 3].to_vec(),
        ] {
            assert!(matches!(decode_group(&bad), Err(ProjectionError::CorruptView { .. })), "{bad:?}");
        }
    }

    #[test]
    fn a_rewrite_decodes_and_encodes_only_the_findings_it_changes() {
        let views = crate::views::Views::in_memory().expect("views");
        let tenant = TenantId::new("t").expect("tenant");
        let group: Group = (0..4).map(|n| (format!("F-{n}"), record(&format!("F-{n}")))).collect();
        let txn = views.database().begin_write().expect("txn");
        {
            let mut t = store::Tables::open(&txn).expect("tables");
            let mut batch = Batch::default();
            put_group(&mut batch, &t.finding_groups, &tenant, "w1", None, &group, group.keys()).expect("put");
            batch.flush(&mut t).expect("flush");
            let stored = group_row(&t.finding_groups, &tenant, "w1").expect("read").expect("a row");
            assert_eq!(
                stored.iter().map(|f| f.tag).collect::<Vec<_>>(),
                ["path:F-0", "path:F-1", "path:F-2", "path:F-3"]
            );

            // One finding resolved and one added: the others' frames are copied as stored.
            let mut changed = Group::new();
            changed.insert(
                "F-2".into(),
                group["F-2"].clone().resolved(9, Timestamp::parse("2026-03-03T09:00:00Z").expect("time")),
            );
            changed.insert("F-9".into(), record("F-9"));
            let mut batch = Batch::default();
            put_group(
                &mut batch,
                &t.finding_groups,
                &tenant,
                "w1",
                Some(&stored),
                &changed,
                ["F-9".to_string()].iter(),
            )
            .expect("put");
            batch.flush(&mut t).expect("flush");
            let mut expected = group.clone();
            expected.extend(changed);
            assert_eq!(super::group(&t.finding_groups, &tenant, "w1").expect("group"), expected);
            let again = group_row(&t.finding_groups, &tenant, "w1").expect("read").expect("a row");
            let kept = |row: &GroupRow| {
                row.iter().filter(|f| f.id != "F-2" && f.id != "F-9").map(|f| f.bytes.to_vec()).collect::<Vec<_>>()
            };
            assert_eq!(kept(&again), kept(&stored));
            assert_eq!(
                get(&t.findings, &t.finding_groups, &t.finding_locator, &tenant, "F-9").expect("get"),
                Some(record("F-9"))
            );

            // A frame whose subject is not its finding's is damage.
            let wrong = store::frame("path:F-7", &record("F-1")).expect("frame");
            let row = GroupRow::parse("finding_groups", &store::pack(&wrong)).expect("parse");
            assert!(row.iter().all(|f| matches!(decode_record(&f), Err(ProjectionError::CorruptView { .. }))));
        }
        txn.commit().expect("commit");
    }
}
