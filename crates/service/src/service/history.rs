//! The log's history: what a time or position means (`AsOf`), what the log covers, answers as
//! of a point (folded in memory), audit replays and rebuilding the views.

use std::path::Path;

use sv0_domain::{TenantId, Timestamp};
use sv0_log::{EmbeddedLog, EventLog, Seq};
use sv0_projections::Views;
use tracing::info;

use crate::data_dir::DataDir;
use crate::error::ServiceError;

use super::*;

/// A point in the log's history.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AsOf {
    /// A log position.
    Position(Seq),
    /// A time: the log as it stood then.
    Time(Timestamp),
}

/// What a log covers (`Service::coverage`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Coverage {
    /// The log's head (positions 1 to head).
    pub head: Seq,
    /// Recording times of its first and last records.
    pub recorded: Option<(Timestamp, Timestamp)>,
    /// Observation times of the earliest and latest scans on it.
    pub observed: Option<(Timestamp, Timestamp)>,
}

impl std::fmt::Display for Coverage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.recorded {
            Some((first, last)) => write!(f, "The log holds positions 1 to {}, recorded {first} to {last}", self.head)?,
            None => f.write_str("The log is empty")?,
        }
        if let Some((first, last)) = self.observed {
            write!(f, "; its scans were observed {first} to {last}")?;
        }
        Ok(())
    }
}

impl AsOf {
    /// Parses a log position (digits) or an RFC 3339 time.
    pub fn parse(text: &str) -> Result<AsOf, ServiceError> {
        if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
            let seq =
                text.parse().map_err(|_| sv0_domain::InvalidInput::new(format!("log position {text} is too large")))?;
            return Ok(AsOf::Position(seq));
        }
        Ok(AsOf::Time(Timestamp::parse(text)?))
    }
}

/// What `replay_to_dir` wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplayReport {
    /// The last log position copied and folded.
    pub until: Seq,
    /// Tenants in the replay.
    pub tenants: usize,
}

impl<L: EventLog> Queries<L> {
    /// Views folded, in memory, from the log up to a point; returns the position reached.
    pub async fn replay(&self, as_of: AsOf) -> Result<(Seq, Views), ServiceError> {
        let until = self.position_of(as_of).await?;
        let views = Views::in_memory()?;
        let reached = views.catch_up(&self.log, Some(until)).await?;
        Ok((reached, views))
    }

    /// The log position an `as_of` names (the last event recorded at or before a time). "As
    /// of" is the log's recording time: what SV0 knew then, not when the scans were observed. A
    /// time before the log's first record, or a position that is not on the log, selects
    /// nothing and is refused, with what the log covers.
    pub async fn position_of(&self, as_of: AsOf) -> Result<Seq, ServiceError> {
        let head = self.log.head().await?;
        let refuse = |what: String, coverage: Coverage| {
            ServiceError::Input(sv0_domain::InvalidInput::new(format!(
                "{what}. {coverage}. `--as-of` and `--until` take the log's recording time (what SV0 \
                 knew when) or a log position, not the time a scan was observed"
            )))
        };
        match as_of {
            AsOf::Position(seq) if (1..=head).contains(&seq) => Ok(seq),
            AsOf::Position(seq) => Err(refuse(
                format!("log position {seq} is not on the log (positions 1 to {head})"),
                self.coverage().await?,
            )),
            AsOf::Time(time) => match self.log.seq_at(time.0).await? {
                0 => Err(refuse(
                    format!("{time} is before the log's first record: SV0 knew nothing then"),
                    self.coverage().await?,
                )),
                seq => Ok(seq),
            },
        }
    }

    /// What the log covers: its positions, their recording times, and the observation times
    /// of the scans on it.
    pub async fn coverage(&self) -> Result<Coverage, ServiceError> {
        let head = self.log.head().await?;
        let time_at = |seq: Seq| async move {
            Ok::<_, ServiceError>(self.log.read(seq, Some(seq), 1).await?.first().map(|r| Timestamp(r.recorded_at)))
        };
        let recorded = match (time_at(1).await?, time_at(head).await?) {
            (Some(first), Some(last)) if head > 0 => Some((first, last)),
            _ => None,
        };
        let mut observed: Option<(Timestamp, Timestamp)> = None;
        for tenant in self.views.tenants()? {
            for at in self.views.scans(&tenant)?.iter().filter_map(|s| s.observed_at) {
                observed = Some(observed.map_or((at, at), |(lo, hi)| (lo.min(at), hi.max(at))));
            }
        }
        Ok(Coverage { head, recorded, observed })
    }

