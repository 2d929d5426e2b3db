//! Resumed handshakes: a fresh X25519 exchange authenticated with a secret the two
//! sides kept from an earlier full handshake, instead of RSA signatures.
//!
//! A full handshake ends with a [`Ticket`] on both sides: a 16-byte id and a
//! 32-byte resumption secret, both derived from that handshake's key schedule and
//! never sent. The remote keeps its tickets in a bounded [`TicketStore`]. A later
//! connection may present the id instead of an RSA key; each side then proves it
//! holds the secret with an HMAC over the transcript. Keys still come from a new
//! X25519 exchange, so forward secrecy holds per connection, and authentication is
//! inherited from the full handshake that issued the ticket. A resumed handshake
//! issues no new ticket.
//!
//! ```text
//! local                                         remote
//!   preface, ResumeHello        ---------->
//!                               <----------     preface, ResumeAccept, RemoteFinished
//!   LocalFinished, records...   ---------->
//! ```
//!
//! Message layouts and the key schedule are written down in `docs/PROTOCOL.md`;
//! frame helpers live in [`super`].

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use hkdf::Hkdf;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use x25519_dalek::{EphemeralSecret, PublicKey as KeyShare};
use zeroize::Zeroizing;

use super::{
    AlertCode, Established, FrameType, HandshakeError, Offer, Reader, Transcript, decode_answer,
    encode_answer, frame, key_schedule, preface, read_frame, read_preface, refuse, send_alert,
};
use crate::crypto::CipherPolicy;
use crate::keys::Fingerprint;

/// Bytes in a ticket id.
pub const TICKET_ID_LEN: usize = 16;

/// How long a ticket may be used after the full handshake that issued it. The local
/// side does a full handshake again once its ticket is older; the remote forgets
/// older tickets.
pub const TICKET_LIFETIME: Duration = Duration::from_secs(60 * 60);

/// Most tickets a remote keeps; the oldest is forgotten when a new one would exceed
/// this. About 100 bytes each.
pub const MAX_TICKETS: usize = 16 * 1024;

const LABEL_REMOTE_FINISHED: &[u8] = b"tunnel v1 remote finished";
const LABEL_LOCAL_FINISHED: &[u8] = b"tunnel v1 local finished";
const MAC_LEN: usize = 32;

/// What a full handshake leaves behind for resuming: the id both sides computed,
/// the shared resumption secret, and whom it was shared with.
#[derive(Clone)]
pub struct Ticket {
    id: [u8; TICKET_ID_LEN],
    secret: Zeroizing<[u8; 32]>,
    peer: Fingerprint,
    issued: Instant,
}

impl Ticket {
    pub(super) fn new(
        id: [u8; TICKET_ID_LEN],
        secret: Zeroizing<[u8; 32]>,
        peer: Fingerprint,
    ) -> Self {
        Self {
            id,
            secret,
            peer,
            issued: Instant::now(),
        }
    }

    /// Whether the ticket is still within [`TICKET_LIFETIME`].
    pub fn is_fresh(&self) -> bool {
        self.issued.elapsed() < TICKET_LIFETIME
    }

    /// The peer authenticated by the full handshake that issued this ticket.
    pub fn peer(&self) -> Fingerprint {
        self.peer
    }
}

impl fmt::Debug for Ticket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Ticket(peer {}, age {:?})",
            self.peer,
            self.issued.elapsed()
        )
    }
}

/// The remote's tickets, bounded by [`MAX_TICKETS`] and [`TICKET_LIFETIME`].
#[derive(Debug, Default)]
pub struct TicketStore {
    inner: Mutex<StoreInner>,
}

#[derive(Debug, Default)]
struct StoreInner {
    tickets: HashMap<[u8; TICKET_ID_LEN], Ticket>,
    order: VecDeque<[u8; TICKET_ID_LEN]>,
}

impl TicketStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Keeps `ticket`, forgetting the oldest one if the store is full.
    pub fn insert(&self, ticket: Ticket) {
        let mut inner = self
            .inner
            .lock()
            .expect("ticket store lock is never poisoned");
        while inner.order.len() >= MAX_TICKETS {
            if let Some(oldest) = inner.order.pop_front() {
                inner.tickets.remove(&oldest);
            }
        }
        inner.order.push_back(ticket.id);
        inner.tickets.insert(ticket.id, ticket);
    }

    /// The fresh ticket with this id, if kept.
    pub fn lookup(&self, id: &[u8; TICKET_ID_LEN]) -> Option<Ticket> {
        let inner = self
            .inner
            .lock()
            .expect("ticket store lock is never poisoned");
        inner
            .tickets
            .get(id)
            .filter(|ticket| ticket.is_fresh())
            .cloned()
    }

    /// Number of tickets kept.
    pub fn len(&self) -> usize {
        self.inner
            .lock()
            .expect("ticket store lock is never poisoned")
            .order
            .len()
    }

    /// Whether no ticket is kept.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Runs the local side of a resumed handshake with `ticket`.
