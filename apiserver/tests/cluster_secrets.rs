//! In-cluster Secrets and ServiceAccounts, end to end: the real `source-apiserver` binary
//! in-cluster behind the test front proxy (`test_support::aggregator`), kubectl through it, a
//! real Debian docker-registry behind htpasswd, and the small fake of the Kubernetes API
//! (`test_support::kube_fake`) serving Secrets and ServiceAccounts as list and watch. The fake
//! stands in for kube-apiserver only because kube-apiserver cannot run here (no binary, no
//! Docker engine).

use std::path::Path;

use test_support::e2e::{
    apply, describe, download, eventually, jsonpath, oci_repository, push, ready, sha256, testdata,
    wait_ready,
};
use test_support::in_cluster::InCluster;
use test_support::kubectl::Kubectl;
use test_support::registry::{Registry, RegistryBuilder};

const DOCKER_CONFIG_JSON: &str = "kubernetes.io/dockerconfigjson";

fn cluster() -> InCluster {
    InCluster::start(Path::new(env!("CARGO_BIN_EXE_source-apiserver")), &[])
}

/// A registry behind htpasswd `alice:s3cret` holding `private/app:v1`.
fn private_registry() -> Registry {
    let registry = RegistryBuilder::new().htpasswd("alice", "s3cret").start();
    push(
        &format!("{}:v1", registry.oci_url("private/app")),
        &testdata("podinfo-kustomize"),
        &["--insecure-registry", "--creds", "alice:s3cret"],
    );
    registry
}

fn repository(name: &str, registry: &Registry, credentials: &str) -> String {
    oci_repository(
        "v1",
        name,
        &format!(
            "  interval: 2s\n  url: {}\n  insecure: true\n  ref:\n    tag: v1\n{credentials}",
            registry.oci_url("private/app")
        ),
    )
}

/// Waits until Ready is False for `AuthenticationFailed` with a message containing `text`.
#[track_caller]
fn wait_refused(k: &Kubectl, name: &str, text: &str) -> String {
    eventually(
        &format!("{name} refused with {text:?}"),
        || {
            let (status, reason, message) = ready(k, name);
            (status == "False" && reason == "AuthenticationFailed" && message.contains(text))
                .then_some(message)
        },
        || describe(k, name),
    )
}

#[test]
fn secret_ref_is_read_from_the_cluster_secrets_watch() {
    let c = cluster();
    let registry = private_registry();
    apply(
        &c.kubectl,
        &repository("private", &registry, "  secretRef:\n    name: creds\n"),
    );
    let message = wait_ready(&c.kubectl, "private", "False", Some("AuthenticationFailed"));
    assert_eq!(
        message,
        "failed to get credential: secrets \"creds\" not found in namespace 'default'"
    );

    // The Secret appears in the cluster: the watch brings it, the next reconcile pulls.
    let config = registry.docker_config_json();
    c.fake.put_secret(
        "default",
        "creds",
        DOCKER_CONFIG_JSON,
        &[(".dockerconfigjson", config.as_bytes())],
    );
    wait_ready(&c.kubectl, "private", "True", Some("Succeeded"));
    let bytes = download(&c.kubectl, "v1", "private");
    assert_eq!(
        sha256(&bytes),
        jsonpath(&c.kubectl, "private", "{.status.artifact.digest}")
    );
    assert_eq!(
        (c.fake.lists("secrets"), c.fake.watches("secrets")),
        (1, 1),
        "one list and one watch, no request per reconcile"
    );
    assert!(!c.server.log().contains("s3cret"), "no credentials logged");
}

#[test]
fn service_account_name_pulls_with_the_accounts_image_pull_secrets() {
    let c = cluster();
    let registry = private_registry();
    apply(
        &c.kubectl,
        &repository("by-account", &registry, "  serviceAccountName: puller\n"),
    );
    let message = wait_ready(
        &c.kubectl,
        "by-account",
        "False",
        Some("AuthenticationFailed"),
    );
    assert_eq!(
        message,
        "failed to get credential: serviceaccounts \"puller\" not found in namespace 'default'"
    );

    // The account lists a Secret without registry credentials first (skipped, as k8schain
    // does) and then the pull Secret, which does not exist yet.
    c.fake
        .put_service_account("default", "puller", &["unrelated", "pull"]);
    c.fake
        .put_secret("default", "unrelated", "Opaque", &[("token", b"x")]);
    wait_refused(
        &c.kubectl,
        "by-account",
        "secrets \"pull\" not found in namespace 'default'",
    );

    let config = registry.docker_config_json();
    c.fake.put_secret(
        "default",
        "pull",
        DOCKER_CONFIG_JSON,
        &[(".dockerconfigjson", config.as_bytes())],
    );
    wait_ready(&c.kubectl, "by-account", "True", Some("Succeeded"));
    assert!(jsonpath(&c.kubectl, "by-account", "{.status.artifact.digest}").starts_with("sha256:"));

    // The Secret removed from the cluster: the next reconcile fails again.
    c.fake.delete_secret("default", "pull");
    wait_refused(&c.kubectl, "by-account", "secrets \"pull\" not found");
    assert_eq!(c.fake.lists("serviceaccounts"), 1);
}
