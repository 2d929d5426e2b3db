//! Validated settings for each role, built from the raw command line.
//!
//! This module owns every default and limit the roles run with, the parsing of
//! forwarding rules and `HOST:PORT` values, and the loading of key files named on
//! the command line. What it returns is ready to run: addresses parsed, keys
//! loaded and checked, cipher list non-empty. Listening and relaying belong to
//! [`crate::local`] and [`crate::remote`].

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use crate::cli::{CommonArgs, LocalArgs, RemoteArgs};
use crate::crypto::CipherPolicy;
use crate::handshake::DEFAULT_HANDSHAKE_TIMEOUT;
use crate::keys::{self, AuthorizedKeys, Fingerprint, KeyError, PrivateKey};

/// Errors in the settings, reported before anything listens.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A `--forward` rule could not be parsed.
    #[error(
        "--forward {spec:?}: {reason}; write [BIND:]PORT:HOST:PORT, e.g. 8080:remote.example:9000"
    )]
    Forward {
        /// The rule as given.
        spec: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A `HOST:PORT` value could not be parsed.
    #[error("{option} {value:?}: {reason}; write HOST:PORT, e.g. db.internal:5432 or [::1]:5432")]
    HostPort {
        /// The option it was given to.
        option: &'static str,
        /// The value as given.
        value: String,
        /// What is wrong with it.
        reason: String,
    },
    /// An option's value is out of range.
    #[error("{option}: {reason}")]
    Value {
        /// The option.
        option: &'static str,
        /// What is wrong and what to write instead.
        reason: String,
    },
    /// The cipher list is empty.
    #[error("--ciphers: {0}")]
    Ciphers(String),
    /// A key file, or the pin, given to an option could not be used.
    #[error("{option} {source}")]
    Key {
        /// The option the key was given to.
        option: &'static str,
        /// What is wrong with it.
        source: KeyError,
    },
}

/// Tags a key error with the option whose value caused it.
fn key_error(option: &'static str) -> impl FnOnce(KeyError) -> ConfigError {
    move |source| ConfigError::Key { option, source }
}

/// A host name or address literal with a port, resolved when a connection is made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPort {
    /// Host name or IP literal (without brackets).
    pub host: String,
    /// TCP port.
    pub port: u16,
}

impl HostPort {
    /// Parses `HOST:PORT`, with IPv6 literals in brackets.
    ///
    /// # Errors
    /// A reason string when the host is empty, brackets do not match or the port is
    /// not a number from 1 to 65535.
    pub fn parse(text: &str) -> Result<Self, String> {
        let (host, port) = text.rsplit_once(':').ok_or("no port given")?;
        let port = parse_port(port)?;
        let host = unbracket(host)?;
        Ok(Self {
            host: host.to_string(),
            port,
        })
    }
}

impl fmt::Display for HostPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// One forwarding rule of the local role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Forward {
    /// Where plaintext clients connect.
    pub bind: SocketAddr,
    /// The `tunnel remote` their connections are carried to.
    pub remote: HostPort,
}

impl Forward {
    /// Parses `[BIND:]PORT:HOST:PORT`; BIND defaults to 127.0.0.1 so a forward is not
    /// exposed to the network unless asked for.
    ///
    /// # Errors
    /// [`ConfigError::Forward`] naming the rule and the part that is wrong.
    pub fn parse(spec: &str) -> Result<Self, ConfigError> {
        let error = |reason: String| ConfigError::Forward {
            spec: spec.into(),
            reason,
        };
        // Lists from the environment are split on commas; allow spaces after them.
        let spec = spec.trim();
        if spec.is_empty() {
            return Err(error("empty rule (a stray comma in the list?)".into()));
        }
        if spec.matches('[').count() != spec.matches(']').count() {
            return Err(error("unmatched bracket".into()));
        }
        if !spec.contains('[') && spec.matches(':').count() > 3 {
            return Err(error(
                "put IPv6 addresses in brackets, e.g. [::1]:8080".into(),
            ));
        }
        let (front, remote_port) = spec
            .rsplit_once(':')
            .ok_or_else(|| error("too few parts".into()))?;
        let remote_port = parse_port(remote_port).map_err(|r| error(format!("remote {r}")))?;
        let (front, remote_host) = split_last_host(front).map_err(error)?;
        let (bind_ip, bind_port) = match front.rsplit_once(':') {
            Some((bind, port)) => (parse_bind(bind).map_err(error)?, port),
            None => (IpAddr::V4(Ipv4Addr::LOCALHOST), front),
        };
        let bind_port = bind_port.parse::<u16>().map_err(|_| {
            error(format!(
                "listen port {bind_port:?} is not a number from 0 to 65535"
            ))
        })?;
        Ok(Self {
            bind: SocketAddr::new(bind_ip, bind_port),
            remote: HostPort {
                host: remote_host.into(),
                port: remote_port,
            },
        })
    }
}

