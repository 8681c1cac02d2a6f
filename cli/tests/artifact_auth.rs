//! Credentials and TLS at the command line: `--creds`, the Docker config, wrong credentials
//! (clear error, exit 1), `--ca-file`, and mutual TLS with `--cert-file`/`--key-file`.

mod common;

use common::{sourcectl, sourcectl_cmd, testdata};
use test_support::pki::TestCa;
use test_support::registry::{RegistryBuilder, TokenAuth};

fn push_args<'a>(url: &'a str, src: &'a str) -> Vec<&'a str> {
    vec![
        "push",
        "artifact",
        url,
        "--path",
        src,
        "--source",
        "s",
        "--revision",
        "r",
    ]
}

#[test]
fn basic_auth_with_creds_and_wrong_credentials() {
    let registry = RegistryBuilder::new().htpasswd("alice", "s3cret").start();
    let url = format!("{}:v1", registry.oci_url("auth/app"));
    let src = testdata("podinfo-kustomize");
    let src = src.to_str().unwrap();

    let mut args = push_args(&url, src);
    args.extend(["--insecure-registry", "--creds", "alice:s3cret"]);
    let run = sourcectl(&args).ok();
    assert!(
        run.stderr
            .contains("► logging in to registry with credentials"),
        "{}",
        run.stderr
    );

    let mut args = push_args(&url, src);
    args.extend(["--insecure-registry", "--creds", "alice:wrong"]);
    let run = sourcectl(&args).failed();
    assert!(
        run.stderr.contains("✗ pushing artifact failed"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.to_lowercase().contains("authentication"),
        "{}",
        run.stderr
    );
    assert!(
        !run.stderr.contains("wrong"),
        "the password never reaches the output: {}",
        run.stderr
    );

    let out = tempfile::tempdir().unwrap();
    let run = sourcectl(&[
        "pull",
        "artifact",
        &url,
        "-o",
        out.path().to_str().unwrap(),
        "--insecure-registry",
    ])
    .failed();
    assert!(
        run.stderr.to_lowercase().contains("authentication"),
        "anonymous is refused: {}",
        run.stderr
    );
}

#[test]
fn token_auth_from_the_docker_config() {
    let registry = RegistryBuilder::new()
        .token_auth(TokenAuth::new("bob", "t0ken-pass"))
        .start();
    let url = format!("{}:v1", registry.oci_url("token/app"));
    let docker = tempfile::tempdir().unwrap();
    let auth = base64_encode("bob:t0ken-pass");
    std::fs::write(
        docker.path().join("config.json"),
        format!(
            r#"{{"auths":{{"{}":{{"auth":"{auth}"}}}}}}"#,
            registry.host()
        ),
    )
    .unwrap();
    let src = testdata("podinfo-kustomize");
    let mut args = push_args(&url, src.to_str().unwrap());
    args.push("--insecure-registry");
    let out = sourcectl_cmd(docker.path()).args(&args).output().unwrap();
    let run = common::Run::from(out).ok();
    assert!(!run.stderr.contains("logging in"), "{}", run.stderr);
    assert!(registry.tokens_issued() > 0);
}

#[test]
fn tls_with_a_test_ca_and_mutual_tls() {
    let ca = TestCa::new();
    let registry = RegistryBuilder::new().tls(&ca).client_ca(&ca).start();
    let url = format!("{}:v1", registry.oci_url("tls/app"));
    let src = testdata("podinfo-kustomize");
    let (cert, key) = ca.issue_client_files("client", "sourcectl", "tests");
    let ca_file = ca.cert_path().to_str().unwrap();

    let mut args = push_args(&url, src.to_str().unwrap());
    args.extend([
        "--ca-file",
        ca_file,
        "--cert-file",
        cert.to_str().unwrap(),
        "--key-file",
        key.to_str().unwrap(),
    ]);
    sourcectl(&args).ok();

    let mut args = push_args(&url, src.to_str().unwrap());
    args.extend(["--ca-file", ca_file]);
    let run = sourcectl(&args).failed();
    assert!(
        run.stderr.contains("✗ pushing artifact failed"),
        "without a client certificate: {}",
        run.stderr
    );

    let mut args = push_args(&url, src.to_str().unwrap());
    args.extend([
        "--cert-file",
        cert.to_str().unwrap(),
        "--key-file",
        key.to_str().unwrap(),
    ]);
    let run = sourcectl(&args).failed();
    assert!(
        run.stderr.to_lowercase().contains("tls") || run.stderr.contains("certificate"),
        "unknown CA: {}",
        run.stderr
    );
}

fn base64_encode(s: &str) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let b = s.as_bytes();
    let mut out = String::new();
    for chunk in b.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, &x)| acc | (u32::from(x) << (16 - 8 * i)));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(T[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}
