//! Tests for the handshake core: [`local::run`] against [`remote::run`] over in-memory
//! duplex pipes, with the test-only keys in `tests/fixtures/`. They cover success under
//! each cipher and the default negotiation, every refusal the two sides report (unknown
//! local key, wrong remote key, no common cipher, version), a middleman that rewrites
//! handshake frames, and garbage, oversized or truncated input from scripted peers.
//! Sockets and the overall handshake timeout belong to the role modules and their tests.

use std::io::ErrorKind;
use std::sync::LazyLock;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, DuplexStream, duplex};

use super::local::{self, LocalParams};
use super::remote::{self, RemoteParams};
use super::{
    AlertCode, Established, FrameType, HandshakeError, MAGIC, MAX_FRAME_LEN, PREFACE_LEN,
    alert_error, preface,
};
use crate::crypto::CipherSuite::{Aes256Gcm as Aes, ChaCha20Poly1305 as ChaCha};
use crate::crypto::{CipherPolicy, CipherSuite, has_aes_hardware};
use crate::keys::{AuthorizedKeys, Fingerprint, PrivateKey};
use crate::record::{HEADER_LEN, Opener, RecordError, RecordType, Sealer};

/// Asserts that a handshake result is an error matching the pattern (and guard), and
/// shows what it was otherwise.
macro_rules! assert_fails {
    ($result:expr, $pattern:pat $(if $guard:expr)?) => {
        match $result {
            Err($pattern) $(if $guard)? => {}
            Err(other) => panic!(
                "{}: expected {}, got {other:?}",
                stringify!($result),
                stringify!($pattern)
            ),
            Ok(_) => panic!(
                "{}: expected {}, but the handshake succeeded",
                stringify!($result),
                stringify!($pattern)
            ),
        }
    };
}

#[tokio::test]
async fn each_cipher_completes_with_matching_keys() {
    for suite in CipherSuite::ALL {
        let setup = Setup::new().ciphers(&[suite], &[suite]);
        assert_established(&setup, setup.run().await, suite);
    }
}

#[tokio::test]
async fn explicit_remote_order_decides() {
    let setup = Setup::new().ciphers(&[ChaCha, Aes], &[Aes, ChaCha]);
    assert_established(&setup, setup.run().await, Aes);
    let setup = Setup::new().ciphers(&[Aes, ChaCha], &[ChaCha, Aes]);
    assert_established(&setup, setup.run().await, ChaCha);
}

#[tokio::test]
async fn default_policy_follows_aes_hardware() {
    // Both sides run on this machine, so both report the same hardware.
    let hardware = has_aes_hardware();
    let expected = if hardware { Aes } else { ChaCha };
    let policy = CipherPolicy::default();
    assert_eq!(
        policy.choose(&policy.offer(hardware), hardware, hardware),
        Some(expected)
    );

    let setup = Setup::new();
    assert_established(&setup, setup.run().await, expected);
}

#[tokio::test]
async fn unauthorized_local_key_is_refused() {
    let setup = Setup {
        local_key: &KEYS.stranger,
        ..Setup::new()
    };
    let (local, remote) = setup.run().await;
    assert_fails!(remote, HandshakeError::UnknownLocalKey(fp) if fp == fingerprint(&KEYS.stranger));
    assert_fails!(local, HandshakeError::RefusedByRemote);
}

#[tokio::test]
async fn a_full_signing_line_refuses_at_once_and_says_so() {
    // A key of its own: the shared test keys' lines serve other tests meanwhile.
    let remote_key: &'static PrivateKey = Box::leak(Box::new(PrivateKey::test_key("remote")));
    let setup = Setup {
        remote_key,
        ..Setup::new()
    };
    let full = remote_key.fill_signing_queue().await;
    let (local, remote) = tokio::time::timeout(Duration::from_secs(5), setup.run())
        .await
        .expect("a refused handshake waited");
    assert_fails!(remote, HandshakeError::Busy);
    assert_fails!(local, HandshakeError::Busy);

    drop(full);
    let setup = setup.ciphers(&[Aes], &[Aes]);
    assert_established(&setup, setup.run().await, Aes);
}

