//! `tunnel`: an encrypted, mutually authenticated TCP port forwarder.
//!
//! Two roles share one binary. The **local** role listens for plaintext clients
//! and, for each one, opens a TCP connection to the **remote** role, which relays
//! it to a fixed target service:
//!
//! ```text
//! client --plain--> local ==records==> remote --plain--> target
//! ```
//!
//! Every tunnel connection starts with a handshake ([`handshake`]) in which both
//! sides sign the transcript with their RSA keys, agree on a fresh X25519 secret
//! and choose a cipher ([`crypto`]). After it, bytes travel as length-prefixed AEAD
//! records ([`record`]) moved by the relay ([`relay`]), which keeps half-close and
//! backpressure. The roles ([`local`], [`remote`]) own sockets, timeouts and
//! logging; [`net`] has the accept loop and connect helper they share, and
//! [`shutdown`] the graceful stop.
//!
//! Settings flow from [`cli`] (raw arguments) through [`config`] (validated, keys
//! loaded) to the roles; [`commands`] dispatches, [`keys`] reads and writes key
//! files, [`demo`] runs everything on loopback, and [`error`] is the top-level
//! error with its exit codes. The wire protocol is specified in `docs/PROTOCOL.md`.

pub mod cli;
pub mod commands;
pub mod config;
pub mod crypto;
pub mod demo;
pub mod error;
pub mod handshake;
pub mod keys;
pub mod local;
pub mod logging;
pub mod net;
pub mod pool;
pub mod record;
pub mod relay;
pub mod remote;
pub mod shutdown;
