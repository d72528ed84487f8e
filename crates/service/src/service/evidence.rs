//! Evidence: sealing pending assessments into each tenant's pack chain, verifying the log,
//! views and chains, and exporting packs.

use std::path::Path;

use sv0_codec::decode_event;
use sv0_domain::events::{Event, EventMeta, EventPayload, PackSealed, derived_id};
use sv0_domain::{EventId, TenantId, Timestamp};
use sv0_log::{EventLog, Expected};
use sv0_projections::Views;
use sv0_signer::{ChainLink, KeyRing, PackFile, PackSigner};
use tracing::{info, warn};

use crate::error::ServiceError;
use crate::import::Reassembler;
use crate::verify::Freshness;
use crate::verify::{LogVerdict, RecordedChain, VerifyMode, verify_chains};

use super::*;

/// Removes scratch views and their clean-close stamp.
fn remove_scratch(path: &Path) {
    let _ = std::fs::remove_file(path);
    sv0_log::file::distrust(path);
}

/// The `pack.sealed` event of a pack. Its id names the pack's content (its digest, which covers
/// the signing key), not only its place in the chain: two signers sealing the same assessment
/// produce two different events, so the loser's append is a conflict rather than being taken
/// for a retry of the winner's (which would leave both believing the pack sealed, and the
/// log's duplicate window dropping every later attempt at that place).
pub fn pack_event(tenant: &TenantId, pack: PackSealed, assessed_event: EventId, occurred_at: Timestamp) -> Event {
    Event {
        meta: EventMeta {
            event_id: derived_id("sv0.pack.v2", tenant, &[pack.pack_id.as_bytes(), pack.digest.as_bytes()]),
            tenant_id: tenant.clone(),
            occurred_at,
            actor: "system:signer".to_string(),
            causation_id: Some(assessed_event),
            correlation_id: None,
            credential: None,
        },
        payload: EventPayload::PackSealed(pack),
    }
}

impl<L: EventLog> Queries<L> {
    /// Every `pack.sealed`, `key.registered`, `key.rotated` and `checkpoint.timestamped` event
    /// of a tenant, read from the log itself in one pass: the chain, its keys with their
    /// validity ranges, and its checkpoints' RFC 3161 tokens.
    pub(crate) async fn chain_from_log(&self, tenant: &TenantId) -> Result<RecordedChain, ServiceError> {
        let subjects = [format!("{tenant}.pack"), format!("{tenant}.key"), format!("{tenant}.timestamp")];
        let mut packs = Vec::new();
        let mut timestamps = Vec::new();
        let mut keys = KeyRing::new();
        let mut pieces = Reassembler::default();
        let mut refused = Vec::new();
        let mut from = 1;
        loop {
            let records = self.log.read(from, None, 1024).await?;
            let Some(last) = records.last() else { break };
            from = last.seq + 1;
            for record in records.iter().filter(|r| subjects.contains(&r.subject)) {
                let Some(event) = pieces.accept(decode_event(&record.data)?)? else { continue };
                match event.payload {
                    // The chain is what the views fold: each pack extends the one before it and
                    // is signed by a key registered for the chain at its index. Anything else
                    // on the subject (a foreign writer's event) is not part of it.
                    EventPayload::PackSealed(pack) => {
                        let head: Option<&PackSealed> = packs.last().map(|(_, p)| p);
                        let extends = pack.index == head.map_or(1, |h| h.index + 1)
                            && pack.previous_digest.as_deref() == head.map(|h| h.digest.as_str());
                        let signed = keys
                            .key_for(&pack.key_id, tenant.as_str(), pack.index)
                            .and_then(|key| sv0_signer::verify::verify_sealed_with(&pack, key));
                        match (extends, signed) {
                            (true, Ok(())) => packs.push((record.seq, pack)),
                            (false, _) => {
                                warn!(%tenant, seq = record.seq, "pack event outside the chain");
                                refused.push((record.seq, pack.pack_id, "it does not extend the chain".to_string()));
                            }
                            (true, Err(why)) => {
                                warn!(%tenant, seq = record.seq, %why, "pack event not signed by the chain's key");
                                refused.push((record.seq, pack.pack_id, why));
                            }
                        }
                    }
                    EventPayload::KeyRegistered(key) => keys.add_registered(tenant.as_str(), &key)?,
                    EventPayload::KeyRotated(rotated) => keys.add_rotated(tenant.as_str(), &rotated)?,
                    EventPayload::CheckpointTimestamped(stamped) => timestamps.push(stamped),
                    _ => {}
                }
            }
        }
        Ok(RecordedChain { tenant: tenant.clone(), packs, keys, refused, timestamps })
    }