#[test]
fn alert_codes_map_to_their_errors_and_unknown_ones_are_not_called_a_key_refusal() {
    assert!(matches!(alert_error(&[3]), HandshakeError::RefusedByRemote));
    assert!(matches!(alert_error(&[4]), HandshakeError::UnknownTicket));
    assert!(matches!(alert_error(&[5]), HandshakeError::Busy));
    assert!(matches!(alert_error(&[9]), HandshakeError::UnknownAlert(9)));
    assert!(matches!(alert_error(&[]), HandshakeError::Malformed(_)));
}

#[tokio::test]
async fn unpinned_remote_key_is_rejected() {
    let setup = Setup {
        remote_key: &KEYS.stranger,
        ..Setup::new()
    };
    let (local, remote) = setup.run().await;
    assert_fails!(
        local,
        HandshakeError::WrongRemoteKey { expected, got }
            if expected == fingerprint(&KEYS.remote) && got == fingerprint(&KEYS.stranger)
    );
    // The local side hangs up without a word; the remote sees the stream end.
    assert_fails!(remote, HandshakeError::Io(err) if err.kind() == ErrorKind::UnexpectedEof);
}

#[tokio::test]
async fn no_common_cipher_names_both_lists() {
    let setup = Setup::new().ciphers(&[ChaCha], &[Aes]);
    let (local, remote) = setup.run().await;
    assert_fails!(
        remote,
        HandshakeError::NoCommonCipher { local: offered, remote: allowed }
            if offered == [ChaCha] && allowed == [Aes]
    );
    // The local side fills its own offer in; the remote's list comes from the Alert.
    assert_fails!(
        local,
        HandshakeError::NoCommonCipher { local: offered, remote: allowed }
            if offered == [ChaCha] && allowed == [Aes]
    );
}

#[tokio::test]
async fn local_of_another_version_gets_a_version_alert() {
    let (remote, received) = Setup::new()
        .remote_against(&preface_version(2), After::Wait)
        .await;
    assert_fails!(remote, HandshakeError::Version { ours: 1, theirs: 2 });
    // Our preface, then Alert (type 0x7f, length 3): code 1, protocol version 1.
    assert_eq!(received, b"tunnel\x00\x01\x7f\x00\x03\x01\x00\x01");
}

#[tokio::test]
async fn remote_of_another_version_is_reported() {
    let (local, _) = Setup::new()
        .local_against(&preface_version(2), After::Wait)
        .await;
    assert_fails!(local, HandshakeError::Version { ours: 1, theirs: 2 });
}

#[tokio::test]
async fn transparent_middleman_changes_nothing() {
    let setup = Setup::new().ciphers(&[ChaCha, Aes], &[ChaCha, Aes]);
    let outcome = setup
        .run_through(FrameType::LocalHello, |frame| frame)
        .await;
    assert_established(&setup, outcome, ChaCha);
}

#[tokio::test]
async fn reordered_offer_breaks_the_remote_signature() {
    // The remote follows its own explicit order, so the choice is unchanged; only the
    // transcript differs, and that alone must be caught.
    let setup = Setup::new().ciphers(&[ChaCha, Aes], &[ChaCha, Aes]);
    let (local, remote) = setup
        .run_through(FrameType::LocalHello, swap_offered_suites)
        .await;
    assert_fails!(local, HandshakeError::BadSignature { signer: "remote" });
    assert_fails!(remote, HandshakeError::Io(err) if err.kind() == ErrorKind::UnexpectedEof);
}

#[tokio::test]
async fn downgraded_offer_breaks_the_remote_signature() {
    // Dropping AES-256-GCM from the offer makes the remote choose ChaCha20-Poly1305,
    // which the local side did offer, so only the signature can reveal the change.
    let setup = Setup::new().ciphers(&[Aes, ChaCha], &[Aes, ChaCha]);
    let (local, remote) = setup
        .run_through(FrameType::LocalHello, drop_first_offered_suite)
        .await;
    assert_fails!(local, HandshakeError::BadSignature { signer: "remote" });
    assert_fails!(remote, HandshakeError::Io(err) if err.kind() == ErrorKind::UnexpectedEof);
}

