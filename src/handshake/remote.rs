//! The remote side's handshake steps (responder).
//!
//! Checks the local side's preface and LocalHello, refuses keys that are not
//! authorized, chooses the cipher, sends RemoteHello and RemoteAuth, then verifies
//! LocalAuth and derives the traffic secrets. On a version mismatch, an unknown key,
//! a bad signature or no common cipher it sends one Alert before giving up, so the
//! local side can say why. Message formats and the key schedule are in [`super`].

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use x25519_dalek::{EphemeralSecret, PublicKey as KeyShare};

use super::resume::{self, TicketKind, TicketStore};
use super::{
    AlertCode, CONTEXT_LOCAL, CONTEXT_REMOTE, Established, FrameType, HandshakeError, Offer,
    PROTOCOL_VERSION, Reader, Setup, Transcript, encode_answer, frame, key_schedule, preface,
    push_u16_prefixed, read_frame, read_frame_of, read_preface, refuse, send_alert,
};
use crate::crypto::CipherPolicy;
use crate::keys::{AuthorizedKeys, Fingerprint, KeyError, PrivateKey, PublicKey};

/// What the remote side brings to a handshake.
pub struct RemoteParams<'a> {
    /// Our RSA identity.
    pub key: &'a PrivateKey,
    /// The local-side keys we accept.
    pub authorized: &'a AuthorizedKeys,
    /// The ciphers we allow.
    pub ciphers: &'a CipherPolicy,
    /// Tickets from earlier full handshakes, for resumed ones; `None` refuses to resume.
    pub tickets: Option<&'a TicketStore>,
}

/// Runs the responder's side of the handshake over `stream`.
///
/// # Errors
/// A [`HandshakeError`] naming the check that failed; the caller closes the stream.
pub async fn run<S>(
    stream: &mut S,
    params: &RemoteParams<'_>,
) -> Result<Established, HandshakeError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut transcript = Transcript::default();
    let local_preface = match read_preface(stream).await {
        Ok(bytes) => bytes,
        Err(err @ HandshakeError::Version { .. }) => {
            let _ = stream.write_all(&preface()).await;
            send_alert(stream, AlertCode::Version, &PROTOCOL_VERSION.to_be_bytes()).await;
            return Err(err);
        }
        Err(err) => return Err(err),
    };
    transcript.add(&local_preface);
    let expected = [FrameType::LocalHello, FrameType::ResumeHello];
    let (kind, hello) = read_frame_of(stream, &expected).await?;
    transcript.add(&hello);
    if kind == FrameType::ResumeHello {
        let Some(tickets) = params.tickets else {
            refuse(stream, AlertCode::UnknownTicket, &[]).await;
            return Err(HandshakeError::UnknownTicket);
        };
        return resume::remote(stream, transcript, &hello, params.ciphers, tickets).await;
    }

    let mut reader = Reader::new(&hello[3..], "LocalHello");
    let offer = Offer::decode(&mut reader)?;
    let spki = reader.u16_prefixed()?;
    reader.finish()?;

    let fingerprint = Fingerprint::of_spki(spki);
    if !params.authorized.contains(&fingerprint) {
        refuse(stream, AlertCode::AuthenticationFailed, &[]).await;
        return Err(HandshakeError::UnknownLocalKey(fingerprint));
    }
    let local_key = PublicKey::from_spki_der(spki)?;
    let local_share = offer.share;
    let suite = offer.choose(stream, params.ciphers).await?;

    let secret = EphemeralSecret::random();
    let share = KeyShare::from(&secret);
    let mut body = Vec::new();
    encode_answer(&mut body, &share, suite);
    push_u16_prefixed(&mut body, params.key.public_key().spki_der());
    let mut flight = preface().to_vec();
    flight.extend_from_slice(&frame(FrameType::RemoteHello, &body));
    transcript.add(&flight);
    let signing = params
        .key
        .sign_off_thread(transcript.signed_message(CONTEXT_REMOTE));
    let signature = match signing.await {
        Ok(signature) => signature,
        Err(KeyError::SignerBusy) => {
            refuse(stream, AlertCode::Busy, &[]).await;
            return Err(HandshakeError::Busy);
        }
        Err(err) => return Err(err.into()),
    };
    let auth = frame(FrameType::RemoteAuth, &signature);
    transcript.add(&auth);
    flight.extend_from_slice(&auth);
    stream.write_all(&flight).await?;
    stream.flush().await?;

    let local_auth = read_frame(stream, FrameType::LocalAuth).await?;
    if !local_key.verify(&transcript.signed_message(CONTEXT_LOCAL), &local_auth[3..]) {
        send_alert(stream, AlertCode::AuthenticationFailed, &[]).await;
        return Err(HandshakeError::BadSignature { signer: "local" });
    }
    transcript.add(&local_auth);

    let shared = secret.diffie_hellman(&local_share);
    if !shared.was_contributory() {
        return Err(HandshakeError::WeakKeyShare);
    }
    let schedule = key_schedule(shared.as_bytes(), &transcript);
    Ok(schedule.establish(
        suite,
        fingerprint,
        false,
        Setup::Full,
        Some(TicketKind::Session),
    ))
}