    /// `verify_replayed` in scratch views beside the views (they are as large), or in the
    /// system's temporary directory when the data directory cannot take them: read-only here,
    /// or its disk full.
    async fn verify_replay(&self, tenant: Option<&TenantId>) -> Result<LogVerdict, ServiceError> {
        let elsewhere = std::env::temp_dir().join(format!("sv0-verify-{}.redb", std::process::id()));
        let beside = self.data_dir.root().join("views.verify.redb");
        let mut places = if self.is_read_only() { vec![elsewhere] } else { vec![beside, elsewhere] };
        loop {
            let scratch = places.remove(0);
            let outcome = self.verify_replayed(tenant, &scratch).await;
            remove_scratch(&scratch);
            match &outcome {
                Err(ServiceError::Views(e)) if e.is_write_failure() && !places.is_empty() => {
                    warn!(scratch = %scratch.display(), error = %e, "cannot write the scratch views here");
                }
                _ => break outcome,
            }
        }
    }

    /// `verify` against scratch views at `scratch` folded from the whole log, which are also
    /// compared with the views table by table.
    async fn verify_replayed(&self, tenant: Option<&TenantId>, scratch: &Path) -> Result<LogVerdict, ServiceError> {
        remove_scratch(scratch);
        let replayed = Views::open(scratch)?;
        replayed.bind_log(&self.log.identity().await?)?;
        let views_differ = self.views_differ_from(&replayed).await?;
        replayed.catch_up(&self.log, None).await?;
        Ok(LogVerdict { views_differ: Some(views_differ), ..self.verify_with(&replayed, tenant).await? })
    }

    /// Folds `replayed` to the views' position and names the tables in which the two differ.
    async fn views_differ_from(&self, replayed: &Views) -> Result<Vec<String>, ServiceError> {
        let position = self.views.checkpoint()?;
        replayed.catch_up(&self.log, Some(position)).await?;
        let (ours, theirs) = (self.views.table_digests()?, replayed.table_digests()?);
        let names: std::collections::BTreeSet<&String> = ours.keys().chain(theirs.keys()).collect();
        Ok(names.into_iter().filter(|n| ours.get(*n) != theirs.get(*n)).cloned().collect())
    }

    async fn verify_with(&self, views: &Views, tenant: Option<&TenantId>) -> Result<LogVerdict, ServiceError> {
        let tenants = match tenant {
            Some(t) => vec![t.clone()],
            None => views.tenants()?,
        };
        let mut chains = Vec::new();
        for tenant in tenants {
            chains.push(self.chain_from_log(&tenant).await?);
        }
        Ok(LogVerdict { damaged: None, chains: verify_chains(views, chains)?, views_differ: None })
    }
}

impl<L: EventLog> Service<L> {
    pub(crate) fn signer(&mut self) -> Result<&PackSigner, ServiceError> {
        let signer = match self.signer.take() {
            Some(signer) => signer,
            None => self.key_store.load_or_create(&self.data_dir.keys_dir())?,
        };
        Ok(self.signer.insert(signer))
    }

    /// Seals every assessment that has no pack yet, for every tenant (unless another signer keeps
    /// sealing them first).
    pub async fn seal_pending(&mut self) -> Result<usize, ServiceError> {
        // A rotation cut short is finished before anything is sealed with either key.
        if self.key_store.has_next(&self.data_dir.keys_dir()) {
            self.views.catch_up(&self.log, None).await?;
            self.finish_rotation("finishing a rotation that was cut short", "system:signer").await?;
        }
        let mut sealed = 0;
        for tenant in self.views.tenants()? {
            let mut attempt = 0;
            loop {
                match self.seal_tenant(&tenant).await {
                    Ok(n) => {
                        sealed += n;
                        break;
                    }
                    Err(ServiceError::Conflict(message)) if attempt + 1 < SEAL_ATTEMPTS => {
                        attempt += 1;
                        warn!(%tenant, attempt, %message, "another signer extended the chain; catching up");
                        self.views.catch_up(&self.log, None).await?;
                    }
                    // Another signer keeps winning: it is sealing these assessments, so this one
                    // leaves them to it rather than fail (a signer that exited here would leave
                    // the chain to a single process).
                    Err(ServiceError::Conflict(message)) => {
                        warn!(%tenant, %message, "another signer keeps extending the chain; leaving the pending packs to it");
                        break;
                    }
                    Err(e) => return Err(e),
                }
            }
        }
        if self.timestamper.is_some() {
            // The checkpoints to timestamp include the packs just sealed, which the views fold
            // first; with none sealed, they are as current as the chains this round saw.
            if sealed > 0 {
                self.views.catch_up(&self.log, None).await?;
            }
            self.timestamp_pending().await;
        }
        Ok(sealed)
    }

