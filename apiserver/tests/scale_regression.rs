//! Reconcile at scale, the CI-sized regression check of issue 14 (`bench/reconcile/` measures
//! the full-size figures by hand). It asserts counts, never times: 100 OCIRepositories over
//! [`ARTIFACTS`] distinct builds, against a real `docker-registry` whose log records every
//! request (method, path and user agent), and the real server binary at default flags.
//!
//! - content sharing: one manifest GET and one blob GET per distinct build, and exactly that
//!   many stored archives (files with distinct inodes) behind the 100 objects' paths, each
//!   object still served by its own `artifact` subresource;
//! - steady state: after the first reconciles, nothing but one `HEAD` of each object's own tag
//!   per interval (each object has a tag of its own, so the log tells objects apart).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::os::unix::fs::MetadataExt as _;
use std::path::Path;

use test_support::e2e::{download, eventually, jsonpath, sha256, sourcectl, testdata};
use test_support::kubectl::Kubectl;
use test_support::registry::{Registry, RegistryBuilder};
use test_support::server::{ApiServer, ServerOptions};

/// Objects created.
const OBJECTS: usize = 100;
/// Distinct builds they resolve to (one repository each).
const ARTIFACTS: usize = 5;
/// `spec.interval` in seconds: short, so that steady state is reached quickly.
const INTERVAL_SECS: u64 = 4;
/// HEADs (reconciles) per object observed, the first included.
const STEADY_RECONCILES: usize = 3;

/// One request of the server, from the registry's log.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Request {
    method: String,
    uri: String,
    /// When the registry answered it.
    at: jiff::Timestamp,
}

/// The requests made with the server's user agent (`source-apiserver/<version>`), in order.
fn server_requests(registry: &Registry) -> Vec<Request> {
    let field = |line: &str, name: &str| -> Option<String> {
        let start = line.find(&format!(" {name}="))? + name.len() + 2;
        let rest = &line[start..];
        let value = match rest.strip_prefix('"') {
            Some(quoted) => &quoted[..quoted.find('"')?],
            None => rest.split(' ').next()?,
        };
        Some(value.to_owned())
    };
    registry
        .logs()
        .lines()
        .filter(|l| l.contains("msg=\"response completed"))
        .filter(|l| {
            field(l, "http.request.useragent").is_some_and(|ua| ua.starts_with("source-apiserver/"))
        })
        .filter_map(|l| {
            Some(Request {
                method: field(l, "http.request.method")?,
                uri: field(l, "http.request.uri")?,
                at: field(&format!(" {l}"), "time")?.parse().ok()?,
            })
        })
        .collect()
}

fn repository(i: usize) -> String {
    format!("scale/app{}", i % ARTIFACTS)
}

/// Pushes [`ARTIFACTS`] artifacts, each a different revision of the same tree, and tags each
/// object's tag `o<i>` in its repository.
fn push_artifacts(registry: &Registry) {
    let tree = testdata("podinfo-kustomize");
    for a in 0..ARTIFACTS {
        let url = format!("{}:v1", registry.oci_url(&format!("scale/app{a}")));
        let revision = format!("v{a}@sha1:{a:040}");
        let tree = tree.to_str().expect("utf-8 path");
        sourcectl(&[
            "push",
            "artifact",
            &url,
            "--path",
            tree,
            "--source",
            "scale",
            "--revision",
            &revision,
            "--insecure-registry",
        ]);
        let tags: Vec<String> = (0..OBJECTS)
            .filter(|i| i % ARTIFACTS == a)
            .map(|i| format!("o{i}"))
            .collect();
        sourcectl(&[
            "tag",
            "artifact",
            &url,
            "--tag",
            &tags.join(","),
            "--insecure-registry",
        ]);
    }
}

fn manifests(registry: &Registry) -> String {
    (0..OBJECTS)
        .map(|i| {
            format!(
                "---\napiVersion: source.toolkit.fluxcd.io/v1\nkind: OCIRepository\nmetadata:\n  name: app-{i}\n  namespace: default\nspec:\n  interval: {INTERVAL_SECS}s\n  url: {}\n  insecure: true\n  ref:\n    tag: o{i}\n",
                registry.oci_url(&repository(i))
            )
        })
        .collect()
}

fn ready_count(k: &Kubectl) -> usize {
    let run = k.run(&[
        "get",
        "ocirepositories",
        "-o",
        r#"jsonpath={range .items[*]}{.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}"#,
    ]);
    run.stdout.lines().filter(|l| *l == "True").count()
}

