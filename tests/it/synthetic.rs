//! The synthetic tenant generator behind `sv0 synth` and `sv0 bench`: deterministic for a seed,
//! of the documented shape, and rescans that change the requested share of grants.

use std::collections::BTreeMap;

use sv0_domain::Timestamp;
use sv0_domain::model::Grant;
use sv0_synth::synthetic::{HEAVY_WORKLOAD_PATHS, OBSERVED_AT, rescan, tenant};
use sv0_tests::TempDir;

use crate::sv0;

fn at() -> Timestamp {
    Timestamp::parse(OBSERVED_AT).unwrap()
}

#[test]
fn the_same_seed_gives_the_same_tenant_and_another_seed_another() {
    let a = serde_json::to_vec(&tenant(5_000, 7, at()).unwrap()).unwrap();
    let b = serde_json::to_vec(&tenant(5_000, 7, at()).unwrap()).unwrap();
    let c = serde_json::to_vec(&tenant(5_000, 8, at()).unwrap()).unwrap();
    assert_eq!(a, b);
    assert_ne!(a, c);
}

#[test]
fn a_large_tenant_has_the_documented_shape() {
    let snapshot = tenant(100_000, 1, at()).unwrap();
    assert_eq!(snapshot.workloads.len(), 1_000);
    assert_eq!(snapshot.identities.len(), 2_000);
    assert_eq!(snapshot.destinations.len(), 5_000);
    let grants = snapshot.grants.len();
    assert!((95_000..=105_000).contains(&grants), "{grants} grants");
    let heavy = snapshot.grants.iter().filter(|g| g.identity.ends_with("-0000000")).count();
    assert_eq!(heavy, HEAVY_WORKLOAD_PATHS);
    snapshot.validate().expect("a synthetic tenant is a valid snapshot");
}

#[test]
fn a_rescan_changes_the_requested_share_of_grants() {
    let base = tenant(20_000, 3, at()).unwrap();
    let next = rescan(&base, 1.0, 9, at().add_days(1)).unwrap();
    let before: BTreeMap<&str, &Grant> = base.grants.iter().map(|g| (g.id.as_str(), g)).collect();
    let changed = next.grants.iter().filter(|g| before.get(g.id.as_str()) != Some(g)).count();
    let expected = (base.grants.len() as f64 / 100.0).round() as usize;
    assert_eq!(changed, expected);
    assert_eq!(next.grants.len(), base.grants.len());
    assert!(rescan(&base, 101.0, 9, at()).is_err());
}

/// Continuous-monitoring soak runs chain `--rescan-of` for thousands of generations: ids and
/// role names stay as short as after the first rescan, and every generation is a valid scan.
#[test]
fn rescans_chain_for_thousands_of_generations() {
    let first = tenant(60, 5, at()).unwrap();
    let longest =
        |s: &sv0_domain::snapshot::Snapshot| s.grants.iter().map(|g| g.id.len().max(g.role.len())).max().unwrap_or(0);
    let mut current = rescan(&first, 20.0, 1, at().add_days(1)).unwrap();
    let bound = longest(&current) + 4;
    for generation in 2..3_000u64 {
        current = rescan(&current, 20.0, generation, at().add_days(generation as i64)).unwrap();
        assert!(longest(&current) <= bound, "generation {generation}: an id or role grew past {bound} bytes");
    }
    let ids: std::collections::BTreeSet<&str> = current.grants.iter().map(|g| g.id.as_str()).collect();
    assert_eq!(ids.len(), current.grants.len(), "grant ids stay unique");
    let generation = |id: &str| id.rsplit_once("-r").and_then(|(_, g)| g.parse::<u64>().ok()).unwrap_or(0);
    assert!(current.grants.iter().any(|g| generation(&g.id) > 10), "grants were replaced again and again");
    current.validate().expect("the 3,000th generation is a valid snapshot");
}

#[test]
fn synth_change_shares_parse_with_or_without_a_percent_sign() {
    let dir = TempDir::new();
    let base = dir.join("tenant.json");
    let (code, out) = sv0(&["synth", "--paths", "500", "--out", base.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}");
    let rescan_with = |change: &str| {
        let out_file = dir.join("rescan.json");
        let args =
            ["synth", "--rescan-of", base.to_str().unwrap(), "--change", change, "--out", out_file.to_str().unwrap()];
        sv0(&args)
    };
    for good in ["1%", "0.5 %", "3"] {
        let (code, out) = rescan_with(good);
        assert_eq!(code, 0, "--change {good}: {out}");
    }
    for bad in ["150%", "lots"] {
        let (code, out) = rescan_with(bad);
        assert_eq!(code, 2, "--change {bad} is refused: {out}");
    }
}
