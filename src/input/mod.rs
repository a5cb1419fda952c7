//! Where lines come from: reading files in chunks of whole lines, and
//! recognising which log format a file holds. (Tailing joins later.)

pub mod checkpoint;
pub mod lines;
pub mod sniff;
