//! `deploy/`: the kustomize base and every overlay render with kubectl's kustomize, and every
//! rendered object validates offline against the Kubernetes JSON schemas bundled in the
//! `kubernetes-validate` package (PyPI; installed by `scripts/setup.sh`), strictly (unknown
//! fields are errors). `kubernetes-validate` only warns about a kind it has no schema for; the
//! only kinds allowed without a schema are cert-manager's `Issuer` and `Certificate` (CRDs,
//! whose schemas ship with cert-manager, not with Kubernetes), and for those the fields the
//! overlay relies on are checked here. A missing schema for any other kind (a typo in a core
//! `apiVersion`, say) fails the test. `APIService` is a built-in kind and is validated.
//!
//! The Deployment's flags are then run: the binary starts with the rendered arguments (paths
//! and ports moved to a temp dir and loopback) and the certificate `deploy/gen-certs.sh` made,
//! and answers `/readyz` over TLS verified against that CA for the Service's DNS name.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use base64::Engine as _;
use serde::Deserialize;
use serde_yaml::Value;
use test_support::server::{ApiServer, ServerOptions};
use test_support::tools;

/// Kinds without a schema in kubernetes-validate that the overlays may use.
const CRD_KINDS: [&str; 2] = [
    "cert-manager.io/v1/Issuer",
    "cert-manager.io/v1/Certificate",
];

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// A copy of `deploy/` with the self-signed overlay's certificates generated into it.
fn deploy_copy() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let status = Command::new("cp")
        .arg("-r")
        .arg(repo_root().join("deploy"))
        .arg(dir.path())
        .status()
        .unwrap();
    assert!(status.success());
    let out = Command::new(dir.path().join("deploy/gen-certs.sh"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "gen-certs.sh: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    dir
}

fn render(dir: &Path) -> (String, Vec<Value>) {
    let out = Command::new(tools::require("kubectl"))
        .arg("kustomize")
        .arg(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "kubectl kustomize {}: {}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let objects = serde_yaml::Deserializer::from_str(&text)
        .map(|doc| Value::deserialize(doc).unwrap())
        .filter(|v| !v.is_null())
        .collect();
    (text, objects)
}

fn type_of(object: &Value) -> String {
    format!(
        "{}/{}",
        object["apiVersion"].as_str().unwrap(),
        object["kind"].as_str().unwrap()
    )
}

/// Validates `text` strictly; returns the kinds validated without a schema.
fn validate(name: &str, text: &str) -> BTreeSet<String> {
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), text).unwrap();
    let out = Command::new(tools::require("kubernetes-validate"))
        .arg("--strict")
        .arg(file.path())
        .output()
        .unwrap();
    let report =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{name} does not validate:\n{report}");
    assert!(!report.contains("ERROR"), "{name}:\n{report}");
    report
        .lines()
        .filter_map(|l| {
            l.split_once("Couldn't find schema for kind ")?
                .1
                .split_once(" for")
        })
        .map(|(kind, _)| {
            let (kind, version) = kind.split_once(" with api version ").unwrap();
            format!("{version}/{kind}")
        })
        .collect()
}

fn find<'a>(objects: &'a [Value], kind: &str, name: &str) -> &'a Value {
    objects
        .iter()
        .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name}"))
}

