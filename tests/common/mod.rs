//! Helpers shared by the end-to-end tests: test keys, an echo target, and both
//! roles started in-process on free loopback ports.
#![allow(dead_code)] // each test file uses a different subset of these helpers
#![allow(unreachable_pub)] // `pub` here is how the test crates that include this module see it

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tunnel::config::{Forward, HostPort, Limits, LocalConfig, RemoteConfig};
use tunnel::crypto::CipherPolicy;
use tunnel::handshake::remote::RemoteParams;
use tunnel::handshake::resume::TicketStore;
use tunnel::handshake::{self, Established, HandshakeError};
use tunnel::keys::{self, AuthorizedKeys, Fingerprint, PrivateKey};
use tunnel::local::Local;
use tunnel::remote::Remote;
use tunnel::shutdown::Shutdown;

/// Runs the remote side of a handshake on `stream` with the test keys: the "remote"
/// key, only the "local" key authorized, default ciphers, and tickets from `tickets`.
pub async fn remote_handshake(
    stream: &mut TcpStream,
    tickets: Option<&TicketStore>,
) -> Result<Established, HandshakeError> {
    let key = key("remote");
    let authorized = AuthorizedKeys::from_fingerprints([fingerprint("local")]);
    let ciphers = CipherPolicy::default();
    let params = RemoteParams {
        key: &key,
        authorized: &authorized,
        ciphers: &ciphers,
        tickets,
    };
    handshake::remote::run(stream, &params).await
}

/// Wire values of the handshake, spelled out from docs/PROTOCOL.md rather than taken
/// from the library, so that tests which build or edit frames notice a drift.
pub mod frame {
    /// Bytes of the preface each side sends first.
    pub const PREFACE_LEN: usize = 8;
    pub const LOCAL_HELLO: u8 = 1;
    pub const REMOTE_AUTH: u8 = 3;
    pub const LOCAL_AUTH: u8 = 4;
    pub const RESUME_HELLO: u8 = 5;
    pub const RESUME_ACCEPT: u8 = 6;
    pub const REMOTE_FINISHED: u8 = 7;
    pub const LOCAL_FINISHED: u8 = 8;
    pub const ALERT: u8 = 0x7f;
}

/// Path of a file under tests/fixtures.
pub fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// Loads a test-only private key by short name: "local", "remote" or "stranger".
pub fn key(name: &str) -> Arc<PrivateKey> {
    Arc::new(keys::load_private_key(&fixture(&format!("test-only-{name}.pem"))).unwrap())
}

/// Fingerprint of a test-only key.
pub fn fingerprint(name: &str) -> Fingerprint {
    key(name).public_key().fingerprint()
}

/// Turns `tracing` output on for a test (once per process; later calls are no-ops).
pub fn init_logs() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new("debug"))
        .with_test_writer()
        .try_init();
}

/// A loopback echo service: each connection gets back what it sends, then its end
/// of stream once the client half-closes.
pub async fn echo_target() -> SocketAddr {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
    let addr = listener.local_addr().unwrap();
    serve_echo(listener);
    addr
}

/// Runs the echo service on `listener` in the background.
pub fn serve_echo(listener: TcpListener) {
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (mut read, mut write) = stream.split();
                if tokio::io::copy(&mut read, &mut write).await.is_ok() {
                    let _ = write.shutdown().await;
                }
            });
        }
    });
}

/// A port on loopback that nothing listens on (bound, then released).
pub async fn dead_port() -> SocketAddr {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
    listener.local_addr().unwrap()
}

/// Settings for a remote on a free loopback port that accepts the "local" key.
pub fn remote_config(target: SocketAddr) -> RemoteConfig {
    RemoteConfig {
        listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
        target: host_port(target),
        key: key("remote"),
        authorized: Arc::new(AuthorizedKeys::from_fingerprints([fingerprint("local")])),
        ciphers: CipherPolicy::default(),
        limits: Limits::default(),
    }
}

/// Settings for a local on a free loopback port, pinned to the "remote" key.
pub fn local_config(remote: SocketAddr) -> LocalConfig {
    LocalConfig {
        forwards: vec![Forward {
            bind: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            remote: host_port(remote),
        }],
        key: key("local"),
        remote_pin: fingerprint("remote"),
        ciphers: CipherPolicy::default(),
        pool: tunnel::config::DEFAULT_POOL_SIZE,
        limits: Limits::default(),
    }
}

/// A running role; dropping it stops the role (connections are cut at once).
pub struct Running {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its shutdown handle.
    pub shutdown: Shutdown,
    task: tokio::task::JoinHandle<()>,
}

