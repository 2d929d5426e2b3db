//! Cipher suites: their names and wire identifiers, our default preference order,
//! and the rule by which the remote picks one from the local side's offer.
//!
//! The AEAD operations themselves live in [`aead`]; record framing and nonce
//! counters live in [`crate::record`]. Negotiation runs inside the handshake, which
//! binds both offers and the choice into the signed transcript.

pub mod aead;

use std::fmt;
use std::str::FromStr;

/// An AEAD cipher the tunnel can run its records under.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CipherSuite {
    /// ChaCha20-Poly1305 (RFC 8439), fast everywhere in software.
    ChaCha20Poly1305,
    /// AES-256 in GCM mode, fastest where the CPU has AES and carry-less multiply.
    Aes256Gcm,
}

impl CipherSuite {
    /// Every suite this build supports.
    pub const ALL: [CipherSuite; 2] = [CipherSuite::ChaCha20Poly1305, CipherSuite::Aes256Gcm];

    /// The identifier sent on the wire.
    pub fn id(self) -> u8 {
        match self {
            CipherSuite::ChaCha20Poly1305 => 1,
            CipherSuite::Aes256Gcm => 2,
        }
    }

    /// The suite with this wire identifier, if we know it.
    pub fn from_id(id: u8) -> Option<Self> {
        Self::ALL.into_iter().find(|suite| suite.id() == id)
    }

    /// The name used on the command line and in logs.
    pub fn name(self) -> &'static str {
        match self {
            CipherSuite::ChaCha20Poly1305 => "chacha20-poly1305",
            CipherSuite::Aes256Gcm => "aes-256-gcm",
        }
    }
}

impl fmt::Display for CipherSuite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for CipherSuite {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let wanted = text.trim().to_ascii_lowercase().replace('_', "-");
        Self::ALL
            .into_iter()
            .find(|suite| suite.name() == wanted)
            .ok_or_else(|| {
                format!("unknown cipher {text:?}; choose from chacha20-poly1305, aes-256-gcm")
            })
    }
}

/// Which ciphers one side allows, and whether its order is a firm preference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CipherPolicy {
    /// Allowed suites, most preferred first; never empty.
    pub suites: Vec<CipherSuite>,
    /// True when the user gave the list: the remote then follows its own order.
    /// False for the built-in default, where the remote picks AES-256-GCM only when
    /// both sides have AES hardware.
    pub explicit: bool,
}

impl Default for CipherPolicy {
    fn default() -> Self {
        Self {
            suites: CipherSuite::ALL.to_vec(),
            explicit: false,
        }
    }
}

impl CipherPolicy {
    /// A policy from a user-given list, duplicates removed, order kept.
    ///
    /// # Errors
    /// When the list is empty.
    pub fn explicit(list: &[CipherSuite]) -> Result<Self, String> {
        let mut suites = Vec::new();
        for suite in list {
            if !suites.contains(suite) {
                suites.push(*suite);
            }
        }
        if suites.is_empty() {
            return Err("the cipher list is empty; name at least one cipher".into());
        }
        Ok(Self {
            suites,
            explicit: true,
        })
    }

    /// The order the local side offers: its own order, except that without an explicit
    /// list it puts AES-256-GCM first only when it has AES hardware.
    pub fn offer(&self, local_has_aes: bool) -> Vec<CipherSuite> {
        if self.explicit {
            return self.suites.clone();
        }
        hardware_order(&self.suites, local_has_aes)
    }

    /// The remote's choice from the local side's offer.
    ///
    /// With an explicit list the remote takes the first of its own suites that the local
    /// side offers. Otherwise it takes AES-256-GCM only when both sides report AES
    /// hardware, and ChaCha20-Poly1305 first in every other case.
    ///
    /// Returns `None` when there is no suite in common.
    pub fn choose(
        &self,
        offer: &[CipherSuite],
        local_has_aes: bool,
        remote_has_aes: bool,
    ) -> Option<CipherSuite> {
        let order = if self.explicit {
            self.suites.clone()
        } else {
            hardware_order(&self.suites, local_has_aes && remote_has_aes)
        };
        order.into_iter().find(|suite| offer.contains(suite))
    }
}

/// Renders a suite list as `a,b` for logs and error messages.
pub fn list_names(suites: &[CipherSuite]) -> String {
    let names: Vec<&str> = suites.iter().map(|suite| suite.name()).collect();
    if names.is_empty() {
        "(none)".into()
    } else {
        names.join(",")
    }
}

/// Whether this CPU has the instructions that make AES-GCM fast (AES rounds and
/// carry-less multiplication), detected at run time.
pub fn has_aes_hardware() -> bool {
    #[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
    {
        std::arch::is_x86_feature_detected!("aes")
            && std::arch::is_x86_feature_detected!("pclmulqdq")
    }
    #[cfg(target_arch = "aarch64")]
    {
        std::arch::is_aarch64_feature_detected!("aes")
            && std::arch::is_aarch64_feature_detected!("pmull")
    }
    #[cfg(not(any(target_arch = "x86", target_arch = "x86_64", target_arch = "aarch64")))]
    {
        false
    }
}

fn hardware_order(suites: &[CipherSuite], aes_fast: bool) -> Vec<CipherSuite> {
    let first = if aes_fast {
        CipherSuite::Aes256Gcm
    } else {
        CipherSuite::ChaCha20Poly1305
    };
    let mut order: Vec<CipherSuite> = suites.iter().copied().filter(|s| *s == first).collect();
    order.extend(suites.iter().copied().filter(|s| *s != first));
    order
}

#[cfg(test)]
mod tests {
    use super::*;
    use CipherSuite::{Aes256Gcm as Aes, ChaCha20Poly1305 as ChaCha};

    #[test]
    fn default_policy_prefers_aes_only_when_both_sides_have_hardware() {
        let policy = CipherPolicy::default();
        let offer = [ChaCha, Aes];
        assert_eq!(policy.choose(&offer, true, true), Some(Aes));
        assert_eq!(policy.choose(&offer, true, false), Some(ChaCha));
        assert_eq!(policy.choose(&offer, false, true), Some(ChaCha));
        assert_eq!(policy.choose(&offer, false, false), Some(ChaCha));
        assert_eq!(policy.choose(&[Aes], false, false), Some(Aes));
    }

    #[test]
    fn explicit_remote_list_wins() {
        let policy = CipherPolicy::explicit(&[Aes, ChaCha]).unwrap();
        assert_eq!(policy.choose(&[ChaCha, Aes], false, false), Some(Aes));
        let only_chacha = CipherPolicy::explicit(&[ChaCha]).unwrap();
        assert_eq!(only_chacha.choose(&[Aes], true, true), None);
    }

    #[test]
    fn explicit_list_drops_duplicates_and_refuses_empty() {
        let policy = CipherPolicy::explicit(&[Aes, Aes, ChaCha]).unwrap();
        assert_eq!(policy.suites, vec![Aes, ChaCha]);
        assert!(CipherPolicy::explicit(&[]).is_err());
    }

    #[test]
    fn names_and_ids_round_trip() {
        for suite in CipherSuite::ALL {
            assert_eq!(suite.name().parse::<CipherSuite>().unwrap(), suite);
            assert_eq!(CipherSuite::from_id(suite.id()), Some(suite));
        }
        assert_eq!(CipherSuite::from_id(0), None);
        assert!("rc4".parse::<CipherSuite>().is_err());
    }
}
