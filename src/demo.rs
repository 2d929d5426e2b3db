//! `tunnel demo`: a complete tunnel on loopback with nothing prepared.
//!
//! It makes throwaway RSA keys in memory, starts an echo service, then for each
//! cipher a remote and a local role on free loopback ports (the same [`Remote`] and
//! [`Local`] code the commands run), and checks the path three ways: a handshake
//! probe straight to the remote that reports the negotiated cipher and handshake
//! time, the first-byte time of a new connection through the local listener, and a
//! bulk transfer echoed back whose SHA-256 must match what was sent. Any mismatch
//! is an error and a non-zero exit.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::Rng;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::config::{DEFAULT_POOL_SIZE, Forward, HostPort, Limits, LocalConfig, RemoteConfig};
use crate::crypto::{CipherPolicy, CipherSuite};
use crate::error::Error;
use crate::handshake::{self, local::LocalParams};
use crate::keys::{AuthorizedKeys, PrivateKey};
use crate::local::Local;
use crate::record::{HEADER_LEN, RecordError, RecordType, is_alert, parse_header};
use crate::remote::Remote;
use crate::shutdown::Shutdown;

/// Key size for the throwaway demo keys: the smallest accepted, to start quickly.
const DEMO_KEY_BITS: usize = 2048;

/// Chunk size the demo writes with, in bytes.
const CHUNK_LEN: usize = 256 * 1024;

/// Runs the demo, printing one line per cipher.
///
/// # Errors
/// [`Error::Demo`] naming the check that failed.
pub async fn run(bytes: u64) -> Result<(), Error> {
    println!("making throwaway RSA-{DEMO_KEY_BITS} keys for both sides...");
    let (local_key, remote_key) = tokio::task::spawn_blocking(|| {
        Ok::<_, Error>((
            PrivateKey::generate(DEMO_KEY_BITS)?,
            PrivateKey::generate(DEMO_KEY_BITS)?,
        ))
    })
    .await
    .map_err(|err| Error::Demo(format!("key generation task failed: {err}")))??;
    let (local_key, remote_key) = (Arc::new(local_key), Arc::new(remote_key));
    let echo = start_echo().await?;
    println!(
        "echo service on {echo}; pushing {} MiB each way per cipher",
        bytes >> 20
    );

    for suite in CipherSuite::ALL {
        let ciphers = CipherPolicy::explicit(&[suite]).map_err(Error::Demo)?;
        let loopback = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
        let remote = Remote::bind(RemoteConfig {
            listen: loopback,
            target: HostPort {
                host: echo.ip().to_string(),
                port: echo.port(),
            },
            key: remote_key.clone(),
            authorized: Arc::new(AuthorizedKeys::from_fingerprints([local_key
                .public_key()
                .fingerprint()])),
            ciphers: ciphers.clone(),
            limits: Limits::default(),
        })
        .await?;
        let remote_addr = io(remote.local_addr(), "reading the remote's address")?;
        let local = Local::bind(LocalConfig {
            forwards: vec![Forward {
                bind: loopback,
                remote: HostPort {
                    host: remote_addr.ip().to_string(),
                    port: remote_addr.port(),
                },
            }],
            key: local_key.clone(),
            remote_pin: remote_key.public_key().fingerprint(),
            ciphers: ciphers.clone(),
            pool: DEFAULT_POOL_SIZE,
            limits: Limits::default(),
        })
        .await?;
        let local_addr = local.local_addrs()[0];
        let shutdown = Shutdown::new();
        let roles = (
            tokio::spawn(remote.run(shutdown.clone())),
            tokio::spawn(local.run(shutdown.clone())),
        );

        let params = LocalParams {
            key: &local_key,
            remote_pin: remote_key.public_key().fingerprint(),
            ciphers: &ciphers,
        };
        let (negotiated, handshake_time) = probe(remote_addr, &params).await?;
        if negotiated != suite {
            return Err(Error::Demo(format!(
                "asked for {suite}, negotiated {negotiated}"
            )));
        }
        let first_byte = first_byte_time(local_addr).await?;
        let (elapsed, moved) = bulk(local_addr, bytes).await?;
        let mbit = (moved * 8) as f64 / elapsed.as_secs_f64() / 1e6;
        println!(
            "{negotiated:<18} handshake {:>6.2} ms | new connection first byte {:>6.2} ms | \
             {} MiB echoed in {:.2} s: {mbit:.0} Mbit/s each way | sha256 match",
            handshake_time.as_secs_f64() * 1e3,
            first_byte.as_secs_f64() * 1e3,
            moved >> 20,
            elapsed.as_secs_f64(),
        );

        shutdown.trigger();
        let _ = roles.0.await;
        let _ = roles.1.await;
    }
    println!("demo passed: every byte arrived intact with both ciphers");
    Ok(())
}

