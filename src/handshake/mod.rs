//! The handshake: mutual RSA authentication, an ephemeral X25519 exchange and cipher
//! negotiation, ending in one traffic secret per direction.
//!
//! Roles: the **local** side (`tunnel local`) initiates and the **remote** side
//! (`tunnel remote`) responds. This module owns the message formats, the transcript
//! and the key schedule; [`local`] and [`remote`] hold each role's sequence of steps
//! over any byte stream. Socket setup and the overall timeout belong to the role
//! modules [`crate::local`] and [`crate::remote`]; what happens after the handshake
//! belongs to [`crate::record`].
//!
//! # Flow (protocol version 1)
//!
//! ```text
//! local                                        remote
//!   preface, LocalHello       ---------->
//!                             <----------      preface, RemoteHello, RemoteAuth
//!   LocalAuth, records...     ---------->
//!                             <----------      records...
//! ```
//!
//! Every message is a frame: `type` (1 byte), `len` (u16 BE, at most
//! [`MAX_FRAME_LEN`]), then `len` bytes of body. The preface is 8 bytes, `tunnel`
//! followed by the protocol version as u16 BE; it lets either side refuse a peer of
//! another version with a clear reason.
//!
//! | message     | body                                                                  |
//! |-------------|-----------------------------------------------------------------------|
//! | LocalHello  | X25519 public (32), flags (1), suite count (1), suite ids, SPKI len (u16), SPKI DER |
//! | RemoteHello | X25519 public (32), flags (1), chosen suite id (1), SPKI len (u16), SPKI DER |
//! | RemoteAuth  | RSA-PSS-SHA256 signature by the remote over `"tunnel v1 remote auth\0"` ‖ H1 |
//! | LocalAuth   | RSA-PSS-SHA256 signature by the local over `"tunnel v1 local auth\0"` ‖ H2 |
//! | Alert       | code (1), then code-specific detail; sent in clear, then the sender closes |
//!
//! Flag bit 0 says the sender has AES hardware. H1 is SHA-256 over every byte both
//! sides have sent up to and including RemoteHello (prefaces and frames, in order);
//! H2 adds RemoteAuth; H3 adds LocalAuth. Because the offer, the flags and the choice
//! are all inside H1 and H2, a middleman who rewrites any of them makes a signature
//! check fail.
//!
//! Keys: `prk = HKDF-Extract(salt = H3, ikm = X25519 shared secret)`, then
//! `HKDF-Expand(prk, "tunnel v1 local to remote", 32)` and
//! `HKDF-Expand(prk, "tunnel v1 remote to local", 32)` are the traffic secrets for
//! the two directions. RSA only signs; nothing is ever encrypted to an RSA key, and
//! the ephemeral X25519 secrets are dropped (and wiped) when the handshake ends, so
//! recorded traffic stays secret if an RSA key leaks later.
//!
//! Both public keys travel in clear: an observer learns which keys are in use, not
//! what is said.

pub mod local;
pub mod remote;
pub mod resume;

use std::fmt;
use std::time::Duration;

use hkdf::Hkdf;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use x25519_dalek::PublicKey as KeyShare;
use zeroize::Zeroizing;

use crate::crypto::{CipherPolicy, CipherSuite, has_aes_hardware, list_names};
use crate::keys::{Fingerprint, KeyError};
use crate::record::{Opener, Sealer};
use resume::{TICKET_ID_LEN, Ticket, TicketKind};

/// The protocol version this build speaks.
pub const PROTOCOL_VERSION: u16 = 1;

/// Largest handshake frame body, in bytes. Enough for an 8192-bit key or signature
/// with room to spare; a larger frame ends the handshake with
/// [`HandshakeError::Malformed`].
pub const MAX_FRAME_LEN: usize = 4096;

/// Bytes a role reads ahead while a handshake runs (through a `BufReader` its
/// caller puts around the socket), so that a flight of frames costs one read rather
/// than two per frame. The largest flight, a remote's with an 8192-bit key, fits.
/// The caller owns what was read past the last handshake frame: the remote hands it
/// to the record layer, and the local, whose peer sends nothing until the tunnel
/// opens, refuses it.
pub const READ_AHEAD: usize = 4 * 1024;

