//! `sourcectl generate key-pair`, `push artifact --sign-key`, `sign artifact` and
//! `verify artifact` against the real registry; the key files checked by an independent Python
//! implementation (`cryptography` scrypt + `pynacl` SecretBox) in both directions.

mod common;

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::process::{Command, Stdio};

use common::{Run, sourcectl_cmd, testdata};
use test_support::registry::RegistryBuilder;

/// Runs `sourcectl args...` with an empty Docker config, `COSIGN_PASSWORD=password` (unless
/// `None`) and no stdin.
fn sourcectl_pw(password: Option<&str>, args: &[&str]) -> Run {
    let empty = tempfile::tempdir().unwrap();
    let mut cmd = sourcectl_cmd(empty.path());
    cmd.env_remove("COSIGN_PASSWORD").stdin(Stdio::null());
    if let Some(pw) = password {
        cmd.env("COSIGN_PASSWORD", pw);
    }
    cmd.args(args).output().expect("run sourcectl").into()
}

fn generate(dir: &Path, name: &str, password: &str) -> (String, String) {
    let prefix = dir.join(name);
    let prefix = prefix.to_str().unwrap();
    let run = sourcectl_pw(
        Some(password),
        &["generate", "key-pair", "--output-key-prefix", prefix],
    )
    .ok();
    assert!(
        run.stderr
            .contains(&format!("✔ private key written to {prefix}.key")),
        "{}",
        run.stderr
    );
    (format!("{prefix}.key"), format!("{prefix}.pub"))
}