/// Handshakes straight with the remote, closes the tunnel cleanly and returns the
/// negotiated cipher and the handshake's duration.
async fn probe(
    remote: SocketAddr,
    params: &LocalParams<'_>,
) -> Result<(CipherSuite, Duration), Error> {
    let mut stream = io(TcpStream::connect(remote).await, "connecting to the remote")?;
    let started = Instant::now();
    let mut established = handshake::local::run(&mut stream, params)
        .await
        .map_err(|err| Error::Demo(format!("handshake probe: {err}")))?;
    let took = started.elapsed();

    // Open the tunnel (the remote then connects to the echo service) and close it
    // again at once; the remote answers with its own close.
    let mut records = Vec::new();
    for kind in [RecordType::Data, RecordType::Close] {
        let record = established.sealer.seal_to_vec(kind, &[]);
        records.extend(record.map_err(|err| Error::Demo(err.to_string()))?);
    }
    io(stream.write_all(&records).await, "sending open and close")?;
    let mut header = [0u8; HEADER_LEN];
    io(
        stream.read_exact(&mut header).await,
        "reading the remote's close",
    )?;
    if is_alert(&header) {
        return Err(Error::Demo(RecordError::Refused.to_string()));
    }
    let len = parse_header(&header).map_err(|err| Error::Demo(err.to_string()))?;
    let mut body = vec![0u8; len];
    io(
        stream.read_exact(&mut body).await,
        "reading the remote's close",
    )?;
    let (kind, _) = established
        .opener
        .open_in_place(&header, &mut body)
        .map_err(|err| Error::Demo(format!("remote's reply: {err}")))?;
    if kind != RecordType::Close {
        return Err(Error::Demo(format!(
            "expected the remote to close, got {kind:?}"
        )));
    }
    Ok((established.suite, took))
}

/// Time from connect until a one-byte echo comes back through the local listener.
async fn first_byte_time(local: SocketAddr) -> Result<Duration, Error> {
    let started = Instant::now();
    let mut stream = io(
        TcpStream::connect(local).await,
        "connecting to the local listener",
    )?;
    io(stream.write_all(b"?").await, "writing through the tunnel")?;
    let mut byte = [0u8; 1];
    io(
        stream.read_exact(&mut byte).await,
        "reading the first echoed byte",
    )?;
    if &byte != b"?" {
        return Err(Error::Demo(
            "the first echoed byte differs from the one sent".into(),
        ));
    }
    Ok(started.elapsed())
}

/// Sends `bytes` of random data through the local listener, reads the echo back,
/// and compares length and SHA-256.
async fn bulk(local: SocketAddr, bytes: u64) -> Result<(Duration, u64), Error> {
    let stream = io(
        TcpStream::connect(local).await,
        "connecting to the local listener",
    )?;
    let (mut reader, mut writer) = stream.into_split();
    let started = Instant::now();
    let send = tokio::spawn(async move {
        let mut hash = Sha256::new();
        let mut chunk = vec![0u8; CHUNK_LEN];
        let mut left = bytes;
        while left > 0 {
            let len = left.min(CHUNK_LEN as u64) as usize;
            rand::rng().fill_bytes(&mut chunk[..len]);
            hash.update(&chunk[..len]);
            writer.write_all(&chunk[..len]).await?;
            left -= len as u64;
        }
        writer.shutdown().await?;
        Ok::<_, std::io::Error>(hash.finalize())
    });
    let mut hash = Sha256::new();
    let mut received = 0u64;
    let mut buf = vec![0u8; CHUNK_LEN];
    loop {
        let read = io(reader.read(&mut buf).await, "reading the echo")?;
        if read == 0 {
            break;
        }
        hash.update(&buf[..read]);
        received += read as u64;
    }
    let elapsed = started.elapsed();
    let sent_hash = send
        .await
        .map_err(|err| Error::Demo(format!("sender task failed: {err}")))?
        .map_err(|err| Error::Demo(format!("writing through the tunnel: {err}")))?;
    if received != bytes {
        return Err(Error::Demo(format!(
            "sent {bytes} bytes, {received} came back"
        )));
    }
    if hash.finalize() != sent_hash {
        return Err(Error::Demo(
            "the bytes that came back differ from those sent".into(),
        ));
    }
    Ok((elapsed, received))
}

/// An echo service on a free loopback port: each connection gets back what it
/// sends, and its end of stream.
async fn start_echo() -> Result<SocketAddr, Error> {
    let listener = io(
        TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await,
        "binding the echo service",
    )?;
    let addr = io(listener.local_addr(), "reading the echo service's address")?;
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
    Ok(addr)
}

fn io<T>(result: std::io::Result<T>, context: &str) -> Result<T, Error> {
    result.map_err(|source| Error::Io {
        context: context.into(),
        source,
    })
}
