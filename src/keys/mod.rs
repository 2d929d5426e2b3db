//! RSA identity keys: loading PEM files, generating key pairs, fingerprints and the
//! list of keys a remote accepts.
//!
//! This module owns everything that touches key files on disk and the long-term RSA
//! identities built from them. It checks the PEM label before decoding, refuses
//! encrypted, non-RSA and small keys with an error naming the file, and never logs
//! or prints key material: keys are identified by path and [`Fingerprint`].
//! Signing and verifying transcripts is offered here as two small methods; what is
//! signed, and when, belongs to [`crate::handshake`].

mod authorized;

use std::fmt;
use std::fs::{self, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::STANDARD_NO_PAD;
use rsa::pkcs1::{DecodeRsaPrivateKey, DecodeRsaPublicKey};
use rsa::pkcs8::{
    DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey, LineEnding,
};
use rsa::sha2::Sha256;
use rsa::traits::PublicKeyParts;
use sha2::Digest;
use tokio::sync::Semaphore;
use tracing::warn;

pub use authorized::AuthorizedKeys;

/// Smallest RSA modulus we accept or generate, in bits. Smaller keys are refused
/// at load time, and a peer presenting one fails the handshake.
pub const MIN_RSA_BITS: usize = 2048;

/// Largest RSA modulus we accept, in bits; bounds the cost a peer can make us spend
/// verifying a signature.
pub const MAX_RSA_BITS: usize = 8192;

/// RSA signatures made at once per process, each on a blocking-pool thread. One
/// keeps a flood of handshakes from taking more than one core away from relaying;
/// handshakes beyond it wait their turn within their handshake timeout.
pub const MAX_CONCURRENT_SIGNATURES: usize = 1;

/// Signatures one key lets wait for their turn, the one being made included. More
/// are refused at once with [`KeyError::SignerBusy`]: the remote signs for anyone
/// who presents an authorized public key, so without a bound a flood of hellos
/// would queue signatures past every handshake deadline and hold a connection slot
/// each while waiting. Sixteen 4096-bit signatures take well under a second.
pub const MAX_QUEUED_SIGNATURES: usize = 16;

/// Largest key or authorized-keys file read, in bytes; anything larger is refused
/// before it is read (a key file is a few KiB).
pub const MAX_KEY_FILE_LEN: u64 = 1024 * 1024;

/// Modulus size `tunnel keygen` uses unless told otherwise, in bits.
pub const DEFAULT_RSA_BITS: usize = 3072;

/// Errors from reading, parsing, checking or writing key files.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file involved.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The file is not PEM, or holds a PEM block of a kind we do not read.
    #[error("{path}: {reason}")]
    Format {
        /// The file involved.
        path: PathBuf,
        /// What was found and what to do about it.
        reason: String,
    },
    /// The key is smaller or larger than we allow.
    #[error(
        "{path}: RSA key has {bits} bits; keys from {MIN_RSA_BITS} to {MAX_RSA_BITS} bits \
         are accepted, make a new one with `tunnel keygen`"
    )]
    Size {
        /// The file involved (or a description of where the key came from).
        path: PathBuf,
        /// The modulus size found.
        bits: usize,
    },
    /// A key of this size was asked of `tunnel keygen`.
    #[error(
        "--bits {0}: tunnel uses RSA keys of {MIN_RSA_BITS} to {MAX_RSA_BITS} bits; pick a size \
         in that range (the default is {DEFAULT_RSA_BITS})"
    )]
    GenerateSize(usize),
    /// A fingerprint string is malformed.
    #[error(
        "{0:?} is not a key fingerprint; expected SHA256: followed by 43 base64 characters, \
         as printed by `tunnel fingerprint`"
    )]
    Fingerprint(String),
    /// Refused to overwrite a file.
    #[error("{0}: file exists; pass --force to overwrite it")]
    Exists(PathBuf),
    /// The RSA library reported a failure (key generation or signing).
    #[error("RSA operation failed: {0}")]
    Rsa(String),
    /// [`MAX_QUEUED_SIGNATURES`] signatures are already waiting.
    #[error("{MAX_QUEUED_SIGNATURES} handshakes are already waiting for a signature")]
    SignerBusy,
}

