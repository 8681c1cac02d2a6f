//! A real Sigstore public-good bundle (Fulcio certificate, Rekor v1 entry with SET, inclusion
//! proof and signed checkpoint; `testdata/sigstore/README.md` names its origin) verified
//! offline against the embedded public-good trusted root by `registry::cosign`, and, in the
//! same test, by sigstore-python (`sigstore verify identity --offline`, clean `HOME`) as the
//! independent reference. Tampered copies (inclusion proof, checkpoint, certificate) are
//! refused by both.

use std::path::{Path, PathBuf};
use std::process::Command;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use regex::Regex;
use registry::cosign::{Identity, SignerIdentity, TrustedRoot, VerifyError, verify_blob_bundle};

const BUNDLE: &str = "cosign-v3-blob.sigstore.json";
const ARTIFACT: &str = "cosign-v3-blob.txt";
const SUBJECT: &str = "w.vollprecht@gmail.com";
const ISSUER: &str = "https://github.com/login/oauth";

fn testdata(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/testdata/sigstore")
        .join(name)
}

fn identity(issuer: &str, subject: &str) -> Identity {
    Identity {
        issuer: Regex::new(issuer).unwrap(),
        subject: Regex::new(subject).unwrap(),
    }
}

fn ours(bundle: &[u8]) -> Result<SignerIdentity, VerifyError> {
    let artifact = std::fs::read(testdata(ARTIFACT)).unwrap();
    verify_blob_bundle(
        bundle,
        &artifact,
        &TrustedRoot::public_good(),
        &[identity(&format!("^{ISSUER}$"), &format!("^{SUBJECT}$"))],
    )
}

/// sigstore-python from the test venv (`scripts/setup.sh`), offline, with an empty `HOME` so
/// that only its embedded public-good root is used. Returns whether it accepted the bundle,
/// and its output.
fn sigstore_python(bundle: &[u8]) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    std::fs::create_dir(&home).unwrap();
    let artifact = dir.path().join(ARTIFACT);
    std::fs::copy(testdata(ARTIFACT), &artifact).unwrap();
    let bundle_path = dir.path().join(BUNDLE);
    std::fs::write(&bundle_path, bundle).unwrap();
    let out = Command::new("sigstore")
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", &home)
        .args(["verify", "identity", "--offline", "--bundle"])
        .arg(&bundle_path)
        .args(["--cert-identity", SUBJECT, "--cert-oidc-issuer", ISSUER])
        .arg(&artifact)
        .output()
        .expect("sigstore-python is installed: run scripts/setup.sh and source scripts/env.sh");
    let text =
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    (out.status.success(), text)
}

fn bundle_json() -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(testdata(BUNDLE)).unwrap()).unwrap()
}

#[test]
fn public_good_bundle_verifies_with_ours_and_sigstore_python() {
    let bundle = std::fs::read(testdata(BUNDLE)).unwrap();
    let found = ours(&bundle).unwrap();
    assert_eq!(
        found,
        SignerIdentity {
            issuer: ISSUER.to_owned(),
            subject: SUBJECT.to_owned(),
        }
    );
    let artifact = std::fs::read(testdata(ARTIFACT)).unwrap();
    let other = verify_blob_bundle(
        &bundle,
        &artifact,
        &TrustedRoot::public_good(),
        &[identity(ISSUER, "^someone@example.com$")],
    );
    assert!(
        matches!(other, Err(VerifyError::IdentityMismatch { .. })),
        "{other:?}"
    );
    let (ok, output) = sigstore_python(&bundle);
    assert!(
        ok,
        "sigstore-python refused the untampered bundle: {output}"
    );
}

/// One tampering of the bundle JSON, named for the assertion messages.
type Tamper = (&'static str, fn(&mut serde_json::Value));

fn tamper_inclusion_proof(b: &mut serde_json::Value) {
    let hashes = &mut b["verificationMaterial"]["tlogEntries"][0]["inclusionProof"]["hashes"];
    let first = hashes[0].as_str().unwrap();
    let mut bytes = STANDARD.decode(first).unwrap();
    bytes[0] ^= 1;
    hashes[0] = STANDARD.encode(bytes).into();
}

fn tamper_checkpoint(b: &mut serde_json::Value) {
    // The origin line is compared with nothing in the proof, so only the note signature can
    // catch this change (tree size and root hash stay those of the proof).
    let envelope = &mut b["verificationMaterial"]["tlogEntries"][0]["inclusionProof"]["checkpoint"]
        ["envelope"];
    let text = envelope.as_str().unwrap();
    let tampered = text.replacen("rekor.sigstore.dev - ", "rekor.sigstore.dev - 9", 1);
    assert_ne!(tampered, text);
    *envelope = tampered.into();
}

fn tamper_certificate(b: &mut serde_json::Value) {
    let cert = &mut b["verificationMaterial"]["certificate"]["rawBytes"];
    let mut der = STANDARD.decode(cert.as_str().unwrap()).unwrap();
    let last = der.len() - 1;
    der[last] ^= 1; // inside the issuer's signature over the certificate
    *cert = STANDARD.encode(der).into();
}

#[test]
fn tampered_bundles_are_refused_by_ours_and_sigstore_python() {
    let tampers: [Tamper; 3] = [
        ("inclusion proof", tamper_inclusion_proof),
        ("checkpoint", tamper_checkpoint),
        ("certificate", tamper_certificate),
    ];
    for (what, tamper) in tampers {
        let mut json = bundle_json();
        tamper(&mut json);
        let bytes = serde_json::to_vec(&json).unwrap();
        let result = ours(&bytes);
        assert!(result.is_err(), "{what}: ours accepted the tampered bundle");
        let (ok, output) = sigstore_python(&bytes);
        assert!(
            !ok,
            "{what}: sigstore-python accepted the tampered bundle: {output}"
        );
        eprintln!(
            "{what}: ours: {}; sigstore-python: {}",
            result.unwrap_err(),
            output.trim()
        );
    }
}

#[test]
fn the_embedded_root_refuses_what_another_root_would_need() {
    // The SET, proof and checkpoint are by the public-good Rekor: a root without that log
    // (here: the public-good root with its Rekor key ID altered) refuses the bundle.
    let mut root: serde_json::Value =
        serde_json::from_slice(registry::cosign::PUBLIC_GOOD_TRUSTED_ROOT).unwrap();
    for tlog in root["tlogs"].as_array_mut().unwrap() {
        tlog["logId"]["keyId"] = STANDARD.encode([0u8; 32]).into();
    }
    let root = TrustedRoot::from_json(&serde_json::to_vec(&root).unwrap()).unwrap();
    let bundle = std::fs::read(testdata(BUNDLE)).unwrap();
    let artifact = std::fs::read(testdata(ARTIFACT)).unwrap();
    let result = verify_blob_bundle(&bundle, &artifact, &root, &[identity(ISSUER, SUBJECT)]);
    assert!(
        matches!(result, Err(VerifyError::TransparencyLog { .. })),
        "{result:?}"
    );
}
