//! Flux's consumers in the cluster, end to end: kustomize-controller and helm-controller
//! download `status.artifact.url` without credentials. The real `source-apiserver` binary runs
//! in-cluster (against the small fake of the Kubernetes API, `test_support::kube_fake`, since
//! kube-apiserver cannot run here) with the plain-HTTP artifact listener advertised under a
//! Service-like host name, as `deploy/` configures it, and the artifact is fetched from the
//! advertised URL as those controllers fetch it: plain HTTP, no credentials.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;

use test_support::e2e::{apply, jsonpath, oci_repository, push_podinfo, sha256, wait_ready};
use test_support::in_cluster::InCluster;
use test_support::registry::RegistryBuilder;
use test_support::tools;

/// The advertised host, as `deploy/` sets it (`<service>.<namespace>.svc.cluster.local.`);
/// resolved to loopback by the test's HTTP client, as cluster DNS would to the Service.
const SERVICE_HOST: &str = "source-apiserver.source-apiserver.svc.cluster.local.";

#[test]
fn an_artifact_from_the_advertised_plain_http_url_has_the_status_digest() {
    let registry = RegistryBuilder::new().start();
    let url = registry.oci_url("app/consumer");
    push_podinfo(&format!("{url}:v1"));
    let port = tools::free_port();
    let c = InCluster::start(
        Path::new(env!("CARGO_BIN_EXE_source-apiserver")),
        &[
            "--artifact-listen",
            &format!("127.0.0.1:{port}"),
            "--artifact-advertise-address",
            &format!("{SERVICE_HOST}:{port}"),
        ],
    );
    apply(
        &c.kubectl,
        &oci_repository(
            "v1",
            "consumed",
            &format!("  interval: 1h\n  url: {url}\n  insecure: true\n  ref:\n    tag: v1\n"),
        ),
    );
    wait_ready(&c.kubectl, "consumed", "True", Some("Succeeded"));
    let artifact_url = jsonpath(&c.kubectl, "consumed", "{.status.artifact.url}");
    assert!(
        artifact_url.starts_with(&format!(
            "http://{SERVICE_HOST}:{port}/ocirepository/default/consumed/"
        )),
        "{artifact_url}"
    );
    let client = reqwest::blocking::Client::builder()
        .resolve(SERVICE_HOST, SocketAddr::from((Ipv4Addr::LOCALHOST, port)))
        .build()
        .unwrap();
    let response = client.get(&artifact_url).send().unwrap();
    assert_eq!(response.status(), 200);
    let bytes = response.bytes().unwrap();
    assert_eq!(
        sha256(&bytes),
        jsonpath(&c.kubectl, "consumed", "{.status.artifact.digest}")
    );
}
