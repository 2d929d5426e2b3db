//! Resumed handshakes: connections authenticated with a secret the two sides kept
//! from an earlier handshake, instead of RSA signatures.
//!
//! A full handshake ends with a session [`Ticket`] on both sides: a 16-byte id and
//! a 32-byte resumption secret, both derived from that handshake's key schedule and
//! never sent. The remote keeps its tickets in a bounded [`TicketStore`]. A later
//! connection presents the id instead of an RSA key; each side then proves it holds
//! the secret with an HMAC over the transcript, so authentication is inherited from
//! the full handshake that issued the ticket.
//!
//! A session ticket may be used many times, each with a fresh X25519 exchange. Each
//! resumed handshake also leaves a one-time ticket, derived from its own key
//! schedule: the next connection may spend it with no key exchange, and leaves
//! the next one-time ticket in turn, up to [`ONE_TIME_CHAIN`] in a row. Both sides
//! drop a one-time ticket when it is spent, and a ticket cannot be computed from
//! its successor, so a connection's keys cannot be recovered once it has ended
//! even from a later copy of either side's memory.
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

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use hkdf::Hkdf;
use hmac::{Hmac, KeyInit, Mac};
use rand::Rng;
use sha2::Sha256;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use x25519_dalek::{EphemeralSecret, PublicKey as KeyShare};
use zeroize::{Zeroize, Zeroizing};

use super::{
    AlertCode, Established, FrameType, HandshakeError, Offer, Reader, Setup, Transcript,
    decode_answer, encode_answer, frame, key_schedule, preface, read_frame, read_preface, refuse,
    send_alert,
};
use crate::crypto::CipherPolicy;
use crate::keys::Fingerprint;

/// Bytes in a ticket id.
pub const TICKET_ID_LEN: usize = 16;

/// How long a ticket may be used after the full handshake that issued it. The local
/// side does a full handshake again once its ticket is older; the remote forgets
/// older tickets.
pub const TICKET_LIFETIME: Duration = Duration::from_secs(60 * 60);

/// How long a one-time ticket may wait to be spent.
pub const ONE_TIME_LIFETIME: Duration = Duration::from_secs(60);

/// One-time tickets in a row after a resumption with a session ticket; the
/// connection after them runs a fresh X25519 exchange again.
pub const ONE_TIME_CHAIN: u8 = 8;

/// Most tickets of each kind a remote keeps; the oldest is forgotten when a new one
/// would exceed this. About 100 bytes each.
pub const MAX_TICKETS: usize = 16 * 1024;

const LABEL_REMOTE_FINISHED: &[u8] = b"tunnel v1 remote finished";
const LABEL_LOCAL_FINISHED: &[u8] = b"tunnel v1 local finished";
const MAC_LEN: usize = 32;

/// What a handshake leaves behind for resuming: the id both sides computed, the
/// shared resumption secret, and whom it was shared with.
#[derive(Clone)]
pub struct Ticket {
    id: [u8; TICKET_ID_LEN],
    secret: Zeroizing<[u8; 32]>,
    peer: Fingerprint,
    issued: Instant,
    kind: TicketKind,
}

/// How a ticket may be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TicketKind {
    /// From a full handshake: used any number of times within [`TICKET_LIFETIME`],
    /// each time with a fresh X25519 exchange.
    Session,
    /// From a resumed handshake: spent once within [`ONE_TIME_LIFETIME`], with no
    /// key exchange.
    OneTime {
        /// How many more one-time tickets may follow this one in its chain.
        left: u8,
    },
}

impl TicketKind {
    /// The kind of ticket a handshake resumed with this kind leaves behind.
    fn successor(self) -> Option<TicketKind> {
        match self {
            TicketKind::Session => Some(TicketKind::OneTime {
                left: ONE_TIME_CHAIN - 1,
            }),
            TicketKind::OneTime { left: 0 } => None,
            TicketKind::OneTime { left } => Some(TicketKind::OneTime { left: left - 1 }),
        }
    }
}

impl Ticket {
    pub(super) fn new(
        id: [u8; TICKET_ID_LEN],
        secret: Zeroizing<[u8; 32]>,
        peer: Fingerprint,
        kind: TicketKind,
    ) -> Self {
        Self {
            id,
            secret,
            peer,
            issued: Instant::now(),
            kind,
        }
    }

    /// Whether the ticket is still within its lifetime.
    pub fn is_fresh(&self) -> bool {
        let lifetime = match self.kind {
            TicketKind::Session => TICKET_LIFETIME,
            TicketKind::OneTime { .. } => ONE_TIME_LIFETIME,
        };
        self.issued.elapsed() < lifetime
    }

    /// The ticket's id, which the resumed handshake sends in clear.
    pub fn id(&self) -> [u8; TICKET_ID_LEN] {
        self.id
    }