#[tokio::test]
async fn flipped_bit_in_remote_auth_fails_on_local() {
    let setup = Setup::new();
    let (local, remote) = setup
        .run_through(FrameType::RemoteAuth, flip_last_bit)
        .await;
    assert_fails!(local, HandshakeError::BadSignature { signer: "remote" });
    assert_fails!(remote, HandshakeError::Io(err) if err.kind() == ErrorKind::UnexpectedEof);
}

#[tokio::test]
async fn flipped_bit_in_local_auth_fails_on_remote() {
    let setup = Setup::new();
    let (local, remote) = setup.run_through(FrameType::LocalAuth, flip_last_bit).await;
    assert_fails!(remote, HandshakeError::BadSignature { signer: "local" });
    // LocalAuth is the last handshake message, so the local side has already finished
    // when the remote checks it; it learns of the refusal only after the handshake.
    assert!(
        local.is_ok(),
        "the local side does not wait for the remote's verdict"
    );
}

#[tokio::test]
async fn non_tunnel_first_bytes_are_refused() {
    let setup = Setup::new();
    let http = b"GET / HTTP/1.1\r\nHost: example\r\n\r\n";
    let (remote, received) = setup.remote_against(http, After::Wait).await;
    assert_fails!(remote, HandshakeError::NotTunnel(shown) if shown == "GET / HT");
    assert!(
        received.is_empty(),
        "the remote answered a stranger: {received:?}"
    );

    let tls = [
        0x16, 0x03, 0x01, 0x00, 0xa5, 0x01, 0x00, 0x00, 0xa1, 0x03, 0x03,
    ];
    let (remote, received) = setup.remote_against(&tls, After::Wait).await;
    let expected = String::from_utf8_lossy(&tls[..PREFACE_LEN]).into_owned();
    assert_fails!(remote, HandshakeError::NotTunnel(shown) if shown == expected);
    assert!(
        received.is_empty(),
        "the remote answered a stranger: {received:?}"
    );

    let (local, _) = setup
        .local_against(b"HTTP/1.1 400 Bad Request\r\n\r\n", After::Close)
        .await;
    assert_fails!(local, HandshakeError::NotTunnel(shown) if shown == "HTTP/1.1");
}

#[tokio::test]
async fn oversized_frame_length_is_malformed() {
    let setup = Setup::new();
    for announced in [MAX_FRAME_LEN + 1, usize::from(u16::MAX)] {
        // Only the header is sent and the stream stays open: the check must come
        // before any attempt to read the announced body.
        let (remote, received) = setup
            .remote_against(
                &preface_and_header(FrameType::LocalHello, announced),
                After::Wait,
            )
            .await;
        let shown = announced.to_string();
        assert_fails!(remote, HandshakeError::Malformed(why) if why.contains(&shown));
        assert!(
            received.is_empty(),
            "the remote answered a malformed hello: {received:?}"
        );

        let (local, _) = setup
            .local_against(
                &preface_and_header(FrameType::RemoteHello, announced),
                After::Wait,
            )
            .await;
        assert_fails!(local, HandshakeError::Malformed(why) if why.contains(&shown));
    }
}

#[tokio::test]
async fn an_alert_from_the_local_is_a_protocol_error_on_the_remote() {
    // The remote must not log a local's alert in the local's words ("remote
    // refused our key"): only remotes send alerts.
    let setup = Setup::new();
    for code in [AlertCode::AuthenticationFailed, AlertCode::UnknownTicket] {
        let mut script = preface_and_header(FrameType::Alert, 1);
        script.push(code as u8);
        let (remote, received) = setup.remote_against(&script, After::Wait).await;
        assert_fails!(remote, HandshakeError::Malformed(why) if why.contains("only the remote sends"));
        assert!(received.is_empty(), "the remote answered: {received:?}");
    }
}