/// SHA-256 over a public key's DER SubjectPublicKeyInfo.
///
/// Displayed as `SHA256:` plus unpadded standard base64, the same string
/// `openssl pkey -pubin -outform DER | openssl dgst -sha256 -binary | base64`
/// gives once its `=` padding is removed.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint([u8; 32]);

impl Fingerprint {
    /// Computes the fingerprint of a DER-encoded SubjectPublicKeyInfo.
    pub fn of_spki(spki_der: &[u8]) -> Self {
        Self(Sha256::digest(spki_der).into())
    }

    /// Parses the `SHA256:...` text form.
    ///
    /// # Errors
    /// [`KeyError::Fingerprint`] when the prefix, alphabet or length is wrong.
    pub fn parse(text: &str) -> Result<Self, KeyError> {
        let bad = || KeyError::Fingerprint(text.to_string());
        let encoded = text.trim().strip_prefix("SHA256:").ok_or_else(bad)?;
        let bytes = STANDARD_NO_PAD
            .decode(encoded.trim_end_matches('='))
            .map_err(|_| bad())?;
        let digest: [u8; 32] = bytes.try_into().map_err(|_| bad())?;
        Ok(Self(digest))
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SHA256:{}", STANDARD_NO_PAD.encode(self.0))
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// An RSA public key together with its DER SubjectPublicKeyInfo and fingerprint.
#[derive(Clone)]
pub struct PublicKey {
    key: rsa::PublicKey,
    spki_der: Vec<u8>,
    fingerprint: Fingerprint,
}

impl PublicKey {
    /// Decodes a DER SubjectPublicKeyInfo as a peer sends it in the handshake.
    ///
    /// # Errors
    /// [`KeyError::Format`] when the bytes are not an RSA SubjectPublicKeyInfo, and
    /// [`KeyError::Size`] when the modulus is out of bounds.
    pub fn from_spki_der(spki_der: &[u8]) -> Result<Self, KeyError> {
        let origin = Path::new("public key sent by peer");
        let info = rsa::pkcs8::SubjectPublicKeyInfoRef::try_from(spki_der).map_err(|err| {
            KeyError::Format {
                path: origin.into(),
                reason: format!("not a SubjectPublicKeyInfo ({err})"),
            }
        })?;
        check_algorithm(&info.algorithm.oid).map_err(|reason| KeyError::Format {
            path: origin.into(),
            reason,
        })?;
        let key =
            rsa::PublicKey::from_public_key_der(spki_der).map_err(|err| KeyError::Format {
                path: origin.into(),
                reason: format!("not an RSA SubjectPublicKeyInfo ({err})"),
            })?;
        Self::from_rsa(key, origin)
    }

    fn from_rsa(key: rsa::PublicKey, origin: &Path) -> Result<Self, KeyError> {
        let bits = modulus_bits(&key);
        if !(MIN_RSA_BITS..=MAX_RSA_BITS).contains(&bits) {
            return Err(KeyError::Size {
                path: origin.into(),
                bits,
            });
        }
        let spki_der = key
            .to_public_key_der()
            .map_err(|err| KeyError::Rsa(err.to_string()))?
            .into_vec();
        let fingerprint = Fingerprint::of_spki(&spki_der);
        Ok(Self {
            key,
            spki_der,
            fingerprint,
        })
    }

    /// The DER SubjectPublicKeyInfo.
    pub fn spki_der(&self) -> &[u8] {
        &self.spki_der
    }

    /// The key's fingerprint.
    pub fn fingerprint(&self) -> Fingerprint {
        self.fingerprint
    }

    /// Modulus size in bits.
    pub fn bits(&self) -> usize {
        modulus_bits(&self.key)
    }

    /// Size of a signature made with the matching private key, in bytes.
    pub fn signature_len(&self) -> usize {
        self.key.size()
    }

    /// Checks an RSA-PSS (SHA-256) signature over `message`.
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        self.key.pss_verify::<Sha256>(message, signature).is_ok()
    }

    /// The SPKI PEM text of this key.
    pub fn to_pem(&self) -> String {
        let block = pem::Pem::new("PUBLIC KEY", self.spki_der.clone());
        pem::encode_config(
            &block,
            pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF),
        )
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({} bits, {})", self.bits(), self.fingerprint)
    }
}

