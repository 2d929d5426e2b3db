//! tunnel
pub mod crypto;
pub mod handshake;
pub mod keys;
pub mod record;
