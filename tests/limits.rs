//! Abuse of the listeners and the bounds that contain it: bytes that are not the
//! tunnel protocol, a peer that never speaks, an idle relay, the connection limit,
//! and stopping. In each case the connection is closed for the stated reason, the
//! peer is told why where it can be, and other clients go on being served.
//!
//! Both roles run in-process on loopback with a current-thread runtime, so the log
//! lines of every role task land in one [`Logs`] capture and each test can check
//! the precise reason a connection was dropped.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tunnel::handshake::HandshakeError;
use tunnel::local::Local;
use tunnel::remote::Remote;
use tunnel::shutdown::Shutdown;

use common::{Logs, PROMPT};

/// Handshake deadline of the remote under test: short, so the silent peer is
/// dropped quickly, yet far above what a real handshake takes here.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(1);

/// Idle timeout of the roles in the idle test.
const IDLE_TIMEOUT: Duration = Duration::from_secs(1);

/// Bytes echoed through the tunnel by the well-behaved client.
const ECHO_LEN: usize = 64 * 1024;

#[tokio::test]
async fn garbage_http_and_silence_are_dropped_while_others_are_served() {
    let logs = Logs::default();
    let _guard = logs.install();
    let target = common::echo_target().await;
    let mut config = common::remote_config(target);
    config.limits.handshake_timeout = HANDSHAKE_TIMEOUT;
    let remote = common::spawn_remote(config).await;
    let local = common::spawn_local(common::local_config(remote.addr)).await;

    let silent = TcpStream::connect(remote.addr).await.unwrap();
    let silent_since = Instant::now();

    // Bytes of another protocol: a TLS ClientHello's first bytes, and HTTP.
    let tls = b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03garbage that is not tunnel";
    let http = b"GET / HTTP/1.1\r\nHost: tunnel.example\r\n\r\n";
    let wrong_version = b"tunnel\x00\x09";
    for (bytes, reason) in [
        (
            &tls[..],
            "first bytes \"\\u{16}\\u{3}\\u{1}\\u{2}\\0\\u{1}\\0\\u{1}\"",
        ),
        (&http[..], "first bytes \"GET / HT\""),
        (&wrong_version[..], "protocol version 9"),
    ] {
        let took = expect_closed_after_sending(remote.addr, bytes).await;
        assert!(took < PROMPT, "{reason}: took {took:?}");
        let line = logs
            .wait_for("remote", |line| {
                line.contains("handshake failed") && line.contains(reason)
            })
            .await;
        assert!(line.contains("WARN"), "{line}");
    }

    // While the silent peer still waits for its deadline, a real client is served.
    echo_through(local.addr, ECHO_LEN).await;
    assert!(
        silent_since.elapsed() < HANDSHAKE_TIMEOUT,
        "the echo took so long that the silent peer's deadline passed first"
    );

    let waited = expect_closed(silent).await;
    let since_connect = silent_since.elapsed();
    assert!(
        since_connect >= HANDSHAKE_TIMEOUT && waited < HANDSHAKE_TIMEOUT + PROMPT,
        "the silent peer was closed after {since_connect:?}, not at the {HANDSHAKE_TIMEOUT:?} deadline"
    );
    let wanted = HandshakeError::Timeout(HANDSHAKE_TIMEOUT).to_string();
    logs.wait_for("remote", |line| {
        line.contains("handshake failed") && line.contains(&wanted)
    })
    .await;

    // The remote is still healthy afterwards.
    echo_through(local.addr, ECHO_LEN).await;
}

