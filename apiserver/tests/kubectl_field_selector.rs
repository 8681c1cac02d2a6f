//! `kubectl get <resource> -A --field-selector metadata.name=<name>` lists the objects of that
//! name across every namespace, as kube-apiserver does: the name in the field selector is a
//! filter on a list (and, for authorisation, the request's name), never a path to one object.
//! Checked with the oldest and newest kubectl the project supports.

use std::path::Path;

use test_support::kubectl::Kubectl;
use test_support::server::{ApiServer, ServerOptions};

/// A suspended OCIRepository (never reconciled: no registry is needed).
fn oci_repository(namespace: &str, name: &str) -> String {
    format!(
        "apiVersion: source.toolkit.fluxcd.io/v1\nkind: OCIRepository\nmetadata:\n  name: {name}\n  namespace: {namespace}\nspec:\n  interval: 5m\n  url: oci://ghcr.io/stefanprodan/manifests/podinfo\n  ref:\n    tag: latest\n  suspend: true\n"
    )
}

/// `namespace/name` per line, sorted.
fn listed(k: &Kubectl, args: &[&str]) -> Vec<String> {
    let mut command = vec![
        "get",
        "ocirepositories",
        "-o",
        "jsonpath={range .items[*]}{.metadata.namespace}/{.metadata.name}{\"\\n\"}{end}",
    ];
    command.extend_from_slice(args);
    let mut lines: Vec<String> = k
        .run(&command)
        .ok()
        .lines()
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect();
    lines.sort();
    lines
}

fn lists_by_name_across_namespaces(version: &str) {
    let server = ApiServer::start(
        Path::new(env!("CARGO_BIN_EXE_source-apiserver")),
        ServerOptions::default(),
    );
    let k = Kubectl::new(Some(version), &server.kubeconfig());
    for (namespace, name) in [
        ("default", "podinfo"),
        ("flux-system", "podinfo"),
        ("flux-system", "other"),
    ] {
        k.run_with(
            &["apply", "-f", "-"],
            Some(&oci_repository(namespace, name)),
            &[],
        )
        .ok();
    }

    assert_eq!(
        listed(&k, &["-A", "--field-selector", "metadata.name=podinfo"]),
        ["default/podinfo", "flux-system/podinfo"],
        "kubectl {version}: -A with a name field selector"
    );
    assert_eq!(
        listed(&k, &["-A", "--field-selector", "metadata.name==other"]),
        ["flux-system/other"],
        "kubectl {version}: the == form"
    );
    assert_eq!(
        listed(
            &k,
            &[
                "-n",
                "flux-system",
                "--field-selector",
                "metadata.name=podinfo"
            ]
        ),
        ["flux-system/podinfo"],
        "kubectl {version}: one namespace"
    );
    assert!(
        listed(&k, &["-A", "--field-selector", "metadata.name=missing"]).is_empty(),
        "kubectl {version}: no match is an empty list, not 404"
    );

    // The table kubectl prints by default names both namespaces.
    let table = k
        .run(&[
            "get",
            "ocirepositories",
            "-A",
            "--field-selector",
            "metadata.name=podinfo",
        ])
        .ok()
        .to_string();
    let rows: Vec<&str> = table.lines().skip(1).collect();
    assert_eq!(rows.len(), 2, "kubectl {version}: table:\n{table}");
    assert!(rows[0].starts_with("default ") && rows[0].contains("podinfo"));
    assert!(rows[1].starts_with("flux-system ") && rows[1].contains("podinfo"));
}

#[test]
fn kubectl_1_27_lists_a_name_across_namespaces() {
    lists_by_name_across_namespaces("1.27");
}

#[test]
fn kubectl_1_33_lists_a_name_across_namespaces() {
    lists_by_name_across_namespaces("1.33");
}
