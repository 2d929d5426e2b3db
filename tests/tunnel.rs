//! End-to-end tests through a whole tunnel, both roles in-process on loopback: bulk
//! transfers both ways under each cipher checked by SHA-256, half-close, many
//! concurrent connections, an unreachable target, and keys made by openssl.
//!
//! Handshake failures and tampering have their own test files; the binary's command
//! line is covered in `cli.rs`. Logs are captured into a buffer so a test can check
//! which cipher each connection negotiated and how each relay ended.

// The helpers in common/ are `pub` for every test crate's use; a test crate exports
// nothing, so this lint's advice does not apply.
#![allow(unreachable_pub)]

mod common;

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, Once};
use std::time::{Duration, Instant};

use clap::Parser;
use rand::Rng;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tunnel::cli::{Cli, Command as CliCommand};
use tunnel::config::{LocalConfig, RemoteConfig};
use tunnel::crypto::{CipherPolicy, CipherSuite};
use tunnel::handshake::{self, HandshakeError, local::LocalParams};
use tunnel::record::{HEADER_LEN, RecordType, parse_header};

use common::{PROMPT, Running, TempDir, openssl, path_str, read_text};

/// Bytes generated and written per call in bulk transfers.
const CHUNK_LEN: usize = 256 * 1024;

/// Upper bound for one bulk transfer (64 MiB each way takes about 1.5 s here).
const TRANSFER_DEADLINE: Duration = Duration::from_secs(30);

/// Connections opened at once in the concurrency test.
const CONCURRENT_CONNECTIONS: usize = 100;

const MIB: usize = 1024 * 1024;