///
/// # Errors
/// [`HandshakeError::UnknownTicket`] when the remote no longer has the ticket (the
/// caller then makes a new connection and a full handshake);
/// [`HandshakeError::BadFinished`] when the remote's proof fails; others as for the
/// full handshake.
pub async fn local<S>(
    stream: &mut S,
    ticket: &Ticket,
    ciphers: &CipherPolicy,
) -> Result<Established, HandshakeError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let secret = EphemeralSecret::random();
    let ours = Offer::ours(KeyShare::from(&secret), ciphers);
    let offer = ours.suites.clone();
    let mut body = Vec::new();
    ours.encode(&mut body);
    body.extend_from_slice(&ticket.id);
    let mut transcript = Transcript::default();
    let mut flight = preface().to_vec();
    flight.extend_from_slice(&frame(FrameType::ResumeHello, &body));
    transcript.add(&flight);
    stream.write_all(&flight).await?;

    transcript.add(&read_preface(stream).await?);
    let accept = read_frame(stream, FrameType::ResumeAccept).await?;
    transcript.add(&accept);
    let mut reader = Reader::new(&accept[3..], "ResumeAccept");
    let (remote_share, suite) = decode_answer(&mut reader, &offer)?;
    reader.finish()?;

    let shared = secret.diffie_hellman(&remote_share);
    if !shared.was_contributory() {
        return Err(HandshakeError::WeakKeyShare);
    }
    let keys = FinishedKeys::new(&ticket.secret, shared.as_bytes());
    let finished = read_frame(stream, FrameType::RemoteFinished).await?;
    if !keys.verify(LABEL_REMOTE_FINISHED, &transcript, &finished[3..]) {
        return Err(HandshakeError::BadFinished { signer: "remote" });
    }
    transcript.add(&finished);

    let ours = frame(
        FrameType::LocalFinished,
        &keys.compute(LABEL_LOCAL_FINISHED, &transcript),
    );
    transcript.add(&ours);
    stream.write_all(&ours).await?;
    Ok(
        key_schedule(keys.handshake_secret.as_ref(), &transcript).establish(
            suite,
            ticket.peer,
            true,
            false,
        ),
    )
}

/// Runs the remote side of a resumed handshake, after the caller has read the
/// local's preface and ResumeHello frame and added both to `transcript`.
///
/// # Errors
/// [`HandshakeError::UnknownTicket`] for an unknown or expired ticket (the local is
/// told with an Alert), [`HandshakeError::BadFinished`] when the local's proof
/// fails, and [`HandshakeError::NoCommonCipher`].
pub(super) async fn remote<S>(
    stream: &mut S,
    mut transcript: Transcript,
    hello: &[u8],
    ciphers: &CipherPolicy,
    tickets: &TicketStore,
) -> Result<Established, HandshakeError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut reader = Reader::new(&hello[3..], "ResumeHello");
    let offer = Offer::decode(&mut reader)?;
    let id: [u8; TICKET_ID_LEN] = reader
        .take(TICKET_ID_LEN)?
        .try_into()
        .expect("took 16 bytes");
    reader.finish()?;

    let Some(ticket) = tickets.lookup(&id) else {
        refuse(stream, AlertCode::UnknownTicket, &[]).await;
        return Err(HandshakeError::UnknownTicket);
    };
    let local_share = offer.share;
    let suite = offer.choose(stream, ciphers).await?;

    let secret = EphemeralSecret::random();
    let share = KeyShare::from(&secret);
    let shared = secret.diffie_hellman(&local_share);
    if !shared.was_contributory() {
        return Err(HandshakeError::WeakKeyShare);
    }
    let mut body = Vec::new();
    encode_answer(&mut body, &share, suite);
    let mut flight = preface().to_vec();
    flight.extend_from_slice(&frame(FrameType::ResumeAccept, &body));
    transcript.add(&flight);
    let keys = FinishedKeys::new(&ticket.secret, shared.as_bytes());
    let finished = frame(
        FrameType::RemoteFinished,
        &keys.compute(LABEL_REMOTE_FINISHED, &transcript),
    );
    transcript.add(&finished);
    flight.extend_from_slice(&finished);
    stream.write_all(&flight).await?;

    let theirs = read_frame(stream, FrameType::LocalFinished).await?;
    if !keys.verify(LABEL_LOCAL_FINISHED, &transcript, &theirs[3..]) {
        send_alert(stream, AlertCode::AuthenticationFailed, &[]).await;
        return Err(HandshakeError::BadFinished { signer: "local" });
    }
    transcript.add(&theirs);
    Ok(
        key_schedule(keys.handshake_secret.as_ref(), &transcript).establish(
            suite,
            ticket.peer,
            false,
            false,
        ),
    )
}

/// The handshake secret of a resumed handshake and the MACs keyed from it.
struct FinishedKeys {
    handshake_secret: Zeroizing<[u8; 32]>,
}

impl FinishedKeys {
    /// `HKDF-Extract(salt = resumption secret, ikm = X25519 shared secret)`.
    fn new(resumption: &[u8; 32], shared: &[u8; 32]) -> Self {
        let (prk, _) = Hkdf::<Sha256>::extract(Some(resumption), shared);
        let mut handshake_secret = Zeroizing::new([0u8; 32]);
        handshake_secret.copy_from_slice(&prk);
        Self { handshake_secret }
    }

    fn mac(&self, label: &[u8], transcript: &Transcript) -> Hmac<Sha256> {
        let hkdf = Hkdf::<Sha256>::from_prk(self.handshake_secret.as_ref())
            .expect("a 32-byte PRK is long enough");
        let mut key = Zeroizing::new([0u8; MAC_LEN]);
        hkdf.expand(label, key.as_mut())
            .expect("32 bytes is a valid HKDF output length");
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key.as_ref())
            .expect("HMAC takes keys of any length");
        mac.update(&transcript.hash());
        mac
    }

    fn compute(&self, label: &[u8], transcript: &Transcript) -> [u8; MAC_LEN] {
        self.mac(label, transcript).finalize().into_bytes().into()
    }

    /// Constant-time check of a peer's proof.
    fn verify(&self, label: &[u8], transcript: &Transcript, proof: &[u8]) -> bool {
        self.mac(label, transcript).verify_slice(proof).is_ok()
    }
}
