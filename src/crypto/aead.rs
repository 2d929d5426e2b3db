//! Sealing and opening one record's bytes in place with the negotiated AEAD.
//!
//! This module owns the choice of cipher object and the nonce layout: a 64-bit
//! counter, big-endian, in the last eight bytes of the 96-bit nonce, the first four
//! bytes zero. It does not own the counter itself, usage limits or rekeying; those
//! belong to [`crate::record`].

use aes_gcm::Aes256Gcm;
use aes_gcm::aead::{AeadInOut, KeyInit};
use chacha20poly1305::ChaCha20Poly1305;

use super::CipherSuite;

/// Bytes of authentication tag appended to every sealed record.
pub const TAG_LEN: usize = 16;

/// Bytes in a traffic key, for both suites.
pub const KEY_LEN: usize = 32;

/// A keyed AEAD instance for one direction of one connection.
pub enum AeadKey {
    /// ChaCha20-Poly1305 state.
    ChaCha20Poly1305(Box<ChaCha20Poly1305>),
    /// AES-256-GCM state (expanded key schedule).
    Aes256Gcm(Box<Aes256Gcm>),
}

/// Failure to open: the tag did not verify. Deliberately carries no detail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenFailed;

impl AeadKey {
    /// Keys the cipher for `suite`.
    pub fn new(suite: CipherSuite, key: &[u8; KEY_LEN]) -> Self {
        match suite {
            CipherSuite::ChaCha20Poly1305 => {
                Self::ChaCha20Poly1305(Box::new(ChaCha20Poly1305::new(key.into())))
            }
            CipherSuite::Aes256Gcm => Self::Aes256Gcm(Box::new(Aes256Gcm::new(key.into()))),
        }
    }

    /// Encrypts `buf` in place and returns the tag.
    pub fn seal(&self, counter: u64, aad: &[u8], buf: &mut [u8]) -> [u8; TAG_LEN] {
        let nonce = nonce_for(counter);
        // Encryption fails only for messages beyond the cipher's length limit (about
        // 64 GB for both suites); records are capped far below that.
        let tag = match self {
            Self::ChaCha20Poly1305(cipher) => {
                cipher.encrypt_inout_detached((&nonce).into(), aad, buf.into())
            }
            Self::Aes256Gcm(cipher) => {
                cipher.encrypt_inout_detached((&nonce).into(), aad, buf.into())
            }
        }
        .expect("record length is below the AEAD message limit");
        tag.into()
    }

    /// Decrypts `buf` in place if `tag` verifies; on failure `buf` holds no plaintext
    /// that may be used.
    ///
    /// # Errors
    /// [`OpenFailed`] when the ciphertext, associated data, counter or key differ from
    /// what was sealed.
    pub fn open(
        &self,
        counter: u64,
        aad: &[u8],
        buf: &mut [u8],
        tag: &[u8; TAG_LEN],
    ) -> Result<(), OpenFailed> {
        let nonce = nonce_for(counter);
        match self {
            Self::ChaCha20Poly1305(cipher) => {
                cipher.decrypt_inout_detached((&nonce).into(), aad, buf.into(), tag.into())
            }
            Self::Aes256Gcm(cipher) => {
                cipher.decrypt_inout_detached((&nonce).into(), aad, buf.into(), tag.into())
            }
        }
        .map_err(|_| OpenFailed)
    }
}

fn nonce_for(counter: u64) -> [u8; 12] {
    let mut nonce = [0u8; 12];
    nonce[4..].copy_from_slice(&counter.to_be_bytes());
    nonce
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_open_round_trip_and_tamper_detection() {
        for suite in CipherSuite::ALL {
            let key = AeadKey::new(suite, &[7u8; KEY_LEN]);
            let mut buf = b"attack at dawn".to_vec();
            let tag = key.seal(5, b"hdr", &mut buf);
            assert_ne!(&buf[..], b"attack at dawn");

            let mut copy = buf.clone();
            key.open(5, b"hdr", &mut copy, &tag).unwrap();
            assert_eq!(&copy[..], b"attack at dawn");

            let mut flipped = buf.clone();
            flipped[0] ^= 1;
            assert_eq!(key.open(5, b"hdr", &mut flipped, &tag), Err(OpenFailed));
            assert_eq!(key.open(6, b"hdr", &mut buf.clone(), &tag), Err(OpenFailed));
            assert_eq!(key.open(5, b"hdR", &mut buf.clone(), &tag), Err(OpenFailed));
        }
    }
}
