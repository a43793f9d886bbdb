//! The kit every controller shares, so each controller folder holds only its own
//! steps (dereference → validate → build → apply → status): conditions, Events,
//! the status write, server-side apply of owned objects, finalizers, the reads
//! of references more than one controller makes, and the typed reason a spec
//! is invalid.

pub mod apply;
pub mod conditions;
pub mod events;
pub mod finalizers;
pub mod invalid;
pub mod references;
pub mod status;

pub use conditions::Computed;
pub use events::{publish, publish_transitions, report_malformed};
pub use invalid::{Invalid, InvalidReason};
pub use status::{ReconciledKind, write_status};
