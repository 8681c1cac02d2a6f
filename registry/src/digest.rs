//! Content digests as defined by the OCI image spec (`descriptor.md#digests`):
//! `<algorithm>:<encoded>`, where this crate accepts the two registered algorithms
//! `sha256` (64 lowercase hex characters) and `sha512` (128 lowercase hex characters).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest as _, Sha256, Sha512};

/// Why a digest string was rejected by [`Digest::from_str`].
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Error {
    /// The string has no `:` separating algorithm and hex.
    #[error("digest {digest:?} has no algorithm prefix (want sha256:<hex> or sha512:<hex>)")]
    MissingAlgorithm {
        /// The rejected input.
        digest: String,
    },
    /// The algorithm is neither `sha256` nor `sha512`.
    #[error("digest {digest:?} uses unsupported algorithm {algorithm:?} (want sha256 or sha512)")]
    UnsupportedAlgorithm {
        /// The rejected input.
        digest: String,
        /// The algorithm part.
        algorithm: String,
    },
    /// The encoded part is not lowercase hex of the right length for the algorithm.
    #[error(
        "digest {digest:?} must have {expected_len} lowercase hex characters after the algorithm"
    )]
    InvalidHex {
        /// The rejected input.
        digest: String,
        /// Required number of hex characters (64 for sha256, 128 for sha512).
        expected_len: usize,
    },
}

/// A validated content digest, e.g. `sha256:<64 lowercase hex>` or `sha512:<128 lowercase hex>`.
///
/// Parsed with [`FromStr`] (see [`Error`] for the rejections); [`fmt::Display`] gives back the
/// exact input, so parsing and printing round-trip. Serialises as that string (OCI JSON).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest {
    value: String,
    split: usize,
}

impl Digest {
    /// The algorithm: `"sha256"` or `"sha512"`.
    pub fn algorithm(&self) -> &str {
        &self.value[..self.split]
    }

    /// The lowercase hex encoding (64 characters for sha256, 128 for sha512).
    pub fn hex(&self) -> &str {
        &self.value[self.split + 1..]
    }

    /// The whole `algorithm:hex` string (same as `Display`).
    pub fn as_str(&self) -> &str {
        &self.value
    }

    /// The sha256 digest of `bytes`.
    pub fn sha256_of(bytes: &[u8]) -> Digest {
        let mut d = Digester::new();
        d.update(bytes);
        d.finish()
    }

    /// A [`Digester`] of the same algorithm as `self`, to verify content against it.
    pub fn digester(&self) -> Digester {
        if self.algorithm() == "sha512" {
            Digester::sha512()
        } else {
            Digester::new()
        }
    }

    fn from_parts(algorithm: &str, hex: &str) -> Digest {
        Digest {
            value: format!("{algorithm}:{hex}"),
            split: algorithm.len(),
        }
    }
}

impl FromStr for Digest {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (algorithm, hex) = s.split_once(':').ok_or_else(|| Error::MissingAlgorithm {
            digest: s.to_owned(),
        })?;
        let expected_len = match algorithm {
            "sha256" => 64,
            "sha512" => 128,
            _ => {
                return Err(Error::UnsupportedAlgorithm {
                    digest: s.to_owned(),
                    algorithm: algorithm.to_owned(),
                });
            }
        };
        if hex.len() != expected_len || !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        {
            return Err(Error::InvalidHex {
                digest: s.to_owned(),
                expected_len,
            });
        }
        Ok(Digest::from_parts(algorithm, hex))
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.value)
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest({})", self.value)
    }
}

impl Serialize for Digest {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.value)
    }
}

impl<'de> Deserialize<'de> for Digest {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Incremental hasher producing a [`Digest`]: `Digester::new()` (sha256), `update`, `finish`.
#[derive(Clone)]
pub struct Digester {
    inner: Inner,
    bytes: u64,
}

#[derive(Clone)]
enum Inner {
    Sha256(Sha256),
    Sha512(Sha512),
}

impl Default for Digester {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for Digester {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let algorithm = match self.inner {
            Inner::Sha256(_) => "sha256",
            Inner::Sha512(_) => "sha512",
        };
        f.debug_struct("Digester")
            .field("algorithm", &algorithm)
            .field("bytes", &self.bytes)
            .finish()
    }
}

impl Digester {
    /// A sha256 hasher.
    pub fn new() -> Self {
        Digester {
            inner: Inner::Sha256(Sha256::new()),
            bytes: 0,
        }
    }

    /// A sha512 hasher.
    pub fn sha512() -> Self {
        Digester {
            inner: Inner::Sha512(Sha512::new()),
            bytes: 0,
        }
    }

    /// Feeds `bytes` into the hash.
    pub fn update(&mut self, bytes: &[u8]) {
        self.bytes += bytes.len() as u64;
        match &mut self.inner {
            Inner::Sha256(h) => h.update(bytes),
            Inner::Sha512(h) => h.update(bytes),
        }
    }

    /// Number of bytes hashed so far.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// The digest of everything fed so far.
    pub fn finish(self) -> Digest {
        match self.inner {
            Inner::Sha256(h) => Digest::from_parts("sha256", &hex::encode(h.finalize())),
            Inner::Sha512(h) => Digest::from_parts("sha512", &hex::encode(h.finalize())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_of_empty_is_the_well_known_value() {
        assert_eq!(
            Digest::sha256_of(b"").to_string(),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn parse_round_trips_and_splits() {
        let s = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        let d: Digest = s.parse().unwrap();
        assert_eq!(d.to_string(), s);
        assert_eq!(d.algorithm(), "sha256");
        assert_eq!(d.hex().len(), 64);
        let json = serde_json::to_string(&d).unwrap();
        assert_eq!(serde_json::from_str::<Digest>(&json).unwrap(), d);
    }

    #[test]
    fn parse_rejects_bad_input() {
        assert!(matches!(
            "abc".parse::<Digest>(),
            Err(Error::MissingAlgorithm { .. })
        ));
        assert!(matches!(
            "md5:00".parse::<Digest>(),
            Err(Error::UnsupportedAlgorithm { .. })
        ));
        assert!(matches!(
            "sha256:ABC".parse::<Digest>(),
            Err(Error::InvalidHex { .. })
        ));
        let upper = format!("sha256:{}", "A".repeat(64));
        assert!(matches!(
            upper.parse::<Digest>(),
            Err(Error::InvalidHex { .. })
        ));
    }

    #[test]
    fn sha512_digester_matches_algorithm() {
        let mut d = Digester::sha512();
        d.update(b"abc");
        let out = d.finish();
        assert_eq!(out.algorithm(), "sha512");
        assert_eq!(out.hex().len(), 128);
        assert_eq!(out.to_string().parse::<Digest>().unwrap(), out);
    }
}