#[tokio::test]
async fn truncated_handshake_is_an_io_error() {
    let setup = Setup::new();
    for script in truncated_openings(FrameType::LocalHello) {
        let (remote, _) = setup.remote_against(&script, After::Close).await;
        assert_fails!(remote, HandshakeError::Io(err) if err.kind() == ErrorKind::UnexpectedEof);
    }
    for script in truncated_openings(FrameType::RemoteHello) {
        let (local, _) = setup.local_against(&script, After::Close).await;
        assert_fails!(local, HandshakeError::Io(err) if err.kind() == ErrorKind::UnexpectedEof);
    }
}

/// Ample room for any handshake flight, so no writer ever waits on a reader.
const PIPE_CAPACITY: usize = 64 * 1024;

/// Longest a test waits for both sides; a hang fails the test instead of stalling it.
const TEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Handshake frames each direction carries: LocalHello and LocalAuth one way,
/// RemoteHello and RemoteAuth the other.
const FRAMES_PER_DIRECTION: usize = 2;

/// Where the suite count sits in a LocalHello frame: after the type and length (3),
/// the X25519 share (32) and the flags (1). The suite ids follow it.
const OFFER_COUNT_AT: usize = 3 + 32 + 1;

type Outcome = (
    Result<Established, HandshakeError>,
    Result<Established, HandshakeError>,
);

/// The fixture keys, loaded once.
struct Keys {
    local: PrivateKey,
    remote: PrivateKey,
    stranger: PrivateKey,
}

static KEYS: LazyLock<Keys> = LazyLock::new(|| Keys {
    local: PrivateKey::test_key("local"),
    remote: PrivateKey::test_key("remote"),
    stranger: PrivateKey::test_key("stranger"),
});

fn fingerprint(key: &PrivateKey) -> Fingerprint {
    key.public_key().fingerprint()
}

/// Both sides' parameters. [`Setup::new`] gives a pair that trust each other and use
/// the default cipher policy.
struct Setup {
    local_key: &'static PrivateKey,
    remote_key: &'static PrivateKey,
    remote_pin: Fingerprint,
    authorized: AuthorizedKeys,
    local_ciphers: CipherPolicy,
    remote_ciphers: CipherPolicy,
}

impl Setup {
    fn new() -> Self {
        Self {
            local_key: &KEYS.local,
            remote_key: &KEYS.remote,
            remote_pin: fingerprint(&KEYS.remote),
            authorized: AuthorizedKeys::from_fingerprints([fingerprint(&KEYS.local)]),
            local_ciphers: CipherPolicy::default(),
            remote_ciphers: CipherPolicy::default(),
        }
    }

    fn ciphers(self, local: &[CipherSuite], remote: &[CipherSuite]) -> Self {
        Self {
            local_ciphers: CipherPolicy::explicit(local).expect("test lists are not empty"),
            remote_ciphers: CipherPolicy::explicit(remote).expect("test lists are not empty"),
            ..self
        }
    }

    /// Runs the local side; the stream closes when it returns, as a role would close it.
    async fn local(&self, mut stream: DuplexStream) -> Result<Established, HandshakeError> {
        let params = LocalParams {
            key: self.local_key,
            remote_pin: self.remote_pin,
            ciphers: &self.local_ciphers,
        };
        local::run(&mut stream, &params).await
    }

    /// Runs the remote side; the stream closes when it returns.
    async fn remote(&self, mut stream: DuplexStream) -> Result<Established, HandshakeError> {
        let params = RemoteParams {
            key: self.remote_key,
            authorized: &self.authorized,
            ciphers: &self.remote_ciphers,
            tickets: None,
        };
        remote::run(&mut stream, &params).await
    }

    /// Runs both sides against each other; returns (local, remote).
    async fn run(&self) -> Outcome {
        let (local_end, remote_end) = duplex(PIPE_CAPACITY);
        bounded(async { tokio::join!(self.local(local_end), self.remote(remote_end)) }).await
    }

