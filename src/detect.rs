//! PLACEHOLDER until the detector lands.
use jiff::SignedDuration;
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Threshold { pub count: u32, pub window: SignedDuration, pub by: Option<String>, pub distinct: Option<String> }
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Policy { pub threshold: Option<Threshold>, pub cooldown: SignedDuration }
