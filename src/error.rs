//! The crate's top-level error: what can stop a command, wrapping each layer's own
//! error type, and the exit code each kind maps to.
//!
//! Failures of a single connection never reach this type; the role modules log them
//! and carry on. What ends up here stops the whole process.

use std::net::SocketAddr;

use crate::config::ConfigError;
use crate::keys::KeyError;

/// An error that ends a command.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The settings are unusable.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A key file could not be read, written or used.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// A listening socket could not be opened.
    #[error("cannot listen on {addr}: {source}{hint}", hint = bind_hint(source))]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// What the system said.
        source: std::io::Error,
    },
    /// The demo found a problem; the message says which check failed.
    #[error("demo failed: {0}")]
    Demo(String),
    /// Any other I/O failure of the process itself.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// What the system said.
        source: std::io::Error,
    },
}

impl Error {
    /// Process exit code: 3 for settings, keys and listen addresses the user must fix,
    /// 1 for failures at run time. (Command-line syntax errors exit with 2, from clap.)
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Config(_) | Error::Key(_) | Error::Bind { .. } => 3,
            Error::Demo(_) | Error::Io { .. } => 1,
        }
    }
}

fn bind_hint(err: &std::io::Error) -> &'static str {
    match err.kind() {
        std::io::ErrorKind::AddrInUse => {
            "; another process holds this port: stop it or choose another port"
        }
        std::io::ErrorKind::PermissionDenied => {
            "; ports below 1024 need privileges: choose a higher port"
        }
        std::io::ErrorKind::AddrNotAvailable => "; no interface has this address",
        _ => "",
    }
}
