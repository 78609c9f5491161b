//! The PSN web client: sign-in, token store, parties, push, customMessage, rtcBridge.
//! No OBS types; usable and tested without libobs (against tools/psn-sim).

pub mod auth;
pub mod bridge;
pub mod client;
pub mod config;
pub mod custom_message;
pub mod error;
pub mod http;
pub mod push;
pub mod secret;
pub mod session;
pub mod token_store;
pub mod trace;

pub use client::{ClientOptions, PsnClient};
pub use config::{Endpoints, PsnConfig};
pub use error::{PsnError, Result};
pub use secret::Secret;
