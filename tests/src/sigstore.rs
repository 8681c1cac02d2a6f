//! A test Sigstore written in Python (`cryptography`, in the venv that `scripts/setup.sh`
//! installs): it makes a CA, a Fulcio-style signing certificate and a Rekor-style log key, signs
//! artifacts in a registry as cosign does (v3 DSSE bundles as OCI 1.1 referrers, or v2 `.sig`
//! layers), and writes `trusted_root.json`. Independent of our Rust implementation, so a
//! signature it makes that we verify shows interoperability with the format.

use std::path::Path;
use std::process::Command;

/// A test Sigstore. Arguments: `host outdir` then `repo digest variant` triples, variant one of
/// `good`, `bad-set` (SET signed by another key), `no-tlog`, `other-payload` (log entry for
/// another payload), `late` (logged after the certificate expired), `no-proof` (a v0.3 bundle
/// whose entry has no inclusion proof), `sig` (a cosign v2 keyless
/// `.sig` layer with certificate and Rekor bundle annotations), `sig-no-bundle`. Writes `trusted_root.json` and `other_root.json` (same log, another CA).
pub const SCRIPT: &str = r#"
import base64, datetime, hashlib, json, sys, urllib.request
from cryptography import x509
from cryptography.x509.oid import NameOID, ExtendedKeyUsageOID
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

host, outdir = sys.argv[1:3]
jobs = [sys.argv[i:i + 3] for i in range(3, len(sys.argv), 3)]
b64 = lambda b: base64.b64encode(b).decode()
now = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
ISSUER = "https://token.actions.githubusercontent.com"
SUBJECT = "https://github.com/org/app/.github/workflows/release.yml@refs/tags/v1"

def name(cn):
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "sigstore.test"),
                      x509.NameAttribute(NameOID.COMMON_NAME, cn)])

def ca(cn, key, issuer_name, issuer_key, path_len):
    return (x509.CertificateBuilder().subject_name(name(cn)).issuer_name(issuer_name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=365))
            .add_extension(x509.BasicConstraints(ca=True, path_length=path_len), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False,
                                         key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, key_cert_sign=True, crl_sign=True,
                                         encipher_only=False, decipher_only=False), critical=True)
            .sign(issuer_key, hashes.SHA384()))

def make_ca(label):
    root_key = ec.generate_private_key(ec.SECP384R1())
    root = ca(label + " root", root_key, name(label + " root"), root_key, 1)
    inter_key = ec.generate_private_key(ec.SECP384R1())
    inter = ca(label + " intermediate", inter_key, root.subject, root_key, 0)
    return root, inter, inter_key

root, inter, inter_key = make_ca("fulcio")
other_root, other_inter, _ = make_ca("other")
rekor_key = ec.generate_private_key(ec.SECP256R1())
rekor_der = rekor_key.public_key().public_bytes(serialization.Encoding.DER,
                                                serialization.PublicFormat.SubjectPublicKeyInfo)
key_id = hashlib.sha256(rekor_der).digest()

def trusted_root(r, i):
    return {"mediaType": "application/vnd.dev.sigstore.trustedroot+json;version=0.1",
            "tlogs": [{"baseUrl": "https://rekor.sigstore.test", "hashAlgorithm": "SHA2_256",
                       "publicKey": {"rawBytes": b64(rekor_der), "keyDetails": "PKIX_ECDSA_P256_SHA_256",
                                     "validFor": {"start": "2020-01-01T00:00:00Z"}},
                       "logId": {"keyId": b64(key_id)}}],
            "certificateAuthorities": [{"subject": {"organization": "sigstore.test", "commonName": "fulcio"},
                                        "uri": "https://fulcio.sigstore.test",
                                        "certChain": {"certificates": [
                                            {"rawBytes": b64(i.public_bytes(serialization.Encoding.DER))},
                                            {"rawBytes": b64(r.public_bytes(serialization.Encoding.DER))}]},
                                        "validFor": {"start": "2020-01-01T00:00:00Z"}}],
            "ctlogs": [], "timestampAuthorities": []}

open(f"{outdir}/trusted_root.json", "w").write(json.dumps(trusted_root(root, inter)))
open(f"{outdir}/other_root.json", "w").write(json.dumps(trusted_root(other_root, other_inter)))

def der_utf8(s):
    b = s.encode()
    return bytes([0x0C, len(b)]) + b

OCI = "application/vnd.oci.image.manifest.v1+json"
BUNDLE = "application/vnd.dev.sigstore.bundle.v0.3+json"
PTYPE = "application/vnd.in-toto+json"

