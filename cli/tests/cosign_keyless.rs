//! `sourcectl verify artifact --trusted-root … --certificate-oidc-issuer-regexp …
//! --certificate-identity-regexp …` against a keyless cosign v2 `.sig` signature made by a test
//! Sigstore in Python (`cryptography`: CA, 10-minute leaf certificate with a SAN email and the
//! Fulcio issuer extension, Rekor-style log key and signed entry timestamp).

mod common;

use std::path::Path;
use std::process::Command;

use common::{sourcectl, testdata};
use test_support::registry::RegistryBuilder;

/// Arguments: `host repo digest outdir`. Writes `trusted_root.json`.
const PY_KEYLESS_SIG: &str = r#"
import base64, datetime, hashlib, json, sys, urllib.request
from cryptography import x509
from cryptography.x509.oid import NameOID, ExtendedKeyUsageOID
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

host, repo, digest, outdir = sys.argv[1:5]
b64 = lambda b: base64.b64encode(b).decode()
now = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
ISSUER, EMAIL = "https://oauth2.sigstore.test/auth", "release@example.com"

ca_key = ec.generate_private_key(ec.SECP384R1())
ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test fulcio")])
ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
      .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
      .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=30))
      .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
      .sign(ca_key, hashes.SHA384()))
signed_at = now - datetime.timedelta(minutes=30)
leaf_key = ec.generate_private_key(ec.SECP256R1())
issuer_der = bytes([0x0C, len(ISSUER)]) + ISSUER.encode()
leaf = (x509.CertificateBuilder().subject_name(x509.Name([])).issuer_name(ca_name)
        .public_key(leaf_key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(signed_at - datetime.timedelta(minutes=5))
        .not_valid_after(signed_at + datetime.timedelta(minutes=5))
        .add_extension(x509.SubjectAlternativeName([x509.RFC822Name(EMAIL)]), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]), critical=False)
        .add_extension(x509.UnrecognizedExtension(x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.8"),
                                                  issuer_der), critical=False)
        .sign(ca_key, hashes.SHA384()))
leaf_pem = leaf.public_bytes(serialization.Encoding.PEM)

rekor_key = ec.generate_private_key(ec.SECP256R1())
rekor_der = rekor_key.public_key().public_bytes(serialization.Encoding.DER,
                                                serialization.PublicFormat.SubjectPublicKeyInfo)
key_id = hashlib.sha256(rekor_der).digest()
json.dump({"mediaType": "application/vnd.dev.sigstore.trustedroot+json;version=0.1",
           "tlogs": [{"baseUrl": "https://rekor.sigstore.test", "hashAlgorithm": "SHA2_256",
                      "publicKey": {"rawBytes": b64(rekor_der), "keyDetails": "PKIX_ECDSA_P256_SHA_256"},
                      "logId": {"keyId": b64(key_id)}}],
           "certificateAuthorities": [{"subject": {"commonName": "test fulcio"},
                                       "uri": "https://fulcio.sigstore.test",
                                       "certChain": {"certificates": [
                                           {"rawBytes": b64(ca.public_bytes(serialization.Encoding.DER))}]},
                                       "validFor": {"start": "2020-01-01T00:00:00Z"}}]},
          open(f"{outdir}/trusted_root.json", "w"))

payload = json.dumps({"critical": {"identity": {"docker-reference": f"{host}/{repo}"},
                                   "image": {"docker-manifest-digest": digest},
                                   "type": "cosign container image signature"},
                      "optional": None}, separators=(",", ":")).encode()
sig = leaf_key.sign(payload, ec.ECDSA(hashes.SHA256()))
body = b64(json.dumps({"apiVersion": "0.0.1", "kind": "hashedrekord", "spec": {
    "data": {"hash": {"algorithm": "sha256", "value": hashlib.sha256(payload).hexdigest()}},
    "signature": {"content": b64(sig), "publicKey": {"content": b64(leaf_pem)}}}}).encode())
t = int(signed_at.timestamp())
entry = {"body": body, "integratedTime": t, "logID": key_id.hex(), "logIndex": 3}
set_sig = rekor_key.sign(json.dumps(entry, sort_keys=True, separators=(",", ":")).encode(),
                         ec.ECDSA(hashes.SHA256()))