/// Most cipher suites a LocalHello may offer.
pub const MAX_OFFERED_SUITES: usize = 16;

/// Default limit on the whole handshake, from TCP accept (or connect) to the last
/// message; a peer that is slower is dropped with [`HandshakeError::Timeout`].
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

const MAGIC: &[u8; 6] = b"tunnel";
const PREFACE_LEN: usize = 8;
const FLAG_AES_HARDWARE: u8 = 1;
const CONTEXT_REMOTE: &[u8] = b"tunnel v1 remote auth\0";
const CONTEXT_LOCAL: &[u8] = b"tunnel v1 local auth\0";
const LABEL_LOCAL_TO_REMOTE: &[u8] = b"tunnel v1 local to remote";
const LABEL_REMOTE_TO_LOCAL: &[u8] = b"tunnel v1 remote to local";
const LABEL_RESUMPTION: &[u8] = b"tunnel v1 resumption";
const LABEL_TICKET_ID: &[u8] = b"tunnel v1 ticket id";

/// Handshake message types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FrameType {
    LocalHello = 1,
    RemoteHello = 2,
    RemoteAuth = 3,
    LocalAuth = 4,
    ResumeHello = 5,
    ResumeAccept = 6,
    RemoteFinished = 7,
    LocalFinished = 8,
    Alert = 0x7f,
}

impl FrameType {
    /// Whether the local side is the one that sends this message.
    fn sent_by_local(self) -> bool {
        matches!(
            self,
            FrameType::LocalHello
                | FrameType::LocalAuth
                | FrameType::ResumeHello
                | FrameType::LocalFinished
        )
    }

    fn from_byte(byte: u8) -> Option<Self> {
        Some(match byte {
            1 => FrameType::LocalHello,
            2 => FrameType::RemoteHello,
            3 => FrameType::RemoteAuth,
            4 => FrameType::LocalAuth,
            5 => FrameType::ResumeHello,
            6 => FrameType::ResumeAccept,
            7 => FrameType::RemoteFinished,
            8 => FrameType::LocalFinished,
            0x7f => FrameType::Alert,
            _ => return None,
        })
    }
}

/// Alert codes the remote sends before closing a failed handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AlertCode {
    /// Detail: the remote's protocol version (u16 BE).
    Version = 1,
    /// Detail: suite count and ids the remote allows.
    NoCommonCipher = 2,
    /// No detail: the local key is not authorized or its signature failed.
    AuthenticationFailed = 3,
    /// No detail: the resumption ticket is unknown, spent or expired; resume with
    /// the session ticket or do a full handshake.
    UnknownTicket = 4,
    /// No detail: too many full handshakes are waiting for the remote's signature;
    /// try again shortly (or resume, which needs none).
    Busy = 5,
}

