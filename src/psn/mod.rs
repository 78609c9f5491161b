//! The PSN web client: sign-in, token store, parties, push, customMessage, rtcBridge.
//! No OBS types; usable and tested without libobs (against tools/psn-sim).
//!
//! How the party hub is meant to drive it (docs/protocol.md has the wire details):
//!
//! ```ignore
//! let config = PsnConfig::from_sources(&settings, &|k| std::env::var(k).ok(), Some(&config_dir))?;
//! let client = PsnClient::new(config, ClientOptions::default())?;      // loads stored tokens
//! client.ensure_signed_in().await?;          // or client.sign_in_with_npsso(npsso_from_ui)
//! let party = party_api::PartyApi::new(client.clone());
//! let mine = party.find_my_party().await?;   // the party the user is in on a console
//! party.join(&mine.session_id).await?;
//! let (push, mut events) = push::PushClient::start(party.clone(), Some(mine.session_id.clone()), Default::default());
//! while let Some(ev) = events.recv().await {
//!     // MembersJoined / MembersLeft / CustomMessage (custom_message::decode_payload) / PartyDeleted ...
//!     // After Connected following Disconnected, re-read the roster once: events in the gap are lost.
//! }
//! party.leave(&mine.session_id).await?;
//! ```
//! Every error is a [`PsnError`] whose `Display` tells the user what to do.

pub mod auth;
pub mod bridge;
pub mod client;
pub mod config;
pub mod custom_message;
pub mod error;
pub mod http;
pub mod log_mask;
pub mod model;
pub mod party_api;
pub mod profile;
pub mod push;
pub mod secret;
pub mod token_store;
pub mod trace;

pub use client::{ClientOptions, PsnClient};
pub use config::{Endpoints, PsnConfig};
pub use error::{PsnError, Result};
pub use secret::Secret;