    /// How the ticket may be used.
    pub fn kind(&self) -> TicketKind {
        self.kind
    }

    /// Whether this is a one-time ticket, spent by the connection that uses it.
    pub fn is_one_time(&self) -> bool {
        matches!(self.kind, TicketKind::OneTime { .. })
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
            "Ticket({:?}, peer {}, age {:?})",
            self.kind,
            self.peer,
            self.issued.elapsed()
        )
    }
}

/// The remote's tickets: session tickets and one-time tickets kept apart, each
/// kind bounded by [`MAX_TICKETS`] and its lifetime.
#[derive(Debug, Default)]
pub struct TicketStore {
    inner: Mutex<StoreInner>,
}

#[derive(Debug, Default)]
struct StoreInner {
    session: Shelf,
    one_time: Shelf,
}

/// Tickets of one kind in the order they were issued.
#[derive(Debug, Default)]
struct Shelf {
    tickets: HashMap<[u8; TICKET_ID_LEN], (u64, Ticket)>,
    order: BTreeMap<u64, [u8; TICKET_ID_LEN]>,
    issued: u64,
}

impl Shelf {
    /// Keeps `ticket`, first forgetting expired ones and, if still full, the oldest.
    fn insert(&mut self, ticket: Ticket) {
        while let Some((_, id)) = self.order.first_key_value() {
            let stale = self
                .tickets
                .get(id)
                .is_none_or(|(_, kept)| !kept.is_fresh());
            if !stale && self.order.len() < MAX_TICKETS {
                break;
            }
            if let Some((_, id)) = self.order.pop_first() {
                self.tickets.remove(&id);
            }
        }
        self.issued += 1;
        self.order.insert(self.issued, ticket.id);
        if let Some((replaced, _)) = self.tickets.insert(ticket.id, (self.issued, ticket)) {
            self.order.remove(&replaced);
        }
    }

    fn take(&mut self, id: &[u8; TICKET_ID_LEN]) -> Option<Ticket> {
        let (seq, ticket) = self.tickets.remove(id)?;
        self.order.remove(&seq);
        Some(ticket)
    }
}

impl TicketStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Keeps `ticket`, forgetting expired tickets of its kind and, if there are
    /// still [`MAX_TICKETS`] of them, the oldest.
    pub fn insert(&self, ticket: Ticket) {
        let mut inner = self.lock();
        if ticket.is_one_time() {
            inner.one_time.insert(ticket);
        } else {
            inner.session.insert(ticket);
        }
    }

    /// The fresh ticket with this id, if kept. A one-time ticket is forgotten as
    /// it is handed out, so it can be used only once.
    pub fn lookup(&self, id: &[u8; TICKET_ID_LEN]) -> Option<Ticket> {
        let mut inner = self.lock();
        if let Some(ticket) = inner.one_time.take(id) {
            return ticket.is_fresh().then_some(ticket);
        }
        let (_, ticket) = inner.session.tickets.get(id)?;
        if ticket.is_fresh() {
            return Some(ticket.clone());
        }
        inner.session.take(id);
        None
    }

    /// Number of tickets kept, of both kinds.
    pub fn len(&self) -> usize {
        let inner = self.lock();
        inner.session.tickets.len() + inner.one_time.tickets.len()
    }

    /// Whether no ticket is kept.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, StoreInner> {
        self.inner
            .lock()
            .expect("ticket store lock is never poisoned")
    }
}

/// Runs the local side of a resumed handshake with `ticket`: with a fresh X25519
/// exchange for a session ticket, without one for a one-time ticket (which the
/// caller must not use again).
///
/// # Errors
/// [`HandshakeError::UnknownTicket`] when the remote no longer has the ticket (the
/// caller then makes a new connection, resuming with its session ticket or doing a
/// full handshake); [`HandshakeError::BadFinished`] when the remote's proof fails;
/// others as for the full handshake.
pub async fn local<S>(
    stream: &mut S,
    ticket: &Ticket,
    ciphers: &CipherPolicy,
) -> Result<Established, HandshakeError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let exchange = Exchange::start(ticket.kind);
    let ours = Offer::ours(exchange.share(), ciphers);
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

    let setup = exchange.setup();
    let keys = FinishedKeys::new(&ticket.secret, &*exchange.finish(&remote_share)?);
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
            setup,
            ticket.kind.successor(),
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

    let exchange = Exchange::start(ticket.kind);
    let share = exchange.share();
    let setup = exchange.setup();
    let shared = exchange.finish(&local_share)?;
    let mut body = Vec::new();
    encode_answer(&mut body, &share, suite);
    let mut flight = preface().to_vec();
    flight.extend_from_slice(&frame(FrameType::ResumeAccept, &body));
    transcript.add(&flight);
    let keys = FinishedKeys::new(&ticket.secret, &shared);
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
            setup,
            ticket.kind.successor(),
        ),
    )
}

