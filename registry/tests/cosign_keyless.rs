//! Keyless verification (`registry::cosign::verify_keyless`) against a Sigstore made by the test:
//! Python `cryptography` builds a Fulcio-style CA (root + intermediate), a short-lived leaf
//! certificate with the OIDC issuer extension and a SAN URI, a Rekor-style log key, DSSE
//! bundles with signed entry timestamps, and `trusted_root.json`; the bundles are attached as
//! referrers in the real registry (referrers tag fallback: distribution 2.8 has no API).

mod common;

use common::push_artifact;
use regex::Regex;
use registry::Reference;
use registry::client::{Client, ClientConfig};
use registry::cosign::{self, Identity, SignatureSource, TrustedRoot, VerifyError};
use test_support::registry::RegistryBuilder;

fn client() -> Client {
    Client::new(ClientConfig {
        insecure: true,
        ..ClientConfig::default()
    })
    .unwrap()
}

fn identity(issuer: &str, subject: &str) -> Identity {
    Identity {
        issuer: Regex::new(issuer).unwrap(),
        subject: Regex::new(subject).unwrap(),
    }
}

#[tokio::test]
async fn keyless_bundles_verify_for_the_right_identity_only() {
    let reg = RegistryBuilder::new().start();
    let client = client();
    let dir = tempfile::tempdir().unwrap();
    let variants = [
        "good",
        "bad-set",
        "no-tlog",
        "other-payload",
        "unsigned",
        "late",
        "sig",
        "sig-no-bundle",
        "no-proof",
    ];
    let mut refs = Vec::new();
    let mut args = vec![
        reg.host().to_owned(),
        dir.path().to_str().unwrap().to_owned(),
    ];
    for v in variants {
        let r: Reference = format!("{}/keyless/{v}:v1", reg.host()).parse().unwrap();
        let digest = push_artifact(&client, &r, v.as_bytes()).await;
        if v != "unsigned" {
            args.extend([r.repository.clone(), digest.to_string(), v.to_owned()]);
        }
        refs.push((r, digest));
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    test_support::sigstore::run(dir.path(), &args);
    let root =
        TrustedRoot::from_json(&std::fs::read(dir.path().join("trusted_root.json")).unwrap())
            .unwrap();
    let other = TrustedRoot::from_json(&std::fs::read(dir.path().join("other_root.json")).unwrap())
        .unwrap();
    let right = identity(
        r"^https://token\.actions\.githubusercontent\.com$",
        r"^https://github\.com/org/app/",
    );

    let (good, good_digest) = &refs[0];
    let (verified, signer) = cosign::verify_keyless(
        &client,
        good,
        good_digest,
        &root,
        std::slice::from_ref(&right),
    )
    .await
    .unwrap();
    assert_eq!(&verified.digest, good_digest);
    assert_eq!(verified.source, SignatureSource::Bundle);
    assert_eq!(signer.issuer, "https://token.actions.githubusercontent.com");
    assert_eq!(
        signer.subject,
        "https://github.com/org/app/.github/workflows/release.yml@refs/tags/v1"
    );
    // Any one identity passes.
    cosign::verify_keyless(
        &client,
        good,
        good_digest,
        &root,
        &[identity("nope", "nope"), right.clone()],
    )
    .await
    .unwrap();

    for wrong in [
        identity(
            r"^https://accounts\.google\.com$",
            r"^https://github\.com/org/app/",
        ),
        identity(
            r"^https://token\.actions\.githubusercontent\.com$",
            r"^https://github\.com/other/",
        ),
    ] {
        let e = cosign::verify_keyless(&client, good, good_digest, &root, &[wrong])
            .await
            .unwrap_err();
        assert!(matches!(e, VerifyError::IdentityMismatch { .. }), "{e:?}");
        assert!(e.to_string().contains("identity mismatch"), "{e}");
    }

    let e = cosign::verify_keyless(
        &client,
        good,
        good_digest,
        &other,
        std::slice::from_ref(&right),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(e, VerifyError::UntrustedCertificate { .. }),
        "{e:?}"
    );

    for (i, want) in [
        (1, "does not verify"),
        (2, "no transparency log entry"),
        (3, "another payload"),
    ] {
        let (r, d) = &refs[i];
        let e = cosign::verify_keyless(&client, r, d, &root, std::slice::from_ref(&right))
            .await
            .unwrap_err();
        assert!(matches!(e, VerifyError::TransparencyLog { .. }), "{e:?}");
        assert!(e.to_string().contains(want), "{e}");
    }

    let (r, d) = &refs[4];
    let e = cosign::verify_keyless(&client, r, d, &root, std::slice::from_ref(&right))
        .await
        .unwrap_err();
    assert!(matches!(e, VerifyError::NoSignatures { .. }), "{e:?}");

    // Logged after the 10-minute certificate expired: the chain does not hold at that time.
    let (r, d) = &refs[5];
    let e = cosign::verify_keyless(&client, r, d, &root, std::slice::from_ref(&right))
        .await
        .unwrap_err();
    assert!(
        matches!(e, VerifyError::UntrustedCertificate { .. }),
        "{e:?}"
    );
    assert!(e.to_string().contains("expired"), "{e}");

    // cosign v2 keyless `.sig` signatures: certificate and Rekor bundle annotations.
    let (r, d) = &refs[6];
    let (verified, signer) =
        cosign::verify_keyless(&client, r, d, &root, std::slice::from_ref(&right))
            .await
            .unwrap();
    assert_eq!(verified.source, SignatureSource::Tag);
    assert_eq!(signer.issuer, "https://token.actions.githubusercontent.com");
    let e = cosign::verify_keyless(&client, r, d, &root, &[identity(".*", "^mailto:")])
        .await
        .unwrap_err();
    assert!(matches!(e, VerifyError::IdentityMismatch { .. }), "{e:?}");
    let e = cosign::verify_keyless(&client, r, d, &other, std::slice::from_ref(&right))
        .await
        .unwrap_err();
    assert!(
        matches!(e, VerifyError::UntrustedCertificate { .. }),
        "{e:?}"
    );
    let (r, d) = &refs[7];
    let e = cosign::verify_keyless(&client, r, d, &root, std::slice::from_ref(&right))
        .await
        .unwrap_err();
    assert!(matches!(e, VerifyError::TransparencyLog { .. }), "{e:?}");
    assert!(e.to_string().contains("no Rekor bundle"), "{e}");
    // A v0.3 bundle stripped of its inclusion proof: the SET alone does not do (sigstore-go).
    let (r, d) = &refs[8];
    let e = cosign::verify_keyless(&client, r, d, &root, std::slice::from_ref(&right))
        .await
        .unwrap_err();
    assert!(matches!(e, VerifyError::TransparencyLog { .. }), "{e:?}");
    assert!(e.to_string().contains("no inclusion proof"), "{e}");
    // Key verification ignores keyless layers' certificates: no key matches.
    let e = cosign::verify(
        &client,
        &refs[6].0,
        &refs[6].1,
        &[cosign::PublicKey::from_pem(
            &cosign::PrivateKey::generate()
                .unwrap()
                .public_key()
                .unwrap()
                .to_pem()
                .unwrap(),
        )
        .unwrap()],
    )
    .await
    .unwrap_err();
    assert!(
        matches!(e, VerifyError::NoMatchingSignature { .. }),
        "{e:?}"
    );

    for (json, want) in [
        (&b"{}"[..], "invalid trusted root: "),
        (&b"not json"[..], "invalid trusted root: JSON: "),
    ] {
        let err = TrustedRoot::from_json(json)
            .expect_err("an unusable trusted root is refused")
            .to_string();
        assert!(err.starts_with(want), "{err}");
    }
}
