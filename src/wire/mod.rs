//! The wire: everything about the bytes between a sender and a receiver, and nothing about
//! cameras, codecs or windows.
//!
//! - [`protocol`]: the messages and their bincode bytes (no I/O), each message's fields typed
//!   in [`messages`]; [`stream`]: what a stream's hello promises about its frames. The README documents every byte.
//! - [`connection`]: messages over any `Read`/`Write`: the `u64` length prefix, reused buffers,
//!   lengths capped before allocating, a clean close told apart from a cut.
//! - [`secure`]: the pairing code, SPAKE2, the keys, sealing and opening (bytes only).
//! - [`handshake`]: hellos and pairing, written once for both programs and the tests;
//!   [`session`]: what a connection is after it, frames one way and acks the other.
//! - [`sniff`]: what a connection is from its first byte (camstream, TLS, HTTP), so one port
//!   serves them all; [`http`] (request heads, credentials, response heads), [`tls`] (the
//!   certificate, session tokens) and [`web`] (the page's WebSocket messages) are the web
//!   side's bytes.

pub mod connection;
pub mod handshake;
pub mod http;
pub mod messages;
pub mod protocol;
pub mod secure;
pub mod session;
pub mod sniff;
pub mod stream;
pub mod tls;
pub mod web;
