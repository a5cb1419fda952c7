//! Where lines come from: reading files in chunks of whole lines, following
//! files as they grow ([`tail`], woken by [`watch`]), and recognising which
//! log format a file holds.

pub mod checkpoint;
pub mod lines;
pub mod sniff;
pub mod tail;
pub mod watch;