    async fn seal_tenant(&mut self, tenant: &TenantId) -> Result<usize, ServiceError> {
        // The expectation is the pack subject's actual last position, read before the views
        // catch up: any pack that lands after this read makes the append below conflict, and
        // any that landed before is folded into the chain head we build on. (A pack left
        // incomplete by a crashed signer only moves the expectation; it never blocks.)
        let subject = format!("{tenant}.pack");
        let expected = self.expectation(&subject).await?;
        self.views.catch_up(&self.log, None).await?;
        let head = self.views.pack_head(tenant)?;
        let pending = self.views.assessments_after(tenant, head.as_ref().map_or(0, |h| h.assessed_seq))?;
        if pending.is_empty() {
            return Ok(0);
        }
        let next_index = head.as_ref().map_or(1, |h| h.index + 1);
        let mut expected = self.ensure_key(tenant, &subject, expected, next_index).await?;
        let signer = self.signer()?;
        let mut link =
            head.as_ref().map(|h| ChainLink { index: h.index, pack_id: h.pack_id.clone(), digest: h.digest.clone() });
        let mut events = Vec::new();
        for assessment in &pending {
            let pack = sv0_signer::seal(assessment, link.as_ref(), signer)?;
            link = Some(ChainLink { index: pack.index, pack_id: pack.pack_id.clone(), digest: pack.digest.clone() });
            events.push(pack_event(tenant, pack, assessment.assessed_event, assessment.occurred_at));
        }
        let count = events.len();
        for event in events {
            expected = Expected::LastSeq(self.append_expecting(&subject, expected, &event).await?);
        }
        info!(%tenant, count, "packs sealed");
        Ok(count)
    }

    /// Verifies every tenant's chain as recorded on the log: every record's checksum, digests,
    /// links, signatures (with the keys registered on the log), that every pack event on a
    /// chain's subject is part of the chain, and that each pack's content is the assessment the
    /// log gives for its position: folded into scratch views from the first event
    /// (`VerifyMode::Replay`), or read from the views as they stand (`VerifyMode::Quick`). A
    /// record that cannot be read back as written is reported in the verdict, not as an error.
    pub async fn verify(&mut self, tenant: Option<&TenantId>, mode: VerifyMode) -> Result<LogVerdict, ServiceError> {
        // Views that cannot be written here (a full disk) are brought up to date in memory.
        let caught_up = match self.catch_up_for_query().await {
            Ok(Freshness::Behind { why, .. }) => Err(why),
            Ok(Freshness::InMemory(why)) => {
                warn!(error = %why, "the views cannot be saved here; verifying with views folded in memory");
                Ok(())
            }
            Ok(Freshness::Current) => Ok(()),
            Err(e) => Err(e),
        };
        let outcome = match (caught_up, mode) {
            (Err(e), _) => Err(e),
            (Ok(()), VerifyMode::Quick) => self.verify_with(&self.views, tenant).await,
            (Ok(()), VerifyMode::Replay) => self.verify_replay(tenant).await,
        };
        match outcome {
            Err(e) => match e.log_damage() {
                Some((seq, reason)) => Ok(LogVerdict::damaged(seq, reason.to_string())),
                None => Err(e),
            },
            verdict => verdict,
        }
    }

    /// Writes a tenant's packs (`NNNNNN-<pack id>.json`), `public-key.pem` and each timestamped
    /// checkpoint (`timestamp-NNNNNN.txt`, the note; `.tsq`, the request; `.tsr`, the TSA's
    /// response) to `dir`; returns how many packs and tokens.
    pub async fn export_packs(&mut self, tenant: &TenantId, dir: &Path) -> Result<(usize, usize), ServiceError> {
        let chain = self.chain_from_log(tenant).await?;
        std::fs::create_dir_all(dir).map_err(|source| ServiceError::Write { path: dir.to_path_buf(), source })?;
        let write = |path: std::path::PathBuf, bytes: &[u8]| {
            std::fs::write(&path, bytes).map_err(|source| ServiceError::Write { path, source })
        };
        for (_, sealed) in &chain.packs {
            let file = PackFile::from_sealed(sealed)?;
            let mut json = serde_json::to_vec_pretty(&file)?;
            json.push(b'\n');
            write(dir.join(file.file_name()), &json)?;
        }
        write(dir.join("public-key.pem"), chain.keys.to_pem().as_bytes())?;
        for stamp in &chain.timestamps {
            let stem = sv0_signer::timestamp::file_stem(stamp.size);
            write(dir.join(format!("{stem}.txt")), stamp.checkpoint.as_bytes())?;
            write(dir.join(format!("{stem}.tsq")), &stamp.request.0)?;
            write(dir.join(format!("{stem}.tsr")), &stamp.response.0)?;
        }
        Ok((chain.packs.len(), chain.timestamps.len()))
    }
}
