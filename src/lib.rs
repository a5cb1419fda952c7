//! canhgac: a log-based cyber incident monitor.
//!
//! Data flows one way: inputs → matcher ([`rules`]) → detector ([`detect`]) → store.

pub mod category;
pub mod detect;
pub mod duration;
pub mod event;
pub mod input;
pub mod rules;
pub mod scan;
pub mod store;
pub mod timestamp;