base = f"http://{host}/v2/{repo}"
def push_blob(data):
    d = "sha256:" + hashlib.sha256(data).hexdigest()
    loc = urllib.request.urlopen(urllib.request.Request(
        f"{base}/blobs/uploads/", method="POST", data=b"")).headers["Location"]
    if loc.startswith("/"):
        loc = f"http://{host}{loc}"
    sep = "&" if "?" in loc else "?"
    urllib.request.urlopen(urllib.request.Request(f"{loc}{sep}digest={d}", method="PUT", data=data,
                                                  headers={"Content-Type": "application/octet-stream"}))
    return {"digest": d, "size": len(data)}
layer = push_blob(payload)
cfg = push_blob(b"{}")
OCI = "application/vnd.oci.image.manifest.v1+json"
manifest = json.dumps({"schemaVersion": 2, "mediaType": OCI,
    "config": {"mediaType": "application/vnd.oci.image.config.v1+json", **cfg},
    "layers": [{"mediaType": "application/vnd.dev.cosign.simplesigning.v1+json", **layer,
                "annotations": {"dev.cosignproject.cosign/signature": b64(sig),
                                "dev.sigstore.cosign/certificate": leaf_pem.decode(),
                                "dev.sigstore.cosign/bundle": json.dumps(
                                    {"SignedEntryTimestamp": b64(set_sig), "Payload": entry})}}]}).encode()
urllib.request.urlopen(urllib.request.Request(
    f"{base}/manifests/{digest.replace(':', '-')}.sig", method="PUT", data=manifest,
    headers={"Content-Type": OCI}))
"#;

fn python(dir: &Path, args: &[&str]) {
    let path = dir.join("keyless.py");
    std::fs::write(&path, PY_KEYLESS_SIG).unwrap();
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
}

#[test]
fn verify_keyless_checks_the_trusted_root_and_the_identity() {
    let reg = RegistryBuilder::new().start();
    let url = format!("{}:v1", reg.oci_url("keyless/app"));
    let digest = common::push(&url, &testdata("podinfo-kustomize"), &[]);
    let dir = tempfile::tempdir().unwrap();
    python(
        dir.path(),
        &[
            reg.host(),
            "keyless/app",
            &digest,
            dir.path().to_str().unwrap(),
        ],
    );
    let root = dir.path().join("trusted_root.json");
    let root = root.to_str().unwrap();
    let verify = |issuer: &str, subject: &str| {
        sourcectl(&[
            "verify",
            "artifact",
            &url,
            "--trusted-root",
            root,
            "--certificate-oidc-issuer-regexp",
            issuer,
            "--certificate-identity-regexp",
            subject,
            "--insecure-registry",
        ])
    };

    let run = verify(r"^https://oauth2\.sigstore\.test/auth$", r"@example\.com$").ok();
    assert_eq!(run.stdout, format!("{digest}\n"));
    assert!(
        run.stderr.contains(
            "with certificate of release@example.com (issuer https://oauth2.sigstore.test/auth) (signature tag)"
        ),
        "{}",
        run.stderr
    );

    let run = verify(r"^https://accounts\.google\.com$", r"@example\.com$").failed();
    assert!(run.stdout.is_empty());
    assert!(
        run.stderr.contains(
            "✗ verification failed: signer identity mismatch: issuer \"https://oauth2.sigstore.test/auth\" and subject \"release@example.com\""
        ),
        "{}",
        run.stderr
    );
    let run = verify(r"^https://oauth2\.sigstore\.test/auth$", r"^admin@").failed();
    assert!(run.stderr.contains("identity mismatch"), "{}", run.stderr);

    // Keyless needs both regexes, and keys and keyless do not mix.
    let run = sourcectl(&["verify", "artifact", &url, "--trusted-root", root]).failed();
    assert!(
        run.stderr.contains("--certificate-oidc-issuer-regexp"),
        "{}",
        run.stderr
    );
    let run = sourcectl(&[
        "verify",
        "artifact",
        &url,
        "--trusted-root",
        root,
        "--certificate-oidc-issuer-regexp",
        ".",
        "--certificate-identity-regexp",
        ".",
        "--key",
        root,
    ])
    .failed();
    assert!(run.stderr.contains("cannot be used with"), "{}", run.stderr);
}