/// The stored archives: object name → (inode, file name) of its `<hex>.tar.gz`.
fn stored_archives(data_dir: &Path) -> BTreeMap<String, (u64, String)> {
    let root = data_dir.join("artifacts/ocirepository/default");
    let mut out = BTreeMap::new();
    for object in std::fs::read_dir(&root).expect("artifact directory") {
        let object = object.unwrap();
        for file in std::fs::read_dir(object.path()).unwrap() {
            let file = file.unwrap();
            let name = file.file_name().to_string_lossy().into_owned();
            if name.ends_with(".tar.gz") && name != "latest.tar.gz" {
                let ino = std::fs::metadata(file.path()).unwrap().ino();
                let key = object.file_name().to_string_lossy().into_owned();
                assert!(
                    out.insert(key, (ino, name)).is_none(),
                    "one archive per object"
                );
            }
        }
    }
    out
}

#[test]
fn objects_over_few_artifacts_share_builds_and_steady_state_is_one_head_per_interval() {
    let registry = RegistryBuilder::new().start();
    push_artifacts(&registry);
    let pushed = server_requests(&registry).len();
    assert_eq!(pushed, 0, "sourcectl has its own user agent");
    let server = ApiServer::start(
        Path::new(env!("CARGO_BIN_EXE_source-apiserver")),
        ServerOptions::default(),
    );
    let k = Kubectl::for_server(&server);
    k.run_with(&["create", "-f", "-"], Some(&manifests(&registry)), &[])
        .ok();
    eventually(
        "all objects Ready",
        || (ready_count(&k) == OBJECTS).then_some(()),
        || server.log(),
    );

    // Content sharing: one pull per distinct build, one stored archive per build.
    let requests = server_requests(&registry);
    let gets: Vec<&Request> = requests.iter().filter(|r| r.method == "GET").collect();
    let count = |part: &str| gets.iter().filter(|r| r.uri.contains(part)).count();
    let distinct: BTreeSet<&str> = gets.iter().map(|r| r.uri.as_str()).collect();
    assert_eq!(
        (count("/manifests/"), count("/blobs/"), distinct.len()),
        (ARTIFACTS, ARTIFACTS, 2 * ARTIFACTS),
        "one manifest GET and one blob GET per distinct build, none repeated: {gets:#?}"
    );
    let archives = stored_archives(&server.data_dir());
    assert_eq!(archives.len(), OBJECTS, "every object has its archive");
    let inodes: BTreeSet<u64> = archives.values().map(|(ino, _)| *ino).collect();
    assert_eq!(inodes.len(), ARTIFACTS, "one stored archive per build");
    for name in ["app-0", "app-5", "app-99"] {
        let digest = jsonpath(&k, name, "{.status.artifact.digest}");
        assert_eq!(
            sha256(&download(&k, "v1", name)),
            digest,
            "{name} is served"
        );
    }

    // Steady state: only HEADs of each object's own tag, never two within one interval.
    let heads = |requests: &[Request]| -> HashMap<String, Vec<jiff::Timestamp>> {
        let mut per_tag: HashMap<String, Vec<jiff::Timestamp>> = HashMap::new();
        for r in requests.iter().filter(|r| r.method == "HEAD") {
            let tag = r.uri.rsplit('/').next().unwrap_or_default().to_owned();
            per_tag.entry(tag).or_default().push(r.at);
        }
        per_tag
    };
    let steady = eventually(
        "every object reconciled again",
        || {
            let requests = server_requests(&registry);
            let per_tag = heads(&requests);
            let done = (0..OBJECTS)
                .all(|i| per_tag.get(&format!("o{i}")).map_or(0, Vec::len) >= STEADY_RECONCILES);
            done.then_some(requests)
        },
        || format!("{:?}", heads(&server_requests(&registry))),
    );
    let others: Vec<&Request> = steady[requests.len()..]
        .iter()
        .filter(|r| r.method != "HEAD")
        .collect();
    assert!(
        others.is_empty(),
        "nothing but HEADs in steady state: {others:#?}"
    );
    let per_tag = heads(&steady);
    assert_eq!(
        per_tag.len(),
        OBJECTS,
        "only the objects' own tags: {per_tag:?}"
    );
    // One request per object per interval: consecutive HEADs of one object are at least the
    // interval apart, less its 5 % jitter and a margin (load only makes them further apart).
    let shortest = jiff::SignedDuration::from_millis(INTERVAL_SECS as i64 * 900);
    for (tag, times) in &per_tag {
        for pair in times.windows(2) {
            let gap = pair[1].duration_since(pair[0]);
            assert!(
                gap >= shortest,
                "{tag}: two HEADs {gap:?} apart, within one interval of {INTERVAL_SECS} s: {times:?}"
            );
        }
    }
}