#[tokio::test]
async fn idle_relays_are_closed_and_others_keep_flowing() {
    let logs = Logs::default();
    let _guard = logs.install();
    let target = common::echo_target().await;
    let mut config = common::remote_config(target);
    config.limits.idle_timeout = Some(IDLE_TIMEOUT);
    let remote = common::spawn_remote(config).await;
    let local = common::spawn_local(common::local_config(remote.addr)).await;

    let mut idle = TcpStream::connect(local.addr).await.unwrap();
    idle.write_all(b"ping").await.unwrap();
    let mut reply = [0u8; 4];
    idle.read_exact(&mut reply).await.unwrap();
    assert_eq!(&reply, b"ping");
    let quiet_since = Instant::now();

    // A busy connection alongside is not touched by the other one's timeout.
    let busy = TcpStream::connect(local.addr).await.unwrap();
    let (mut busy_read, mut busy_write) = busy.into_split();
    let pinger = tokio::spawn(async move {
        let mut buf = [0u8; 1];
        for round in 0..30u8 {
            busy_write.write_all(&[round]).await.unwrap();
            busy_read.read_exact(&mut buf).await.unwrap();
            assert_eq!(buf[0], round);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });

    expect_closed(idle).await;
    let quiet = quiet_since.elapsed();
    assert!(
        quiet >= IDLE_TIMEOUT && quiet < IDLE_TIMEOUT + PROMPT,
        "idle connection closed after {quiet:?} of silence"
    );
    logs.wait_for("remote", |line| {
        line.contains("connection closed") && line.contains("closed as idle")
    })
    .await;
    // The remote says so in an Abort record: the local reports the reason, calmly.
    let told = logs
        .wait_for("local", |line| {
            line.contains("connection closed")
                && line.contains("the peer closed the connection as idle")
        })
        .await;
    assert!(told.contains("INFO"), "{told}");
    tokio::time::timeout(PROMPT * 2, pinger)
        .await
        .expect("the busy connection stalled")
        .expect("the busy connection failed");
}

#[tokio::test]
async fn connections_beyond_the_limit_wait_until_one_ends() {
    let logs = Logs::default();
    let _guard = logs.install();
    let target = common::echo_target().await;
    let remote = common::spawn_remote(common::remote_config(target)).await;
    let mut config = common::local_config(remote.addr);
    config.limits.max_connections = 2;
    let local = common::spawn_local(config).await;

    let mut first = TcpStream::connect(local.addr).await.unwrap();
    let mut second = TcpStream::connect(local.addr).await.unwrap();
    for stream in [&mut first, &mut second] {
        stream.write_all(b"held").await.unwrap();
        let mut reply = [0u8; 4];
        stream.read_exact(&mut reply).await.unwrap();
    }

    // The third client is accepted by the kernel but not served while two are open.
    let mut third = TcpStream::connect(local.addr).await.unwrap();
    third.write_all(b"wait").await.unwrap();
    let mut reply = [0u8; 4];
    let early = tokio::time::timeout(Duration::from_millis(500), third.read_exact(&mut reply));
    assert!(
        early.await.is_err(),
        "a third connection was served past the limit of two"
    );
    let at_limit = |line: &str| line.contains("all --max-connections slots are in use");
    logs.wait_for_count(1, at_limit).await;
    let warnings = logs.lines(at_limit);
    assert_eq!(warnings.len(), 1, "{warnings:#?}");
    assert!(warnings[0].contains("WARN"), "{}", warnings[0]);

    drop(first);
    tokio::time::timeout(PROMPT, third.read_exact(&mut reply))
        .await
        .expect("the waiting client was not served once a slot freed")
        .unwrap();
    assert_eq!(&reply, b"wait");
    drop(second);
}

/// Connects to `addr`, sends `bytes`, and waits for the peer to close; returns how
/// long the close took.
async fn expect_closed_after_sending(addr: SocketAddr, bytes: &[u8]) -> Duration {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(bytes).await.unwrap();
    expect_closed(stream).await
}

/// Reads until the peer closes (end of stream or reset) and returns the wait; the
/// peer must send nothing but, at most, a handshake refusal, and must close within
/// the handshake deadline and [`PROMPT`].
async fn expect_closed(mut stream: TcpStream) -> Duration {
    let started = Instant::now();
    let mut received = Vec::new();
    let outcome = tokio::time::timeout(HANDSHAKE_TIMEOUT + PROMPT, async {
        let mut buf = [0u8; 256];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) => return Ok(()),
                Ok(n) => received.extend_from_slice(&buf[..n]),
                Err(err) => return Err(err),
            }
        }
    })
    .await
    .expect("the connection was left open");
    if let Err(err) = outcome {
        assert_eq!(err.kind(), std::io::ErrorKind::ConnectionReset, "{err}");
    }
    assert!(
        received.len() <= 64,
        "the remote sent {} bytes to a peer that failed its handshake",
        received.len()
    );
    started.elapsed()
}

/// Echoes `len` bytes through the local role at `addr` and checks them.
async fn echo_through(addr: SocketAddr, len: usize) {
    let data: Vec<u8> = (0..len).map(|i| (i * 7 % 251) as u8).collect();
    let stream = TcpStream::connect(addr).await.unwrap();
    let (mut read, mut write) = stream.into_split();
    let sent = data.clone();
    let writer = tokio::spawn(async move {
        write.write_all(&sent).await.unwrap();
        write.shutdown().await.unwrap();
    });
    let mut back = Vec::with_capacity(len);
    tokio::time::timeout(PROMPT, read.read_to_end(&mut back))
        .await
        .expect("the echo through the tunnel stalled")
        .unwrap();
    writer.await.unwrap();
    assert!(back == data, "the echo came back altered");
}

