//! Authentication failures end to end: a local key the remote does not list, and a
//! remote key other than the pinned one.
//!
//! Each case is checked three ways: the handshake functions called directly over a
//! loopback socket return the exact error variant; the real binary, run as two
//! subprocesses, refuses the connection and logs the reason with the fingerprint;
//! and the client of the local role is reset at once while the target never sees a
//! connection. Record tampering lives in `tamper.rs`, abuse of the listener in
//! `limits.rs`.

mod common;

use std::io::{BufRead, BufReader};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tunnel::crypto::CipherPolicy;
use tunnel::handshake::{self, HandshakeError, local::LocalParams};
use tunnel::keys::Fingerprint;

use common::{PROMPT, fingerprint, fixture, key, remote_handshake};

#[tokio::test]
async fn remote_names_the_unknown_local_key() {
    let (remote, local) = direct_handshake("stranger", fingerprint("remote")).await;

    match remote {
        Err(HandshakeError::UnknownLocalKey(got)) => assert_eq!(got, fingerprint("stranger")),
        other => panic!("remote: expected UnknownLocalKey, got {:?}", other.err()),
    }
    match local {
        Err(HandshakeError::RefusedByRemote) => {}
        other => panic!("local: expected RefusedByRemote, got {:?}", other.err()),
    }
}

#[tokio::test]
async fn local_refuses_a_remote_that_is_not_pinned() {
    let (remote, local) = direct_handshake("local", fingerprint("stranger")).await;

    match local {
        Err(HandshakeError::WrongRemoteKey { expected, got }) => {
            assert_eq!(expected, fingerprint("stranger"));
            assert_eq!(got, fingerprint("remote"));
        }
        other => panic!("local: expected WrongRemoteKey, got {:?}", other.err()),
    }
    // The local gives up before LocalAuth and closes; RemoteAuth may still sit
    // unread in its buffer, in which case the close is a reset.
    match remote {
        Err(HandshakeError::Io(err)) => assert!(
            matches!(
                err.kind(),
                std::io::ErrorKind::UnexpectedEof | std::io::ErrorKind::ConnectionReset
            ),
            "{err}"
        ),
        other => panic!("remote: expected Io(end of stream), got {:?}", other.err()),
    }
}

#[tokio::test]
async fn matching_keys_complete_the_direct_handshake() {
    // The control for the two tests above: with the right keys the same harness
    // succeeds, so their failures come from the keys alone.
    let (remote, local) = direct_handshake("local", fingerprint("remote")).await;
    let (remote, local) = (remote.unwrap(), local.unwrap());
    assert_eq!(remote.peer, fingerprint("local"));
    assert_eq!(local.peer, fingerprint("remote"));
    assert_eq!(remote.suite, local.suite);
}

#[tokio::test]
async fn binary_remote_logs_the_fingerprint_of_a_refused_key() {
    let target = CountingTarget::start().await;
    let dir = TempDir::new("stranger");
    let authorized = dir.path().join("authorized_keys");
    let authorized_text = format!("# the only local key allowed\n{}\n", fingerprint("local"));
    std::fs::write(&authorized, authorized_text).unwrap();

    let remote = Process::remote(target.addr, &authorized);
    let remote_addr = remote.listen_addr("remote listening").await;
    let stranger = Process::local(
        remote_addr,
        "test-only-stranger.pem",
        "test-only-remote.pub.pem",
    );
    let stranger_addr = stranger.listen_addr("local listening").await;

    let elapsed = expect_reset(stranger_addr).await;
    assert!(elapsed < PROMPT, "client reset only after {elapsed:?}");

    let stranger_fp = fingerprint("stranger").to_string();
    let line = remote
        .wait_for_line(|line| line.contains("handshake failed"))
        .await;
    assert!(
        line.contains(&stranger_fp),
        "remote log lacks {stranger_fp}: {line}"
    );
    assert!(line.contains("not in the authorized keys"), "{line}");
    let line = stranger
        .wait_for_line(|line| line.contains("handshake failed"))
        .await;
    assert!(line.contains("remote refused our key"), "{line}");
    assert_eq!(
        target.accepted(),
        0,
        "the target was reached without authentication"
    );

    // Control: the authorized key gets through the same remote.
    let friend = Process::local(
        remote_addr,
        "test-only-local.pem",
        "test-only-remote.pub.pem",
    );
    let friend_addr = friend.listen_addr("local listening").await;
    let mut client = TcpStream::connect(friend_addr).await.unwrap();
    client.write_all(b"hello").await.unwrap();
    let mut echoed = [0u8; 5];
    tokio::time::timeout(PROMPT, client.read_exact(&mut echoed))
        .await
        .expect("no echo through the authorized local")
        .unwrap();
    assert_eq!(&echoed, b"hello");
    assert_eq!(target.accepted(), 1);
}