/// Why a handshake failed.
#[derive(Debug, thiserror::Error)]
pub enum HandshakeError {
    /// Reading or writing the stream failed, or the peer closed it mid-handshake.
    #[error("connection failed during handshake: {0}")]
    Io(#[from] std::io::Error),
    /// The handshake took longer than allowed.
    #[error("handshake not completed within {0:?}")]
    Timeout(Duration),
    /// The peer's first bytes are not a tunnel preface.
    #[error("peer does not speak the tunnel protocol (first bytes {0:?})")]
    NotTunnel(String),
    /// The peer speaks another protocol version.
    #[error(
        "peer speaks tunnel protocol version {theirs}, this build speaks {ours}; \
         run the same tunnel version on both sides"
    )]
    Version {
        /// Our version.
        ours: u16,
        /// The peer's version.
        theirs: u16,
    },
    /// A message was out of order, too long, or could not be decoded.
    #[error("malformed handshake: {0}")]
    Malformed(String),
    /// The remote does not list the local side's key.
    #[error(
        "local key {0} is not in the authorized keys; add it there if this peer should connect"
    )]
    UnknownLocalKey(Fingerprint),
    /// The remote presented a key other than the pinned one.
    #[error(
        "remote presented key {got}, but {expected} is pinned; check --remote-key (a middleman, \
         or the remote's key changed)"
    )]
    WrongRemoteKey {
        /// The pinned fingerprint.
        expected: Fingerprint,
        /// The fingerprint the remote presented.
        got: Fingerprint,
    },
    /// A transcript signature did not verify.
    #[error("{signer} signature over the handshake did not verify (tampered in transit?)")]
    BadSignature {
        /// Which side signed: "remote" or "local".
        signer: &'static str,
    },
    /// The two sides allow no cipher in common.
    #[error(
        "no cipher in common: local offers [{}], remote allows [{}]; make the --ciphers lists \
         overlap",
        list_names(local),
        list_names(remote)
    )]
    NoCommonCipher {
        /// What the local side offered.
        local: Vec<CipherSuite>,
        /// What the remote allows.
        remote: Vec<CipherSuite>,
    },
    /// The peer's public key is unusable (wrong type or size).
    #[error("peer key rejected: {0}")]
    PeerKey(#[from] KeyError),
    /// The peer's X25519 share produced an all-zero secret.
    #[error("peer sent a degenerate X25519 key share")]
    WeakKeyShare,
    /// The remote does not know (or no longer keeps) the resumption ticket offered.
    #[error("remote does not know our resumption ticket (restarted, or the ticket expired)")]
    UnknownTicket,
    /// A resumed handshake's proof of the shared ticket secret did not verify.
    #[error("{signer} proof in the resumed handshake did not verify (tampered in transit?)")]
    BadFinished {
        /// Which side's proof failed: "remote" or "local".
        signer: &'static str,
    },
    /// Too many full handshakes were waiting for the remote's RSA signature, so this
    /// one was refused at once (on the local side: the remote said so).
    #[error(
        "the remote is busy signing (more than {} full handshakes waiting); the pool tries \
         again after a pause, and a local that already holds a ticket resumes without a \
         signature",
        crate::keys::MAX_QUEUED_SIGNATURES
    )]
    Busy,
    /// The remote refused with an alert code this version does not know.
    #[error(
        "remote refused the handshake with alert code {0}, which this version does not know; \
         see the remote's log, and run the same tunnel version on both sides"
    )]
    UnknownAlert(u8),
    /// The remote refused the authentication; its log says which check failed.
    #[error(
        "remote refused our key or signature; ask its operator to add our key's fingerprint \
         to its authorized keys"
    )]
    RefusedByRemote,
}

/// The result of a successful handshake: negotiated suite, the peer's identity and
/// the record-layer state for each direction.
pub struct Established {
    /// The negotiated cipher suite.
    pub suite: CipherSuite,
    /// The fingerprint of the peer's RSA key.
    pub peer: Fingerprint,
    /// Seals records we send.
    pub sealer: Sealer,
    /// Opens records we receive.
    pub opener: Opener,
    /// How the keys were agreed.
    pub setup: Setup,
    /// A ticket for a later connection to resume with, instead of RSA: a session
    /// ticket from a full handshake, a one-time ticket from a resumed one (none at
    /// the end of a one-time chain).
    pub ticket: Option<Ticket>,
}

/// How a connection's keys were agreed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Setup {
    /// RSA signatures and an X25519 exchange.
    Full,
    /// A session ticket and a fresh X25519 exchange.
    Resumed,
    /// A one-time ticket, spent by this connection.
    OneTime,
}

impl fmt::Display for Setup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Setup::Full => "full",
            Setup::Resumed => "resumed",
            Setup::OneTime => "one-time ticket",
        })
    }
}

/// Running SHA-256 over every handshake byte sent or received, in order.
#[derive(Clone, Default)]
struct Transcript(Sha256);

