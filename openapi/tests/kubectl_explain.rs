//! `kubectl explain` (the real kubectl) reads our discovery and OpenAPI v3 documents and shows
//! Flux's field docs. A minimal loopback HTTP server serves the generated documents.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;

use openapi::{Version, openapi_v3, openapi_v3_discovery};

struct Docs {
    routes: Vec<(String, Vec<u8>)>,
}

impl Docs {
    fn new() -> Docs {
        let mut routes = vec![
            (
                "/api".to_owned(),
                serde_json::json!({"kind": "APIVersions", "versions": []}),
            ),
            ("/apis".to_owned(), openapi::api_group_list()),
            (format!("/apis/{}", openapi::GROUP), openapi::api_group()),
        ];
        let mut hashes = Vec::new();
        for v in Version::ALL {
            routes.push((
                format!("/apis/{}/{v}", openapi::GROUP),
                openapi::api_resource_list(v),
            ));
            let doc = openapi_v3(v);
            // Any stable token works as the hash for this test.
            hashes.push((v, format!("{:X}", doc.to_string().len())));
            routes.push((format!("/openapi/v3/apis/{}/{v}", openapi::GROUP), doc));
        }
        routes.push(("/openapi/v3".to_owned(), openapi_v3_discovery(&hashes)));
        Docs {
            routes: routes
                .into_iter()
                .map(|(p, v)| (p, serde_json::to_vec(&v).unwrap()))
                .collect(),
        }
    }

    fn serve(&self, stream: TcpStream) {
        let mut reader = BufReader::new(stream.try_clone().unwrap());
        let mut stream = stream;
        loop {
            let mut request_line = String::new();
            if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
                return;
            }
            loop {
                let mut header = String::new();
                if reader.read_line(&mut header).unwrap_or(0) == 0 || header == "\r\n" {
                    break;
                }
            }
            let path = request_line
                .split_whitespace()
                .nth(1)
                .unwrap_or("/")
                .split('?')
                .next()
                .unwrap_or("/")
                .to_owned();
            let response = match self.routes.iter().find(|(p, _)| *p == path) {
                Some((_, body)) => {
                    let mut r = format!("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n", body.len()).into_bytes();
                    r.extend_from_slice(body);
                    r
                }
                None => b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n".to_vec(),
            };
            if stream.write_all(&response).is_err() {
                return;
            }
        }
    }
}

/// The machine's `kubectl` plus the versioned `kubectl.1.NN` builds beside it (1.27+ read
/// OpenAPI v3 for `explain`).
fn kubectls() -> Vec<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let kubectl = std::env::split_paths(&path)
        .map(|d| d.join("kubectl"))
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("kubectl not found on PATH: run scripts/setup.sh"));
    let mut all = vec![kubectl.clone()];
    if let Some(dir) = kubectl.parent() {
        let mut versioned: Vec<PathBuf> = std::fs::read_dir(dir)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .filter(|p| {
                p.file_name().and_then(|n| n.to_str()).is_some_and(|n| {
                    n.strip_prefix("kubectl.1.")
                        .and_then(|minor| minor.parse::<u32>().ok())
                        .is_some_and(|minor| minor >= 27)
                })
            })
            .collect();
        versioned.sort();
        all.extend(versioned);
    }
    all
}

fn explain(kubectl: &PathBuf, home: &std::path::Path, server: &str, args: &[&str]) -> String {
    let kubeconfig = home.join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!("apiVersion: v1\nkind: Config\nclusters: [{{name: c, cluster: {{server: \"{server}\"}}}}]\ncontexts: [{{name: c, context: {{cluster: c, user: u}}}}]\nusers: [{{name: u, user: {{}}}}]\ncurrent-context: c\n"),
    )
    .unwrap();
    let out = Command::new(kubectl)
        .arg("explain")
        .args(args)
        .env("KUBECONFIG", &kubeconfig)
        .env("HOME", home)
        .output()
        .expect("run kubectl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "kubectl explain {args:?} failed:\n{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

#[test]
fn kubectl_explain_shows_flux_field_docs() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let server = format!("http://{}", listener.local_addr().unwrap());
    let docs = Arc::new(Docs::new());
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let docs = docs.clone();
            std::thread::spawn(move || docs.serve(stream));
        }
    });
    for kubectl in kubectls() {
        let home = tempfile::tempdir().unwrap();
        let name = kubectl.display().to_string();
        let text = explain(&kubectl, home.path(), &server, &["ocirepository.spec.ref"]);
        assert!(text.contains("KIND:       OCIRepository"), "{name}: {text}");
        assert!(text.contains("VERSION:    v1"), "{name}: {text}");
        assert!(text.contains("semverFilter"), "{name}: {text}");
        assert!(
            text.contains("takes precedence over SemVer"),
            "{name}: {text}"
        );

        let args = ["hc.spec", "--api-version=source.toolkit.fluxcd.io/v1beta2"];
        let text = explain(&kubectl, home.path(), &server, &args);
        assert!(text.contains("valuesFile\t<string>"), "{name}: {text}");

        let args = ["helmrepositories.metadata.managedFields"];
        let text = explain(&kubectl, home.path(), &server, &args);
        assert!(text.contains("ManagedFieldsEntry"), "{name}: {text}");
    }
}