    /// An audit replay of one tenant up to log position `until`: in-memory views folded from
    /// that tenant's subjects only (the work grows with the tenant's history, not the log's).
    pub async fn replay_tenant(&self, tenant: &TenantId, until: Seq) -> Result<Views, ServiceError> {
        let views = Views::in_memory()?;
        let prefix = format!("{tenant}.");
        views.catch_up_where(&self.log, Some(until), move |r: &sv0_log::Record| r.subject.starts_with(&prefix)).await?;
        Ok(views)
    }

    /// Writes an audit replay into the new directory `out`: the log's prefix up to `as_of`
    /// copied, positions and recording times kept, into an embedded log there, and views folded
    /// from it. Every read command then answers as of that moment with `--data-dir out`; the
    /// directory is marked read-only (`REPLAY.json`).
    pub async fn replay_to_dir(&self, as_of: AsOf, out: &Path) -> Result<ReplayReport, ServiceError> {
        let until = self.position_of(as_of).await?;
        if out.exists() && std::fs::read_dir(out).map(|mut d| d.next().is_some()).unwrap_or(true) {
            return Err(ServiceError::Input(sv0_domain::InvalidInput::new(format!(
                "{} is not empty: a replay needs a new directory",
                out.display()
            ))));
        }
        let data_dir = DataDir::create(out)?;
        let copy = EmbeddedLog::open(data_dir.log_path())?;
        let mut from = 1;
        let mut last_time = None;
        while from <= until {
            let records = self.log.read(from, Some(until), 1024).await?;
            let Some(last) = records.last() else { break };
            from = last.seq + 1;
            last_time = Some(last.recorded_at);
            copy.import_records(&records)?;
        }
        let replay = Service::open_with(data_dir, copy).await?.without_sealing();
        let reached = replay.catch_up().await?;
        let marker = serde_json::json!({
            "replay_of": self.log.identity().await?,
            "until_position": reached,
            "until_recorded_at": last_time.map(|t| Timestamp(t).to_rfc3339()),
            "note": "an audit replay written by sv0 replay: read-only",
        });
        let path = replay.data_dir.replay_marker();
        std::fs::write(&path, serde_json::to_vec_pretty(&marker)?)
            .map_err(|source| ServiceError::Write { path, source })?;
        Ok(ReplayReport { until: reached, tenants: replay.views.tenants()?.len() })
    }
}

impl<L: EventLog> Service<L> {
    /// Replaces the views with the log's prefix up to `as_of`, folded in memory, for the rest
    /// of this service's life: every query then answers as of that point (and nothing is
    /// sealed). Returns the position reached.
    pub async fn travel_to(&mut self, as_of: AsOf) -> Result<Seq, ServiceError> {
        let (reached, views) = self.replay(as_of).await?;
        self.queries.views = views;
        self.sealing = false;
        Ok(reached)
    }

    /// Refolds the views from an empty database and swaps them in.
    pub async fn rebuild(&mut self) -> Result<Seq, ServiceError> {
        let fresh_path = self.data_dir.root().join("views.rebuild.redb");
        let _ = std::fs::remove_file(&fresh_path);
        let fresh = Views::open(&fresh_path)?;
        fresh.bind_log(&self.log.identity().await?)?;
        fresh.bind_shard(self.views.shard()?.as_ref())?;
        let reached = fresh.catch_up(&self.log, None).await?;
        std::fs::rename(&fresh_path, self.data_dir.views_path())
            .map_err(|source| ServiceError::Write { path: self.data_dir.views_path(), source })?;
        fresh.renamed(&self.data_dir.views_path());
        // The fresh handle keeps the renamed file open and locked; the old file is unlinked.
        self.queries.views = fresh;
        info!(reached, "views rebuilt from the log");
        Ok(reached)
    }
}