/// An RSA private key. Its `Debug` output shows only the public fingerprint; the
/// RSA library wipes the secret parts when it is dropped.
#[derive(Clone)]
pub struct PrivateKey {
    key: Arc<rsa::PrivateKey>,
    public: PublicKey,
    /// Places in the line for [`PrivateKey::sign_off_thread`], shared by clones.
    queue: Arc<Semaphore>,
}

impl PrivateKey {
    /// Generates a new key pair.
    ///
    /// # Errors
    /// [`KeyError::GenerateSize`] below [`MIN_RSA_BITS`] or above [`MAX_RSA_BITS`].
    pub fn generate(bits: usize) -> Result<Self, KeyError> {
        if !(MIN_RSA_BITS..=MAX_RSA_BITS).contains(&bits) {
            return Err(KeyError::GenerateSize(bits));
        }
        let key = rsa::PrivateKey::new(&mut rand::rng(), bits)
            .map_err(|err| KeyError::Rsa(err.to_string()))?;
        Self::from_rsa(key, Path::new("generated key"))
    }

    fn from_rsa(key: rsa::PrivateKey, origin: &Path) -> Result<Self, KeyError> {
        let public = PublicKey::from_rsa(key.to_public_key(), origin)?;
        Ok(Self {
            key: Arc::new(key),
            public,
            queue: Arc::new(Semaphore::new(MAX_QUEUED_SIGNATURES)),
        })
    }

    /// The matching public key.
    pub fn public_key(&self) -> &PublicKey {
        &self.public
    }

    /// Signs `message` with RSA-PSS over SHA-256 (random salt, blinded).
    ///
    /// # Errors
    /// [`KeyError::Rsa`] if the RSA library fails, which it does only when the system
    /// random source fails.
    pub fn sign(&self, message: &[u8]) -> Result<Vec<u8>, KeyError> {
        self.key
            .pss_sign::<Sha256>(message)
            .map_err(|err| KeyError::Rsa(err.to_string()))
    }

    /// Signs like [`PrivateKey::sign`], on a blocking-pool thread and at most
    /// [`MAX_CONCURRENT_SIGNATURES`] at a time in this process. An RSA signature takes
    /// milliseconds; made on an async worker it would stall every connection that
    /// worker serves, and anyone who knows an accepted public key can ask a remote
    /// for signatures; beyond [`MAX_QUEUED_SIGNATURES`] waiting for this key, more
    /// are refused at once.
    ///
    /// # Errors
    /// [`KeyError::SignerBusy`] when the line is full; otherwise as
    /// [`PrivateKey::sign`].
    pub async fn sign_off_thread(&self, message: Vec<u8>) -> Result<Vec<u8>, KeyError> {
        static SIGNING: Semaphore = Semaphore::const_new(MAX_CONCURRENT_SIGNATURES);
        let queued = (self.queue.clone().try_acquire_owned()).map_err(|_| KeyError::SignerBusy)?;
        let permit = SIGNING
            .acquire()
            .await
            .expect("the signing semaphore is never closed");
        let key = self.clone();
        // The permits go with the signature: if the handshake waiting for it is
        // dropped (deadline, shutdown), the signature still runs to its end and
        // still counts.
        tokio::task::spawn_blocking(move || {
            let _held = (queued, permit);
            key.sign(&message)
        })
        .await
        .map_err(|err| KeyError::Rsa(format!("signing task failed: {err}")))?
    }

    /// Loads a test-only key from `tests/fixtures` by short name ("local",
    /// "remote", "stranger").
    #[cfg(test)]
    pub(crate) fn test_key(name: &str) -> Self {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures")
            .join(format!("test-only-{name}.pem"));
        load_private_key(&path).unwrap_or_else(|err| panic!("loading {}: {err}", path.display()))
    }

