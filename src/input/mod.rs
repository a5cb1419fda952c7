//! Where lines come from. Every kind of input is a [`source::Source`]:
//! files followed as they grow ([`tail`], woken by [`watch`]), the systemd
//! journal ([`journal`]) and syslog receivers ([`syslog`]). Also: reading
//! files in chunks of whole lines, and recognising which log format a file
//! holds.

pub use tail::checkpoint;
pub mod combined;
pub mod journal;
pub mod json_access;
pub mod lines;
pub mod shape;
pub mod sniff;
pub mod source;
pub mod syslog;
pub mod tail;
pub mod types;
pub mod w3c;
pub mod watch;