/// The key exchange of a resumed handshake: X25519 with a session ticket. With a
/// one-time ticket there is none, and each side sends 32 random bytes in the key
/// share's place, so that the transcript, and with it every key, is new even if a
/// ticket were ever spent twice.
enum Exchange {
    X25519(EphemeralSecret),
    None([u8; 32]),
}

impl Exchange {
    fn start(kind: TicketKind) -> Self {
        match kind {
            TicketKind::Session => Exchange::X25519(EphemeralSecret::random()),
            TicketKind::OneTime { .. } => {
                let mut nonce = [0u8; 32];
                rand::rng().fill_bytes(&mut nonce);
                Exchange::None(nonce)
            }
        }
    }

    /// What goes in the message's key-share field.
    fn share(&self) -> KeyShare {
        match self {
            Exchange::X25519(secret) => KeyShare::from(secret),
            Exchange::None(nonce) => KeyShare::from(*nonce),
        }
    }

    fn setup(&self) -> Setup {
        match self {
            Exchange::X25519(_) => Setup::Resumed,
            Exchange::None(_) => Setup::OneTime,
        }
    }

    /// The input keying material: the X25519 shared secret, or 32 zero bytes when
    /// there is no exchange.
    fn finish(self, theirs: &KeyShare) -> Result<Zeroizing<[u8; 32]>, HandshakeError> {
        match self {
            Exchange::X25519(secret) => {
                let shared = secret.diffie_hellman(theirs);
                if !shared.was_contributory() {
                    return Err(HandshakeError::WeakKeyShare);
                }
                Ok(Zeroizing::new(*shared.as_bytes()))
            }
            Exchange::None(_) => Ok(Zeroizing::new([0u8; 32])),
        }
    }
}

/// The handshake secret of a resumed handshake and the MACs keyed from it.
struct FinishedKeys {
    handshake_secret: Zeroizing<[u8; 32]>,
}

impl FinishedKeys {
    /// `HKDF-Extract(salt = ticket secret, ikm = X25519 shared secret or zeros)`.
    fn new(resumption: &[u8; 32], shared: &[u8; 32]) -> Self {
        let (mut prk, _) = Hkdf::<Sha256>::extract(Some(resumption), shared);
        let mut handshake_secret = Zeroizing::new([0u8; 32]);
        handshake_secret.copy_from_slice(&prk);
        prk.as_mut_slice().zeroize();
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::Fingerprint;

    fn ticket(n: u32, kind: TicketKind) -> Ticket {
        let mut id = [0u8; TICKET_ID_LEN];
        id[..4].copy_from_slice(&n.to_be_bytes());
        Ticket::new(
            id,
            Zeroizing::new([7u8; 32]),
            Fingerprint::of_spki(b"test"),
            kind,
        )
    }

    #[test]
    fn a_one_time_ticket_is_handed_out_once_and_a_session_ticket_many_times() {
        let store = TicketStore::new();
        let one_time = ticket(1, TicketKind::OneTime { left: 3 });
        let session = ticket(2, TicketKind::Session);
        store.insert(one_time.clone());
        store.insert(session.clone());
        assert_eq!(store.len(), 2);
        assert!(store.lookup(&one_time.id).is_some());
        assert!(store.lookup(&one_time.id).is_none(), "spent twice");
        assert!(store.lookup(&session.id).is_some());
        assert!(store.lookup(&session.id).is_some());
        assert_eq!(store.len(), 1);
    }

    #[test]
    fn each_kind_is_bounded_without_evicting_the_other() {
        let store = TicketStore::new();
        let session = ticket(u32::MAX, TicketKind::Session);
        store.insert(session.clone());
        let count = u32::try_from(MAX_TICKETS).unwrap() + 10;
        for n in 0..count {
            store.insert(ticket(n, TicketKind::OneTime { left: 0 }));
        }
        assert_eq!(store.len(), MAX_TICKETS + 1);
        assert!(store.lookup(&ticket(0, TicketKind::Session).id).is_none());
        assert!(
            store
                .lookup(&ticket(count - 1, TicketKind::Session).id)
                .is_some()
        );
        assert!(store.lookup(&session.id).is_some());
    }

    #[test]
    fn a_chain_of_one_time_tickets_has_a_fixed_length() {
        let mut kind = TicketKind::Session;
        let mut one_time = 0;
        while let Some(next) = kind.successor() {
            kind = next;
            one_time += 1;
        }
        assert_eq!(one_time, ONE_TIME_CHAIN);
    }
}