#[test]
fn the_base_and_every_overlay_render_and_validate_offline() {
    let copy = deploy_copy();
    let deploy = copy.path().join("deploy");
    for dir in [
        "",
        "overlays/cert-manager",
        "overlays/self-signed",
        "overlays/ha",
    ] {
        let name = format!("deploy/{dir}");
        let (text, objects) = render(&deploy.join(dir));
        let without_schema = validate(&name, &text);
        for kind in &without_schema {
            assert!(
                CRD_KINDS.contains(&kind.as_str()),
                "{name}: no schema for {kind}"
            );
        }
        // Every object was seen by the validator: kinds with a schema passed it.
        let types: BTreeSet<String> = objects.iter().map(type_of).collect();
        assert!(
            types.contains("apiregistration.k8s.io/v1/APIService"),
            "{name}"
        );
        assert!(!without_schema.contains("apiregistration.k8s.io/v1/APIService"));

        let apiservices: Vec<&Value> = objects
            .iter()
            .filter(|o| o["kind"] == "APIService")
            .collect();
        let names: BTreeSet<&str> = apiservices
            .iter()
            .map(|a| a["metadata"]["name"].as_str().unwrap())
            .collect();
        assert_eq!(
            names,
            BTreeSet::from([
                "v1.source.toolkit.fluxcd.io",
                "v1beta2.source.toolkit.fluxcd.io"
            ])
        );
        for a in &apiservices {
            assert_eq!(a["spec"]["service"]["port"], 443);
            assert!(
                a["metadata"]["labels"]
                    .get("kube-aggregator.kubernetes.io/automanaged")
                    .is_none()
            );
        }
        // The reader binding must stay in kube-system, whatever namespace the rest is in.
        let reader = find(&objects, "RoleBinding", "source-apiserver-auth-reader");
        assert_eq!(reader["metadata"]["namespace"], "kube-system");
        let https = &find(&objects, "Service", "source-apiserver")["spec"]["ports"];
        assert_eq!(https[0]["port"], 443);
        assert_eq!(https[0]["name"], "https");
        assert_eq!(https[1]["port"], 80);

        match dir {
            "overlays/cert-manager" => {
                for a in &apiservices {
                    assert_eq!(
                        a["metadata"]["annotations"]["cert-manager.io/inject-ca-from"],
                        "source-apiserver/source-apiserver-serving"
                    );
                }
                let serving = find(&objects, "Certificate", "source-apiserver-serving");
                assert_eq!(serving["spec"]["secretName"], "source-apiserver-tls");
                assert_eq!(
                    serving["spec"]["dnsNames"][0],
                    "source-apiserver.source-apiserver.svc"
                );
                let issuer = serving["spec"]["issuerRef"]["name"].as_str().unwrap();
                find(&objects, "Issuer", issuer);
            }
            "overlays/self-signed" => {
                for a in &apiservices {
                    assert!(
                        a["spec"]["caBundle"]
                            .as_str()
                            .is_some_and(|b| b.len() > 100)
                    );
                }
                find(&objects, "Secret", "source-apiserver-tls");
            }
            "overlays/ha" => check_ha(&objects),
            _ => {}
        }
    }
}

