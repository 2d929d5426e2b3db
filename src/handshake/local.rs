//! The local side's handshake steps (initiator).
//!
//! Sends the preface and LocalHello, checks the remote's preface, RemoteHello and
//! RemoteAuth against the pinned key, answers with LocalAuth and derives the traffic
//! secrets. Message formats and the key schedule are in [`super`]; the timeout and
//! the socket are the caller's.

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use x25519_dalek::{EphemeralSecret, PublicKey as KeyShare};

use super::resume::TicketKind;
use super::{
    CONTEXT_LOCAL, CONTEXT_REMOTE, Established, FrameType, HandshakeError, Offer, Reader, Setup,
    Transcript, decode_answer, frame, key_schedule, preface, push_u16_prefixed, read_frame,
    read_preface,
};
use crate::crypto::CipherPolicy;
use crate::keys::{Fingerprint, PrivateKey, PublicKey};

/// What the local side brings to a handshake.
pub struct LocalParams<'a> {
    /// Our RSA identity.
    pub key: &'a PrivateKey,
    /// The only remote key we accept.
    pub remote_pin: Fingerprint,
    /// The ciphers we allow.
    pub ciphers: &'a CipherPolicy,
}

/// Runs the initiator's side of the handshake over `stream`.
///
/// # Errors
/// A [`HandshakeError`] naming the check that failed; the caller closes the stream.
pub async fn run<S>(stream: &mut S, params: &LocalParams<'_>) -> Result<Established, HandshakeError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let secret = EphemeralSecret::random();
    let ours = Offer::ours(KeyShare::from(&secret), params.ciphers);
    let offer = ours.suites.clone();

    let mut body = Vec::new();
    ours.encode(&mut body);
    push_u16_prefixed(&mut body, params.key.public_key().spki_der());
    let mut transcript = Transcript::default();
    let mut flight = preface().to_vec();
    flight.extend_from_slice(&frame(FrameType::LocalHello, &body));
    transcript.add(&flight);
    stream.write_all(&flight).await?;
    stream.flush().await?;

    transcript.add(&read_preface(stream).await?);
    let hello = read_frame(stream, FrameType::RemoteHello)
        .await
        .map_err(|err| match err {
            HandshakeError::NoCommonCipher { remote, .. } => HandshakeError::NoCommonCipher {
                local: offer.clone(),
                remote,
            },
            other => other,
        })?;
    transcript.add(&hello);
    let mut reader = Reader::new(&hello[3..], "RemoteHello");
    let (remote_share, suite) = decode_answer(&mut reader, &offer)?;
    let spki = reader.u16_prefixed()?;
    reader.finish()?;

    let got = Fingerprint::of_spki(spki);
    if got != params.remote_pin {
        return Err(HandshakeError::WrongRemoteKey {
            expected: params.remote_pin,
            got,
        });
    }
    let remote_key = PublicKey::from_spki_der(spki)?;

    let auth = read_frame(stream, FrameType::RemoteAuth).await?;
    if !remote_key.verify(&transcript.signed_message(CONTEXT_REMOTE), &auth[3..]) {
        return Err(HandshakeError::BadSignature { signer: "remote" });
    }
    transcript.add(&auth);

    let shared = secret.diffie_hellman(&remote_share);
    if !shared.was_contributory() {
        return Err(HandshakeError::WeakKeyShare);
    }
    let signature = params
        .key
        .sign_off_thread(transcript.signed_message(CONTEXT_LOCAL))
        .await?;
    let local_auth = frame(FrameType::LocalAuth, &signature);
    transcript.add(&local_auth);
    stream.write_all(&local_auth).await?;
    stream.flush().await?;

    let schedule = key_schedule(shared.as_bytes(), &transcript);
    Ok(schedule.establish(suite, got, true, Setup::Full, Some(TicketKind::Session)))
}
