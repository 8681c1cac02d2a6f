//! Cosign key files: `cosign.pub` (PKIX `PUBLIC KEY` PEM) and `cosign.key`
//! (`ENCRYPTED SIGSTORE PRIVATE KEY`, or the legacy `ENCRYPTED COSIGN PRIVATE KEY`), as written
//! by `cosign generate-key-pair` (`sigstore/cosign: pkg/cosign/keys.go`).
//!
//! The private key PEM body is the JSON of `go-securesystemslib/encrypted.Encrypt`:
//! `{"kdf":{"name":"scrypt","params":{"N":32768,"r":8,"p":1},"salt":"<b64 32 bytes>"},
//! "cipher":{"name":"nacl/secretbox","nonce":"<b64 24 bytes>"},"ciphertext":"<b64>"}` where the
//! ciphertext is NaCl secretbox (XSalsa20-Poly1305, tag first) of the PKCS#8 DER key under
//! `scrypt(password, salt, N, r, p, 32)`.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use crypto_secretbox::XSalsa20Poly1305;
use crypto_secretbox::aead::{Aead as _, KeyInit as _};
use openssl::ec::{EcGroup, EcKey};
use openssl::ecdsa::EcdsaSig;
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{Id, PKey, Private, Public};
use openssl::sign::{Signer, Verifier};
use serde::{Deserialize, Serialize};

/// PEM label of the private keys `cosign generate-key-pair` writes today.
pub const SIGSTORE_PRIVATE_KEY_PEM: &str = "ENCRYPTED SIGSTORE PRIVATE KEY";
/// PEM label of private keys written by cosign before 2.0, still accepted when reading.
pub const LEGACY_COSIGN_PRIVATE_KEY_PEM: &str = "ENCRYPTED COSIGN PRIVATE KEY";
/// scrypt cost `N` cosign uses (2^15).
pub const SCRYPT_N: u64 = 32768;
/// scrypt block size `r` cosign uses.
pub const SCRYPT_R: u64 = 8;
/// scrypt parallelism `p` cosign uses.
pub const SCRYPT_P: u64 = 1;
/// Largest scrypt working memory (`128 * N * r * p` bytes) accepted from a key file: 256 MiB.
pub const MAX_SCRYPT_MEMORY_BYTES: u64 = 256 * 1024 * 1024;

/// Why a key could not be read, written or used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// No PEM block with an accepted label was found.
    #[error("no {expected} PEM block found")]
    NoPemBlock {
        /// The label(s) looked for.
        expected: &'static str,
    },
    /// The PEM block or its JSON body is malformed.
    #[error("malformed key file: {message}")]
    Malformed {
        /// What is wrong.
        message: String,
    },
    /// The key file uses a KDF, cipher or scrypt parameters this crate does not accept.
    #[error("unsupported key encryption: {message}")]
    UnsupportedEncryption {
        /// What is unsupported.
        message: String,
    },
    /// Decryption failed: the password is wrong (or the ciphertext was altered).
    #[error("decrypting the private key failed: wrong password or corrupted key file")]
    WrongPassword,
    /// The key is of a type cosign signatures do not use here (supported: ECDSA P-256/P-384/
    /// P-521 and RSA).
    #[error("unsupported key type: {message}")]
    UnsupportedKeyType {
        /// The key type found.
        message: String,
    },
    /// A `*.pub` entry of a key Secret is not a usable public key.
    #[error("public key {name:?}: {source}")]
    SecretEntry {
        /// The entry name, e.g. `cosign.pub`.
        name: String,
        /// Why it was refused.
        #[source]
        source: Box<KeyError>,
    },
    /// OpenSSL failed to parse, generate or use the key.
    #[error("{operation} failed: {source}")]
    Crypto {
        /// What was being done.
        operation: &'static str,
        /// The OpenSSL error stack.
        #[source]
        source: openssl::error::ErrorStack,
    },
}

fn crypto(operation: &'static str) -> impl FnOnce(openssl::error::ErrorStack) -> KeyError {
    move |source| KeyError::Crypto { operation, source }
}

/// The signature scheme, chosen from the key as cosign's `LoadVerifier` does: ECDSA P-256 with
/// SHA-256, P-384 with SHA-384, P-521 with SHA-512 (ASN.1 DER signatures), RSA PKCS#1 v1.5 with
/// SHA-256.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Scheme {
    EcdsaSha256,
    EcdsaSha384,
    EcdsaSha512,
    RsaPkcs1Sha256,
}

