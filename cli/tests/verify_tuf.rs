//! `sourcectl verify artifact` keyless without `--trusted-root`: the Sigstore root comes from a
//! TUF refresh (`--sigstore-tuf-mirror`, `--sigstore-tuf-root`) against a python-tuf
//! repository (`test_support::tuf`) whose target is the test Sigstore's `trusted_root.json`
//! (`test_support::sigstore`), cached in `$XDG_CACHE_HOME/sourcectl/tuf` and refreshed at most
//! once per 24 h.

mod common;

use common::{Run, sourcectl_cmd, testdata};
use test_support::registry::RegistryBuilder;
use test_support::tuf::TufRepository;

fn verify(cache: &std::path::Path, url: &str, tuf: &[String]) -> Run {
    let docker = tempfile::tempdir().unwrap();
    sourcectl_cmd(docker.path())
        .env("XDG_CACHE_HOME", cache)
        .args([
            "verify",
            "artifact",
            url,
            "--insecure-registry",
            "--certificate-oidc-issuer-regexp",
            r"^https://token\.actions\.githubusercontent\.com$",
            "--certificate-identity-regexp",
            r"^https://github\.com/org/app/",
        ])
        .args(tuf)
        .output()
        .expect("run sourcectl")
        .into()
}

#[test]
fn keyless_without_a_trusted_root_uses_the_root_refreshed_over_tuf_then_the_cache() {
    let registry = RegistryBuilder::new().start();
    let url = registry.oci_url("tuf/app");
    let digest = common::push(&format!("{url}:v1"), &testdata("podinfo-kustomize"), &[]);
    let sigstore = test_support::sigstore::sign_keyless(&url, &digest, "good");
    let tuf = TufRepository::new(&sigstore.path().join("trusted_root.json"));
    let initial_root = sigstore.path().join("tuf-root.json");
    std::fs::copy(tuf.root_path(), &initial_root).unwrap();
    let flags = [
        format!("--sigstore-tuf-mirror={}", tuf.url()),
        format!("--sigstore-tuf-root={}", initial_root.display()),
    ];
    let cache = tempfile::tempdir().unwrap();
    let artifact = format!("{url}:v1");

    // The embedded public-good root alone refuses the test CA.
    let run = verify(cache.path(), &artifact, &["--sigstore-tuf-mirror=".into()]).failed();
    assert!(run.stderr.contains("verification failed"), "{}", run.stderr);

    let run = verify(cache.path(), &artifact, &flags).ok();
    assert_eq!(run.stdout.trim(), digest);
    assert!(cache.path().join("sourcectl/tuf").is_dir());
    let requests = tuf.requests();
    assert!(requests > 0);

    // Within 24 h: no request to the mirror, the cache verifies offline, even with it gone.
    let run = verify(cache.path(), &artifact, &flags).ok();
    assert_eq!(run.stdout.trim(), digest);
    assert_eq!(tuf.requests(), requests, "no refresh within 24 h");
    drop(tuf);
    verify(cache.path(), &artifact, &flags).ok();
}