#[tokio::test]
async fn binary_local_refuses_a_remote_with_another_key() {
    let target = CountingTarget::start().await;
    let dir = TempDir::new("pin");
    let authorized = dir.path().join("authorized_keys");
    std::fs::copy(fixture("test-only-local.pub.pem"), &authorized).unwrap();

    let remote = Process::remote(target.addr, &authorized);
    let remote_addr = remote.listen_addr("remote listening").await;
    let local = Process::local(
        remote_addr,
        "test-only-local.pem",
        "test-only-stranger.pub.pem",
    );
    let local_addr = local.listen_addr("local listening").await;

    let elapsed = expect_reset(local_addr).await;
    assert!(elapsed < PROMPT, "client reset only after {elapsed:?}");

    let line = local
        .wait_for_line(|line| line.contains("handshake failed"))
        .await;
    let (got, pinned) = (fingerprint("remote"), fingerprint("stranger"));
    assert!(
        line.contains(&format!("remote presented key {got}")),
        "{line}"
    );
    assert!(line.contains(&format!("{pinned} is pinned")), "{line}");
    let line = remote
        .wait_for_line(|line| line.contains("handshake failed"))
        .await;
    assert!(
        line.contains("connection failed during handshake"),
        "{line}"
    );
    assert_eq!(
        target.accepted(),
        0,
        "the target was reached without authentication"
    );
}

#[tokio::test]
async fn in_process_roles_reset_the_client_on_either_refusal() {
    let target = CountingTarget::start().await;
    let remote = common::spawn_remote(common::remote_config(target.addr)).await;

    let mut stranger = common::local_config(remote.addr);
    stranger.key = key("stranger");
    let stranger = common::spawn_local(stranger).await;
    let elapsed = expect_reset(stranger.addr).await;
    assert!(
        elapsed < PROMPT,
        "stranger's client reset only after {elapsed:?}"
    );

    let mut wrong_pin = common::local_config(remote.addr);
    wrong_pin.remote_pin = fingerprint("stranger");
    let wrong_pin = common::spawn_local(wrong_pin).await;
    let elapsed = expect_reset(wrong_pin.addr).await;
    assert!(
        elapsed < PROMPT,
        "mispinned client reset only after {elapsed:?}"
    );

    assert_eq!(
        target.accepted(),
        0,
        "the target was reached without authentication"
    );
}

/// Runs both handshake roles over a loopback socket: the local side with the key
/// named `local_key` and pinned to `pin`, the remote side accepting only "local".
async fn direct_handshake(
    local_key: &str,
    pin: Fingerprint,
) -> (
    Result<handshake::Established, HandshakeError>,
    Result<handshake::Established, HandshakeError>,
) {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let remote = tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        remote_handshake(&mut stream, None).await
    });

    let key = key(local_key);
    let ciphers = CipherPolicy::default();
    let params = LocalParams {
        key: &key,
        remote_pin: pin,
        ciphers: &ciphers,
    };
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let local = tokio::time::timeout(PROMPT, handshake::local::run(&mut stream, &params))
        .await
        .expect("local handshake hung");
    drop(stream);
    let remote = tokio::time::timeout(PROMPT, remote)
        .await
        .expect("remote handshake hung")
        .unwrap();
    (remote, local)
}

