//! Typed payloads of every frame type, grouped by the part of the conversation they belong to.

pub(crate) mod cancel_reason;
pub(crate) mod control;
pub(crate) mod decision;
pub(crate) mod events;
pub(crate) mod registration;
