//! Tenant-sharded projectors: which tenants a views database folds (`sv0 serve|project|sign
//! --tenants T1,T2` or `--shard K/N`). The choice is recorded in the views, so that every
//! process folding them (a restart, a read-only reopen, a rebuild, a refold after a layout
//! change) folds the same tenants, and views folded for other tenants are refused.

use std::collections::BTreeSet;
use std::fmt;

use sha2::{Digest, Sha256};
use sv0_domain::TenantId;

/// The tenants a projector folds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Shard {
    /// Exactly these.
    Tenants(BTreeSet<TenantId>),
    /// Those whose stable hash falls in shard `index` (from 1) of `count`.
    Hash {
        /// This shard, 1..=count.
        index: u32,
        /// How many shards there are.
        count: u32,
    },
}

impl Shard {
    /// Parses `--shard K/N` (1 ≤ K ≤ N).
    pub fn parse_hash(text: &str) -> Result<Shard, String> {
        let (k, n) = text.split_once('/').ok_or_else(|| format!("--shard {text}: write K/N, e.g. 1/3"))?;
        let parse = |s: &str| s.trim().parse::<u32>().map_err(|_| format!("--shard {text}: K and N are numbers"));
        let (index, count) = (parse(k)?, parse(n)?);
        if count == 0 || index == 0 || index > count {
            return Err(format!("--shard {text}: K runs from 1 to N"));
        }
        Ok(Shard::Hash { index, count })
    }

    /// The shard (from 1) of `count` that `tenant` falls in: the first eight bytes of a
    /// domain-separated SHA-256 of its id, modulo `count`. Stable across builds and machines.
    pub fn hash_index(tenant: &str, count: u32) -> u32 {
        let digest = Sha256::new().chain_update(b"sv0.shard.v1\0").chain_update(tenant.as_bytes()).finalize();
        let mut first = [0u8; 8];
        first.copy_from_slice(&digest[..8]);
        (u64::from_be_bytes(first) % u64::from(count.max(1))) as u32 + 1
    }

    /// Whether the shard folds `tenant`.
    pub fn keeps(&self, tenant: &str) -> bool {
        match self {
            Shard::Tenants(tenants) => tenants.iter().any(|t| t.as_str() == tenant),
            Shard::Hash { index, count } => Shard::hash_index(tenant, *count) == *index,
        }
    }

    /// Whether the shard folds a record on `subject` (`<tenant>.<kind>`).
    pub fn keeps_subject(&self, subject: &str) -> bool {
        subject.split_once('.').is_some_and(|(tenant, _)| self.keeps(tenant))
    }

    /// Reads what `Display` writes (as recorded in the views).
    pub fn parse_recorded(text: &str) -> Option<Shard> {
        if let Some(hash) = text.strip_prefix("shard ") {
            return Shard::parse_hash(hash).ok();
        }
        let list = text.strip_prefix("tenants ")?;
        let tenants: Option<BTreeSet<TenantId>> = list.split(',').map(|t| TenantId::new(t).ok()).collect();
        tenants.filter(|t| !t.is_empty()).map(Shard::Tenants)
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Shard::Tenants(tenants) => {
                let names: Vec<&str> = tenants.iter().map(TenantId::as_str).collect();
                write!(f, "tenants {}", names.join(","))
            }
            Shard::Hash { index, count } => write!(f, "shard {index}/{count}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_parse_round_trip_and_split_tenants_without_overlap() {
        assert!(Shard::parse_hash("0/3").is_err() && Shard::parse_hash("4/3").is_err());
        assert!(Shard::parse_hash("1").is_err() && Shard::parse_hash("a/3").is_err());
        let shards: Vec<Shard> = (1..=3).map(|k| Shard::parse_hash(&format!("{k}/3")).unwrap()).collect();
        for n in 0..300 {
            let tenant = format!("tenant-{n}");
            assert_eq!(shards.iter().filter(|s| s.keeps(&tenant)).count(), 1, "{tenant} is in exactly one shard");
        }
        let listed = Shard::Tenants(["b", "a"].iter().map(|t| TenantId::new(*t).unwrap()).collect());
        assert_eq!(listed.to_string(), "tenants a,b");
        for shard in shards.into_iter().chain([listed]) {
            assert_eq!(Shard::parse_recorded(&shard.to_string()), Some(shard));
        }
        // The hash is pinned: a change would move every tenant to another shard.
        assert_eq!(Shard::hash_index("contoso", 3), Shard::hash_index("contoso", 3));
        let pinned: Vec<u32> = ["contoso", "fabrikam", "northwind"].iter().map(|t| Shard::hash_index(t, 5)).collect();
        assert_eq!(pinned, PINNED.to_vec());
    }

    const PINNED: [u32; 3] = [2, 2, 3];
}
