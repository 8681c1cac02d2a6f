//! `registry::cosign` against the real distribution registry: sign then verify, appending by
//! several keys, each refusal with its own reason, and signatures written by an independent
//! Python implementation of cosign's formats (`.sig` tag and a v3 DSSE bundle referrer).

mod common;

use std::path::Path;
use std::process::Command;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use common::push_artifact;
use registry::client::{Client, ClientConfig};
use registry::cosign::{self, PrivateKey, PublicKey, SignatureSource, VerifyError};
use registry::manifest::{ImageManifest, Manifest, media_types};
use registry::{Digest, Reference};
use test_support::registry::{Registry, RegistryBuilder};

fn client() -> Client {
    Client::new(ClientConfig {
        insecure: true,
        ..ClientConfig::default()
    })
    .unwrap()
}

fn reference(reg: &Registry, repo_tag: &str) -> Reference {
    format!("{}/{repo_tag}", reg.host()).parse().unwrap()
}

fn public(key: &PrivateKey) -> PublicKey {
    PublicKey::from_pem(&key.public_key().unwrap().to_pem().unwrap()).unwrap()
}

/// The `.sig` manifest of `digest`.
async fn signature_manifest(client: &Client, r: &Reference, digest: &Digest) -> ImageManifest {
    let (m, _, _) = client
        .get_manifest(&r.with_tag(&cosign::signature_tag(digest)))
        .await
        .unwrap();
    match m {
        Manifest::Image(m) => m,
        Manifest::Index(_) => panic!("signature tag holds an index"),
    }
}

async fn put_signature_manifest(
    client: &Client,
    r: &Reference,
    digest: &Digest,
    m: &ImageManifest,
) {
    client
        .push_manifest(
            &r.with_tag(&cosign::signature_tag(digest)),
            media_types::OCI_MANIFEST,
            Bytes::from(serde_json::to_vec(m).unwrap()),
        )
        .await
        .unwrap();
}

#[tokio::test]
async fn two_keys_sign_one_artifact_and_both_verify() {
    let reg = RegistryBuilder::new().start();
    let client = client();
    let r = reference(&reg, "signed/app:v1");
    let digest = push_artifact(&client, &r, b"content").await;
    let (alice, bob) = (
        PrivateKey::generate().unwrap(),
        PrivateKey::generate().unwrap(),
    );

    let first = cosign::sign(&client, &r, &alice).await.unwrap();
    assert_eq!(first.digest, digest);
    assert!(first.appended);
    assert_eq!(first.signatures, 1);
    assert_eq!(
        first.signature_reference.tag.as_deref(),
        Some(format!("sha256-{}.sig", digest.hex()).as_str())
    );
    let second = cosign::sign(&client, &r.with_digest(digest.clone()), &bob)
        .await
        .unwrap();
    assert!(second.appended);
    assert_eq!(second.signatures, 2, "appended, not replaced");
    let again = cosign::sign(&client, &r, &alice).await.unwrap();
    assert!(!again.appended, "a duplicate signature is not written");
    assert_eq!(again.signatures, 2);

    let m = signature_manifest(&client, &r, &digest).await;
    assert_eq!(m.media_type.as_deref(), Some(media_types::OCI_MANIFEST));
    assert_eq!(m.config.media_type, media_types::OCI_CONFIG);
    assert_eq!(m.layers.len(), 2);
    for layer in &m.layers {
        assert_eq!(
            layer.media_type,
            "application/vnd.dev.cosign.simplesigning.v1+json"
        );
        assert!(
            layer
                .annotations
                .as_ref()
                .unwrap()
                .contains_key("dev.cosignproject.cosign/signature")
        );
    }

    let keys = [public(&alice), public(&bob)];
    for (i, key) in keys.iter().enumerate() {
        let v = cosign::verify(&client, &r, &digest, std::slice::from_ref(key))
            .await
            .unwrap();
        assert_eq!(v.digest, digest);
        assert_eq!(v.key_index, 0, "key {i}");
        assert_eq!(v.source, SignatureSource::Tag);
    }
    let stranger = public(&PrivateKey::generate().unwrap());
    let v = cosign::verify(&client, &r, &digest, &[stranger, keys[1].clone()])
        .await
        .unwrap();
    assert_eq!(v.key_index, 1, "any one key passes");
}

