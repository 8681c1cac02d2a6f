//! The server on etcd, end to end: a real 3-member etcd cluster (Debian's `etcd-server`) on
//! loopback, `source-apiserver --etcd-servers ...`, the real registry and kubectl. Objects live
//! in etcd (read back with `etcdctl`), survive a server whose data directory is new, and list
//! in pages and watch as on SQLite.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use test_support::e2e::{
    apply, download, jsonpath, oci_repository, push_podinfo, sha256, wait_ready,
};
use test_support::etcd::EtcdCluster;
use test_support::kubectl::Kubectl;
use test_support::registry::RegistryBuilder;
use test_support::server::{ApiServer, ServerOptions};

fn server_on(cluster: &EtcdCluster, prefix: &str) -> ApiServer {
    ApiServer::start(
        Path::new(env!("CARGO_BIN_EXE_source-apiserver")),
        ServerOptions {
            args: vec![
                "--etcd-servers".into(),
                cluster.endpoints_flag(),
                "--etcd-prefix".into(),
                prefix.into(),
            ],
            ..Default::default()
        },
    )
}

/// `etcdctl get --print-value-only <key>` against the cluster.
fn etcdctl_get(cluster: &EtcdCluster, key: &str) -> String {
    let out = Command::new("etcdctl")
        .env("ETCDCTL_API", "3")
        .args(["--endpoints", &cluster.endpoints_flag()])
        .args(["get", "--print-value-only", key])
        .output()
        .expect("running etcdctl (apt-get install etcd-client)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

#[test]
fn the_server_keeps_objects_in_etcd_reconciles_lists_and_watches() {
    let cluster = EtcdCluster::start(3);
    let registry = RegistryBuilder::new().start();
    let url = registry.oci_url("podinfo/manifests");
    let digest = push_podinfo(&format!("{url}:6.5.0"));
    let server = server_on(&cluster, "/e2e");
    let k = Kubectl::for_server(&server);
    let spec = format!("  interval: 1m\n  url: {url}\n  insecure: true\n  ref:\n    tag: 6.5.0\n");
    apply(&k, &oci_repository("v1", "podinfo", &spec));

    // Ready through the real registry; the artifact downloads with its digest.
    wait_ready(&k, "podinfo", "True", Some("Succeeded"));
    assert_eq!(
        jsonpath(&k, "podinfo", "{.status.artifact.revision}"),
        format!("6.5.0@{digest}")
    );
    let artifact_digest = jsonpath(&k, "podinfo", "{.status.artifact.digest}");
    assert_eq!(sha256(&download(&k, "v1", "podinfo")), artifact_digest);

    // The object is an etcd key under the prefix; resourceVersion is its etcd revision.
    let key = "/e2e/source.toolkit.fluxcd.io/ocirepositories/default/podinfo";
    let stored: serde_json::Value =
        serde_json::from_str(&etcdctl_get(&cluster, key)).expect("the value is the object's JSON");
    assert_eq!(
        stored["metadata"]["uid"],
        jsonpath(&k, "podinfo", "{.metadata.uid}")
    );
    assert_eq!(stored["status"]["artifact"]["digest"], artifact_digest);
    assert!(stored["metadata"].get("resourceVersion").is_none());

    // A watch sees a later change (made once kubectl's watch request was answered).
    let watch = k.background(&[
        "get",
        "ocirepository",
        "podinfo",
        "-w",
        "-o",
        "jsonpath={.metadata.labels.stage}{\"\\n\"}",
    ]);
    assert_eq!(
        watch.next_line(Duration::from_secs(20)).as_deref(),
        Some("")
    );
    watch.wait_for_watch(Duration::from_secs(20));
    k.run(&["label", "ocirepository", "podinfo", "stage=watched"])
        .ok();
    assert_eq!(
        watch
            .wait_for_line(Duration::from_secs(20), |l| l == "watched")
            .as_deref(),
        Some("watched"),
        "get -w did not show the change: {}",
        watch.stderr()
    );
    drop(watch);

    // Paged lists: kubectl's --chunk-size follows limit/continue at one etcd revision.
    for name in ["b", "c", "d"] {
        let spec = format!("  interval: 1m\n  url: {url}\n  insecure: true\n  suspend: true\n");
        apply(&k, &oci_repository("v1", name, &spec));
    }
    let listed = k.run(&[
        "get",
        "ocirepositories",
        "--chunk-size=1",
        "-v=6",
        "-o",
        "jsonpath={.items[*].metadata.name}",
    ]);
    assert_eq!(listed.ok(), "b c d podinfo");
    assert!(
        listed.stderr.matches("continue=").count() >= 3,
        "kubectl paged with continue tokens: {}",
        listed.stderr
    );

    // The state is in etcd, not in the data directory: a server with a new one sees it.
    let uid = jsonpath(&k, "podinfo", "{.metadata.uid}");
    server.stop();
    let second = server_on(&cluster, "/e2e");
    let k2 = Kubectl::for_server(&second);
    assert_eq!(jsonpath(&k2, "podinfo", "{.metadata.uid}"), uid);
    assert_eq!(
        jsonpath(&k2, "podinfo", "{.metadata.labels.stage}"),
        "watched"
    );
}