    /// Runs both sides with a middleman between them that passes every frame of type
    /// `target` through `edit`.
    async fn run_through(&self, target: FrameType, edit: fn(Vec<u8>) -> Vec<u8>) -> Outcome {
        let (local_end, middle_local) = duplex(PIPE_CAPACITY);
        let (middle_remote, remote_end) = duplex(PIPE_CAPACITY);
        let (local, remote, ()) = bounded(async {
            tokio::join!(
                self.local(local_end),
                self.remote(remote_end),
                middleman(middle_local, middle_remote, target, edit)
            )
        })
        .await;
        (local, remote)
    }

    /// Runs the remote side against a scripted local; returns what the script received.
    async fn remote_against(
        &self,
        script: &[u8],
        after: After,
    ) -> (Result<Established, HandshakeError>, Vec<u8>) {
        let (ours, theirs) = duplex(PIPE_CAPACITY);
        bounded(async { tokio::join!(self.remote(ours), scripted(theirs, script, after)) }).await
    }

    /// Runs the local side against a scripted remote; returns what the script received.
    async fn local_against(
        &self,
        script: &[u8],
        after: After,
    ) -> (Result<Established, HandshakeError>, Vec<u8>) {
        let (ours, theirs) = duplex(PIPE_CAPACITY);
        bounded(async { tokio::join!(self.local(ours), scripted(theirs, script, after)) }).await
    }
}

/// Checks a successful outcome: both sides agree on `suite`, each names the other's
/// key, records open in both directions, and the two directions use different keys.
fn assert_established(setup: &Setup, outcome: Outcome, suite: CipherSuite) {
    let mut local = outcome.0.expect("local side failed");
    let mut remote = outcome.1.expect("remote side failed");
    assert_eq!((local.suite, remote.suite), (suite, suite));
    assert_eq!(local.peer, fingerprint(setup.remote_key));
    assert_eq!(remote.peer, fingerprint(setup.local_key));

    let upstream = seal(&mut local.sealer, b"from local to remote");
    assert_eq!(
        open(&mut remote.opener, &upstream).unwrap(),
        b"from local to remote"
    );
    let downstream = seal(&mut remote.sealer, b"from remote to local");
    assert_eq!(
        open(&mut local.opener, &downstream).unwrap(),
        b"from remote to local"
    );

    // Same record number on both openers now; only the key differs.
    let second = seal(&mut local.sealer, b"second");
    assert_eq!(
        open(&mut local.opener, &second),
        Err(RecordError::Authentication)
    );
    assert_eq!(open(&mut remote.opener, &second).unwrap(), b"second");
}

fn seal(sealer: &mut Sealer, payload: &[u8]) -> Vec<u8> {
    sealer
        .seal_to_vec(RecordType::Data, payload)
        .expect("a short payload fits a record")
}

fn open(opener: &mut Opener, record: &[u8]) -> Result<Vec<u8>, RecordError> {
    let header: [u8; HEADER_LEN] = record[..HEADER_LEN]
        .try_into()
        .expect("record has a header");
    let mut body = record[HEADER_LEN..].to_vec();
    let (kind, payload) = opener.open_in_place(&header, &mut body)?;
    assert_eq!(kind, RecordType::Data);
    Ok(body[payload].to_vec())
}

async fn bounded<F: Future>(future: F) -> F::Output {
    tokio::time::timeout(TEST_TIMEOUT, future)
        .await
        .expect("handshake did not finish in time")
}

/// What a scripted peer does once its bytes are written.
#[derive(Clone, Copy)]
enum After {
    /// Closes its sending half, as a peer that gives up would.
    Close,
    /// Keeps the stream open until the side under test closes it.
    Wait,
}

/// A peer that sends `script`, then returns all it receives until the other side closes.
async fn scripted(mut stream: DuplexStream, script: &[u8], after: After) -> Vec<u8> {
    stream
        .write_all(script)
        .await
        .expect("the pipe has room for the script");
    if let After::Close = after {
        stream.shutdown().await.expect("closing an in-memory pipe");
    }
    let mut received = Vec::new();
    let _ = stream.read_to_end(&mut received).await;
    received
}

