//! Who may do what through the API: roles, and what each permits.
//!
//! A token belongs to one tenant and carries one or more roles. Each route needs one
//! `Permission`; `Role::permits` is the whole policy, so the route matrix test and the
//! OpenAPI document read it from one place.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::InvalidInput;

/// A role a token carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Reads paths, findings, scopes, baselines, deltas, scans and signals.
    Viewer,
    /// A viewer who also pushes scans, triggers syncs and acknowledges findings.
    Analyst,
    /// A viewer who also records approvals (as themself) and acknowledges findings.
    Approver,
    /// Reads everything of the tenant, evidence included: packs, proofs, keys.
    Auditor,
    /// Everything but approving: tokens, keys, configuration, scans, evidence.
    Admin,
    /// A CI pipeline: reads the posture and triggers syncs (the deployment's scan), but cannot
    /// push snapshots of its own.
    Pipeline,
}

/// What a route needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Permission {
    /// Read the posture: paths, findings, scopes, baselines, deltas, scans, signals.
    Read,
    /// Push a scan (a snapshot the caller made).
    Scan,
    /// Trigger a sync: SV0 reads the tenant itself.
    Sync,
    /// Record an approval.
    Approve,
    /// Accept open findings until a date (triage).
    Acknowledge,
    /// Read evidence: packs, proofs, checkpoints, keys.
    Evidence,
    /// Manage tokens, keys and configuration.
    Administer,
}

impl Role {
    /// Every role, in order.
    pub const ALL: [Role; 6] =
        [Role::Viewer, Role::Analyst, Role::Approver, Role::Auditor, Role::Admin, Role::Pipeline];

    /// The role's name.
    pub fn name(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Analyst => "analyst",
            Role::Approver => "approver",
            Role::Auditor => "auditor",
            Role::Admin => "admin",
            Role::Pipeline => "pipeline",
        }
    }

    /// Whether the role grants `permission`. Approving is the approver's alone: an admin who
    /// may issue tokens cannot also sign off a deployment.
    pub fn permits(self, permission: Permission) -> bool {
        match permission {
            Permission::Read => true,
            Permission::Scan => matches!(self, Role::Analyst | Role::Admin),
            Permission::Sync => matches!(self, Role::Analyst | Role::Admin | Role::Pipeline),
            Permission::Approve => self == Role::Approver,
            Permission::Acknowledge => matches!(self, Role::Analyst | Role::Approver),
            Permission::Evidence => matches!(self, Role::Auditor | Role::Admin),
            Permission::Administer => self == Role::Admin,
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Role {
    type Err = InvalidInput;

    fn from_str(text: &str) -> Result<Role, InvalidInput> {
        Role::ALL.into_iter().find(|r| r.name() == text).ok_or_else(|| {
            InvalidInput::new(format!(
                "unknown role {text:?}: expected one of {}",
                Role::ALL.map(Role::name).join(", ")
            ))
        })
    }
}
