//! The server version gate: SV0 refuses a server that lacks what it relies on, rather than
//! trusting a server that would silently ignore it.

use std::fmt;

/// A nats-server version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ServerVersion {
    /// Major.
    pub major: u32,
    /// Minor.
    pub minor: u32,
    /// Patch.
    pub patch: u32,
}

impl ServerVersion {
    /// Oldest server for a single-node log: direct gets and per-subject expected sequences
    /// (2.9.0).
    pub const MIN_SINGLE: ServerVersion = ServerVersion { major: 2, minor: 9, patch: 0 };
    /// Oldest server for a replicated log. Before 2.9.21 two concurrent publishes with the same
    /// `Nats-Expected-Last-Subject-Sequence` could both succeed on a clustered stream
    /// (nats-server #4320), which would fork a pack chain; until August 2024 (PR #5794, after
    /// 2.10.18) an expectation of 0 ("no event yet") could desynchronise replicas (#5644).
    pub const MIN_CLUSTERED: ServerVersion = ServerVersion { major: 2, minor: 10, patch: 20 };

    /// Parses `2.15.1`, `v2.10.20`, `2.11.0-beta.1` (the pre-release is ignored).
    pub fn parse(text: &str) -> Option<ServerVersion> {
        let text = text.trim().trim_start_matches('v');
        let core = text.split(['-', '+']).next()?;
        let mut parts = core.split('.').map(|p| p.parse::<u32>().ok());
        Some(ServerVersion { major: parts.next()??, minor: parts.next()??, patch: parts.next().flatten().unwrap_or(0) })
    }

    /// Whether this server can hold SV0's log with `replicas` replicas; the reason if not.
    pub fn check(&self, replicas: usize) -> Result<(), String> {
        if *self < Self::MIN_SINGLE {
            return Err(format!(
                "SV0 needs nats-server {} or newer (direct gets, per-subject expected sequences)",
                Self::MIN_SINGLE
            ));
        }
        if replicas > 1 && *self < Self::MIN_CLUSTERED {
            return Err(format!(
                "a replicated log needs nats-server {} or newer: older servers could accept two \
                 concurrent publishes with the same expected sequence (nats-server #4320) or \
                 desynchronise replicas on an expectation of 0 (#5644). Use a single node with \
                 replicas 1, or upgrade",
                Self::MIN_CLUSTERED
            ));
        }
        Ok(())
    }
}

impl fmt::Display for ServerVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

#[cfg(test)]
mod tests {
    use super::ServerVersion;

    fn v(text: &str) -> ServerVersion {
        ServerVersion::parse(text).unwrap()
    }

    #[test]
    fn versions_parse_and_gate() {
        assert_eq!(v("2.15.1"), ServerVersion { major: 2, minor: 15, patch: 1 });
        assert_eq!(v("v2.10.20-beta.3"), ServerVersion { major: 2, minor: 10, patch: 20 });
        assert!(ServerVersion::parse("garbage").is_none());
        assert!(v("2.9.10").check(1).is_ok(), "Debian's 2.9 works for a single node");
        assert!(v("2.9.10").check(3).is_err(), "but not for a cluster");
        assert!(v("2.8.4").check(1).is_err());
        assert!(v("2.10.20").check(3).is_ok());
        assert!(v("2.15.1").check(3).is_ok());
    }
}