/// Bounds and timeouts shared by both roles.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Whole-handshake deadline, counted from accept (remote) or connect (local).
    pub handshake_timeout: Duration,
    /// Deadline for an outgoing TCP connect, name resolution included.
    pub connect_timeout: Duration,
    /// A relay with no bytes either way for this long is closed; `None` never closes.
    pub idle_timeout: Option<Duration>,
    /// Most connections served at once; more wait in the kernel's listen backlog.
    pub max_connections: usize,
    /// Time open connections get to finish after a stop signal before they are cut.
    pub shutdown_grace: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            idle_timeout: Some(DEFAULT_IDLE_TIMEOUT),
            max_connections: DEFAULT_MAX_CONNECTIONS,
            shutdown_grace: DEFAULT_SHUTDOWN_GRACE,
        }
    }
}

/// Default deadline for an outgoing connect: long enough for a slow resolver, short
/// enough that a client is not left hanging on a dead host.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Default idle timeout: closes connections abandoned by a vanished peer without
/// cutting ordinary pauses in interactive use.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(15 * 60);

/// Default connection limit per role. A connection moving data both ways holds at
/// most about 290 KiB of relay buffers (one record each way, the inbound one with
/// 16 KiB to spare) and an idle one none, so the default bounds relay buffers near
/// 290 MiB.
pub const DEFAULT_MAX_CONNECTIONS: usize = 1024;

/// Default grace period at shutdown.
pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Everything the local role needs.
#[derive(Debug, Clone)]
pub struct LocalConfig {
    /// Listeners and where each one's connections go.
    pub forwards: Vec<Forward>,
    /// Our identity.
    pub key: Arc<PrivateKey>,
    /// The only remote key accepted.
    pub remote_pin: Fingerprint,
    /// Ciphers we offer.
    pub ciphers: CipherPolicy,
    /// Tunnels kept connected and handshaken ahead of clients, per forward.
    pub pool: usize,
    /// Bounds and timeouts.
    pub limits: Limits,
}

impl LocalConfig {
    /// Builds the local role's settings: parses rules, loads the key and the pin.
    ///
    /// # Errors
    /// The first [`ConfigError`] found.
    pub fn from_args(args: &LocalArgs) -> Result<Self, ConfigError> {
        let forwards: Vec<Forward> = args
            .forward
            .iter()
            .map(|spec| Forward::parse(spec))
            .collect::<Result<_, _>>()?;
        for (i, forward) in forwards.iter().enumerate() {
            let port = forward.bind.port();
            if port != 0 && forwards[..i].iter().any(|f| f.bind == forward.bind) {
                return Err(ConfigError::Value {
                    option: "--forward",
                    reason: format!(
                        "{:?} listens on {}, as an earlier rule does; give each rule its own \
                         port",
                        args.forward[i], forward.bind
                    ),
                });
            }
        }
        Ok(Self {
            forwards,
            key: Arc::new(keys::load_private_key(&args.key).map_err(key_error("--key"))?),
            remote_pin: keys::load_pin(&args.remote_key).map_err(key_error("--remote-key"))?,
            ciphers: cipher_policy(&args.common)?,
            pool: usize::from(args.pool),
            limits: limits(&args.common)?,
        })
    }
}

/// Worker threads for the runtime: `requested`, or for 0 half the CPUs, at least one.
///
/// Half, because a relay's own work is the smaller part of what moving a byte
/// costs: the kernel's TCP work and the peers at both ends need the other cores.
/// Measured on two cores, one worker carries a single stream about a tenth faster
/// than two (fewer cross-thread wake-ups) and four streams just as fast.
pub fn worker_threads(requested: u16) -> usize {
    if requested > 0 {
        return usize::from(requested);
    }
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    (cpus / 2).max(1)
}

/// Default number of ready tunnels per forward: enough to hand out a burst of new
/// clients without a round trip, few enough to be negligible for the remote.
pub const DEFAULT_POOL_SIZE: usize = 4;

/// Everything the remote role needs.
#[derive(Debug, Clone)]
pub struct RemoteConfig {
    /// Where tunnels are accepted.
    pub listen: SocketAddr,
    /// Where every tunnel is relayed to.
    pub target: HostPort,
    /// Our identity.
    pub key: Arc<PrivateKey>,
    /// Local-side keys accepted.
    pub authorized: Arc<AuthorizedKeys>,
    /// Ciphers we allow, in our order.
    pub ciphers: CipherPolicy,
    /// Bounds and timeouts.
    pub limits: Limits,
}

impl RemoteConfig {
    /// Builds the remote role's settings: parses the target, loads the keys.
    ///
    /// # Errors
    /// The first [`ConfigError`] found.
    pub fn from_args(args: &RemoteArgs) -> Result<Self, ConfigError> {
        let target = HostPort::parse(&args.target).map_err(|reason| ConfigError::HostPort {
            option: "--target",
            value: args.target.clone(),
            reason,
        })?;
        Ok(Self {
            listen: args.listen,
            target,
            key: Arc::new(keys::load_private_key(&args.key).map_err(key_error("--key"))?),
            authorized: Arc::new(
                AuthorizedKeys::load(&args.authorized_keys)
                    .map_err(key_error("--authorized-keys"))?,
            ),
            ciphers: cipher_policy(&args.common)?,
            limits: limits(&args.common)?,
        })
    }
}