for repo, digest, variant in jobs:
    base = f"http://{host}/v2/{repo}"
    def push_blob(data):
        d = "sha256:" + hashlib.sha256(data).hexdigest()
        loc = urllib.request.urlopen(urllib.request.Request(
            f"{base}/blobs/uploads/", method="POST", data=b"")).headers["Location"]
        if loc.startswith("/"):
            loc = f"http://{host}{loc}"
        sep = "&" if "?" in loc else "?"
        urllib.request.urlopen(urllib.request.Request(
            f"{loc}{sep}digest={d}", method="PUT", data=data,
            headers={"Content-Type": "application/octet-stream"}))
        return {"digest": d, "size": len(data)}
    def push_manifest(ref, data, media_type):
        urllib.request.urlopen(urllib.request.Request(
            f"{base}/manifests/{ref}", method="PUT", data=data, headers={"Content-Type": media_type}))

    # Fulcio: a 10-minute certificate that has expired by now; the log proves it was valid
    # when signing happened.
    signed_at = now - datetime.timedelta(minutes=15)
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    leaf = (x509.CertificateBuilder().subject_name(x509.Name([])).issuer_name(inter.subject)
            .public_key(leaf_key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(signed_at - datetime.timedelta(minutes=5))
            .not_valid_after(signed_at + datetime.timedelta(minutes=5))
            .add_extension(x509.SubjectAlternativeName([x509.UniformResourceIdentifier(SUBJECT)]), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False,
                                         key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, key_cert_sign=False, crl_sign=False,
                                         encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]), critical=False)
            .add_extension(x509.UnrecognizedExtension(x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.1"),
                                                      ISSUER.encode()), critical=False)
            .add_extension(x509.UnrecognizedExtension(x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.8"),
                                                      der_utf8(ISSUER)), critical=False)
            .sign(inter_key, hashes.SHA384()))
    leaf_der = leaf.public_bytes(serialization.Encoding.DER)
    leaf_pem = leaf.public_bytes(serialization.Encoding.PEM)

    if variant.startswith("sig"):
        payload = json.dumps({"critical": {"identity": {"docker-reference": f"{host}/{repo}"},
                                           "image": {"docker-manifest-digest": digest},
                                           "type": "cosign container image signature"},
                              "optional": None}, separators=(",", ":")).encode()
        sig = leaf_key.sign(payload, ec.ECDSA(hashes.SHA256()))
        body = json.dumps({"apiVersion": "0.0.1", "kind": "hashedrekord", "spec": {
            "data": {"hash": {"algorithm": "sha256", "value": hashlib.sha256(payload).hexdigest()}},
            "signature": {"content": b64(sig), "publicKey": {"content": b64(leaf_pem)}}}}).encode()
        integrated = int(signed_at.timestamp())
        set_sig = rekor_key.sign(json.dumps({"body": b64(body), "integratedTime": integrated,
                                             "logID": key_id.hex(), "logIndex": 7},
                                            sort_keys=True, separators=(",", ":")).encode(),
                                 ec.ECDSA(hashes.SHA256()))
        annotations = {"dev.cosignproject.cosign/signature": b64(sig),
                       "dev.sigstore.cosign/certificate": leaf_pem.decode(),
                       "dev.sigstore.cosign/chain": (inter.public_bytes(serialization.Encoding.PEM)
                                                     + root.public_bytes(serialization.Encoding.PEM)).decode()}
        if variant == "sig":
            annotations["dev.sigstore.cosign/bundle"] = json.dumps({
                "SignedEntryTimestamp": b64(set_sig),
                "Payload": {"body": b64(body), "integratedTime": integrated, "logIndex": 7,
                            "logID": key_id.hex()}})
        layer = push_blob(payload)
        cfg = push_blob(json.dumps({"architecture": "", "created": "0001-01-01T00:00:00Z",
                                    "history": [{"created": "0001-01-01T00:00:00Z"}], "os": "",
                                    "rootfs": {"type": "layers", "diff_ids": [layer["digest"]]},
                                    "config": {}}).encode())
        push_manifest(digest.replace(":", "-") + ".sig", json.dumps({
            "schemaVersion": 2, "mediaType": OCI,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", **cfg},
            "layers": [{"mediaType": "application/vnd.dev.cosign.simplesigning.v1+json", **layer,
                        "annotations": annotations}]}).encode(), OCI)
        continue

    statement = json.dumps({"_type": "https://in-toto.io/Statement/v1",
                            "subject": [{"digest": {"sha256": digest.split(":")[1]}}],
                            "predicateType": "https://sigstore.dev/cosign/sign/v1",
                            "predicate": {}}).encode()
    pae = b"DSSEv1 %d %s %d %s" % (len(PTYPE), PTYPE.encode(), len(statement), statement)
    sig = leaf_key.sign(pae, ec.ECDSA(hashes.SHA256()))
    envelope = {"payload": b64(statement), "payloadType": PTYPE, "signatures": [{"sig": b64(sig), "keyid": ""}]}

    logged = statement if variant != "other-payload" else b"something else"
    body = json.dumps({"apiVersion": "0.0.1", "kind": "dsse", "spec": {
        "envelopeHash": {"algorithm": "sha256", "value": hashlib.sha256(json.dumps(envelope).encode()).hexdigest()},
        "payloadHash": {"algorithm": "sha256", "value": hashlib.sha256(logged).hexdigest()},
        "signatures": [{"signature": b64(sig), "verifier": b64(leaf_pem)}]}}).encode()
    integrated = int((signed_at if variant != "late" else now).timestamp())
    set_payload = json.dumps({"body": b64(body), "integratedTime": integrated,
                              "logID": key_id.hex(), "logIndex": 42},
                             sort_keys=True, separators=(",", ":")).encode()
    set_key = rekor_key if variant != "bad-set" else ec.generate_private_key(ec.SECP256R1())
    set_sig = set_key.sign(set_payload, ec.ECDSA(hashes.SHA256()))
    entries = [{"logIndex": "42", "logId": {"keyId": b64(key_id)},
                "kindVersion": {"kind": "dsse", "version": "0.0.1"},
                "integratedTime": str(integrated),
                "inclusionPromise": {"signedEntryTimestamp": b64(set_sig)},
                "canonicalizedBody": b64(body)}]
    # Rekor's inclusion proof: the entry is leaf 0 of a two-leaf tree, and a checkpoint signed
    # by the log key (a signed note whose key hint is the log ID's first four bytes) names the
    # tree's size and root hash. `no-proof` strips it, as an old or forged bundle would.
    leaf_hash = hashlib.sha256(b"\x00" + body).digest()
    sibling = hashlib.sha256(b"\x00other entry").digest()
    root_hash = hashlib.sha256(b"\x01" + leaf_hash + sibling).digest()
    note = f"rekor.sigstore.test - 1\n2\n{b64(root_hash)}\n".encode()
    note_sig = rekor_key.sign(note, ec.ECDSA(hashes.SHA256()))
    checkpoint = note.decode() + "\n\u2014 rekor.sigstore.test " + b64(key_id[:4] + note_sig) + "\n"
    if variant != "no-proof":
        entries[0]["inclusionProof"] = {"logIndex": "0", "rootHash": b64(root_hash), "treeSize": "2",
                                        "hashes": [b64(sibling)], "checkpoint": {"envelope": checkpoint}}
    if variant == "no-tlog":
        entries = []
    bundle = json.dumps({"mediaType": BUNDLE,
                         "verificationMaterial": {"certificate": {"rawBytes": b64(leaf_der)},
                                                  "tlogEntries": entries},
                         "dsseEnvelope": envelope}).encode()

    layer = push_blob(bundle)
    empty = push_blob(b"{}")
    subject = urllib.request.urlopen(urllib.request.Request(
        f"{base}/manifests/{digest}", method="HEAD", headers={"Accept": OCI}))
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": OCI, "artifactType": BUNDLE,
        "config": {"mediaType": "application/vnd.oci.empty.v1+json", **empty},
        "layers": [{"mediaType": BUNDLE, **layer}],
        "subject": {"mediaType": OCI, "digest": digest, "size": int(subject.headers["Content-Length"])},
        "annotations": {"dev.sigstore.bundle.content": "dsse-envelope",
                        "dev.sigstore.bundle.predicateType": "https://sigstore.dev/cosign/sign/v1"}},
        separators=(",", ":")).encode()
    mdigest = "sha256:" + hashlib.sha256(manifest).hexdigest()
    push_manifest(mdigest, manifest, OCI)
    index = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
                        "manifests": [{"mediaType": OCI, "digest": mdigest, "size": len(manifest),
                                       "artifactType": BUNDLE}]}).encode()
    push_manifest(digest.replace(":", "-"), index, "application/vnd.oci.image.index.v1+json")