// ---------------------------------------------------------------------------
// 1. Bulk data both ways, per cipher and size.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chacha20_zero_bytes_both_ways() {
    both_ways(CipherSuite::ChaCha20Poly1305, 0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chacha20_one_byte_both_ways() {
    both_ways(CipherSuite::ChaCha20Poly1305, 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chacha20_one_mib_both_ways() {
    both_ways(CipherSuite::ChaCha20Poly1305, MIB).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chacha20_64_mib_both_ways() {
    both_ways(CipherSuite::ChaCha20Poly1305, 64 * MIB).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aes256gcm_zero_bytes_both_ways() {
    both_ways(CipherSuite::Aes256Gcm, 0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aes256gcm_one_byte_both_ways() {
    both_ways(CipherSuite::Aes256Gcm, 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aes256gcm_one_mib_both_ways() {
    both_ways(CipherSuite::Aes256Gcm, MIB).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aes256gcm_64_mib_both_ways() {
    both_ways(CipherSuite::Aes256Gcm, 64 * MIB).await;
}

/// Pushes `len` random bytes through a tunnel forced to `suite` on both sides while
/// reading the echo back at the same time, and checks length and SHA-256; then checks
/// that the connection, and a direct probe, negotiated `suite`.
async fn both_ways(suite: CipherSuite, len: usize) {
    capture_logs();
    let target = common::echo_target().await;
    let (local, remote) = tunnel_with(target, suite).await;

    let started = Instant::now();
    let client = TcpStream::connect(local.addr).await.unwrap();
    let client_addr = client.local_addr().unwrap();
    let (sent, received) = tokio::time::timeout(TRANSFER_DEADLINE, echo_random(client, len))
        .await
        .unwrap_or_else(|_| panic!("{suite}, {len} bytes: no end within {TRANSFER_DEADLINE:?}"));
    eprintln!("{suite}: {len} bytes each way in {:?}", started.elapsed());
    assert_eq!(received.len, len as u64, "{suite}: byte count of the echo");
    assert_eq!(received.hash, sent.hash, "{suite}: sha256 of the echo");

    // The one connection went through with the forced cipher on both sides, and the
    // local's relay ended cleanly with the right byte counts.
    let open = local_tunnel_opens(remote.addr);
    assert_eq!(open.len(), 1, "one local tunnel expected: {open:#?}");
    assert_eq!(field(&open[0], "cipher"), Some(suite.name()), "{}", open[0]);
    let closed = wait_for_close(&local_span(client_addr)).await;
    let counts = (field(&closed, "sent"), field(&closed, "received"));
    let expected = len.to_string();
    assert_eq!(counts, (Some(&*expected), Some(&*expected)), "{closed}");
    let remote_opens = remote_tunnel_opens(target);
    assert_eq!(remote_opens.len(), 1, "{remote_opens:#?}");
    assert_eq!(field(&remote_opens[0], "cipher"), Some(suite.name()));

    assert_eq!(probe(remote.addr, &[suite]).await.unwrap(), suite);
    let other = other_suite(suite);
    match probe(remote.addr, &[other]).await {
        Err(HandshakeError::NoCommonCipher { local, remote }) => {
            assert_eq!((local, remote), (vec![other], vec![suite]));
        }
        outcome => panic!("offering only {other} to a {suite}-only remote: {outcome:?}"),
    }
}

// ---------------------------------------------------------------------------
// 2. Half-close.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_close_lets_the_target_answer_after_eof() {
    capture_logs();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let target = listener.local_addr().unwrap();
    let (seen_tx, seen_rx) = oneshot::channel();
    tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        let mut request = Vec::new();
        stream.read_to_end(&mut request).await.unwrap();
        let _ = seen_tx.send(request.len());
        // Answer only now, after end of stream, with something computed from it.
        stream.write_all(&reply_to(&request)).await.unwrap();
        stream.shutdown().await.unwrap();
    });
    let remote = common::spawn_remote(common::remote_config(target)).await;
    let local = common::spawn_local(common::local_config(remote.addr)).await;

    let request = random_bytes(300 * 1024);
    let mut client = TcpStream::connect(local.addr).await.unwrap();
    let client_addr = client.local_addr().unwrap();
    client.write_all(&request).await.unwrap();
    client.shutdown().await.unwrap();

    let seen = tokio::time::timeout(PROMPT, seen_rx).await;
    assert_eq!(
        seen.expect("target saw no end of stream").unwrap(),
        request.len()
    );
    let mut reply = Vec::new();
    tokio::time::timeout(PROMPT, client.read_to_end(&mut reply))
        .await
        .expect("the reply did not end in time")
        .expect("reading the reply after our half-close");
    assert!(
        reply == reply_to(&request),
        "reply differs ({} bytes)",
        reply.len()
    );
    assert_eq!(
        client.read(&mut [0u8; 16]).await.unwrap(),
        0,
        "end of stream stays"
    );

    // Both directions closed: the local's relay reports a clean end with the counts.
    let closed = wait_for_close(&local_span(client_addr)).await;
    assert!(!closed.contains("with error"), "{closed}");
    assert_eq!(field(&closed, "sent"), Some(&*request.len().to_string()));
    assert_eq!(field(&closed, "received"), Some(&*reply.len().to_string()));
}

/// The half-close target's answer: a line with the request's length and hash, then
/// the request reversed (long enough to take several records).
fn reply_to(request: &[u8]) -> Vec<u8> {
    let digest = Sha256::digest(request);
    let mut reply = format!("read {} bytes, sha256 {}\n", request.len(), hex(&digest));
    reply.reserve(request.len());
    let mut reply = reply.into_bytes();
    reply.extend(request.iter().rev());
    reply
}

// ---------------------------------------------------------------------------
// 3. Many connections at once.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundred_concurrent_connections_keep_their_own_bytes() {
    capture_logs();
    let (local, remote, _target) = common::spawn_tunnel().await;
    let barrier = Arc::new(tokio::sync::Barrier::new(CONCURRENT_CONNECTIONS));
    let started = Instant::now();

    let mut tasks = Vec::new();
    for index in 0..CONCURRENT_CONNECTIONS {
        let barrier = barrier.clone();
        let addr = local.addr;
        tasks.push(tokio::spawn(async move {
            // Each connection's data starts with its index and differs in length.
            let mut data = format!("connection {index}\n").into_bytes();
            data.extend(random_bytes(32 * 1024 + index * 1021));
            let stream = TcpStream::connect(addr).await.unwrap();
            barrier.wait().await;
            let (mut read, mut write) = stream.into_split();
            let sent = data.clone();
            let writer = tokio::spawn(async move {
                for piece in sent.chunks(8 * 1024) {
                    write.write_all(piece).await.unwrap();
                    tokio::task::yield_now().await;
                }
                write.shutdown().await.unwrap();
            });
            let mut echoed = Vec::new();
            read.read_to_end(&mut echoed).await.unwrap();
            writer.await.unwrap();
            (index, data, echoed)
        }));
    }
    let all = tokio::time::timeout(TRANSFER_DEADLINE, futures_join(tasks)).await;
    for (index, data, echoed) in all.expect("concurrent connections did not finish") {
        assert_eq!(echoed.len(), data.len(), "connection {index}: length");
        assert!(
            echoed == data,
            "connection {index} got bytes that are not its own"
        );
    }
    eprintln!(
        "{CONCURRENT_CONNECTIONS} connections in {:?}",
        started.elapsed()
    );
    assert_eq!(
        local_tunnel_opens(remote.addr).len(),
        CONCURRENT_CONNECTIONS
    );
}

async fn futures_join<T>(tasks: Vec<tokio::task::JoinHandle<T>>) -> Vec<T> {
    let mut out = Vec::with_capacity(tasks.len());
    for task in tasks {
        out.push(task.await.unwrap());
    }
    out
}

// ---------------------------------------------------------------------------
// 7. Target down.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_target_resets_the_client_and_roles_keep_serving() {
    capture_logs();
    let target = common::dead_port().await;
    let remote = common::spawn_remote(common::remote_config(target)).await;
    let local = common::spawn_local(common::local_config(remote.addr)).await;

    for attempt in 0..3 {
        let started = Instant::now();
        // With a pooled tunnel the reset can arrive before the client writes, or even
        // before its connect call returns, so any of the calls may report it.
        let exchange = async {
            let mut client = TcpStream::connect(local.addr).await?;
            client.write_all(b"hello?").await?;
            let mut buf = [0u8; 64];
            client.read(&mut buf).await
        };
        let outcome = tokio::time::timeout(PROMPT, exchange)
            .await
            .unwrap_or_else(|_| panic!("attempt {attempt}: not closed within {PROMPT:?}"));
        match outcome {
            Err(err) => assert_eq!(err.kind(), std::io::ErrorKind::ConnectionReset, "{err}"),
            Ok(read) => panic!("attempt {attempt}: expected a reset, read returned Ok({read})"),
        }
        assert!(started.elapsed() < PROMPT);
    }
    let aborted = wait_for_log(|line| {
        line.contains("tunnel::remote: cannot reach the target")
            && field(line, "target") == Some(&*target.to_string())
    })
    .await;
    assert!(aborted.contains("WARN"), "{aborted}");

    // Bring the target up on the same port: the same local and remote now serve.
    let listener = TcpListener::bind(target).await.unwrap();
    common::serve_echo(listener);
    let client = TcpStream::connect(local.addr).await.unwrap();
    let (sent, received) = tokio::time::timeout(PROMPT * 5, echo_random(client, 100_000))
        .await
        .expect("the tunnel did not recover once the target was up");
    assert_eq!((received.len, received.hash), (100_000, sent.hash));
}

// ---------------------------------------------------------------------------
// 8. Keys made by openssl, in every format, through the real config loaders.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openssl_keys_in_every_format_carry_a_tunnel() {
    capture_logs();
    let dir = TempDir::new("openssl-keys");
    let pkcs8 = dir.path("pkcs8.pem");
    let pkcs1 = dir.path("pkcs1.pem");
    common::openssl_private_keys(&pkcs8, &pkcs1);
    assert!(read_text(&pkcs8).starts_with("-----BEGIN PRIVATE KEY-----"));
    assert!(read_text(&pkcs1).starts_with("-----BEGIN RSA PRIVATE KEY-----"));
    let mut spki = Vec::new();
    let mut rsa_pub = Vec::new();
    for private in [&pkcs8, &pkcs1] {
        let spki_path = PathBuf::from(format!("{}.spki.pub", private.display()));
        let rsa_path = PathBuf::from(format!("{}.pkcs1.pub", private.display()));
        openssl(&[
            "rsa",
            "-in",
            path_str(private),
            "-pubout",
            "-out",
            path_str(&spki_path),
        ]);
        let rsa_out = ["-RSAPublicKey_out", "-out", path_str(&rsa_path)];
        openssl(&[&["rsa", "-in", path_str(private)][..], &rsa_out].concat());
        assert!(read_text(&spki_path).starts_with("-----BEGIN PUBLIC KEY-----"));
        assert!(read_text(&rsa_path).starts_with("-----BEGIN RSA PUBLIC KEY-----"));
        spki.push(spki_path);
        rsa_pub.push(rsa_path);
    }

    // Local PKCS#8 / remote PKCS#1, then the other way round; the remote authorizes
    // the local by one public format and the local pins the remote by the other.
    let cases = [
        (&pkcs8, &pkcs1, &rsa_pub[0], &spki[1]),
        (&pkcs1, &pkcs8, &spki[1], &rsa_pub[0]),
    ];
    for (local_key, remote_key, authorized, pin) in cases {
        let target = common::echo_target().await;
        let remote_args = [
            "tunnel",
            "remote",
            "--listen",
            "127.0.0.1:0",
            "--target",
            &target.to_string(),
            "--key",
            path_str(remote_key),
            "--authorized-keys",
            path_str(authorized),
        ];
        let remote = common::spawn_remote(remote_config_from(&remote_args)).await;
        let forward = format!("0:127.0.0.1:{}", remote.addr.port());
        let local_args = [
            "tunnel",
            "local",
            "--forward",
            &forward,
            "--key",
            path_str(local_key),
            "--remote-key",
            path_str(pin),
        ];
        let local = common::spawn_local(local_config_from(&local_args)).await;

        let client = TcpStream::connect(local.addr).await.unwrap();
        let (sent, received) = tokio::time::timeout(PROMPT * 5, echo_random(client, MIB))
            .await
            .unwrap_or_else(|_| panic!("{}: no echo in time", local_key.display()));
        assert_eq!((received.len, received.hash), (MIB as u64, sent.hash));
        assert_eq!(local_tunnel_opens(remote.addr).len(), 1);
    }
}

fn remote_config_from(args: &[&str]) -> RemoteConfig {
    match parse(args).command {
        CliCommand::Remote(args) => RemoteConfig::from_args(&args).unwrap(),
        other => panic!("parsed as {other:?}"),
    }
}

fn local_config_from(args: &[&str]) -> LocalConfig {
    match parse(args).command {
        CliCommand::Local(args) => LocalConfig::from_args(&args).unwrap(),
        other => panic!("parsed as {other:?}"),
    }
}

/// Parses a command line as the binary does; a clap error fails the test.
fn parse(args: &[&str]) -> Cli {
    Cli::try_parse_from(args).unwrap_or_else(|err| panic!("{err}"))
}

// ---------------------------------------------------------------------------
// Helpers: tunnels, transfers, probes.

/// A remote in front of `target` and a local in front of it, both allowing only `suite`.
async fn tunnel_with(target: SocketAddr, suite: CipherSuite) -> (Running, Running) {
    let policy = CipherPolicy::explicit(&[suite]).unwrap();
    let mut remote_config = common::remote_config(target);
    remote_config.ciphers = policy.clone();
    let remote = common::spawn_remote(remote_config).await;
    let mut local_config = common::local_config(remote.addr);
    local_config.ciphers = policy;
    let local = common::spawn_local(local_config).await;
    (local, remote)
}

fn other_suite(suite: CipherSuite) -> CipherSuite {
    match suite {
        CipherSuite::ChaCha20Poly1305 => CipherSuite::Aes256Gcm,
        CipherSuite::Aes256Gcm => CipherSuite::ChaCha20Poly1305,
    }
}

/// Length and SHA-256 of one direction of a transfer.
#[derive(Debug, PartialEq, Eq)]
struct Digest256 {
    len: u64,
    hash: [u8; 32],
}

/// Writes `len` fresh random bytes to `stream` and half-closes it while reading
/// whatever comes back until end of stream. Returns (what was sent, what came back).
async fn echo_random(stream: TcpStream, len: usize) -> (Digest256, Digest256) {
    let (mut read, mut write) = stream.into_split();
    let writer = tokio::spawn(async move {
        let mut hash = Sha256::new();
        let mut chunk = vec![0u8; CHUNK_LEN];
        let mut left = len;
        while left > 0 {
            let part = left.min(CHUNK_LEN);
            rand::rng().fill_bytes(&mut chunk[..part]);
            hash.update(&chunk[..part]);
            write.write_all(&chunk[..part]).await.unwrap();
            left -= part;
        }
        write.shutdown().await.unwrap();
        Digest256 {
            len: len as u64,
            hash: hash.finalize().into(),
        }
    });
    let mut hash = Sha256::new();
    let mut total = 0u64;
    let mut buf = vec![0u8; CHUNK_LEN];
    loop {
        let read = read.read(&mut buf).await.expect("reading the echo");
        if read == 0 {
            break;
        }
        hash.update(&buf[..read]);
        total += read as u64;
    }
    let sent = writer.await.unwrap();
    (
        sent,
        Digest256 {
            len: total,
            hash: hash.finalize().into(),
        },
    )
}

/// Handshakes straight with `remote` as the "local" key offering `suites`, opens and
/// closes the tunnel cleanly, and returns the negotiated suite.
async fn probe(remote: SocketAddr, suites: &[CipherSuite]) -> Result<CipherSuite, HandshakeError> {
    let key = common::key("local");
    let ciphers = CipherPolicy::explicit(suites).unwrap();
    let params = LocalParams {
        key: &key,
        remote_pin: common::fingerprint("remote"),
        ciphers: &ciphers,
    };
    let mut stream = TcpStream::connect(remote).await.unwrap();
    let mut established = tokio::time::timeout(PROMPT, handshake::local::run(&mut stream, &params))
        .await
        .expect("probe handshake did not finish")?;

    // An empty data record opens the tunnel (the remote then dials the target); the
    // close right after it ends it again, and the remote answers with its own close.
    let mut records = Vec::new();
    for kind in [RecordType::Data, RecordType::Close] {
        records.extend(established.sealer.seal_to_vec(kind, &[]).unwrap());
    }
    stream.write_all(&records).await.unwrap();
    let mut header = [0u8; HEADER_LEN];
    stream.read_exact(&mut header).await.unwrap();
    let mut body = vec![0u8; parse_header(&header).unwrap()];
    stream.read_exact(&mut body).await.unwrap();
    let (kind, _) = established
        .opener
        .open_in_place(&header, &mut body)
        .unwrap();
    assert_eq!(
        kind,
        RecordType::Close,
        "the remote answers a close with a close"
    );
    Ok(established.suite)
}

fn random_bytes(len: usize) -> Vec<u8> {
    let mut data = vec![0u8; len];
    rand::rng().fill_bytes(&mut data);
    data
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

// ---------------------------------------------------------------------------
// Helpers: captured logs.

/// Every log line of this test process, as formatted text.
static LOGS: Mutex<Vec<u8>> = Mutex::new(Vec::new());

/// Installs the process-wide subscriber that writes into [`LOGS`] (once).
fn capture_logs() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        let subscriber = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new("info"))
            .with_ansi(false)
            .with_writer(|| LogSink)
            .finish();
        tracing::subscriber::set_global_default(subscriber).expect("no other subscriber");
    });
}

struct LogSink;

impl Write for LogSink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        LOGS.lock()
            .unwrap_or_else(|poison| poison.into_inner())
            .extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn log_lines() -> Vec<String> {
    let logs = LOGS.lock().unwrap_or_else(|poison| poison.into_inner());
    String::from_utf8_lossy(&logs)
        .lines()
        .map(str::to_owned)
        .collect()
}

/// The value of `name=value` among a log line's fields.
fn field<'a>(line: &'a str, name: &str) -> Option<&'a str> {
    line.split_whitespace()
        .find_map(|token| token.strip_prefix(name)?.strip_prefix('='))
}

