//! Handshake cost: one complete local-to-remote handshake per iteration, both roles
//! running the real [`local::run`] and [`remote::run`] against each other over an
//! in-memory [`tokio::io::duplex`] pipe on a current-thread runtime.
//!
//! Each iteration pays for everything a new tunnel connection pays for before its
//! first record: two fresh X25519 key shares and the exchange, two RSA-PSS signatures
//! and two verifications with the 2048-bit test keys, the transcript hashes and the
//! key schedule. The remote is given no ticket store, so no iteration resumes an
//! earlier session. Loading the key files is done once, outside the measurement; TCP
//! connection setup and network latency are not part of it.

use std::path::Path;

use criterion::{Criterion, SamplingMode, Throughput, criterion_group, criterion_main};
use tokio::runtime::Runtime;
use tunnel::crypto::CipherPolicy;
use tunnel::handshake::local::{self, LocalParams};
use tunnel::handshake::remote::{self, RemoteParams};
use tunnel::handshake::{Established, HandshakeError};
use tunnel::keys::{AuthorizedKeys, PrivateKey, load_private_key};
use tunnel::record::{HEADER_LEN, RecordType};

/// Bytes each direction of the in-memory pipe buffers. Larger than a whole handshake
/// flight, so neither side ever waits on the pipe itself.
const DUPLEX_CAPACITY: usize = 64 * 1024;

/// Samples per measurement. A handshake takes milliseconds, so criterion's default of
/// 100 samples would not fit a few seconds of measurement.
const SAMPLE_SIZE: usize = 20;

fn handshake(c: &mut Criterion) {
    let local_key = fixture_key("test-only-local.pem");
    let remote_key = fixture_key("test-only-remote.pem");
    let ciphers = CipherPolicy::default();
    let authorized = AuthorizedKeys::from_fingerprints([local_key.public_key().fingerprint()]);
    let local_params = LocalParams {
        key: &local_key,
        remote_pin: remote_key.public_key().fingerprint(),
        ciphers: &ciphers,
    };
    let remote_params = RemoteParams {
        key: &remote_key,
        authorized: &authorized,
        ciphers: &ciphers,
        // No ticket store: every iteration is a full RSA handshake, never a resumed one.
        tickets: None,
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a current-thread runtime starts");

    check_keys_agree(&runtime, &local_params, &remote_params);

    let mut group = c.benchmark_group("handshake");
    group.sample_size(SAMPLE_SIZE);
    group.sampling_mode(SamplingMode::Flat);
    group.throughput(Throughput::Elements(1));
    group.bench_function("local_remote_duplex", |b| {
        b.to_async(&runtime).iter(|| async {
            let (local, remote) = run_pair(&local_params, &remote_params).await;
            local.expect("local handshake succeeds");
            remote.expect("remote handshake succeeds");
        });
    });
    group.finish();
}

/// Runs both roles to completion over a fresh pipe.
async fn run_pair(
    local_params: &LocalParams<'_>,
    remote_params: &RemoteParams<'_>,
) -> (
    Result<Established, HandshakeError>,
    Result<Established, HandshakeError>,
) {
    let (mut local_end, mut remote_end) = tokio::io::duplex(DUPLEX_CAPACITY);
    tokio::join!(
        local::run(&mut local_end, local_params),
        remote::run(&mut remote_end, remote_params),
    )
}

/// Before measuring, checks that a handshake ends with both sides on the same suite,
/// each naming the other's key, and with keys that open each other's records; a bench
/// of a handshake that does not work would measure nothing useful.
fn check_keys_agree(
    runtime: &Runtime,
    local_params: &LocalParams<'_>,
    remote_params: &RemoteParams<'_>,
) {
    let (local, remote) = runtime.block_on(run_pair(local_params, remote_params));
    let mut local = local.expect("local handshake succeeds");
    let mut remote = remote.expect("remote handshake succeeds");
    assert_eq!(local.suite, remote.suite, "both sides agree on the suite");
    assert_eq!(local.peer, remote_params.key.public_key().fingerprint());
    assert_eq!(remote.peer, local_params.key.public_key().fingerprint());

    for (sender, receiver, text) in [
        (
            &mut local.sealer,
            &mut remote.opener,
            &b"local to remote"[..],
        ),
        (
            &mut remote.sealer,
            &mut local.opener,
            &b"remote to local"[..],
        ),
    ] {
        let mut record = sender
            .seal_to_vec(RecordType::Data, text)
            .expect("a short payload fits");
        let (header, body) = record.split_at_mut(HEADER_LEN);
        let header: &[u8; HEADER_LEN] = (&*header).try_into().expect("split at HEADER_LEN");
        let (kind, range) = receiver
            .open_in_place(header, body)
            .expect("traffic keys match");
        assert_eq!((kind, &body[range]), (RecordType::Data, text));
    }
}

fn fixture_key(name: &str) -> PrivateKey {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    load_private_key(&path).unwrap_or_else(|err| panic!("loading {}: {err}", path.display()))
}

criterion_group!(benches, handshake);
criterion_main!(benches);