/// Connects to a local role, sends a few bytes and expects a reset with nothing
/// received; returns how long the reset took.
async fn expect_reset(addr: SocketAddr) -> Duration {
    let started = Instant::now();
    let outcome = tokio::time::timeout(PROMPT * 2, async {
        // A refusal fast enough can reset the socket before `connect` reports back.
        let mut client = TcpStream::connect(addr).await?;
        client.write_all(b"hello").await?;
        let mut buf = [0u8; 64];
        let read = client.read(&mut buf).await?;
        Ok::<usize, std::io::Error>(read)
    })
    .await
    .expect("the client was neither served nor closed");
    match outcome {
        Err(err) => assert!(
            matches!(
                err.kind(),
                std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe
            ),
            "expected a reset, got {err}"
        ),
        Ok(0) => panic!("the client saw a clean end of stream instead of a reset"),
        Ok(read) => panic!("the client received {read} bytes over a refused tunnel"),
    }
    started.elapsed()
}

/// A target that counts the connections it accepts and echoes what it gets.
struct CountingTarget {
    addr: SocketAddr,
    accepted: Arc<AtomicUsize>,
}

impl CountingTarget {
    async fn start() -> Self {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let counter = accepted.clone();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                counter.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let (mut read, mut write) = stream.split();
                    let _ = tokio::io::copy(&mut read, &mut write).await;
                });
            }
        });
        Self { addr, accepted }
    }

    fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }
}

/// The real binary running one role, with its log lines collected from stderr. It
/// is killed when dropped.
struct Process {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Process {
    fn remote(target: SocketAddr, authorized: &Path) -> Self {
        let target = target.to_string();
        let key = fixture("test-only-remote.pem");
        Self::spawn(&[
            "remote".as_ref(),
            "--listen".as_ref(),
            "127.0.0.1:0".as_ref(),
            "--target".as_ref(),
            target.as_ref(),
            "--key".as_ref(),
            key.as_os_str(),
            "--authorized-keys".as_ref(),
            authorized.as_os_str(),
        ])
    }

    fn local(remote: SocketAddr, key_file: &str, pin_file: &str) -> Self {
        let forward = format!("127.0.0.1:0:{remote}");
        let (key, pin) = (fixture(key_file), fixture(pin_file));
        Self::spawn(&[
            "local".as_ref(),
            "--forward".as_ref(),
            forward.as_ref(),
            "--key".as_ref(),
            key.as_os_str(),
            "--remote-key".as_ref(),
            pin.as_os_str(),
        ])
    }

    fn spawn(args: &[&std::ffi::OsStr]) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_tunnel"))
            .args(args)
            .env_clear()
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        Self { child, lines }
    }

    /// Waits up to [`LOG_WAIT`] for a line matching `wanted` and returns it.
    async fn wait_for_line(&self, wanted: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + LOG_WAIT;
        while Instant::now() < deadline {
            if let Some(line) = self.lines.lock().unwrap().iter().find(|l| wanted(l)) {
                return line.clone();
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!(
            "no such log line; got:\n{}",
            self.lines.lock().unwrap().join("\n")
        );
    }

    /// The `listen=` address from the line announcing the listener.
    async fn listen_addr(&self, message: &str) -> SocketAddr {
        let line = self.wait_for_line(|line| line.contains(message)).await;
        let value = line
            .split_whitespace()
            .find_map(|field| field.strip_prefix("listen="))
            .unwrap_or_else(|| panic!("no listen= field in {line}"));
        value.parse().unwrap()
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A scratch directory under the system temp dir, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        let path = std::env::temp_dir().join(format!(
            "tunnel-test-handshake-{}-{name}",
            std::process::id()
        ));
        std::fs::create_dir_all(&path).unwrap();
        Self(path)
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// How long a subprocess gets to print an expected log line.
const LOG_WAIT: Duration = Duration::from_secs(10);
