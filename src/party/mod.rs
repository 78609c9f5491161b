//! The party hub: one per module, shared by every source. It ties the PSN
//! client (sign-in, party, push), the voice peers and the playout together.

pub mod bridge_link;
pub mod cause;
pub mod credentials;
pub mod feed;
pub mod follower;
pub mod gates;
pub mod hub;
pub mod pipeline;
pub mod presence;
pub mod settings;
pub mod signal_filter;
pub mod signalling;
pub mod status;
mod views;
pub mod voice_links;