    /// Takes every place in this key's signing line until the permit is dropped, as
    /// a flood of handshakes would.
    #[cfg(test)]
    pub(crate) async fn fill_signing_queue(&self) -> tokio::sync::OwnedSemaphorePermit {
        let places = MAX_QUEUED_SIGNATURES as u32;
        self.queue.clone().acquire_many_owned(places).await.unwrap()
    }

    /// Writes the private key (PKCS#8 PEM, mode 0600) to `path` and the public key
    /// (SPKI PEM) to `path.pub`.
    ///
    /// # Errors
    /// [`KeyError::Exists`] when either file exists and `force` is false;
    /// [`KeyError::Io`] when a file cannot be written.
    pub fn write_pair(&self, path: &Path, force: bool) -> Result<PathBuf, KeyError> {
        let pub_path = public_key_path(path);
        if !force {
            for existing in [path, pub_path.as_path()] {
                if existing.exists() {
                    return Err(KeyError::Exists(existing.into()));
                }
            }
        }
        let private_pem = self
            .key
            .to_pkcs8_pem(LineEnding::LF)
            .map_err(|err| KeyError::Rsa(err.to_string()))?;
        write_file(path, private_pem.as_bytes(), 0o600, force)?;
        write_file(&pub_path, self.public.to_pem().as_bytes(), 0o644, force)?;
        Ok(pub_path)
    }
}

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PrivateKey(public {})", self.public.fingerprint)
    }
}

/// The path `tunnel keygen` writes the public half to: the private key's path plus `.pub`.
pub fn public_key_path(private_path: &Path) -> PathBuf {
    let mut name = private_path.as_os_str().to_owned();
    name.push(".pub");
    PathBuf::from(name)
}

/// Loads an RSA private key from a PKCS#8 (`PRIVATE KEY`) or PKCS#1
/// (`RSA PRIVATE KEY`) PEM file.
///
/// # Errors
/// A [`KeyError`] naming the file when it cannot be read, is encrypted, holds another
/// kind of key, or holds a key of the wrong size.
pub fn load_private_key(path: &Path) -> Result<PrivateKey, KeyError> {
    let block = read_pem(path)?;
    let key = private_key_from_pem(&block, path)?;
    warn_if_readable_by_others(path);
    Ok(key)
}

fn private_key_from_pem(block: &pem::Pem, path: &Path) -> Result<PrivateKey, KeyError> {
    let format = |reason: String| KeyError::Format {
        path: path.into(),
        reason,
    };
    let key = match block.tag() {
        "PRIVATE KEY" => {
            let info = rsa::pkcs8::PrivateKeyInfoRef::try_from(block.contents())
                .map_err(|err| format(not_rsa("PKCS#8 private key", &err.to_string())))?;
            check_algorithm(&info.algorithm.oid).map_err(format)?;
            rsa::PrivateKey::from_pkcs8_der(block.contents())
                .map_err(|err| format(not_rsa("PKCS#8 private key", &err.to_string())))?
        }
        "RSA PRIVATE KEY" => {
            if block
                .headers()
                .get("Proc-Type")
                .is_some_and(|v| v.contains("ENCRYPTED"))
            {
                return Err(format(ENCRYPTED_HINT.into()));
            }
            rsa::PrivateKey::from_pkcs1_der(block.contents())
                .map_err(|err| format(format!("invalid PKCS#1 RSA private key ({err})")))?
        }
        "ENCRYPTED PRIVATE KEY" => return Err(format(ENCRYPTED_HINT.into())),
        "PUBLIC KEY" | "RSA PUBLIC KEY" => {
            return Err(format(
                "this is a public key; pass the private key file here (the one without .pub)"
                    .into(),
            ));
        }
        other => return Err(format(unexpected_label(other, "a private key"))),
    };
    PrivateKey::from_rsa(key, path)
}

/// Loads an RSA public key from an SPKI (`PUBLIC KEY`) or PKCS#1 (`RSA PUBLIC KEY`)
/// PEM file, or takes the public half of a private key file.
///
/// # Errors
/// A [`KeyError`] naming the file, as for [`load_private_key`].
pub fn load_public_key(path: &Path) -> Result<PublicKey, KeyError> {
    let block = read_pem(path)?;
    public_key_from_pem(&block, path)
}