fn python(dir: &Path, script: &str, args: &[&str]) -> String {
    let path = dir.join("check.py");
    std::fs::write(&path, script).unwrap();
    let out = Command::new(test_support::tools::venv_python())
        .env_remove("PYTHONOPTIMIZE")
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

/// Decrypts a cosign key file as go-securesystemslib does and checks it against the `.pub`;
/// with the first argument `write`, instead writes a new key pair in cosign's legacy
/// `ENCRYPTED COSIGN PRIVATE KEY` format to `<prefix>.key` / `<prefix>.pub`.
const PY_KEYS: &str = r#"
import base64, json, sys
import nacl.secret
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

def check(condition, detail=""):
    # Not `assert`: PYTHONOPTIMIZE / -O would remove it and every check would pass.
    if not condition:
        raise SystemExit(f"check failed: {detail}")

def pem_body(text, label):
    begin, end = f"-----BEGIN {label}-----", f"-----END {label}-----"
    check(text.startswith(begin + "\n"), text[:60])
    return base64.b64decode("".join(text[len(begin):text.index(end)].split()))

if sys.argv[1] == "write":
    prefix, password = sys.argv[2], sys.argv[3].encode()
    key = ec.generate_private_key(ec.SECP256R1())
    der = key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    import os
    salt, nonce = os.urandom(32), os.urandom(24)
    k = Scrypt(salt=salt, length=32, n=32768, r=8, p=1).derive(password)
    box = nacl.secret.SecretBox(k).encrypt(der, nonce).ciphertext
    body = json.dumps({"kdf": {"name": "scrypt", "params": {"N": 32768, "r": 8, "p": 1},
                               "salt": base64.b64encode(salt).decode()},
                       "cipher": {"name": "nacl/secretbox",
                                  "nonce": base64.b64encode(nonce).decode()},
                       "ciphertext": base64.b64encode(box).decode()}).encode()
    b64 = base64.b64encode(body).decode()
    lines = "\n".join(b64[i:i + 64] for i in range(0, len(b64), 64))
    open(prefix + ".key", "w").write(
        f"-----BEGIN ENCRYPTED COSIGN PRIVATE KEY-----\n{lines}\n-----END ENCRYPTED COSIGN PRIVATE KEY-----\n")
    open(prefix + ".pub", "wb").write(key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    sys.exit(0)

key_path, pub_path, password = sys.argv[1], sys.argv[2], sys.argv[3].encode()
doc = json.loads(pem_body(open(key_path).read(), "ENCRYPTED SIGSTORE PRIVATE KEY"))
check(doc["kdf"]["name"] == "scrypt", doc)
check(doc["kdf"]["params"] == {"N": 32768, "r": 8, "p": 1}, doc)
check(doc["cipher"]["name"] == "nacl/secretbox", doc)
salt = base64.b64decode(doc["kdf"]["salt"])
nonce = base64.b64decode(doc["cipher"]["nonce"])
check(len(salt) == 32 and len(nonce) == 24)
p = doc["kdf"]["params"]
k = Scrypt(salt=salt, length=32, n=p["N"], r=p["r"], p=p["p"]).derive(password)
der = nacl.secret.SecretBox(k).decrypt(base64.b64decode(doc["ciphertext"]), nonce)
private = serialization.load_der_private_key(der, password=None)
check(isinstance(private.curve, ec.SECP256R1), private.curve)
public = serialization.load_pem_public_key(open(pub_path, "rb").read())
check(open(pub_path).read().startswith("-----BEGIN PUBLIC KEY-----\n"))
check(private.public_key().public_numbers() == public.public_numbers())
print("decrypted")
"#;

#[test]
fn generated_keys_are_cosigns_and_python_written_keys_sign() {
    let dir = tempfile::tempdir().unwrap();
    let (key, public) = generate(dir.path(), "cosign", "s3cret");
    let mode = std::fs::metadata(&key).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the private key is private");
    let out = python(dir.path(), PY_KEYS, &[&key, &public, "s3cret"]);
    assert_eq!(out.trim(), "decrypted");

    // An empty password is legal, as with cosign.
    let (key, public) = generate(dir.path(), "empty", "");
    python(dir.path(), PY_KEYS, &[&key, &public, ""]);

    // Never overwritten.
    let prefix = dir.path().join("cosign");
    let run = sourcectl_pw(
        Some("x"),
        &[
            "generate",
            "key-pair",
            "--output-key-prefix",
            prefix.to_str().unwrap(),
        ],
    )
    .failed();
    assert!(run.stderr.contains("already exists"), "{}", run.stderr);

    // No COSIGN_PASSWORD and no terminal: a clear error.
    let prefix = dir.path().join("nopw");
    let run = sourcectl_pw(
        None,
        &[
            "generate",
            "key-pair",
            "--output-key-prefix",
            prefix.to_str().unwrap(),
        ],
    )
    .failed();
    assert!(
        run.stderr.contains("COSIGN_PASSWORD is not set"),
        "{}",
        run.stderr
    );

    // A key written by Python in the legacy format signs; its .pub verifies.
    let reg = RegistryBuilder::new().start();
    let url = format!("{}:v1", reg.oci_url("keys/app"));
    let digest = common::push(&url, &testdata("podinfo-kustomize"), &[]);
    let py_prefix = dir.path().join("py");
    python(
        dir.path(),
        PY_KEYS,
        &["write", py_prefix.to_str().unwrap(), "pypw"],
    );
    let py_key = format!("{}.key", py_prefix.display());
    let py_pub = format!("{}.pub", py_prefix.display());
    let run = sourcectl_pw(
        Some("wrong"),
        &[
            "sign",
            "artifact",
            &url,
            "--key",
            &py_key,
            "--insecure-registry",
        ],
    )
    .failed();
    assert!(run.stderr.contains("wrong password"), "{}", run.stderr);
    sourcectl_pw(
        Some("pypw"),
        &[
            "sign",
            "artifact",
            &url,
            "--key",
            &py_key,
            "--insecure-registry",
        ],
    )
    .ok();
    let run = sourcectl_pw(
        None,
        &[
            "verify",
            "artifact",
            &url,
            "--key",
            &py_pub,
            "--insecure-registry",
        ],
    )
    .ok();
    assert_eq!(run.stdout.trim(), digest);
}

#[test]
fn push_sign_and_verify_with_sourcectl() {
    let dir = tempfile::tempdir().unwrap();
    let (alice_key, alice_pub) = generate(dir.path(), "alice", "a");
    let (bob_key, bob_pub) = generate(dir.path(), "bob", "b");
    let (_, stranger_pub) = generate(dir.path(), "stranger", "s");
    let reg = RegistryBuilder::new().start();
    let url = format!("{}:v1", reg.oci_url("signed/app"));
    let repo = format!("{}/signed/app", reg.host());

    // A wrong password fails before anything is pushed.
    let path = testdata("podinfo-kustomize");
    let push_args = |key: &str| {
        vec![
            "push".to_owned(),
            "artifact".to_owned(),
            url.clone(),
            "--path".to_owned(),
            path.to_str().unwrap().to_owned(),
            "--source".to_owned(),
            "https://github.com/stefanprodan/podinfo".to_owned(),
            "--revision".to_owned(),
            "6.5.0@sha1:0123456789abcdef0123456789abcdef01234567".to_owned(),
            "--insecure-registry".to_owned(),
            "-o".to_owned(),
            "json".to_owned(),
            "--sign-key".to_owned(),
            key.to_owned(),
        ]
    };
    let args = push_args(&alice_key);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let run = sourcectl_pw(Some("not a"), &args).failed();
    assert!(run.stderr.contains("wrong password"), "{}", run.stderr);
    assert!(!run.stderr.contains("pushing"), "{}", run.stderr);
    let run = sourcectl_pw(
        None,
        &[
            "verify",
            "artifact",
            &url,
            "--key",
            &alice_pub,
            "--insecure-registry",
        ],
    )
    .failed();
    assert!(run.stderr.contains("not found"), "{}", run.stderr);

    // push --sign-key signs the pushed digest.
    let run = sourcectl_pw(Some("a"), &args).ok();
    let json: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    let digest = json["digest"].as_str().unwrap().to_owned();
    assert!(
        run.stderr.contains(&format!(
            "✔ artifact {repo}@{digest} signed: {repo}:sha256-{}.sig (1 signature(s))",
            &digest[7..]
        )),
        "{}",
        run.stderr
    );
    let run = sourcectl_pw(
        None,
        &[
            "verify",
            "artifact",
            &url,
            "--key",
            &alice_pub,
            "--insecure-registry",
        ],
    )
    .ok();
    assert_eq!(run.stdout, format!("{digest}\n"));
    assert!(
        run.stderr
            .contains(&format!("✔ verified {repo}@{digest} with {alice_pub}")),
        "{}",
        run.stderr
    );

    // A second key signs by digest; both keys verify.
    let by_digest = format!("{}@{digest}", reg.oci_url("signed/app"));
    let run = sourcectl_pw(
        Some("b"),
        &[
            "sign",
            "artifact",
            &by_digest,
            "--key",
            &bob_key,
            "--insecure-registry",
        ],
    )
    .ok();
    assert!(run.stderr.contains("(2 signature(s))"), "{}", run.stderr);
    for public in [&alice_pub, &bob_pub] {
        let run = sourcectl_pw(
            None,
            &[
                "verify",
                "artifact",
                &by_digest,
                "--key",
                public,
                "--insecure-registry",
            ],
        )
        .ok();
        assert_eq!(run.stdout.trim(), digest);
    }

    // Wrong key: exit 1 with the reason, nothing on stdout.
    let run = sourcectl_pw(
        None,
        &[
            "verify",
            "artifact",
            &url,
            "--key",
            &stranger_pub,
            "--insecure-registry",
        ],
    )
    .failed();
    assert!(run.stdout.is_empty(), "{}", run.stdout);
    assert!(
        run.stderr.contains(&format!(
            "✗ verification failed: no signature of {digest} matched the 1 public key(s) (2 signature(s) checked)"
        )),
        "{}",
        run.stderr
    );
    // Any one of several keys passes.
    sourcectl_pw(
        None,
        &[
            "verify",
            "artifact",
            &url,
            "--key",
            &stranger_pub,
            "--key",
            &bob_pub,
            "--insecure-registry",
        ],
    )
    .ok();

    // An unsigned artifact.
    let unsigned = format!("{}:v1", reg.oci_url("unsigned/app"));
    common::push(&unsigned, &path, &[]);
    let run = sourcectl_pw(
        None,
        &[
            "verify",
            "artifact",
            &unsigned,
            "--key",
            &alice_pub,
            "--insecure-registry",
        ],
    )
    .failed();
    assert!(
        run.stderr
            .contains("✗ verification failed: no signatures found for"),
        "{}",
        run.stderr
    );
}

/// Reads a `.sig` signature over plain distribution HTTP and checks it as a cosign verifier
/// would, independently of our code: OCI manifest, image config whose diff_ids are the payload
/// digests, simple-signing layers, payload bytes and fields, and the ECDSA P-256 SHA-256 DER
/// signature under each given `.pub` (every key must have signed). Prints
/// `verified <signatures> signatures by <keys that signed> of <keys given> keys`.
const PY_VERIFY: &str = r#"
import base64, hashlib, json, sys, urllib.request
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.exceptions import InvalidSignature

def check(condition, detail=""):
    # Not `assert`: PYTHONOPTIMIZE / -O would remove it and every check would pass.
    if not condition:
        raise SystemExit(f"check failed: {detail}")

host, repo, digest, *pubs = sys.argv[1:]
base = f"http://{host}/v2/{repo}"
OCI = "application/vnd.oci.image.manifest.v1+json"
req = urllib.request.Request(f"{base}/manifests/{digest.replace(':', '-')}.sig", headers={"Accept": OCI})
resp = urllib.request.urlopen(req)
check(resp.headers["Content-Type"] == OCI, resp.headers["Content-Type"])
manifest = json.loads(resp.read())
check(manifest["schemaVersion"] == 2 and manifest["mediaType"] == OCI, manifest)
blob = lambda d: urllib.request.urlopen(f"{base}/blobs/{d}").read()
config = json.loads(blob(manifest["config"]["digest"]))
check(manifest["config"]["mediaType"] == "application/vnd.oci.image.config.v1+json")
check(config["rootfs"] == {"type": "layers", "diff_ids": [l["digest"] for l in manifest["layers"]]}, config)
keys = [serialization.load_pem_public_key(open(p, "rb").read()) for p in pubs]
signed_by = set()
for layer in manifest["layers"]:
    check(layer["mediaType"] == "application/vnd.dev.cosign.simplesigning.v1+json", layer)
    payload = blob(layer["digest"])
    check("sha256:" + hashlib.sha256(payload).hexdigest() == layer["digest"])
    check(len(payload) == layer["size"])
    doc = json.loads(payload)
    check(doc == {"critical": {"identity": {"docker-reference": f"{host}/{repo}"},
                                "image": {"docker-manifest-digest": digest},
                                "type": "cosign container image signature"},
                   "optional": None}, doc)
    check(payload == json.dumps(doc, separators=(",", ":")).encode(), "Go's compact field order")
    sig = base64.b64decode(layer["annotations"]["dev.cosignproject.cosign/signature"], validate=True)
    for i, key in enumerate(keys):
        try:
            key.verify(sig, payload, ec.ECDSA(hashes.SHA256()))
            signed_by.add(i)
        except InvalidSignature:
            pass
check(signed_by == set(range(len(keys))), signed_by)
print(f"verified {len(manifest['layers'])} signatures by {len(signed_by)} of {len(keys)} keys")
"#;

#[test]
fn signatures_written_by_sourcectl_verify_with_independent_python() {
    let dir = tempfile::tempdir().unwrap();
    let (alice_key, alice_pub) = generate(dir.path(), "alice", "a");
    let (bob_key, bob_pub) = generate(dir.path(), "bob", "b");
    let reg = RegistryBuilder::new().start();
    let url = format!("{}:v1", reg.oci_url("pyverify/app"));
    let digest = common::push(&url, &testdata("podinfo-kustomize"), &[]);
    for (key, pw) in [(&alice_key, "a"), (&bob_key, "b")] {
        sourcectl_pw(
            Some(pw),
            &[
                "sign",
                "artifact",
                &url,
                "--key",
                key,
                "--insecure-registry",
            ],
        )
        .ok();
    }
    let out = python(
        dir.path(),
        PY_VERIFY,
        &[reg.host(), "pyverify/app", &digest, &alice_pub, &bob_pub],
    );
    assert_eq!(out.trim(), "verified 2 signatures by 2 of 2 keys");
}

/// Runs `sourcectl args...` on a pseudo-terminal (util-linux `script`) without
/// `COSIGN_PASSWORD`, typing `input`.
fn sourcectl_on_tty(input: &str, args: &[&str]) -> Run {
    use std::io::Write as _;
    let script = test_support::tools::require("script");
    let empty = tempfile::tempdir().unwrap();
    let mut command = vec![env!("CARGO_BIN_EXE_sourcectl").to_owned()];
    command.extend(args.iter().map(|a| (*a).to_owned()));
    let mut child = Command::new(script)
        .args(["-qec", &command.join(" "), "/dev/null"])
        .env("DOCKER_CONFIG", empty.path())
        .env_remove("COSIGN_PASSWORD")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run script");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap().into()
}

#[test]
fn the_password_is_prompted_for_on_a_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let prefix = dir.path().join("tty");
    let prefix = prefix.to_str().unwrap();
    let run = sourcectl_on_tty(
        "typed pw\ntyped pw\n",
        &["generate", "key-pair", "--output-key-prefix", prefix],
    )
    .ok();
    assert!(
        run.stdout.contains("Enter password for private key again:"),
        "{}",
        run.stdout
    );
    let out = python(
        dir.path(),
        PY_KEYS,
        &[
            &format!("{prefix}.key"),
            &format!("{prefix}.pub"),
            "typed pw",
        ],
    );
    assert_eq!(out.trim(), "decrypted");

    let other = dir.path().join("mismatch");
    let run = sourcectl_on_tty(
        "one\ntwo\n",
        &[
            "generate",
            "key-pair",
            "--output-key-prefix",
            other.to_str().unwrap(),
        ],
    )
    .failed();
    assert!(
        run.stdout.contains("passwords do not match"),
        "{}",
        run.stdout
    );
    assert!(!other.with_extension("key").exists());
}
