//! Where an input stands in one file: the file's identity and how far it has
//! been read. The store persists these in the same transaction as the
//! incidents they produced, so a restart resumes exactly after the last line
//! whose incidents are stored.

use serde::{Deserialize, Serialize};

/// Bytes at the start of a file hashed into its fingerprint. A reused inode
/// (delete, then create) almost never starts with the same bytes as the file
/// that had it before.
pub const FINGERPRINT_BYTES: u64 = 1024;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileCheckpoint {
    /// Name of the configured input the file belongs to.
    pub input: String,
    /// Last path the file was seen under (informational after a rotation:
    /// identity, not name, is what matches a file on restart).
    pub path: String,
    pub dev: u64,
    pub ino: u64,
    /// How many leading bytes `fingerprint` covers: fewer than
    /// [`FINGERPRINT_BYTES`] while the file is shorter than that.
    pub fingerprint_len: u64,
    /// SHA-256 of the first `fingerprint_len` bytes.
    pub fingerprint: [u8; 32],
    /// Byte offset just past the last complete line handed to the pipeline.
    pub offset: u64,
}