fn public_key_from_pem(block: &pem::Pem, path: &Path) -> Result<PublicKey, KeyError> {
    let format = |reason: String| KeyError::Format {
        path: path.into(),
        reason,
    };
    let key = match block.tag() {
        "PUBLIC KEY" => {
            let info = rsa::pkcs8::SubjectPublicKeyInfoRef::try_from(block.contents())
                .map_err(|err| format(not_rsa("public key", &err.to_string())))?;
            check_algorithm(&info.algorithm.oid).map_err(format)?;
            rsa::PublicKey::from_public_key_der(block.contents())
                .map_err(|err| format(not_rsa("public key", &err.to_string())))?
        }
        "RSA PUBLIC KEY" => rsa::PublicKey::from_pkcs1_der(block.contents())
            .map_err(|err| format(format!("invalid PKCS#1 RSA public key ({err})")))?,
        "PRIVATE KEY" | "RSA PRIVATE KEY" | "ENCRYPTED PRIVATE KEY" => {
            return Ok(private_key_from_pem(block, path)?.public);
        }
        other => return Err(format(unexpected_label(other, "a public key"))),
    };
    PublicKey::from_rsa(key, path)
}

/// Reads the pinned remote key: a fingerprint (text after it, such as the rest of a
/// `tunnel fingerprint` line, is ignored), or the path of a PEM public key file. A
/// private key is refused: the local side has no business holding the remote's.
///
/// # Errors
/// [`KeyError`] from parsing the fingerprint or loading the file.
pub fn load_pin(value: &str) -> Result<Fingerprint, KeyError> {
    let first = value.split_whitespace().next().unwrap_or_default();
    if first.starts_with("SHA256:") {
        return Fingerprint::parse(first);
    }
    let path = Path::new(value);
    if !path.exists() && Fingerprint::parse(&format!("SHA256:{first}")).is_ok() {
        return Err(KeyError::Format {
            path: path.into(),
            reason: "no such file, but this looks like a bare fingerprint; write it with its \
                     SHA256: prefix"
                .into(),
        });
    }
    let block = read_pem(path)?;
    if block.tag().contains("PRIVATE") {
        return Err(KeyError::Format {
            path: path.into(),
            reason: "is a private key; pin the remote by its public key (the .pub file \
                     `tunnel keygen` wrote beside it) or its fingerprint, and keep the private \
                     key on the remote only"
                .into(),
        });
    }
    Ok(public_key_from_pem(&block, path)?.fingerprint)
}

/// The size of an RSA key's modulus in bits, as `openssl` reports it.
fn modulus_bits(key: &impl PublicKeyParts) -> usize {
    key.n().bit_width() as usize
}

/// Accepts only the plain `rsaEncryption` algorithm identifier. Keys restricted to
/// RSA-PSS carry another identifier that the RSA library would silently re-encode,
/// so their fingerprint would not match what `openssl` computes for the same file.
fn check_algorithm(oid: &rsa::pkcs8::ObjectIdentifier) -> Result<(), String> {
    if *oid == rsa::pkcs1::ALGORITHM_OID {
        return Ok(());
    }
    let kind = match oid.to_string().as_str() {
        "1.2.840.113549.1.1.10" => "an RSA-PSS-restricted key",
        "1.3.101.112" => "an Ed25519 key",
        "1.3.101.113" => "an Ed448 key",
        "1.3.101.110" => "an X25519 key",
        "1.2.840.10045.2.1" => "an elliptic-curve (EC) key",
        _ => "a key of another kind",
    };
    Err(format!(
        "{kind} (algorithm {oid}), but tunnel uses plain RSA keys (rsaEncryption); make one \
         with `tunnel keygen` or `openssl genpkey -algorithm RSA`"
    ))
}

const ENCRYPTED_HINT: &str = "private key is encrypted with a passphrase, which tunnel does not \
     read; write a decrypted copy with `openssl pkey -in FILE -out NEW` and protect it with file \
     permissions";