impl Transcript {
    fn add(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    fn hash(&self) -> [u8; 32] {
        self.0.clone().finalize().into()
    }

    fn signed_message(&self, context: &[u8]) -> Vec<u8> {
        let mut message = context.to_vec();
        message.extend_from_slice(&self.hash());
        message
    }
}

/// Builds the 8-byte preface.
fn preface() -> [u8; PREFACE_LEN] {
    let mut out = [0u8; PREFACE_LEN];
    out[..6].copy_from_slice(MAGIC);
    out[6..].copy_from_slice(&PROTOCOL_VERSION.to_be_bytes());
    out
}

/// Reads and checks the peer's preface, returning its bytes for the transcript.
async fn read_preface<S: AsyncRead + Unpin>(
    stream: &mut S,
) -> Result<[u8; PREFACE_LEN], HandshakeError> {
    let mut bytes = [0u8; PREFACE_LEN];
    let mut filled = 0;
    while filled < PREFACE_LEN {
        let n = stream.read(&mut bytes[filled..]).await?;
        if n == 0 {
            if filled == 0 {
                return Err(HandshakeError::Io(std::io::ErrorKind::UnexpectedEof.into()));
            }
            break;
        }
        filled += n;
        if !MAGIC.starts_with(&bytes[..filled.min(MAGIC.len())]) {
            break;
        }
    }
    if filled < PREFACE_LEN || &bytes[..6] != MAGIC {
        let shown = String::from_utf8_lossy(&bytes[..filled]).into_owned();
        return Err(HandshakeError::NotTunnel(shown));
    }
    let theirs = u16::from_be_bytes([bytes[6], bytes[7]]);
    if theirs != PROTOCOL_VERSION {
        return Err(HandshakeError::Version {
            ours: PROTOCOL_VERSION,
            theirs,
        });
    }
    Ok(bytes)
}

/// Encodes one frame.
fn frame(kind: FrameType, body: &[u8]) -> Vec<u8> {
    debug_assert!(
        body.len() <= MAX_FRAME_LEN,
        "our own frames stay under the limit"
    );
    let mut out = Vec::with_capacity(3 + body.len());
    out.push(kind as u8);
    out.extend_from_slice(&(body.len() as u16).to_be_bytes());
    out.extend_from_slice(body);
    out
}

/// Reads one frame of the expected type and returns its full bytes (header
/// included, for the transcript). An Alert from the peer becomes the matching error.
async fn read_frame<S: AsyncRead + Unpin>(
    stream: &mut S,
    expected: FrameType,
) -> Result<Vec<u8>, HandshakeError> {
    Ok(read_frame_of(stream, &[expected]).await?.1)
}

/// Reads one frame whose type is one of `expected`, returning the type and the full
/// bytes. An Alert from the remote becomes the matching error; only remotes send
/// Alerts, so one arriving where a local's message was expected is malformed.
async fn read_frame_of<S: AsyncRead + Unpin>(
    stream: &mut S,
    expected: &[FrameType],
) -> Result<(FrameType, Vec<u8>), HandshakeError> {
    let mut header = [0u8; 3];
    stream.read_exact(&mut header).await?;
    let len = u16::from_be_bytes([header[1], header[2]]) as usize;
    if len > MAX_FRAME_LEN {
        return Err(HandshakeError::Malformed(format!(
            "{len}-byte handshake message exceeds the {MAX_FRAME_LEN}-byte limit"
        )));
    }
    let mut bytes = vec![0u8; 3 + len];
    bytes[..3].copy_from_slice(&header);
    stream.read_exact(&mut bytes[3..]).await?;
    match FrameType::from_byte(header[0]) {
        Some(kind) if expected.contains(&kind) => Ok((kind, bytes)),
        Some(FrameType::Alert) if expected.iter().any(|kind| kind.sent_by_local()) => {
            Err(HandshakeError::Malformed(
                "the local side sent an alert, which only the remote sends".into(),
            ))
        }
        Some(FrameType::Alert) => Err(alert_error(&bytes[3..])),
        _ => Err(HandshakeError::Malformed(format!(
            "expected {expected:?}, got message type {}",
            header[0]
        ))),
    }
}

/// Sends an Alert frame and flushes; errors are ignored since the connection is
/// being dropped anyway.
async fn send_alert<S: AsyncWrite + Unpin>(stream: &mut S, code: AlertCode, detail: &[u8]) {
    let mut body = vec![code as u8];
    body.extend_from_slice(detail);
    let _ = stream.write_all(&frame(FrameType::Alert, &body)).await;
    let _ = stream.flush().await;
}

fn alert_error(body: &[u8]) -> HandshakeError {
    match body.first().copied() {
        Some(code) if code == AlertCode::Version as u8 && body.len() >= 3 => {
            HandshakeError::Version {
                ours: PROTOCOL_VERSION,
                theirs: u16::from_be_bytes([body[1], body[2]]),
            }
        }
        Some(code) if code == AlertCode::NoCommonCipher as u8 => {
            let remote = body[1..]
                .iter()
                .skip(1)
                .filter_map(|id| CipherSuite::from_id(*id));
            HandshakeError::NoCommonCipher {
                local: Vec::new(),
                remote: remote.collect(),
            }
        }
        Some(code) if code == AlertCode::UnknownTicket as u8 => HandshakeError::UnknownTicket,
        Some(code) if code == AlertCode::Busy as u8 => HandshakeError::Busy,
        Some(code) if code == AlertCode::AuthenticationFailed as u8 => {
            HandshakeError::RefusedByRemote
        }
        Some(code) => HandshakeError::UnknownAlert(code),
        None => HandshakeError::Malformed("empty Alert frame".into()),
    }
}

/// A cursor over a frame body that turns short reads into `Malformed` errors.
struct Reader<'a> {
    bytes: &'a [u8],
    what: &'static str,
}