/// "tunnel open" lines of local roles connected to `remote`.
fn local_tunnel_opens(remote: SocketAddr) -> Vec<String> {
    let remote = remote.to_string();
    log_lines()
        .into_iter()
        .filter(|line| line.contains("tunnel::local: tunnel open"))
        .filter(|line| field(line, "remote") == Some(remote.as_str()))
        .collect()
}

/// "tunnel open" lines of remote roles relaying to `target`.
fn remote_tunnel_opens(target: SocketAddr) -> Vec<String> {
    let target = target.to_string();
    log_lines()
        .into_iter()
        .filter(|line| line.contains("tunnel::remote: tunnel open"))
        .filter(|line| field(line, "target") == Some(target.as_str()))
        .collect()
}

/// The span text the local role logs a client's connection under.
fn local_span(client: SocketAddr) -> String {
    format!(" peer={client}}}: ")
}

/// Waits (up to [`PROMPT`]) for the relay under `span` to log its end.
async fn wait_for_close(span: &str) -> String {
    wait_for_log(|line| {
        line.contains(" local{")
            && line.contains(span)
            && line.contains("tunnel::relay: connection closed")
    })
    .await
}

async fn wait_for_log(wanted: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + PROMPT;
    loop {
        if let Some(line) = log_lines().into_iter().find(|line| wanted(line)) {
            return line;
        }
        assert!(
            Instant::now() < deadline,
            "log line not seen within {PROMPT:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

// ---------------------------------------------------------------------------
// Helpers: files and openssl.
