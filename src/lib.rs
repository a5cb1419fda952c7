//! canhgac: a log-based cyber incident monitor.
//!
//! Data flows one way: inputs → matcher ([`rules`]) → detector ([`detect`]) → store
//! → (with `[forward]`) the national center's NATS ([`forward`], [`broker`]).

pub mod admission;
pub mod analyze;
pub mod auth;
pub mod broker;
pub mod category;
pub mod center;
pub mod client;
pub mod config;
pub mod daemon;
pub mod detect;
pub mod duration;
pub mod event;
pub mod feeds;
pub mod forms;
pub mod forward;
pub mod http;
mod ids;
pub mod import;
pub mod input;
pub mod integrity;
pub mod logging;
pub mod metrics;
pub mod months;
pub mod network;
pub mod output;
pub mod position;
pub mod report;
pub mod rules;
pub mod scan;
pub mod secret;
pub mod spreadsheet;
pub mod store;
pub mod summary;
pub mod timestamp;
pub mod tls;
pub mod visible;