fn scheme_of<T: openssl::pkey::HasPublic>(pkey: &PKey<T>) -> Result<Scheme, KeyError> {
    match pkey.id() {
        Id::EC => {
            let ec = pkey.ec_key().map_err(crypto("reading the EC key"))?;
            match ec.group().curve_name() {
                Some(Nid::X9_62_PRIME256V1) => Ok(Scheme::EcdsaSha256),
                Some(Nid::SECP384R1) => Ok(Scheme::EcdsaSha384),
                Some(Nid::SECP521R1) => Ok(Scheme::EcdsaSha512),
                other => Err(KeyError::UnsupportedKeyType {
                    message: format!("EC curve {other:?} (want P-256, P-384 or P-521)"),
                }),
            }
        }
        Id::RSA => Ok(Scheme::RsaPkcs1Sha256),
        other => Err(KeyError::UnsupportedKeyType {
            message: format!("{other:?} (want ECDSA or RSA)"),
        }),
    }
}

impl Scheme {
    fn digest(self) -> MessageDigest {
        match self {
            Scheme::EcdsaSha256 | Scheme::RsaPkcs1Sha256 => MessageDigest::sha256(),
            Scheme::EcdsaSha384 => MessageDigest::sha384(),
            Scheme::EcdsaSha512 => MessageDigest::sha512(),
        }
    }
}

/// A public key that verifies cosign signatures: ECDSA P-256 (what `cosign generate-key-pair`
/// makes), P-384, P-521, or RSA (PKCS#1 v1.5, SHA-256).
#[derive(Clone)]
pub struct PublicKey {
    pkey: PKey<Public>,
    scheme: Scheme,
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PublicKey")
            .field("type", &self.pkey.id())
            .field("bits", &self.pkey.bits())
            .finish()
    }
}

/// Outcome of checking one signature against one key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Check {
    /// The signature is valid for the payload under this key.
    Valid,
    /// Well-formed but not made by this key over this payload.
    Invalid,
    /// The signature bytes cannot be a signature of this key type (bad DER, wrong length).
    Malformed,
}

impl PublicKey {
    /// Parses a PEM public key: `-----BEGIN PUBLIC KEY-----` (PKIX/SPKI, what `cosign.pub`
    /// holds). The signature scheme follows from the key type (see [`PublicKey`]).
    ///
    /// # Errors
    /// [`KeyError::Crypto`] when the PEM is not a public key, [`KeyError::UnsupportedKeyType`]
    /// for Ed25519, other curves, DSA...
    pub fn from_pem(pem: &[u8]) -> Result<Self, KeyError> {
        let pkey = PKey::public_key_from_pem(pem).map_err(crypto("parsing the public key PEM"))?;
        let scheme = scheme_of(&pkey)?;
        Ok(PublicKey { pkey, scheme })
    }

    /// Parses a DER SubjectPublicKeyInfo (certificates, trusted-root log keys).
    pub(crate) fn from_spki_der(der: &[u8]) -> Result<Self, KeyError> {
        let pkey = PKey::public_key_from_der(der).map_err(crypto("parsing the public key DER"))?;
        let scheme = scheme_of(&pkey)?;
        Ok(PublicKey { pkey, scheme })
    }

    /// The key as PKIX `PUBLIC KEY` PEM, byte-compatible with `cosign.pub`.
    ///
    /// # Errors
    /// [`KeyError::Crypto`] if OpenSSL cannot encode it.
    pub fn to_pem(&self) -> Result<Vec<u8>, KeyError> {
        self.pkey
            .public_key_to_pem()
            .map_err(crypto("encoding the public key"))
    }

    /// Checks `signature` (raw bytes, DER for ECDSA) over `payload`.
    pub(crate) fn check(&self, payload: &[u8], signature: &[u8]) -> Check {
        if signature.is_empty() {
            return Check::Malformed;
        }
        match self.scheme {
            Scheme::EcdsaSha256 | Scheme::EcdsaSha384 | Scheme::EcdsaSha512 => {
                // Strict DER, as Go's ecdsa.VerifyASN1: the re-encoding must give the same bytes.
                match EcdsaSig::from_der(signature).and_then(|s| s.to_der()) {
                    Ok(der) if der == signature => {}
                    _ => return Check::Malformed,
                }
            }
            Scheme::RsaPkcs1Sha256 => {
                if signature.len() != self.pkey.size() {
                    return Check::Malformed;
                }
            }
        }
        let Ok(mut verifier) = Verifier::new(self.scheme.digest(), &self.pkey) else {
            return Check::Invalid;
        };
        match verifier.verify_oneshot(signature, payload) {
            Ok(true) => Check::Valid,
            _ => Check::Invalid,
        }
    }
}