fn cipher_policy(common: &CommonArgs) -> Result<CipherPolicy, ConfigError> {
    if common.ciphers.is_empty() {
        return Ok(CipherPolicy::default());
    }
    CipherPolicy::explicit(&common.ciphers).map_err(ConfigError::Ciphers)
}

fn limits(common: &CommonArgs) -> Result<Limits, ConfigError> {
    for (option, value) in [
        ("--handshake-timeout", common.handshake_timeout),
        ("--connect-timeout", common.connect_timeout),
    ] {
        if value.is_zero() {
            return Err(ConfigError::Value {
                option,
                reason: "must be longer than zero, e.g. 10s".into(),
            });
        }
    }
    Ok(Limits {
        handshake_timeout: common.handshake_timeout,
        connect_timeout: common.connect_timeout,
        idle_timeout: Some(common.idle_timeout).filter(|timeout| !timeout.is_zero()),
        max_connections: common.max_connections as usize,
        shutdown_grace: common.shutdown_grace,
    })
}

fn parse_port(text: &str) -> Result<u16, String> {
    match text.parse::<u16>() {
        Ok(port) if port != 0 => Ok(port),
        _ => Err(format!("port {text:?} is not a number from 1 to 65535")),
    }
}

/// Strips the brackets of an IPv6 literal; refuses empty hosts and bare colons.
fn unbracket(host: &str) -> Result<&str, String> {
    let inner = match host.strip_prefix('[') {
        Some(rest) => rest.strip_suffix(']').ok_or("unmatched '[' in host")?,
        None if host.contains(':') => return Err("put IPv6 addresses in brackets".into()),
        None => host,
    };
    if inner.is_empty() {
        return Err("host is empty".into());
    }
    Ok(inner)
}

/// Splits `...:HOST` into the part before and the host, brackets honoured.
fn split_last_host(text: &str) -> Result<(&str, &str), String> {
    let (front, host) = if text.ends_with(']') {
        let open = text.rfind('[').ok_or("unmatched ']' in host")?;
        let front = text[..open].strip_suffix(':').ok_or("too few parts")?;
        (front, &text[open..])
    } else {
        text.rsplit_once(':').ok_or("too few parts")?
    };
    Ok((front, unbracket(host)?))
}

fn parse_bind(text: &str) -> Result<IpAddr, String> {
    if text == "localhost" {
        return Ok(IpAddr::V4(Ipv4Addr::LOCALHOST));
    }
    let bare = text
        .strip_prefix('[')
        .and_then(|t| t.strip_suffix(']'))
        .unwrap_or(text);
    bare.parse()
        .map_err(|_| format!("bind address {text:?} is not an IP address"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn forward(spec: &str) -> (String, String) {
        let parsed = Forward::parse(spec).unwrap();
        (parsed.bind.to_string(), parsed.remote.to_string())
    }

    #[test]
    fn forward_rules_parse() {
        assert_eq!(
            forward("8080:remote:9000"),
            ("127.0.0.1:8080".into(), "remote:9000".into())
        );
        assert_eq!(
            forward("0.0.0.0:80:10.0.0.2:9000"),
            ("0.0.0.0:80".into(), "10.0.0.2:9000".into())
        );
        assert_eq!(
            forward("[::1]:8080:[2001:db8::1]:9000"),
            ("[::1]:8080".into(), "[2001:db8::1]:9000".into())
        );
        assert_eq!(
            forward("localhost:0:r.example:1"),
            ("127.0.0.1:0".into(), "r.example:1".into())
        );
    }

    #[test]
    fn bad_forward_rules_name_the_problem() {
        for (spec, needle) in [
            ("8080", "too few parts"),
            ("8080:remote", "remote port"),
            ("x:remote:9000", "listen port"),
            ("8080:remote:0", "remote port"),
            ("8080:remote:70000", "remote port"),
            ("8080::9000", "host is empty"),
            ("8080:::1:9000", "brackets"),
            ("nothost:8080:remote:9000", "bind address"),
            ("8080:[::1:9000", "unmatched bracket"),
        ] {
            let err = Forward::parse(spec).unwrap_err().to_string();
            assert!(err.contains(needle), "{spec}: {err}");
            assert!(err.contains(spec), "{spec}: {err}");
        }
    }

    #[test]
    fn host_port_parses_and_displays() {
        let parsed = HostPort::parse("[::1]:22").unwrap();
        assert_eq!((parsed.host.as_str(), parsed.port), ("::1", 22));
        assert_eq!(parsed.to_string(), "[::1]:22");
        assert!(HostPort::parse("db").unwrap_err().contains("no port"));
        assert!(HostPort::parse(":5432").unwrap_err().contains("empty"));
    }
}