impl<'a> Reader<'a> {
    fn new(bytes: &'a [u8], what: &'static str) -> Self {
        Self { bytes, what }
    }

    fn take(&mut self, len: usize) -> Result<&'a [u8], HandshakeError> {
        if self.bytes.len() < len {
            return Err(HandshakeError::Malformed(format!(
                "{} is truncated",
                self.what
            )));
        }
        let (head, tail) = self.bytes.split_at(len);
        self.bytes = tail;
        Ok(head)
    }

    fn byte(&mut self) -> Result<u8, HandshakeError> {
        Ok(self.take(1)?[0])
    }

    fn array32(&mut self) -> Result<[u8; 32], HandshakeError> {
        Ok(self.take(32)?.try_into().expect("take returned 32 bytes"))
    }

    fn u16_prefixed(&mut self) -> Result<&'a [u8], HandshakeError> {
        let len = u16::from_be_bytes(self.take(2)?.try_into().expect("two bytes"));
        self.take(len as usize)
    }

    fn finish(self) -> Result<(), HandshakeError> {
        if self.bytes.is_empty() {
            Ok(())
        } else {
            Err(HandshakeError::Malformed(format!(
                "{} has trailing bytes",
                self.what
            )))
        }
    }
}

/// The opening fields shared by LocalHello and ResumeHello: key share, flags, and
/// the cipher offer.
struct Offer {
    share: KeyShare,
    has_aes: bool,
    suites: Vec<CipherSuite>,
}

impl Offer {
    /// Our offer with a fresh key share, in preference order for this CPU.
    fn ours(share: KeyShare, ciphers: &CipherPolicy) -> Self {
        Self {
            share,
            has_aes: has_aes_hardware(),
            suites: ciphers.offer(has_aes_hardware()),
        }
    }

    /// Appends `share ‖ flags ‖ count ‖ ids`.
    fn encode(&self, body: &mut Vec<u8>) {
        body.extend_from_slice(self.share.as_bytes());
        body.push(aes_flag(self.has_aes));
        body.push(self.suites.len() as u8);
        body.extend(self.suites.iter().map(|suite| suite.id()));
    }

    /// Reads `share ‖ flags ‖ count ‖ ids`; unknown ids are skipped.
    fn decode(reader: &mut Reader<'_>) -> Result<Self, HandshakeError> {
        let share = KeyShare::from(reader.array32()?);
        let has_aes = reader.byte()? & FLAG_AES_HARDWARE != 0;
        let count = reader.byte()? as usize;
        if count > MAX_OFFERED_SUITES {
            return Err(HandshakeError::Malformed(format!(
                "{count} ciphers offered"
            )));
        }
        let suites = reader
            .take(count)?
            .iter()
            .filter_map(|id| CipherSuite::from_id(*id))
            .collect();
        Ok(Self {
            share,
            has_aes,
            suites,
        })
    }

    /// The remote's choice from this offer, or the error after telling the local
    /// which ciphers the remote allows.
    async fn choose<S: AsyncWrite + Unpin>(
        self,
        stream: &mut S,
        ciphers: &CipherPolicy,
    ) -> Result<CipherSuite, HandshakeError> {
        if let Some(suite) = ciphers.choose(&self.suites, self.has_aes, has_aes_hardware()) {
            return Ok(suite);
        }
        let mut detail = vec![ciphers.suites.len() as u8];
        detail.extend(ciphers.suites.iter().map(|suite| suite.id()));
        refuse(stream, AlertCode::NoCommonCipher, &detail).await;
        Err(HandshakeError::NoCommonCipher {
            local: self.suites,
            remote: ciphers.suites.clone(),
        })
    }
}