/// The public keys of a Flux `spec.verify.secretRef` Secret: every entry whose name ends in
/// `.pub`, in the order given (other entries are ignored). An empty result is not an error here;
/// [`verify`](super::verify) refuses it with [`VerifyError::NoPublicKeys`](super::VerifyError).
///
/// # Errors
/// [`KeyError::SecretEntry`] naming the first `*.pub` entry that is not a supported PEM public
/// key (Flux fails the same way instead of skipping it).
pub fn public_keys_from_secret<'a>(
    entries: impl IntoIterator<Item = (&'a str, &'a [u8])>,
) -> Result<Vec<PublicKey>, KeyError> {
    entries
        .into_iter()
        .filter(|(name, _)| name.ends_with(".pub"))
        .map(|(name, pem)| {
            PublicKey::from_pem(pem).map_err(|e| KeyError::SecretEntry {
                name: name.to_owned(),
                source: Box::new(e),
            })
        })
        .collect()
}

/// A private signing key, as held in `cosign.key`. `Debug` shows only the key type.
pub struct PrivateKey {
    pkey: PKey<Private>,
    scheme: Scheme,
}

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PrivateKey")
            .field("type", &self.pkey.id())
            .field("bits", &self.pkey.bits())
            .finish_non_exhaustive()
    }
}

#[derive(Serialize, Deserialize)]
struct EncryptedKey {
    kdf: Kdf,
    cipher: Cipher,
    #[serde(with = "b64")]
    ciphertext: Vec<u8>,
}

#[derive(Serialize, Deserialize)]
struct Kdf {
    name: String,
    params: ScryptParams,
    #[serde(with = "b64")]
    salt: Vec<u8>,
}

#[derive(Serialize, Deserialize)]
struct ScryptParams {
    #[serde(rename = "N")]
    n: u64,
    r: u64,
    p: u64,
}

#[derive(Serialize, Deserialize)]
struct Cipher {
    name: String,
    #[serde(with = "b64")]
    nonce: Vec<u8>,
}

/// Go's `[]byte` JSON encoding: standard base64 with padding.
mod b64 {
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;
    use serde::{Deserialize as _, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&STANDARD.encode(v))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let s = String::deserialize(d)?;
        STANDARD
            .decode(s.as_bytes())
            .map_err(serde::de::Error::custom)
    }
}

const SALT_BYTES: usize = 32;
const NONCE_BYTES: usize = 24;
const KEY_BYTES: usize = 32;

fn scrypt_key(password: &[u8], salt: &[u8], p: &ScryptParams) -> Result<[u8; KEY_BYTES], KeyError> {
    let unsupported = |message: String| KeyError::UnsupportedEncryption { message };
    if p.n < 2 || !p.n.is_power_of_two() || p.r == 0 || p.p == 0 {
        return Err(unsupported(format!(
            "scrypt parameters N={} r={} p={} are invalid",
            p.n, p.r, p.p
        )));
    }
    let memory = 128u64
        .checked_mul(p.n)
        .and_then(|m| m.checked_mul(p.r))
        .and_then(|m| m.checked_mul(p.p));
    if memory.is_none_or(|m| m > MAX_SCRYPT_MEMORY_BYTES) {
        return Err(unsupported(format!(
            "scrypt parameters N={} r={} p={} need more than {MAX_SCRYPT_MEMORY_BYTES} bytes",
            p.n, p.r, p.p
        )));
    }
    let mut key = [0u8; KEY_BYTES];
    openssl::pkcs5::scrypt(
        password,
        salt,
        p.n,
        p.r,
        p.p,
        MAX_SCRYPT_MEMORY_BYTES * 2,
        &mut key,
    )
    .map_err(crypto("scrypt key derivation"))?;
    Ok(key)
}