fn not_rsa(what: &str, detail: &str) -> String {
    format!("{what} is not an RSA key or is damaged ({detail}); tunnel uses RSA keys only")
}

fn unexpected_label(label: &str, wanted: &str) -> String {
    format!(
        "holds a PEM block labelled {label:?}, expected {wanted} (PKCS#8 or PKCS#1 RSA); \
         make one with `tunnel keygen` or `openssl genpkey -algorithm RSA`"
    )
}

fn read_pem(path: &Path) -> Result<pem::Pem, KeyError> {
    let bytes = read_small_file(path)?;
    if bytes.starts_with(b"-----BEGIN OPENSSH PRIVATE KEY") {
        return Err(KeyError::Format {
            path: path.into(),
            reason: "is an OpenSSH private key; convert it with `ssh-keygen -p -m PKCS8 -f FILE` \
                     or make a new key with `tunnel keygen`"
                .into(),
        });
    }
    let block = pem::parse(&bytes).map_err(|err| KeyError::Format {
        path: path.into(),
        reason: format!("not a PEM file ({err}); expected -----BEGIN ... KEY----- text"),
    })?;
    // Which of several keys was meant is not ours to guess.
    let blocks = bytes
        .split(|&b| b == b'\n')
        .filter(|line| line.trim_ascii_start().starts_with(b"-----BEGIN "))
        .count();
    if blocks > 1 {
        return Err(KeyError::Format {
            path: path.into(),
            reason: format!("holds {blocks} PEM blocks; a key file holds exactly one key"),
        });
    }
    Ok(block)
}

