//! Cosign-compatible signatures with key files: sign an artifact and verify it before anything
//! is pulled.
//!
//! Formats follow cosign (`sigstore/cosign: specs/SIGNATURE_SPEC.md`, `pkg/oci/static`,
//! `pkg/cosign/keys.go`):
//! - keys: `cosign.pub` (PKIX `PUBLIC KEY` PEM) and `cosign.key` (`ENCRYPTED SIGSTORE PRIVATE
//!   KEY`: scrypt + NaCl secretbox over PKCS#8), see [`PrivateKey`] and [`PublicKey`];
//! - signatures are written as cosign's tag form: the manifest `sha256-<hex>.sig` in the
//!   artifact's repository, one `application/vnd.dev.cosign.simplesigning.v1+json` layer per
//!   signature (payload `{"critical":{"identity":…,"image":{"docker-manifest-digest":…},…}}`)
//!   with the base64 DER ECDSA signature in the `dev.cosignproject.cosign/signature`
//!   annotation. [`sign`] appends to an existing signature manifest and skips a duplicate;
//! - [`verify`] reads both storage forms cosign uses: the `.sig` tag, and cosign v3 Sigstore
//!   bundles (DSSE over an in-toto statement with predicate `https://sigstore.dev/cosign/sign/v1`)
//!   attached as OCI 1.1 referrers, falling back to the `sha256-<hex>` referrers tag when the
//!   registry has no referrers API. As Flux does with `.pub` keys, Rekor bundles and
//!   transparency-log entries are not checked (offline, `IgnoreTlog`).
//!
//! - [`verify_keyless`] checks Fulcio-certificate signatures (both storage forms) against a
//!   Sigstore [`TrustedRoot`] (`trusted_root.json`) and `matchOIDCIdentity`-style [`Identity`]
//!   regexes, taking the signing time from a transparency-log entry's signed entry timestamp and
//!   checking its inclusion proof and signed checkpoint when the bundle has them;
//!   [`verify_blob_bundle`] does the same for a Sigstore bundle over a blob (proof required).
//!   [`TrustedRoot::public_good`] is the embedded Sigstore public-good root;
//!   [`tuf::TrustedRootProvider`] keeps the freshest verified root, refreshed over TUF.
//!
//! Not here: Rekor v2 entries (no SET), RFC 3161
//! timestamps, Rekor uploads, writing bundles, attestations, Notation.
//!
//! ```no_run
//! use registry::cosign::{self, PublicKey};
//! use registry::{Client, ClientConfig, Reference};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let client = Client::new(ClientConfig::default())?;
//! let reference: Reference = "oci://ghcr.io/org/app:v1.0.0".parse()?;
//! let digest = client.resolve(&reference).await?.digest;
//! let keys = [PublicKey::from_pem(&std::fs::read("cosign.pub")?)?];
//! let verified = cosign::verify(&client, &reference, &digest, &keys).await?;
//! println!("{} signed by key {}", verified.digest, verified.key_index);
//! # Ok(())
//! # }
//! ```

mod keyless;
mod keys;
mod payload;
mod sign;
pub mod tuf;
mod verify;

pub use keyless::{
    Identity, PUBLIC_GOOD_TRUSTED_ROOT, SignerIdentity, TrustedRoot, TrustedRootError,
    verify_blob_bundle, verify_keyless,
};
pub use keys::{
    KeyError, LEGACY_COSIGN_PRIVATE_KEY_PEM, MAX_SCRYPT_MEMORY_BYTES, PrivateKey, PublicKey,
    SCRYPT_N, SCRYPT_P, SCRYPT_R, SIGSTORE_PRIVATE_KEY_PEM, public_keys_from_secret,
};
pub use payload::{COSIGN_SIGN_PREDICATE, IN_TOTO_PAYLOAD_TYPE, SIMPLE_SIGNING_TYPE};
pub use sign::{SignError, Signed, sign};
pub use tuf::{TrustedRootProvider, TufConfig};
pub use verify::{SignatureSource, Verified, VerifyError, verify};

use crate::digest::Digest;

/// Layer annotation holding the base64 signature (`dev.cosignproject.cosign/signature`).
pub const SIGNATURE_ANNOTATION: &str = "dev.cosignproject.cosign/signature";
/// Media type of a simple-signing payload layer.
pub const SIMPLE_SIGNING_MEDIA_TYPE: &str = crate::manifest::media_types::COSIGN_SIMPLE_SIGNING;
/// Media type (and artifact type) of a Sigstore bundle v0.3, as cosign v3 attaches it.
pub const BUNDLE_V03_MEDIA_TYPE: &str = "application/vnd.dev.sigstore.bundle.v0.3+json";
/// Prefix shared by every Sigstore bundle media type (v0.1–v0.3).
pub const BUNDLE_MEDIA_TYPE_PREFIX: &str = "application/vnd.dev.sigstore.bundle";
/// Most signatures read per storage form (`.sig` layers, referrer bundles) in one
/// verification, bounding the registry requests a hostile repository can cause: 64.
pub const MAX_SIGNATURES: usize = 64;
/// Largest payload or bundle blob read while verifying: 1 MiB.
pub const MAX_SIGNATURE_BLOB_BYTES: u64 = 1024 * 1024;

/// The tag cosign stores signatures of `digest` under: `sha256-<hex>.sig`.
pub fn signature_tag(digest: &Digest) -> String {
    format!("{}-{}.sig", digest.algorithm(), digest.hex())
}

/// The OCI referrers tag-schema fallback for `digest`: `sha256-<hex>` (distribution-spec v1.1
/// "Referrers Tag Schema").
pub fn referrers_tag(digest: &Digest) -> String {
    format!("{}-{}", digest.algorithm(), digest.hex())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_follow_cosign_and_the_referrers_tag_schema() {
        let d: Digest = format!("sha256:{}", "0f".repeat(32)).parse().unwrap();
        assert_eq!(signature_tag(&d), format!("sha256-{}.sig", "0f".repeat(32)));
        assert_eq!(referrers_tag(&d), format!("sha256-{}", "0f".repeat(32)));
    }
}