impl PrivateKey {
    /// Generates a new ECDSA P-256 key, the type `cosign generate-key-pair` makes.
    ///
    /// # Errors
    /// [`KeyError::Crypto`] if OpenSSL fails.
    pub fn generate() -> Result<Self, KeyError> {
        let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1)
            .map_err(crypto("loading curve P-256"))?;
        let ec = EcKey::generate(&group).map_err(crypto("generating a P-256 key"))?;
        let pkey = PKey::from_ec_key(ec).map_err(crypto("wrapping the P-256 key"))?;
        Ok(PrivateKey {
            pkey,
            scheme: Scheme::EcdsaSha256,
        })
    }

    /// Decrypts a cosign private key file (`ENCRYPTED SIGSTORE PRIVATE KEY` or the legacy
    /// `ENCRYPTED COSIGN PRIVATE KEY`). `password` may be empty (`COSIGN_PASSWORD=""`).
    /// Costs one scrypt derivation (N=32768: about 32 MiB and a few hundred milliseconds), so
    /// call it off async worker threads.
    ///
    /// # Errors
    /// [`KeyError::NoPemBlock`], [`KeyError::Malformed`], [`KeyError::UnsupportedEncryption`]
    /// (KDF other than scrypt, cipher other than `nacl/secretbox`, scrypt over
    /// [`MAX_SCRYPT_MEMORY_BYTES`]), [`KeyError::WrongPassword`],
    /// [`KeyError::UnsupportedKeyType`].
    pub fn from_encrypted_pem(pem: &[u8], password: &[u8]) -> Result<Self, KeyError> {
        let body = pem_body(
            pem,
            &[SIGSTORE_PRIVATE_KEY_PEM, LEGACY_COSIGN_PRIVATE_KEY_PEM],
        )
        .ok_or(KeyError::NoPemBlock {
            expected: "ENCRYPTED SIGSTORE PRIVATE KEY or ENCRYPTED COSIGN PRIVATE KEY",
        })?;
        let enc: EncryptedKey = serde_json::from_slice(&body).map_err(|e| KeyError::Malformed {
            message: format!("encrypted key JSON: {e}"),
        })?;
        if enc.kdf.name != "scrypt" {
            return Err(KeyError::UnsupportedEncryption {
                message: format!("kdf {:?} (want scrypt)", enc.kdf.name),
            });
        }
        if enc.cipher.name != "nacl/secretbox" {
            return Err(KeyError::UnsupportedEncryption {
                message: format!("cipher {:?} (want nacl/secretbox)", enc.cipher.name),
            });
        }
        if enc.cipher.nonce.len() != NONCE_BYTES {
            return Err(KeyError::Malformed {
                message: format!(
                    "nonce is {} bytes, want {NONCE_BYTES}",
                    enc.cipher.nonce.len()
                ),
            });
        }
        let key = scrypt_key(password, &enc.kdf.salt, &enc.kdf.params)?;
        let cipher = XSalsa20Poly1305::new(&key.into());
        let nonce = crypto_secretbox::Nonce::from_slice(&enc.cipher.nonce);
        let der = cipher
            .decrypt(nonce, enc.ciphertext.as_slice())
            .map_err(|_| KeyError::WrongPassword)?;
        let pkey = PKey::private_key_from_pkcs8(&der).map_err(crypto("parsing the PKCS#8 key"))?;
        let scheme = scheme_of(&pkey)?;
        Ok(PrivateKey { pkey, scheme })
    }

    /// Encrypts the key as cosign does: PKCS#8 DER, scrypt (N=32768, r=8, p=1, random 32-byte
    /// salt), NaCl secretbox (random 24-byte nonce), PEM `ENCRYPTED SIGSTORE PRIVATE KEY`.
    ///
    /// # Errors
    /// [`KeyError::Crypto`] if OpenSSL fails.
    pub fn to_encrypted_pem(&self, password: &[u8]) -> Result<Vec<u8>, KeyError> {
        let der = self
            .pkey
            .private_key_to_pkcs8()
            .map_err(crypto("encoding the key as PKCS#8"))?;
        let mut salt = [0u8; SALT_BYTES];
        let mut nonce = [0u8; NONCE_BYTES];
        openssl::rand::rand_bytes(&mut salt).map_err(crypto("generating a salt"))?;
        openssl::rand::rand_bytes(&mut nonce).map_err(crypto("generating a nonce"))?;
        let params = ScryptParams {
            n: SCRYPT_N,
            r: SCRYPT_R,
            p: SCRYPT_P,
        };
        let key = scrypt_key(password, &salt, &params)?;
        let cipher = XSalsa20Poly1305::new(&key.into());
        let ciphertext = cipher
            .encrypt(crypto_secretbox::Nonce::from_slice(&nonce), der.as_slice())
            .map_err(|_| KeyError::Malformed {
                message: "secretbox encryption failed".to_owned(),
            })?;
        let body = EncryptedKey {
            kdf: Kdf {
                name: "scrypt".to_owned(),
                params,
                salt: salt.to_vec(),
            },
            cipher: Cipher {
                name: "nacl/secretbox".to_owned(),
                nonce: nonce.to_vec(),
            },
            ciphertext,
        };
        let json = serde_json::to_vec(&body).map_err(|e| KeyError::Malformed {
            message: e.to_string(),
        })?;
        Ok(pem_encode(SIGSTORE_PRIVATE_KEY_PEM, &json))
    }

    /// The matching public key.
    ///
    /// # Errors
    /// [`KeyError::Crypto`] if OpenSSL fails.
    pub fn public_key(&self) -> Result<PublicKey, KeyError> {
        let der = self
            .pkey
            .public_key_to_der()
            .map_err(crypto("encoding the public key"))?;
        let pkey = PKey::public_key_from_der(&der).map_err(crypto("decoding the public key"))?;
        Ok(PublicKey {
            pkey,
            scheme: self.scheme,
        })
    }

    /// Signs `payload`: ECDSA over the scheme's hash with an ASN.1 DER signature (or RSA
    /// PKCS#1 v1.5 SHA-256), as cosign's `SignerVerifier` does.
    ///
    /// # Errors
    /// [`KeyError::Crypto`] if OpenSSL fails.
    pub fn sign(&self, payload: &[u8]) -> Result<Vec<u8>, KeyError> {
        let mut signer =
            Signer::new(self.scheme.digest(), &self.pkey).map_err(crypto("starting to sign"))?;
        signer
            .sign_oneshot_to_vec(payload)
            .map_err(crypto("signing"))
    }
}