impl Running {
    /// Stops accepting, drains within the configured grace, and waits for the end.
    pub async fn stop(mut self) {
        self.shutdown.trigger();
        (&mut self.task).await.unwrap();
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Starts a remote role.
pub async fn spawn_remote(config: RemoteConfig) -> Running {
    let remote = Remote::bind(config).await.unwrap();
    let addr = remote.local_addr().unwrap();
    let shutdown = Shutdown::new();
    let task = tokio::spawn(remote.run(shutdown.clone()));
    Running {
        addr,
        shutdown,
        task,
    }
}

/// Starts a local role; `addr` is its first forward's listener.
pub async fn spawn_local(config: LocalConfig) -> Running {
    let local = Local::bind(config).await.unwrap();
    let addr = local.local_addrs()[0];
    let shutdown = Shutdown::new();
    let task = tokio::spawn(local.run(shutdown.clone()));
    Running {
        addr,
        shutdown,
        task,
    }
}

/// An echo target, a remote in front of it and a local in front of that, all with
/// default settings. Returns (local, remote, target address).
pub async fn spawn_tunnel() -> (Running, Running, SocketAddr) {
    let target = echo_target().await;
    let remote = spawn_remote(remote_config(target)).await;
    let local = spawn_local(local_config(remote.addr)).await;
    (local, remote, target)
}

/// `addr` as a `HostPort`.
pub fn host_port(addr: SocketAddr) -> HostPort {
    HostPort {
        host: addr.ip().to_string(),
        port: addr.port(),
    }
}

/// Upper bound for anything in a test that should happen "promptly".
pub const PROMPT: Duration = Duration::from_secs(2);

/// Log lines of everything running on this test's thread.
#[derive(Clone, Default)]
pub struct Logs(pub Arc<Mutex<Vec<u8>>>);

impl Logs {
    /// Captures log events on the current thread until the guard drops; with the
    /// current-thread runtime that includes every role task of the test.
    pub fn install(&self) -> tracing::subscriber::DefaultGuard {
        let sink = self.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_max_level(tracing::Level::DEBUG)
            .with_writer(move || sink.clone())
            .finish();
        tracing::subscriber::set_default(subscriber)
    }

    /// Waits for a line logged inside `role`'s connection span that matches, and
    /// returns it; fails the test after [`PROMPT`].
    pub async fn wait_for(&self, role: &str, wanted: impl Fn(&str) -> bool) -> String {
        let span = format!("{role}{{conn=");
        for _ in 0..(PROMPT.as_millis() / 20) {
            let text = String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned();
            if let Some(line) = text
                .lines()
                .find(|line| line.contains(&span) && wanted(line))
            {
                return line.to_owned();
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let text = String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned();
        panic!("no matching line from the {role} role; the log was:\n{text}");
    }
}

impl Logs {
    /// Lines logged so far that match.
    pub fn lines(&self, wanted: impl Fn(&str) -> bool) -> Vec<String> {
        let text = String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned();
        text.lines()
            .filter(|line| wanted(line))
            .map(str::to_owned)
            .collect()
    }

    /// Waits until at least `count` lines match; fails the test after [`PROMPT`].
    pub async fn wait_for_count(&self, count: usize, wanted: impl Fn(&str) -> bool) {
        for _ in 0..(PROMPT.as_millis() / 20) {
            if self.lines(&wanted).len() >= count {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let text = String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned();
        panic!("fewer than {count} matching lines; the log was:\n{text}");
    }
}

impl std::io::Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A directory under the system temp dir, removed when dropped.
pub struct TempDir(PathBuf);

impl TempDir {
    /// A fresh, empty directory whose name contains `tag`.
    pub fn new(tag: &str) -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let name = format!("tunnel-test-{tag}-{}-{n}", std::process::id());
        let dir = std::env::temp_dir().join(name);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }

    /// A path inside the directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs openssl with `args` and returns its stdout; fails the test if it fails.
pub fn openssl(args: &[&str]) -> Vec<u8> {
    let output = std::process::Command::new("openssl")
        .args(args)
        .output()
        .expect("running openssl");
    assert!(
        output.status.success(),
        "openssl {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
    output.stdout
}

/// Writes a 2048-bit RSA private key with `openssl genpkey` (PKCS#8) to `pkcs8` and
/// another with `openssl genrsa -traditional` (PKCS#1) to `pkcs1`.
pub fn openssl_private_keys(pkcs8: &std::path::Path, pkcs1: &std::path::Path) {
    let genpkey = [
        "genpkey",
        "-algorithm",
        "RSA",
        "-pkeyopt",
        "rsa_keygen_bits:2048",
    ];
    openssl(&[&genpkey[..], &["-out", path_str(pkcs8)]].concat());
    openssl(&["genrsa", "-traditional", "-out", path_str(pkcs1), "2048"]);
}

/// `path` as text; test paths are UTF-8.
pub fn path_str(path: &std::path::Path) -> &str {
    path.to_str().expect("test paths are UTF-8")
}

/// The whole file at `path` as text.
pub fn read_text(path: &std::path::Path) -> String {
    std::fs::read_to_string(path).unwrap()
}