fn preface_version(version: u16) -> Vec<u8> {
    let mut bytes = preface().to_vec();
    bytes[MAGIC.len()..].copy_from_slice(&version.to_be_bytes());
    bytes
}

/// A valid preface followed by a frame header announcing `len` body bytes.
fn preface_and_header(kind: FrameType, len: usize) -> Vec<u8> {
    let len = u16::try_from(len).expect("the length field is a u16");
    let mut bytes = preface().to_vec();
    bytes.push(kind as u8);
    bytes.extend_from_slice(&len.to_be_bytes());
    bytes
}

/// Openings a peer might send before closing: nothing, only the preface, and the
/// preface with a hello of type `kind` cut off 10 bytes into its announced 100.
fn truncated_openings(kind: FrameType) -> [Vec<u8>; 3] {
    let mut cut_hello = preface_and_header(kind, 100);
    cut_hello.extend_from_slice(&[0u8; 10]);
    [Vec::new(), preface().to_vec(), cut_hello]
}

/// Relays between the two sides in both directions, editing frames of type `target`.
async fn middleman(
    local_end: DuplexStream,
    remote_end: DuplexStream,
    target: FrameType,
    edit: fn(Vec<u8>) -> Vec<u8>,
) {
    let (from_local, to_local) = tokio::io::split(local_end);
    let (from_remote, to_remote) = tokio::io::split(remote_end);
    tokio::join!(
        forward(from_local, to_remote, target, edit),
        forward(from_remote, to_local, target, edit)
    );
}

/// Copies one direction, then closes `to` so the far side sees the stream end.
async fn forward(
    mut from: impl AsyncRead + Unpin,
    mut to: impl AsyncWrite + Unpin,
    target: FrameType,
    edit: fn(Vec<u8>) -> Vec<u8>,
) {
    let _ = forward_frames(&mut from, &mut to, target, edit).await;
    let _ = to.shutdown().await;
}

/// Passes the preface through, then each handshake frame (edited when its type is
/// `target`), then whatever follows unchanged. Stops at the first error or end of stream.
async fn forward_frames(
    from: &mut (impl AsyncRead + Unpin),
    to: &mut (impl AsyncWrite + Unpin),
    target: FrameType,
    edit: fn(Vec<u8>) -> Vec<u8>,
) -> std::io::Result<u64> {
    let mut preface = [0u8; PREFACE_LEN];
    from.read_exact(&mut preface).await?;
    to.write_all(&preface).await?;
    for _ in 0..FRAMES_PER_DIRECTION {
        let mut frame = vec![0u8; 3];
        from.read_exact(&mut frame).await?;
        let len = usize::from(u16::from_be_bytes([frame[1], frame[2]]));
        frame.resize(3 + len, 0);
        from.read_exact(&mut frame[3..]).await?;
        if frame[0] == target as u8 {
            frame = edit(frame);
        }
        to.write_all(&frame).await?;
    }
    tokio::io::copy(from, to).await
}

fn swap_offered_suites(mut frame: Vec<u8>) -> Vec<u8> {
    assert_eq!(frame[OFFER_COUNT_AT], 2, "the test offers two suites");
    frame.swap(OFFER_COUNT_AT + 1, OFFER_COUNT_AT + 2);
    frame
}

fn drop_first_offered_suite(mut frame: Vec<u8>) -> Vec<u8> {
    assert_eq!(frame[OFFER_COUNT_AT], 2, "the test offers two suites");
    frame.remove(OFFER_COUNT_AT + 1);
    frame[OFFER_COUNT_AT] = 1;
    let body_len = u16::try_from(frame.len() - 3).expect("a hello fits a frame");
    frame[1..3].copy_from_slice(&body_len.to_be_bytes());
    frame
}

fn flip_last_bit(mut frame: Vec<u8>) -> Vec<u8> {
    *frame.last_mut().expect("an auth frame has a signature") ^= 1;
    frame
}