/// The decoded body of the first PEM block whose label is one of `labels`.
fn pem_body(pem: &[u8], labels: &[&str]) -> Option<Vec<u8>> {
    let text = std::str::from_utf8(pem).ok()?;
    for label in labels {
        let begin = format!("-----BEGIN {label}-----");
        let end = format!("-----END {label}-----");
        let Some(start) = text.find(&begin) else {
            continue;
        };
        let rest = &text[start + begin.len()..];
        let stop = rest.find(&end)?;
        let b64: String = rest[..stop]
            .chars()
            .filter(|c| !c.is_ascii_whitespace())
            .collect();
        return STANDARD.decode(b64.as_bytes()).ok();
    }
    None
}

/// PEM with 64-character lines, as Go's `pem.Encode`.
fn pem_encode(label: &str, body: &[u8]) -> Vec<u8> {
    let b64 = STANDARD.encode(body);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encrypted_keys_round_trip_and_refuse_a_wrong_password() {
        let key = PrivateKey::generate().unwrap();
        let pem = key.to_encrypted_pem(b"pw").unwrap();
        let text = String::from_utf8(pem.clone()).unwrap();
        assert!(text.starts_with("-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\n"));
        let back = PrivateKey::from_encrypted_pem(&pem, b"pw").unwrap();
        let sig = back.sign(b"payload").unwrap();
        assert_eq!(
            key.public_key().unwrap().check(b"payload", &sig),
            Check::Valid
        );
        assert!(matches!(
            PrivateKey::from_encrypted_pem(&pem, b"nope"),
            Err(KeyError::WrongPassword)
        ));
        let legacy = text.replace("SIGSTORE", "COSIGN");
        PrivateKey::from_encrypted_pem(legacy.as_bytes(), b"pw").unwrap();
    }

    #[test]
    fn signatures_are_checked_strictly() {
        let key = PrivateKey::generate().unwrap();
        let public = key.public_key().unwrap();
        let public = PublicKey::from_pem(&public.to_pem().unwrap()).unwrap();
        let sig = key.sign(b"a").unwrap();
        assert_eq!(public.check(b"a", &sig), Check::Valid);
        assert_eq!(public.check(b"b", &sig), Check::Invalid);
        let mut trailing = sig.clone();
        trailing.push(0);
        assert_eq!(public.check(b"a", &trailing), Check::Malformed);
        assert_eq!(public.check(b"a", &sig[..sig.len() - 2]), Check::Malformed);
        assert_eq!(public.check(b"a", b""), Check::Malformed);
    }

    #[test]
    fn secret_entries_ending_in_pub_are_the_keys() {
        let pem = PrivateKey::generate()
            .unwrap()
            .public_key()
            .unwrap()
            .to_pem()
            .unwrap();
        let keys = public_keys_from_secret([
            ("cosign.pub", pem.as_slice()),
            ("cosign.key", b"ignored".as_slice()),
        ])
        .unwrap();
        assert_eq!(keys.len(), 1);
        assert!(
            public_keys_from_secret([("x", b"y".as_slice())])
                .unwrap()
                .is_empty()
        );
        let e = public_keys_from_secret([("bad.pub", b"nope".as_slice())]).unwrap_err();
        assert!(e.to_string().starts_with("public key \"bad.pub\""), "{e}");
    }

    #[test]
    fn debug_output_hides_private_material() {
        let key = PrivateKey::generate().unwrap();
        let s = format!("{key:?}");
        assert!(s.starts_with("PrivateKey"), "{s}");
        assert!(!s.contains("BEGIN"), "{s}");
    }
}
