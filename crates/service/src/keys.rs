//! The pack signing key's life: generated once, registered on each tenant's chain from the pack
//! index it first signs, and rotated by events. A rotation writes the new private key next to
//! the current one, records `key.rotated` on every tenant chain the current key signs (each
//! appended on the pack subject with the chain's head as the expectation, so the boundary is
//! exact), and only then renames the new key over the old: the retired private key is gone.
//! A rotation cut short is finished by the next one, or by the next seal.

use serde::Serialize;
use sv0_domain::TenantId;
use sv0_domain::Timestamp;
use sv0_domain::events::{Event, EventPayload, derived_id};
use sv0_log::{AppendError, EventLog, Expected};
use sv0_projections::KeyRecord;
use sv0_signer::{KeyRing, PackSigner};
use tracing::{info, warn};

use crate::import::log_records;
use crate::service::SEAL_ATTEMPTS;
use crate::{Queries, Service, ServiceError};

/// A finished rotation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct Rotation {
    /// The key retired.
    pub retired_key_id: String,
    /// The key now signing.
    pub key_id: String,
    /// Per tenant chain, the first pack index the new key signs.
    pub chains: Vec<RotatedChain>,
}

/// Where a rotation takes effect in one tenant's chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct RotatedChain {
    /// The tenant.
    pub tenant: TenantId,
    /// The first pack the new key signs; the retired key signed the ones before.
    pub valid_from: u64,
}

/// A generated key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct GeneratedKey {
    /// Its id.
    pub key_id: String,
    /// Its public key, SPKI PEM.
    pub public_key_pem: String,
}

impl<L: EventLog> Queries<L> {
    /// The keys of a tenant's chain with their validity, as the views hold them.
    pub fn keys(&self, tenant: &TenantId) -> Result<Vec<KeyRecord>, ServiceError> {
        Ok(self.views.keys(tenant)?)
    }

    /// A key file for offline verification of a tenant's chain: every key registered on its log,
    /// each with its validity lines.
    pub async fn export_keys(&self, tenant: &TenantId) -> Result<String, ServiceError> {
        Ok(self.key_ring(tenant).await?.to_pem())
    }

    /// The tenant's keys and their ranges, folded from the log itself.
    pub(crate) async fn key_ring(&self, tenant: &TenantId) -> Result<KeyRing, ServiceError> {
        Ok(self.chain_from_log(tenant).await?.keys)
    }

    /// The pack subject's last position as an expectation.
    pub(crate) async fn expectation(&self, subject: &str) -> Result<Expected, ServiceError> {
        Ok(match self.log.subject_head(subject).await? {
            Some(seq) => Expected::LastSeq(seq),
            None => Expected::NoEvents,
        })
    }

    /// Appends one event on `subject` if nothing landed there since `expected`.
    pub(crate) async fn append_expecting(
        &self,
        subject: &str,
        expected: Expected,
        event: &Event,
    ) -> Result<u64, ServiceError> {
        let records = log_records(event, self.log.max_event_size())?;
        match self.log.append(subject, expected, records).await {
            Ok(appended) => Ok(appended.last()),
            Err(AppendError::Conflict { .. }) => Err(ServiceError::Conflict(format!("the chain on {subject} moved"))),
            Err(e) => Err(e.into()),
        }
    }
}

impl<L: EventLog> Service<L> {
    /// Creates the signing key of this installation (otherwise created at the first seal).
    pub fn generate_key(&mut self) -> Result<GeneratedKey, ServiceError> {
        let dir = self.data_dir.keys_dir();
        if self.key_store.has_current(&dir) {
            let existing = self.signer()?.key_id().to_string();
            return Err(ServiceError::KeyExists { key_id: existing });
        }
        let signer = self.signer()?;
        Ok(GeneratedKey { key_id: signer.key_id().to_string(), public_key_pem: signer.public_key_pem() })
    }

    /// Replaces the signing key: every tenant chain the current key signs records the new key
    /// from its next pack on, then the new key replaces the old on disk.
    pub async fn rotate_key(&mut self, reason: &str, actor: &str) -> Result<Rotation, ServiceError> {
        let dir = self.data_dir.keys_dir();
        if !self.key_store.has_current(&dir) {
            return Err(ServiceError::NoKey);
        }
        if self.key_store.has_next(&dir) {
            // An earlier rotation was cut short: finish it first, then rotate on.
            self.finish_rotation("finishing a rotation that was cut short", actor).await?;
        }
        self.key_store.create_next(&dir)?;
        self.finish_rotation(reason, actor).await?.ok_or(ServiceError::NoKey)
    }

