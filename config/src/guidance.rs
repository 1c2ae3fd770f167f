//! `[guidance]`: what the refusal pages and `/.spinegate/whoami` tell people — the deployment's
//! organisation, who to contact, per-reason wording and template overrides — as written and
//! validated, and the page-text rules ([`placeholders`]) the gateway's built-in wording follows
//! too. The section lives in `src/section/guidance.rs`; this module gives it its public name.

pub use crate::section::guidance::{
    CONTACTS, Contact, ContactKind, DEFAULT_WHOAMI_PATH, Guidance, PLACEHOLDERS, PageText, RawContact, RawGuidance,
    RawPage, placeholders,
};