/// The HA overlay: 3 replicas spread over nodes, a PodDisruptionBudget, no shared volume,
/// etcd endpoints and client certificates from a Secret, leader election on, and the pod IP
/// advertised to the peers (which the NetworkPolicy lets in).
fn check_ha(objects: &[Value]) {
    let deployment = find(objects, "Deployment", "source-apiserver");
    let spec = &deployment["spec"];
    assert_eq!(spec["replicas"], 3);
    assert_eq!(spec["strategy"]["type"], "RollingUpdate");
    let pod = &spec["template"]["spec"];
    let anti =
        &pod["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"][0];
    assert_eq!(
        anti["podAffinityTerm"]["topologyKey"],
        "kubernetes.io/hostname"
    );
    let container = &pod["containers"][0];
    let args: Vec<&str> = container["args"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    for want in [
        "--etcd-servers=$(ETCD_SERVERS)",
        "--etcd-cafile=/etc/source-apiserver/etcd/ca.crt",
        "--etcd-certfile=/etc/source-apiserver/etcd/tls.crt",
        "--etcd-keyfile=/etc/source-apiserver/etcd/tls.key",
        "--leader-elect=true",
        "--peer-advertise-address=http://$(POD_IP):8080",
        "--artifact-listen=0.0.0.0:8080",
    ] {
        assert!(args.contains(&want), "{want} missing from {args:?}");
    }
    let env = container["env"].as_sequence().unwrap();
    let servers = env.iter().find(|e| e["name"] == "ETCD_SERVERS").unwrap();
    assert_eq!(
        servers["valueFrom"]["secretKeyRef"]["name"],
        "source-apiserver-etcd"
    );
    let volumes = pod["volumes"].as_sequence().unwrap();
    let volume = |name: &str| volumes.iter().find(|v| v["name"] == name).unwrap();
    assert!(volume("data").get("emptyDir").is_some());
    assert!(volume("data").get("persistentVolumeClaim").is_none());
    assert_eq!(
        volume("etcd-client")["secret"]["secretName"],
        "source-apiserver-etcd"
    );
    assert!(
        !objects.iter().any(|o| o["kind"] == "PersistentVolumeClaim"),
        "no ReadWriteOnce volume with several replicas"
    );
    let pdb = find(objects, "PodDisruptionBudget", "source-apiserver");
    assert_eq!(pdb["spec"]["minAvailable"], 2);
    let policy = find(objects, "NetworkPolicy", "source-apiserver");
    assert!(
        policy["spec"]["ingress"].as_sequence().unwrap().iter().any(
            |rule| rule["from"][0]["podSelector"]["matchLabels"]["app.kubernetes.io/name"]
                == "source-apiserver"
        ),
        "the replicas reach each other's artifact listener"
    );
}

#[test]
fn the_deployments_flags_start_the_server_with_the_generated_certificate() {
    let copy = deploy_copy();
    let deploy = copy.path().join("deploy");
    let (_, objects) = render(&deploy.join("overlays/self-signed"));
    let container = &find(&objects, "Deployment", "source-apiserver")["spec"]["template"]["spec"]["containers"]
        [0];
    let certs = deploy.join("overlays/self-signed/certs");
    std::fs::create_dir_all(&certs).unwrap();
    let secret = find(&objects, "Secret", "source-apiserver-tls");
    for key in ["tls.crt", "tls.key", "ca.crt"] {
        let pem = base64::engine::general_purpose::STANDARD
            .decode(secret["data"][key].as_str().unwrap())
            .unwrap();
        std::fs::write(certs.join(key), pem).unwrap();
    }
    let artifact_port = tools::free_port();
    let args: Vec<String> = container["args"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().to_string())
        // The harness sets the data dir and the HTTPS address itself.
        .filter(|a| a != "serve" && !a.starts_with("--data-dir=") && !a.starts_with("--listen="))
        .map(|a| {
            a.replace(
                "/etc/source-apiserver/serving",
                &certs.display().to_string(),
            )
            .replace(
                "--artifact-listen=0.0.0.0:8080",
                &format!("--artifact-listen=127.0.0.1:{artifact_port}"),
            )
        })
        .collect();
    let server = ApiServer::start(
        Path::new(env!("CARGO_BIN_EXE_source-apiserver")),
        ServerOptions {
            args,
            ..Default::default()
        },
    );
    let host = "source-apiserver.source-apiserver.svc";
    let port = server.addr().port();
    let out = Command::new(tools::require("curl"))
        .args(["-sS", "--fail", "--cacert"])
        .arg(certs.join("ca.crt"))
        .arg("--resolve")
        .arg(format!("{host}:{port}:127.0.0.1"))
        .arg(format!("https://{host}:{port}/readyz"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "readyz over the generated certificate: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        server.log()
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "ok");
    server.stop();
}

#[test]
fn the_deploy_and_e2e_scripts_pass_shellcheck() {
    let root = repo_root();
    let out = Command::new(tools::require("shellcheck"))
        .arg(root.join("deploy/gen-certs.sh"))
        .arg(root.join("tests/e2e/kind.sh"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

/// Without docker (here: a PATH holding only `dirname`) the kind e2e says so and succeeds.
#[test]
fn the_kind_e2e_skips_with_a_clear_line_where_docker_is_missing() {
    let bin = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(tools::require("dirname"), bin.path().join("dirname")).unwrap();
    let out = Command::new(tools::require("bash"))
        .arg(repo_root().join("tests/e2e/kind.sh"))
        .env("PATH", bin.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.starts_with("SKIP tests/e2e/kind.sh: docker is not installed"),
        "{stdout}"
    );
}