#[tokio::test]
async fn each_failure_is_refused_with_its_own_reason() {
    let reg = RegistryBuilder::new().start();
    let client = client();
    let key = PrivateKey::generate().unwrap();
    let keys = [public(&key)];

    // No keys at all (a Secret without *.pub entries).
    let r = reference(&reg, "fail/nokeys:v1");
    let digest = push_artifact(&client, &r, b"nokeys").await;
    cosign::sign(&client, &r, &key).await.unwrap();
    let e = cosign::verify(&client, &r, &digest, &[]).await.unwrap_err();
    assert!(matches!(e, VerifyError::NoPublicKeys), "{e:?}");
    assert!(e.to_string().contains("no public keys"), "{e}");

    // No signature.
    let r = reference(&reg, "fail/unsigned:v1");
    let digest = push_artifact(&client, &r, b"unsigned").await;
    let e = cosign::verify(&client, &r, &digest, &keys)
        .await
        .unwrap_err();
    assert!(matches!(e, VerifyError::NoSignatures { .. }), "{e:?}");
    assert!(e.to_string().starts_with("no signatures found for"), "{e}");

    // Wrong key.
    let r = reference(&reg, "fail/wrongkey:v1");
    let digest = push_artifact(&client, &r, b"wrongkey").await;
    cosign::sign(&client, &r, &PrivateKey::generate().unwrap())
        .await
        .unwrap();
    let e = cosign::verify(&client, &r, &digest, &keys)
        .await
        .unwrap_err();
    assert!(
        matches!(
            e,
            VerifyError::NoMatchingSignature {
                signatures: 1,
                keys: 1,
                ..
            }
        ),
        "{e:?}"
    );
    assert!(e.to_string().contains("matched"), "{e}");

    // A valid signature copied from another artifact: the payload names another digest.
    let a = reference(&reg, "fail/copied:a");
    let b = reference(&reg, "fail/copied:b");
    let digest_a = push_artifact(&client, &a, b"artifact a").await;
    let digest_b = push_artifact(&client, &b, b"artifact b").await;
    cosign::sign(&client, &a, &key).await.unwrap();
    let m = signature_manifest(&client, &a, &digest_a).await;
    put_signature_manifest(&client, &b, &digest_b, &m).await;
    let e = cosign::verify(&client, &b, &digest_b, &keys)
        .await
        .unwrap_err();
    match &e {
        VerifyError::WrongDigest { expected, signed } => {
            assert_eq!(expected, &digest_b);
            assert_eq!(signed, digest_a.as_str());
        }
        other => panic!("{other:?}"),
    }
    assert!(e.to_string().contains("payload is for"), "{e}");

    // Tampered signature: the DER is cut short.
    let r = reference(&reg, "fail/badsig:v1");
    let digest = push_artifact(&client, &r, b"badsig").await;
    cosign::sign(&client, &r, &key).await.unwrap();
    let mut m = signature_manifest(&client, &r, &digest).await;
    let ann = m.layers[0].annotations.as_mut().unwrap();
    let sig = STANDARD
        .decode(&ann["dev.cosignproject.cosign/signature"])
        .unwrap();
    ann.insert(
        "dev.cosignproject.cosign/signature".into(),
        STANDARD.encode(&sig[..sig.len() - 3]),
    );
    put_signature_manifest(&client, &r, &digest, &m).await;
    let e = cosign::verify(&client, &r, &digest, &keys)
        .await
        .unwrap_err();
    assert!(matches!(e, VerifyError::MalformedSignature { .. }), "{e:?}");
    assert!(e.to_string().contains("malformed signature"), "{e}");

    // Tampered payload: the stored payload blob is altered in the registry's storage.
    let r = reference(&reg, "fail/tampered:v1");
    let digest = push_artifact(&client, &r, b"tampered").await;
    cosign::sign(&client, &r, &key).await.unwrap();
    let m = signature_manifest(&client, &r, &digest).await;
    let payload_digest = &m.layers[0].digest;
    let data = reg
        .storage_dir()
        .join("docker/registry/v2/blobs/sha256")
        .join(&payload_digest.hex()[..2])
        .join(payload_digest.hex())
        .join("data");
    let original = std::fs::read(&data).unwrap();
    let forged = String::from_utf8(original.clone())
        .unwrap()
        .replace(&digest.hex()[..8], "00000000");
    assert_eq!(forged.len(), original.len());
    std::fs::write(&data, forged).unwrap();
    let e = cosign::verify(&client, &r, &digest, &keys)
        .await
        .unwrap_err();
    assert!(matches!(e, VerifyError::TamperedPayload { .. }), "{e:?}");
    assert!(e.to_string().contains("tampered"), "{e}");
}

