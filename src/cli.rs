//! The command line as the user types it: clap derive types and nothing else.
//!
//! Every option can also come from an environment variable named `TUNNEL_<OPTION>`,
//! which is how containers configure the tool. Values are parsed into plain types
//! here; checking them against each other, loading key files and applying limits
//! belongs to [`crate::config`].

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::crypto::CipherSuite;

/// Encrypted, mutually authenticated TCP port forwarder.
#[derive(Debug, Parser)]
#[command(name = "tunnel", version, about, propagate_version = true)]
pub struct Cli {
    /// What to run.
    #[command(subcommand)]
    pub command: Command,

    /// Log settings shared by every command.
    #[command(flatten)]
    pub log: LogArgs,

    /// Worker threads that run connections; 0 picks half the CPUs, at least one.
    #[arg(long, global = true, env = "TUNNEL_THREADS", default_value_t = 0,
          allow_negative_numbers = true,
          value_parser = clap::value_parser!(u16).range(0..=1024))]
    pub threads: u16,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Listen for plaintext connections and carry each one to a `tunnel remote`.
    Local(LocalArgs),
    /// Accept tunnels from `tunnel local` and relay them to the target service.
    Remote(RemoteArgs),
    /// Write a new RSA key pair (PKCS#8 private key, SPKI public key at PATH.pub).
    Keygen(KeygenArgs),
    /// Print the fingerprint of each public or private key file.
    Fingerprint(FingerprintArgs),
    /// Run a complete tunnel on loopback with throwaway keys and check every byte.
    Demo(DemoArgs),
}

/// Options of `tunnel local`.
#[derive(Debug, Args)]
pub struct LocalArgs {
    /// Forwarding rule [BIND:]PORT:HOST:PORT: listen on BIND:PORT (bind defaults to
    /// 127.0.0.1) and carry connections to the tunnel remote at HOST:PORT. Repeat for
    /// more listeners; IPv6 literals go in brackets, e.g. [::1]:8080:[2001:db8::1]:9000.
    #[arg(long, env = "TUNNEL_FORWARD", value_delimiter = ',', required = true)]
    pub forward: Vec<String>,

    /// This side's RSA private key (PEM file).
    #[arg(long, env = "TUNNEL_KEY", value_name = "FILE")]
    pub key: PathBuf,

    /// The remote's public key, pinned: a PEM public key file, a SHA256:... fingerprint,
    /// or the whole line `tunnel fingerprint` printed.
    #[arg(long, env = "TUNNEL_REMOTE_KEY", value_name = "FILE|FINGERPRINT")]
    pub remote_key: String,

    /// Tunnels kept connected and handshaken ahead of clients, per forward, so a new
    /// client needs no extra round trip; 0 dials on demand only.
    #[arg(long, env = "TUNNEL_POOL", default_value_t = crate::config::DEFAULT_POOL_SIZE as u16,
          allow_negative_numbers = true,
          value_parser = clap::value_parser!(u16).range(0..=256))]
    pub pool: u16,

    /// Shared options.
    #[command(flatten)]
    pub common: CommonArgs,
}

/// Options of `tunnel remote`.
#[derive(Debug, Args)]
pub struct RemoteArgs {
    /// Address to accept tunnels on.
    #[arg(long, env = "TUNNEL_LISTEN", default_value = "0.0.0.0:9000")]
    pub listen: SocketAddr,

    /// The service every tunnel is relayed to, as HOST:PORT; the name is resolved for
    /// each new connection.
    #[arg(long, env = "TUNNEL_TARGET", value_name = "HOST:PORT")]
    pub target: String,

    /// This side's RSA private key (PEM file).
    #[arg(long, env = "TUNNEL_KEY", value_name = "FILE")]
    pub key: PathBuf,

    /// File listing the local-side keys accepted: PEM public keys and/or SHA256:...
    /// fingerprint lines; `#` comments and blank lines are allowed.
    #[arg(long, env = "TUNNEL_AUTHORIZED_KEYS", value_name = "FILE")]
    pub authorized_keys: PathBuf,