    /// Finishes a rotation whose next key is on disk (none: `None`).
    pub(crate) async fn finish_rotation(
        &mut self,
        reason: &str,
        actor: &str,
    ) -> Result<Option<Rotation>, ServiceError> {
        let dir = self.data_dir.keys_dir();
        let Some(next) = self.key_store.load_next(&dir)? else { return Ok(None) };
        // The key on disk, not a cached one: another process may have rotated since.
        let current = self.key_store.load_current(&dir)?;
        let mut chains = Vec::new();
        for tenant in self.views.tenants()? {
            let mut attempt = 0;
            loop {
                match self.rotate_chain(&tenant, &current, &next, reason, actor).await {
                    Ok(Some(valid_from)) => {
                        chains.push(RotatedChain { tenant: tenant.clone(), valid_from });
                        break;
                    }
                    Ok(None) => break,
                    Err(ServiceError::Conflict(message)) if attempt + 1 < SEAL_ATTEMPTS => {
                        attempt += 1;
                        warn!(%tenant, attempt, %message, "the chain moved during the rotation; trying again");
                    }
                    Err(e) => return Err(e),
                }
            }
        }
        let promoted = match self.key_store.promote_next(&dir) {
            Ok(promoted) => promoted,
            // Another service of this installation finished the same rotation first.
            Err(_) if !self.key_store.has_next(&dir) => self.key_store.load_current(&dir)?,
            Err(e) => return Err(e.into()),
        };
        self.views.catch_up(&self.log, None).await?;
        info!(retired = %current.key_id(), key_id = %promoted.key_id(), chains = chains.len(), "pack signing key rotated");
        let rotation =
            Rotation { retired_key_id: current.key_id().to_string(), key_id: promoted.key_id().to_string(), chains };
        self.signer = Some(promoted);
        Ok(Some(rotation))
    }

    /// Records the rotation on one tenant's chain if `current` signs it; returns the first index
    /// of `next`.
    async fn rotate_chain(
        &mut self,
        tenant: &TenantId,
        current: &PackSigner,
        next: &PackSigner,
        reason: &str,
        actor: &str,
    ) -> Result<Option<u64>, ServiceError> {
        let subject = format!("{tenant}.pack");
        let expected = self.expectation(&subject).await?;
        self.views.catch_up(&self.log, None).await?;
        let keys = self.views.keys(tenant)?;
        let signs = keys.iter().any(|k| k.key_id == current.key_id() && k.current());
        if !signs {
            return Ok(None);
        }
        let valid_from = self.views.pack_head(tenant)?.map_or(1, |h| h.index + 1);
        let rotation = next.rotation(current.key_id(), valid_from, reason);
        let event = key_event(tenant, actor, EventPayload::KeyRotated(rotation), next.key_id());
        self.append_expecting(&subject, expected, &event).await?;
        Ok(Some(valid_from))
    }

    /// Registers the signer's key on a tenant's chain from its next pack on, unless it is
    /// registered; refuses a key rotated out of the chain. Returns the pack subject's
    /// expectation after any registration.
    pub(crate) async fn ensure_key(
        &mut self,
        tenant: &TenantId,
        subject: &str,
        expected: Expected,
        next_index: u64,
    ) -> Result<Expected, ServiceError> {
        let keys = self.views.keys(tenant)?;
        let mut signer = self.signer()?;
        if retired(&keys, signer.key_id()) {
            // Another process rotated the key: use the key on disk now.
            self.signer = None;
            signer = self.signer()?;
            if let Some(key) = keys.iter().find(|k| k.key_id == signer.key_id() && !k.current()) {
                return Err(ServiceError::KeyRetired {
                    tenant: tenant.to_string(),
                    key_id: key.key_id.clone(),
                    last: key.valid_to.unwrap_or_default(),
                });
            }
        }
        if keys.iter().any(|k| k.key_id == signer.key_id()) {
            return Ok(expected);
        }
        let registration = signer.registration(next_index);
        let event = key_event(tenant, "system:signer", EventPayload::KeyRegistered(registration), signer.key_id());
        let seq = self.append_expecting(subject, expected, &event).await?;
        Ok(Expected::LastSeq(seq))
    }

    /// This installation's key, when it is a current key of the tenant's chain: what signs
    /// checkpoints and attestations, so that they verify with the chain's key file. On a shared
    /// log, another installation's key is refused rather than used unannounced.
    pub(crate) fn chain_signer(&mut self, tenant: &TenantId) -> Result<&PackSigner, ServiceError> {
        let keys = self.views.keys(tenant)?;
        let key_id = self.signer()?.key_id().to_string();
        if !keys.iter().any(|k| k.key_id == key_id && k.current()) {
            return Err(ServiceError::KeyNotInChain { tenant: tenant.to_string(), key_id });
        }
        self.signer()
    }
}

fn retired(keys: &[KeyRecord], key_id: &str) -> bool {
    keys.iter().any(|k| k.key_id == key_id && !k.current())
}

/// A key event of a tenant; its id names the key and the chain place, so a retried append is
/// recognised as one.
fn key_event(tenant: &TenantId, actor: &str, payload: EventPayload, key_id: &str) -> Event {
    let label = match &payload {
        EventPayload::KeyRotated(r) => format!("rotated:{}:{}", r.retired_key_id, r.valid_from),
        _ => "registered".to_string(),
    };
    let event_id = derived_id("sv0.key.v2", tenant, &[key_id.as_bytes(), label.as_bytes()]);
    Event::of(event_id, tenant, Timestamp::now(), actor, payload)
}