#[tokio::test]
async fn a_stopping_local_retires_its_pooled_tunnels_with_close_records() {
    let logs = Logs::default();
    let _guard = logs.install();
    let target = common::echo_target().await;
    let remote = common::spawn_remote(common::remote_config(target)).await;
    let local = common::spawn_local(common::local_config(remote.addr)).await;
    let pool = tunnel::config::DEFAULT_POOL_SIZE;
    logs.wait_for_count(pool, |line| line.contains("tunnel ready in the pool"))
        .await;

    local.stop().await;
    logs.wait_for_count(pool, |line| {
        line.contains("unused tunnel retired by the local side")
    })
    .await;
    // (Test keys are checked out with loose file modes; that warning is expected.)
    let failures = logs.lines(|line| {
        line.contains("WARN") && !line.contains("private key file is readable by other users")
    });
    assert!(
        failures.is_empty(),
        "warnings at a clean stop: {failures:#?}"
    );
}

#[tokio::test]
async fn a_connection_cut_at_shutdown_tells_the_peer_why() {
    let logs = Logs::default();
    let _guard = logs.install();
    let target = common::echo_target().await;
    let remote = common::spawn_remote(common::remote_config(target)).await;
    let mut config = common::local_config(remote.addr);
    config.limits.shutdown_grace = Duration::from_millis(300);
    let local = common::spawn_local(config).await;

    let mut client = TcpStream::connect(local.addr).await.unwrap();
    client.write_all(b"open").await.unwrap();
    let mut reply = [0u8; 4];
    client.read_exact(&mut reply).await.unwrap();

    let stopping = tokio::spawn(local.stop());
    expect_closed(client).await;
    let line = logs
        .wait_for("remote", |line| {
            line.contains("connection closed") && line.contains("the peer is shutting down")
        })
        .await;
    assert!(line.contains("INFO"), "{line}");
    tokio::time::timeout(PROMPT, stopping)
        .await
        .expect("the local did not finish stopping")
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_role_stops_accepting() {
    // A caller may cancel `run` (abort its task, or drop it in a select) without
    // triggering shutdown: neither role may go on accepting in a task of its own.
    let target = common::echo_target().await;
    let remote = Remote::bind(common::remote_config(target)).await.unwrap();
    let remote_addr = remote.local_addr().unwrap();
    let local = Local::bind(common::local_config(remote_addr))
        .await
        .unwrap();
    let local_addr = local.local_addrs()[0];
    let shutdown = Shutdown::new();
    let tasks = [
        tokio::spawn(remote.run(shutdown.clone())),
        tokio::spawn(local.run(shutdown.clone())),
    ];
    tokio::time::sleep(Duration::from_millis(100)).await;
    for task in tasks {
        task.abort();
        assert!(task.await.unwrap_err().is_cancelled());
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    for addr in [local_addr, remote_addr] {
        let refused = TcpStream::connect(addr).await.unwrap_err();
        assert_eq!(
            refused.kind(),
            std::io::ErrorKind::ConnectionRefused,
            "{addr} still accepts after its role was cancelled"
        );
    }
    drop(shutdown);
}

#[tokio::test]
async fn a_peer_still_in_its_handshake_does_not_hold_up_a_stop() {
    // Handshake deadline far beyond the stop: the silent peer must not keep the
    // remote running until it expires.
    let target = common::echo_target().await;
    let mut config = common::remote_config(target);
    config.limits.handshake_timeout = Duration::from_secs(60);
    config.limits.shutdown_grace = Duration::from_secs(60);
    let remote = common::spawn_remote(config).await;
    let silent = TcpStream::connect(remote.addr).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;

    let started = Instant::now();
    tokio::time::timeout(PROMPT, remote.stop())
        .await
        .expect("a silent peer held up the remote's stop");
    assert!(started.elapsed() < PROMPT);
    expect_closed(silent).await;
}

#[tokio::test]
async fn a_client_waiting_for_a_tunnel_is_cut_at_the_end_of_the_grace() {
    // A "remote" that accepts and never answers: the client's tunnel never gets
    // past the handshake, whose deadline is far beyond the grace period.
    let silent_remote = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mut config = common::local_config(silent_remote.local_addr().unwrap());
    config.pool = 0;
    config.limits.handshake_timeout = Duration::from_secs(60);
    config.limits.shutdown_grace = Duration::from_millis(300);
    let local = common::spawn_local(config).await;
    let client = TcpStream::connect(local.addr).await.unwrap();
    let (_held, _) = silent_remote.accept().await.unwrap();

    let started = Instant::now();
    tokio::time::timeout(PROMPT, local.stop())
        .await
        .expect("a client waiting for its tunnel held up the local's stop");
    assert!(started.elapsed() >= Duration::from_millis(300));
    expect_closed(client).await;
}