/// Runs the venv's Python on `script` with `args`; returns stdout.
fn python(dir: &Path, script: &str, args: &[&str]) -> String {
    let path = dir.join("script.py");
    std::fs::write(&path, script).unwrap();
    let out = Command::new(test_support::tools::venv_python())
        .arg(&path)
        .args(args)
        .output()
        .expect("run the venv python (scripts/setup.sh installs it)");
    assert!(
        out.status.success(),
        "python failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// An independent writer of cosign's formats, using Python `cryptography` and the plain
/// distribution API (urllib): mode `sig` writes a `.sig` simple-signing signature; mode
/// `bundle` writes a cosign v3 Sigstore bundle (DSSE over an in-toto statement) as an OCI 1.1
/// referrer pushed by digest plus the `sha256-<hex>` referrers fallback index. Prints the
/// public key PEM.
const PY_COSIGN: &str = r#"
import base64, hashlib, json, sys, urllib.request
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

mode, host, repo, digest = sys.argv[1:5]
base = f"http://{host}/v2/{repo}"

def push_blob(data):
    d = "sha256:" + hashlib.sha256(data).hexdigest()
    req = urllib.request.Request(f"{base}/blobs/uploads/", method="POST", data=b"")
    loc = urllib.request.urlopen(req).headers["Location"]
    if loc.startswith("/"):
        loc = f"http://{host}{loc}"
    sep = "&" if "?" in loc else "?"
    req = urllib.request.Request(f"{loc}{sep}digest={d}", method="PUT", data=data,
                                 headers={"Content-Type": "application/octet-stream"})
    urllib.request.urlopen(req)
    return {"digest": d, "size": len(data)}

def push_manifest(ref, doc, media_type):
    data = json.dumps(doc, separators=(",", ":")).encode()
    req = urllib.request.Request(f"{base}/manifests/{ref}", method="PUT", data=data,
                                 headers={"Content-Type": media_type})
    urllib.request.urlopen(req)
    return {"digest": "sha256:" + hashlib.sha256(data).hexdigest(), "size": len(data)}

key = ec.generate_private_key(ec.SECP256R1())
pub = key.public_key().public_bytes(serialization.Encoding.PEM,
                                    serialization.PublicFormat.SubjectPublicKeyInfo)
OCI = "application/vnd.oci.image.manifest.v1+json"
tag = digest.replace(":", "-")

if mode == "sig":
    payload = json.dumps({"critical": {"identity": {"docker-reference": f"{host}/{repo}"},
                                       "image": {"docker-manifest-digest": digest},
                                       "type": "cosign container image signature"},
                          "optional": None}, separators=(",", ":")).encode()
    sig = key.sign(payload, ec.ECDSA(hashes.SHA256()))
    layer = push_blob(payload)
    config = json.dumps({"architecture": "", "created": "0001-01-01T00:00:00Z",
                         "history": [{"created": "0001-01-01T00:00:00Z"}], "os": "",
                         "rootfs": {"type": "layers", "diff_ids": [layer["digest"]]},
                         "config": {}}, separators=(",", ":")).encode()
    cfg = push_blob(config)
    push_manifest(tag + ".sig", {
        "schemaVersion": 2, "mediaType": OCI,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", **cfg},
        "layers": [{"mediaType": "application/vnd.dev.cosign.simplesigning.v1+json", **layer,
                    "annotations": {"dev.cosignproject.cosign/signature":
                                    base64.b64encode(sig).decode()}}]}, OCI)
else:
    BUNDLE = "application/vnd.dev.sigstore.bundle.v0.3+json"
    statement = json.dumps({"_type": "https://in-toto.io/Statement/v1",
                            "subject": [{"digest": {"sha256": digest.split(":")[1]}}],
                            "predicateType": "https://sigstore.dev/cosign/sign/v1",
                            "predicate": {}}).encode()
    ptype = "application/vnd.in-toto+json"
    pae = b"DSSEv1 %d %s %d %s" % (len(ptype), ptype.encode(), len(statement), statement)
    sig = key.sign(pae, ec.ECDSA(hashes.SHA256()))
    bundle = json.dumps({"mediaType": BUNDLE,
                         "verificationMaterial": {"publicKey": {"hint": "test"}},
                         "dsseEnvelope": {"payload": base64.b64encode(statement).decode(),
                                          "payloadType": ptype,
                                          "signatures": [{"sig": base64.b64encode(sig).decode(),
                                                          "keyid": ""}]}}).encode()
    layer = push_blob(bundle)
    empty = push_blob(b"{}")
    subject = urllib.request.urlopen(urllib.request.Request(
        f"{base}/manifests/{digest}", method="HEAD", headers={"Accept": OCI}))
    manifest = {
        "schemaVersion": 2, "mediaType": OCI, "artifactType": BUNDLE,
        "config": {"mediaType": "application/vnd.oci.empty.v1+json", **empty},
        "layers": [{"mediaType": BUNDLE, **layer}],
        "subject": {"mediaType": OCI, "digest": digest,
                    "size": int(subject.headers["Content-Length"])},
        "annotations": {"dev.sigstore.bundle.content": "dsse-envelope",
                        "dev.sigstore.bundle.predicateType": "https://sigstore.dev/cosign/sign/v1"}}
    data = json.dumps(manifest, separators=(",", ":")).encode()
    mdigest = "sha256:" + hashlib.sha256(data).hexdigest()
    push_manifest(mdigest, manifest, OCI)
    push_manifest(tag, {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
                        "manifests": [{"mediaType": OCI, "digest": mdigest, "size": len(data),
                                       "artifactType": BUNDLE}]},
                  "application/vnd.oci.image.index.v1+json")
sys.stdout.write(pub.decode())
"#;

#[tokio::test]
async fn signatures_written_by_an_independent_python_implementation_verify() {
    let reg = RegistryBuilder::new().start();
    let client = client();
    let dir = tempfile::tempdir().unwrap();

    for (mode, source) in [
        ("sig", SignatureSource::Tag),
        ("bundle", SignatureSource::Bundle),
    ] {
        let r = reference(&reg, &format!("python/{mode}:v1"));
        let digest = push_artifact(&client, &r, mode.as_bytes()).await;
        let unsigned = cosign::verify(
            &client,
            &r,
            &digest,
            &[public(&PrivateKey::generate().unwrap())],
        )
        .await
        .unwrap_err();
        assert!(
            matches!(unsigned, VerifyError::NoSignatures { .. }),
            "{unsigned:?}"
        );

        let pem = python(
            dir.path(),
            PY_COSIGN,
            &[mode, reg.host(), &r.repository, digest.as_str()],
        );
        let key = PublicKey::from_pem(pem.as_bytes()).unwrap();
        let v = cosign::verify(&client, &r, &digest, &[key])
            .await
            .unwrap_or_else(|e| panic!("{mode}: {e}"));
        assert_eq!(v.digest, digest);
        assert_eq!(v.source, source, "{mode}");

        let other = public(&PrivateKey::generate().unwrap());
        let e = cosign::verify(&client, &r, &digest, &[other])
            .await
            .unwrap_err();
        assert!(
            matches!(e, VerifyError::NoMatchingSignature { signatures: 1, .. }),
            "{mode}: {e:?}"
        );
    }

    // A bundle for artifact A listed in B's referrers index does not verify B.
    let a = reference(&reg, "python/bundle:v1");
    let a_digest = client.resolve(&a).await.unwrap().digest;
    let b = reference(&reg, "python/bundle:v2");
    let b_digest = push_artifact(&client, &b, b"other").await;
    let (index, _, raw) = client
        .get_manifest(&a.with_tag(&cosign::referrers_tag(&a_digest)))
        .await
        .unwrap();
    assert!(index.as_index().is_some());
    client
        .push_manifest(
            &b.with_tag(&cosign::referrers_tag(&b_digest)),
            media_types::OCI_INDEX,
            raw,
        )
        .await
        .unwrap();
    let e = cosign::verify(
        &client,
        &b,
        &b_digest,
        &[public(&PrivateKey::generate().unwrap())],
    )
    .await
    .unwrap_err();
    assert!(matches!(e, VerifyError::NoSignatures { .. }), "{e:?}");
}