/// Appends the opening fields of the remote's answer: `share ‖ flags ‖ chosen id`.
fn encode_answer(body: &mut Vec<u8>, share: &KeyShare, suite: CipherSuite) {
    body.extend_from_slice(share.as_bytes());
    body.push(aes_flag(has_aes_hardware()));
    body.push(suite.id());
}

/// Reads the opening fields of the remote's answer and checks that the chosen
/// cipher is one of `offered`; returns the remote's key share and the cipher.
fn decode_answer(
    reader: &mut Reader<'_>,
    offered: &[CipherSuite],
) -> Result<(KeyShare, CipherSuite), HandshakeError> {
    let share = KeyShare::from(reader.array32()?);
    let _flags = reader.byte()?;
    let id = reader.byte()?;
    let suite = CipherSuite::from_id(id)
        .filter(|suite| offered.contains(suite))
        .ok_or_else(|| {
            HandshakeError::Malformed(format!("remote chose cipher id {id}, not offered"))
        })?;
    Ok((share, suite))
}

fn aes_flag(has_aes: bool) -> u8 {
    if has_aes { FLAG_AES_HARDWARE } else { 0 }
}

/// Sends our preface and an Alert, for refusals before the remote's first message.
async fn refuse<S: AsyncWrite + Unpin>(stream: &mut S, code: AlertCode, detail: &[u8]) {
    let _ = stream.write_all(&preface()).await;
    send_alert(stream, code, detail).await;
}

fn push_u16_prefixed(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as u16).to_be_bytes());
    out.extend_from_slice(bytes);
}

/// Everything the key schedule yields at the end of a handshake.
struct Schedule {
    to_remote: Zeroizing<[u8; 32]>,
    to_local: Zeroizing<[u8; 32]>,
    resumption: Zeroizing<[u8; 32]>,
    ticket_id: [u8; TICKET_ID_LEN],
}

/// Runs the key schedule over `ikm` (the X25519 shared secret for a full handshake,
/// the ticket-bound handshake secret for a resumed one) and the final transcript.
fn key_schedule(ikm: &[u8], transcript: &Transcript) -> Schedule {
    let hkdf = Hkdf::<Sha256>::new(Some(&transcript.hash()), ikm);
    let expand = |label: &[u8], out: &mut [u8]| {
        hkdf.expand(label, out)
            .expect("32 bytes or fewer is a valid HKDF output length");
    };
    let mut schedule = Schedule {
        to_remote: Zeroizing::new([0u8; 32]),
        to_local: Zeroizing::new([0u8; 32]),
        resumption: Zeroizing::new([0u8; 32]),
        ticket_id: [0u8; TICKET_ID_LEN],
    };
    expand(LABEL_LOCAL_TO_REMOTE, schedule.to_remote.as_mut());
    expand(LABEL_REMOTE_TO_LOCAL, schedule.to_local.as_mut());
    expand(LABEL_RESUMPTION, schedule.resumption.as_mut());
    expand(LABEL_TICKET_ID, &mut schedule.ticket_id);
    schedule
}

impl Schedule {
    /// The record-layer state for one side, and a ticket of kind `issue`, if any.
    fn establish(
        self,
        suite: CipherSuite,
        peer: Fingerprint,
        we_are_local: bool,
        setup: Setup,
        issue: Option<TicketKind>,
    ) -> Established {
        let (ours, theirs) = if we_are_local {
            (self.to_remote, self.to_local)
        } else {
            (self.to_local, self.to_remote)
        };
        let ticket = issue.map(|kind| Ticket::new(self.ticket_id, self.resumption, peer, kind));
        Established {
            suite,
            peer,
            sealer: Sealer::new(suite, ours),
            opener: Opener::new(suite, theirs),
            setup,
            ticket,
        }
    }
}

#[cfg(test)]
mod tests;