"#;

/// Runs [`SCRIPT`] in `dir` with `args`: `<registry host> <out dir> [<repository> <digest> <variant>]...`.
///
/// # Panics
/// When the venv's Python is missing (naming `scripts/setup.sh`) or the script fails.
pub fn run(dir: &Path, args: &[&str]) {
    let path = dir.join("sigstore.py");
    std::fs::write(&path, SCRIPT).expect("writing sigstore.py");
    let out = Command::new(crate::tools::venv_python())
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

/// Signs the artifact `digest` at `url` (`oci://<host>/<repository>`) keyless with a fresh
/// test Sigstore, as cosign does (`variant` as [`SCRIPT`] takes it, e.g. `"good"`); returns
/// the directory holding its `trusted_root.json`.
///
/// # Panics
/// As [`run`], and when `url` names no repository.
pub fn sign_keyless(url: &str, digest: &str, variant: &str) -> tempfile::TempDir {
    let (host, repository) = url
        .trim_start_matches("oci://")
        .split_once('/')
        .expect("an oci://<host>/<repository> URL");
    let dir = tempfile::tempdir().expect("temp dir");
    let out = dir.path().to_str().expect("utf-8 temp dir").to_owned();
    run(dir.path(), &[host, &out, repository, digest, variant]);
    dir
}
