//! The WebRTC connection to one member, behind a small trait of our own (filled in later).
