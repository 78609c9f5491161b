//! The party hub: one per module, shared by every source. It will tie the PSN
//! client (sign-in, party, push), the voice peers and the playout together;
//! today it owns the playout clock that feeds the sources.

pub mod hub;