    /// Shared options.
    #[command(flatten)]
    pub common: CommonArgs,
}

/// Options both roles take.
#[derive(Debug, Args)]
pub struct CommonArgs {
    /// Allowed ciphers. The remote picks the first of its list that the local also
    /// allows. Without it both are allowed and AES-256-GCM is chosen only when both
    /// sides have AES hardware.
    #[arg(long, env = "TUNNEL_CIPHERS", value_delimiter = ',', value_parser = parse_suite)]
    pub ciphers: Vec<CipherSuite>,

    /// Time allowed for the whole handshake, e.g. 10s.
    #[arg(long, env = "TUNNEL_HANDSHAKE_TIMEOUT", default_value = "10s",
          value_parser = parse_duration)]
    pub handshake_timeout: Duration,

    /// Time allowed for an outgoing TCP connect (to the remote, or to the target).
    #[arg(long, env = "TUNNEL_CONNECT_TIMEOUT", default_value = "10s",
          value_parser = parse_duration)]
    pub connect_timeout: Duration,

    /// A connection with no traffic either way for this long is closed; 0 disables.
    #[arg(long, env = "TUNNEL_IDLE_TIMEOUT", default_value = "15m",
          value_parser = parse_duration)]
    pub idle_timeout: Duration,

    /// Most connections open at once; further clients wait in the listen backlog.
    #[arg(long, env = "TUNNEL_MAX_CONNECTIONS", default_value_t = 1024,
          allow_negative_numbers = true,
          value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub max_connections: u32,

    /// On SIGTERM or Ctrl-C, time given to open connections to finish before they are cut.
    #[arg(long, env = "TUNNEL_SHUTDOWN_GRACE", default_value = "10s",
          value_parser = parse_duration)]
    pub shutdown_grace: Duration,
}

/// Options of `tunnel keygen`.
#[derive(Debug, Args)]
pub struct KeygenArgs {
    /// Where to write the private key; the public key goes to PATH.pub.
    #[arg(
        short,
        long,
        env = "TUNNEL_KEYGEN_OUTPUT",
        default_value = "tunnel.pem"
    )]
    pub output: PathBuf,

    /// RSA modulus size in bits (2048 to 8192).
    #[arg(long, env = "TUNNEL_KEYGEN_BITS", default_value_t = crate::keys::DEFAULT_RSA_BITS,
          allow_negative_numbers = true)]
    pub bits: usize,

    /// Overwrite existing files.
    #[arg(long)]
    pub force: bool,
}

/// Options of `tunnel fingerprint`.
#[derive(Debug, Args)]
pub struct FingerprintArgs {
    /// Key files (PEM, public or private).
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
}

/// Options of `tunnel demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Bytes pushed through the tunnel each way, per cipher.
    #[arg(long, default_value_t = 64 * 1024 * 1024)]
    pub bytes: u64,
}

/// Logging options.
#[derive(Debug, Args)]
pub struct LogArgs {
    /// Log line format.
    #[arg(long, global = true, env = "TUNNEL_LOG_FORMAT", default_value = "text")]
    pub log_format: LogFormat,

    /// Where log lines go.
    #[arg(
        long,
        global = true,
        env = "TUNNEL_LOG_OUTPUT",
        default_value = "stderr"
    )]
    pub log_output: LogOutput,

    /// More detail (-v debug, -vv trace); overrides RUST_LOG.
    #[arg(short, long, global = true, action = clap::ArgAction::Count, conflicts_with = "quiet")]
    pub verbose: u8,

    /// Less detail (-q warnings only, -qq errors only); overrides RUST_LOG.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub quiet: u8,
}

/// Log line formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

/// Log destinations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogOutput {
    /// Standard error.
    Stderr,
    /// Standard output (container log drivers read either).
    Stdout,
}

fn parse_suite(text: &str) -> Result<CipherSuite, String> {
    text.parse()
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text)
        .map_err(|err| format!("{err}; write a duration such as 500ms, 10s or 5m"))
}
