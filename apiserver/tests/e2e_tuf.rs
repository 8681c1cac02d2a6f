//! End to end: keyless verification without `trustedRootSecretRef` uses the Sigstore trusted
//! root the server refreshed over TUF (`--sigstore-tuf-mirror`, `--sigstore-tuf-root`). The TUF
//! repository is written by python-tuf (`test_support::tuf`) with the test Sigstore's
//! `trusted_root.json` as its target; the signature is the test Sigstore's (`test_support::sigstore`)
//! in the real registry. With the refresh off, the embedded public-good root refuses it.

use std::path::Path;

use test_support::e2e::{apply, eventually, jsonpath, oci_repository, push_podinfo, wait_ready};
use test_support::kubectl::Kubectl;
use test_support::registry::RegistryBuilder;
use test_support::server::{ApiServer, ServerOptions};
use test_support::tuf::TufRepository;

fn server(args: &[String]) -> ApiServer {
    ApiServer::start(
        Path::new(env!("CARGO_BIN_EXE_source-apiserver")),
        ServerOptions {
            args: args.to_vec(),
            ..Default::default()
        },
    )
}

#[test]
fn keyless_without_a_trusted_root_secret_uses_the_root_refreshed_over_tuf() {
    let registry = RegistryBuilder::new().start();
    let url = registry.oci_url("tuf/app");
    let digest = push_podinfo(&format!("{url}:v1"));
    let sigstore = test_support::sigstore::sign_keyless(&url, &digest, "good");
    let tuf = TufRepository::new(&sigstore.path().join("trusted_root.json"));
    let object = oci_repository(
        "v1",
        "keyless",
        &format!(
            "  interval: 1h\n  url: {url}\n  insecure: true\n  ref:\n    tag: v1\n  verify:\n    provider: cosign\n    matchOIDCIdentity:\n    - issuer: '^https://token\\.actions\\.githubusercontent\\.com$'\n      subject: '^https://github\\.com/org/app/'\n"
        ),
    );

    // Refresh off: the embedded public-good root does not know the test CA.
    let offline = server(&["--sigstore-tuf-mirror=".into()]);
    let k = Kubectl::for_server(&offline);
    apply(&k, &object);
    let message = wait_ready(&k, "keyless", "False", Some("VerificationError"));
    assert!(
        message.starts_with(
            "failed to verify the signature using provider 'cosign': transparency log check failed"
        ),
        "{message}"
    );
    drop(offline);

    // Refresh from the test TUF repository: the same object verifies.
    let refreshed = server(&[
        format!("--sigstore-tuf-mirror={}", tuf.url()),
        format!("--sigstore-tuf-root={}", tuf.root_path().display()),
    ]);
    let k = Kubectl::for_server(&refreshed);
    apply(&k, &object);
    wait_ready(&k, "keyless", "True", Some("Succeeded"));
    assert_eq!(
        jsonpath(
            &k,
            "keyless",
            "{.status.conditions[?(@.type==\"SourceVerified\")].status}"
        ),
        "True"
    );
    eventually(
        "the refresh is logged",
        || {
            refreshed
                .log()
                .contains("Sigstore trusted root refreshed over TUF")
                .then_some(())
        },
        || refreshed.log(),
    );
    assert!(tuf.requests() > 0);
    assert!(
        refreshed.data_dir().join("tuf").is_dir(),
        "cache under <data-dir>/tuf"
    );
}
