//! Log setup: one tracing subscriber for the process, text or JSON, to stderr or
//! stdout, level from `-v`/`-q` or else `RUST_LOG` (default `info`).
//!
//! What is logged, and at which level, is decided where events happen; this module
//! only decides how lines look and where they go.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

use crate::cli::{LogArgs, LogFormat, LogOutput};

/// Installs the global subscriber. Call once, before anything logs.
pub fn init(args: &LogArgs) {
    let filter = match (args.verbose, args.quiet) {
        (0, 0) => EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        (1, _) => EnvFilter::new("debug"),
        (_, 0) => EnvFilter::new("trace"),
        (_, 1) => EnvFilter::new("warn"),
        _ => EnvFilter::new("error"),
    };
    let to_stdout = args.log_output == LogOutput::Stdout;
    let ansi = if to_stdout {
        std::io::stdout().is_terminal()
    } else {
        std::io::stderr().is_terminal()
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi);
    match (args.log_format, to_stdout) {
        (LogFormat::Text, false) => builder.with_writer(std::io::stderr).init(),
        (LogFormat::Text, true) => builder.with_writer(std::io::stdout).init(),
        (LogFormat::Json, false) => builder.json().with_writer(std::io::stderr).init(),
        (LogFormat::Json, true) => builder.json().with_writer(std::io::stdout).init(),
    }
}
