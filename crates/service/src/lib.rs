//! The command side and the queries of SV0, shared by the CLI and the API.
//!
//! `Queries` answers every read over a log and its views (cheap to clone, never waits for a
//! command); `Service` holds one and is the command side: `import_snapshot` validates a
//! snapshot and appends its scan events; `approve` records an approval with the posture it locks; `sync` catches the views up
//! and has the signer seal every new assessment into the tenant's pack chain; `delta`, `paths`,
//! `findings` answer from the views; `replay` folds the log up to a position or time in memory;
//! `verify` checks the recorded chains; `export_packs` writes them for offline verification.
//! `set_policy` and `release_scan` record a tenant's policy and the release of a scan a deletion
//! breaker held. `DataDir` knows where an installation keeps its files.

pub mod data_dir;
pub mod error;
mod governance;
pub mod import;
pub mod keys;
pub mod opengraph;
pub mod review;
pub mod scopes;
mod service;
pub mod signals;
pub mod timestamping;
pub mod tokens;
pub mod transparency;
mod verify;
pub mod whatif;

pub use data_dir::DataDir;
pub use error::ServiceError;
pub use governance::PolicyReport;
pub use service::{
    Approval, ApprovalPlan, ApprovalReport, AsOf, Coverage, DeltaReport, ImportReport, Posture, Queries, ReplayReport,
    Reviewed, Service, pack_event,
};
pub use verify::{ChainVerdict, Freshness, LogVerdict, VerifyMode};
