//! The remote's list of accepted local keys: parsing an authorized-keys file of PEM
//! public keys and `SHA256:` fingerprint lines into a set of fingerprints.
//!
//! Reading key files and computing fingerprints belong to the parent module; this
//! one only knows the file's line format and what it refuses (private keys, stray
//! text, an empty list), always naming the file and line.

use std::collections::HashSet;
use std::path::Path;

use super::{Fingerprint, KeyError, public_key_from_pem, read_small_file};

/// The set of local-side keys a remote accepts.
///
/// The file lists PEM public keys and/or fingerprint lines (`SHA256:...`, optionally
/// followed by a comment); `#` starts a comment line and blank lines are ignored.
#[derive(Debug, Clone, Default)]
pub struct AuthorizedKeys {
    fingerprints: HashSet<Fingerprint>,
}

impl AuthorizedKeys {
    /// Builds a set from fingerprints.
    pub fn from_fingerprints(list: impl IntoIterator<Item = Fingerprint>) -> Self {
        Self {
            fingerprints: list.into_iter().collect(),
        }
    }

    /// Loads and parses an authorized-keys file.
    ///
    /// # Errors
    /// [`KeyError::Format`] naming the file and line of the first entry that is neither a
    /// PEM public key nor a fingerprint, or when the file lists no key at all.
    pub fn load(path: &Path) -> Result<Self, KeyError> {
        let bytes = read_small_file(path)?;
        let text = String::from_utf8(bytes).map_err(|_| KeyError::Format {
            path: path.into(),
            reason: "is not UTF-8 text; list PEM public keys or SHA256:... fingerprints".into(),
        })?;
        let mut fingerprints = HashSet::new();
        let mut pem_block: Option<(usize, String)> = None;
        for (index, line) in text.lines().enumerate() {
            let line_no = index + 1;
            let trimmed = line.trim();
            if let Some((start, block)) = pem_block.as_mut() {
                block.push_str(trimmed);
                block.push('\n');
                if trimmed.starts_with("-----END ") {
                    let at = format!("{} line {}", path.display(), start);
                    let parsed = pem::parse(block.as_bytes()).map_err(|err| KeyError::Format {
                        path: at.clone().into(),
                        reason: format!("unreadable PEM block ({err})"),
                    })?;
                    if parsed.tag().contains("PRIVATE") {
                        return Err(KeyError::Format {
                            path: at.into(),
                            reason: "a private key does not belong here; list the matching \
                                     public key (its .pub file) or its fingerprint instead, and \
                                     keep the private key on the local side only"
                                .into(),
                        });
                    }
                    fingerprints.insert(public_key_from_pem(&parsed, Path::new(&at))?.fingerprint);
                    pem_block = None;
                }
                continue;
            }
            if trimmed.is_empty() || trimmed.starts_with('#') {
                continue;
            }
            if trimmed.starts_with("-----BEGIN ") {
                pem_block = Some((line_no, format!("{trimmed}\n")));
                continue;
            }
            let first = trimmed.split_whitespace().next().unwrap_or_default();
            let fingerprint = Fingerprint::parse(first).map_err(|_| KeyError::Format {
                path: path.into(),
                reason: format!(
                    "line {line_no}: expected a PEM public key or a SHA256:... fingerprint, \
                     found {first:?}"
                ),
            })?;
            fingerprints.insert(fingerprint);
        }
        if let Some((start, _)) = pem_block {
            return Err(KeyError::Format {
                path: path.into(),
                reason: format!("line {start}: PEM block has no END line"),
            });
        }
        if fingerprints.is_empty() {
            return Err(KeyError::Format {
                path: path.into(),
                reason: "lists no key; add the local side's public key or its fingerprint".into(),
            });
        }
        Ok(Self { fingerprints })
    }

    /// Whether the key with this fingerprint is accepted.
    pub fn contains(&self, fingerprint: &Fingerprint) -> bool {
        self.fingerprints.contains(fingerprint)
    }

    /// Number of accepted keys.
    pub fn len(&self) -> usize {
        self.fingerprints.len()
    }

    /// Whether no key is accepted.
    pub fn is_empty(&self) -> bool {
        self.fingerprints.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::path::PathBuf;

    use super::*;

    fn temp_file(name: &str, contents: &[u8]) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("tunnel-authorized-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        fs::write(&path, contents).unwrap();
        path
    }

    #[test]
    fn a_private_key_in_authorized_keys_is_refused_in_place() {
        let private = include_str!("../../tests/fixtures/test-only-remote.pem");
        let path = temp_file("authorized-with-private", private.as_bytes());
        let err = AuthorizedKeys::load(&path).unwrap_err().to_string();
        assert!(err.contains("line 1"), "{err}");
        assert!(err.contains("a private key does not belong here"), "{err}");
    }
}