/// Reads a regular file of at most [`MAX_KEY_FILE_LEN`] bytes. Devices, pipes and
/// directories are refused before opening, so a wrong path neither hangs (a FIFO)
/// nor fills memory (`/dev/zero`).
fn read_small_file(path: &Path) -> Result<Vec<u8>, KeyError> {
    let io_err = |source| KeyError::Io {
        path: path.into(),
        source,
    };
    let meta = fs::metadata(path).map_err(io_err)?;
    let refuse = |reason: String| KeyError::Format {
        path: path.into(),
        reason,
    };
    if !meta.is_file() {
        return Err(refuse(
            "is not a regular file; give the path of a PEM key file".into(),
        ));
    }
    if meta.len() == 0 {
        return Err(refuse(
            "is empty; check the path (a volume or secret may not be mounted yet)".into(),
        ));
    }
    if meta.len() > MAX_KEY_FILE_LEN {
        return Err(refuse(format!(
            "is {} bytes, more than any key file ({MAX_KEY_FILE_LEN} at most); check the path",
            meta.len()
        )));
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    fs::File::open(path)
        .and_then(|file| file.take(MAX_KEY_FILE_LEN).read_to_end(&mut bytes))
        .map_err(io_err)?;
    Ok(bytes)
}

/// Warns when a private key file can be read by other users; it still loads, as
/// mounted secrets in containers often come with loose modes.
fn warn_if_readable_by_others(path: &Path) {
    if let Ok(meta) = fs::metadata(path)
        && meta.permissions().mode() & 0o077 != 0
    {
        warn!(
            path = %path.display(),
            mode = format!("{:o}", meta.permissions().mode() & 0o777),
            "private key file is readable by other users; restrict it with chmod 600"
        );
    }
}

fn write_file(path: &Path, contents: &[u8], mode: u32, force: bool) -> Result<(), KeyError> {
    let io_err = |source| KeyError::Io {
        path: path.into(),
        source,
    };
    let mut options = OpenOptions::new();
    options.write(true).mode(mode);
    if force {
        options.create(true).truncate(true);
    } else {
        options.create_new(true);
    }
    let mut file = options.open(path).map_err(io_err)?;
    // `mode` applies only to files created here; an overwritten file keeps its old
    // mode unless set again, before any of the new contents is written.
    file.set_permissions(fs::Permissions::from_mode(mode))
        .map_err(io_err)?;
    file.write_all(contents).map_err(io_err)?;
    file.sync_all().map_err(io_err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprint_text_round_trips() {
        let fp = Fingerprint::of_spki(b"example");
        let text = fp.to_string();
        assert!(text.starts_with("SHA256:"));
        assert_eq!(text.len(), 7 + 43);
        assert_eq!(Fingerprint::parse(&text).unwrap(), fp);
        assert_eq!(Fingerprint::parse(&format!("{text}=")).unwrap(), fp);
    }

    #[test]
    fn malformed_fingerprints_are_rejected() {
        for bad in ["", "SHA256:", "MD5:abcd", "SHA256:tooshort", "SHA256:!!!!"] {
            assert!(
                matches!(Fingerprint::parse(bad), Err(KeyError::Fingerprint(_))),
                "{bad}"
            );
        }
    }

    fn temp_file(name: &str, contents: &[u8]) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("tunnel-keys-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        fs::write(&path, contents).unwrap();
        path
    }

    #[test]
    fn devices_and_oversized_files_are_refused_before_reading() {
        for device in ["/dev/zero", "/dev/null"] {
            let err = load_pin(device).unwrap_err().to_string();
            assert!(err.contains("not a regular file"), "{device}: {err}");
            let err = AuthorizedKeys::load(Path::new(device))
                .unwrap_err()
                .to_string();
            assert!(err.contains("not a regular file"), "{device}: {err}");
        }
        let big = temp_file("big.pem", &vec![b'A'; MAX_KEY_FILE_LEN as usize + 1]);
        let err = load_private_key(&big).unwrap_err().to_string();
        assert!(err.contains("more than any key file"), "{err}");
    }

    #[test]
    fn a_private_key_is_refused_as_the_pin() {
        let private = include_str!("../../tests/fixtures/test-only-remote.pem");
        let path = temp_file("pin-private.pem", private.as_bytes());
        let err = load_pin(path.to_str().unwrap()).unwrap_err().to_string();
        assert!(
            err.contains("is a private key; pin the remote by its public key"),
            "{err}"
        );
        let public = include_str!("../../tests/fixtures/test-only-remote.pub.pem");
        let path = temp_file("pin-public.pem", public.as_bytes());
        let pinned = load_pin(path.to_str().unwrap()).unwrap();
        assert_eq!(pinned, load_public_key(&path).unwrap().fingerprint);
    }

    #[tokio::test]
    async fn signatures_beyond_the_queue_are_refused_at_once() {
        let key = PrivateKey::test_key("remote");
        let burst = 3 * MAX_QUEUED_SIGNATURES;
        let mut signing = tokio::task::JoinSet::new();
        for _ in 0..burst {
            let key = key.clone();
            signing.spawn(async move { key.sign_off_thread(b"hello".to_vec()).await });
        }
        let outcomes = signing.join_all().await;
        let signed = outcomes.iter().filter(|outcome| outcome.is_ok()).count();
        let busy = outcomes
            .iter()
            .filter(|outcome| matches!(outcome, Err(KeyError::SignerBusy)))
            .count();
        assert_eq!(signed + busy, burst, "other failures: {outcomes:?}");
        assert!(signed >= MAX_QUEUED_SIGNATURES, "only {signed} signed");
        assert!(busy > 0, "all {burst} were queued");
        // The line empties as signatures finish.
        key.sign_off_thread(b"later".to_vec()).await.unwrap();
    }

    #[test]
    fn a_file_with_two_keys_is_refused() {
        let private = include_str!("../../tests/fixtures/test-only-remote.pem");
        let path = temp_file("two-keys.pem", format!("{private}{private}").as_bytes());
        let err = load_private_key(&path).unwrap_err().to_string();
        assert!(err.contains("holds 2 PEM blocks"), "{err}");
        // A second block that does not even parse counts too.
        let truncated = format!("{private}-----BEGIN CERTIFICATE-----\nAAAA\n");
        let path = temp_file("key-and-junk.pem", truncated.as_bytes());
        let err = load_private_key(&path).unwrap_err().to_string();
        assert!(err.contains("holds 2 PEM blocks"), "{err}");
    }

    #[test]
    fn small_keys_are_refused() {
        assert!(matches!(
            PrivateKey::generate(1024),
            Err(KeyError::GenerateSize(1024))
        ));
    }
}
