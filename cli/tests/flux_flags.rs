//! Flux's artifact flags through the real binary and a real registry: `--path -` (stdin),
//! `--resolve-symlinks`, `push --debug`, `--provider`, `list artifacts -o json|yaml`,
//! `pull --output` creating its directory, and progress only on a terminal past 4 MiB.

mod common;

use std::io::Write;
use std::os::unix::fs::symlink;
use std::path::Path;
use std::process::{Command, Stdio};

use common::{Run, files, push, run_tool, sourcectl, sourcectl_cmd, testdata};
use test_support::registry::RegistryBuilder;

/// Runs `sourcectl args...` with `stdin` piped in.
fn sourcectl_with_stdin(args: &[&str], stdin: &[u8]) -> Run {
    let docker_config = tempfile::tempdir().unwrap();
    let mut child = sourcectl_cmd(docker_config.path())
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run sourcectl");
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    child.wait_with_output().unwrap().into()
}

fn pull(url: &str, out: &Path) -> Run {
    sourcectl(&[
        "pull",
        "artifact",
        url,
        "--output",
        out.to_str().unwrap(),
        "--insecure-registry",
    ])
}

const PUSH_FLAGS: [&str; 5] = [
    "--source",
    "https://example.com/app.git",
    "--revision",
    "main@sha1:0123456789abcdef",
    "--insecure-registry",
];

#[test]
fn push_and_build_read_stdin_into_main_yaml() {
    let registry = RegistryBuilder::new().start();
    let url = format!("{}:v1", registry.oci_url("stdin/app"));
    let manifests = b"apiVersion: v1\nkind: Namespace\n---\nkind: ConfigMap\r\n\n\n";
    let mut args = vec!["push", "artifact", url.as_str(), "--path", "-"];
    args.extend(PUSH_FLAGS);
    sourcectl_with_stdin(&args, manifests).ok();

    let out = tempfile::tempdir().unwrap();
    pull(&url, out.path()).ok();
    let pulled = files(out.path());
    assert_eq!(
        pulled.keys().collect::<Vec<_>>(),
        ["main.yaml"],
        "stdin is the artifact's one file"
    );
    assert_eq!(
        pulled["main.yaml"], b"apiVersion: v1\nkind: Namespace\n---\nkind: ConfigMap",
        "trailing newlines are trimmed"
    );

    let tgz = out.path().join("artifact.tgz");
    let run = sourcectl_with_stdin(
        &[
            "build",
            "artifact",
            "--path",
            "-",
            "--output",
            tgz.to_str().unwrap(),
        ],
        manifests,
    )
    .ok();
    assert!(
        run.stderr.contains("✔ artifact created at "),
        "{}",
        run.stderr
    );
    let listing = run_tool(Command::new("tar").arg("-tzf").arg(&tgz));
    assert_eq!(listing.lines().collect::<Vec<_>>(), [".", "main.yaml"]);
}

#[test]
fn pull_creates_the_output_directory_and_keeps_entries_inside_it() {
    let registry = RegistryBuilder::new().start();
    let url = format!("{}:v1", registry.oci_url("pull/app"));
    let src = testdata("podinfo-kustomize");
    push(&url, &src, &[]);

    // The README's example: `--output ./podinfo` that does not exist yet, here two levels deep.
    let base = tempfile::tempdir().unwrap();
    let out = base.path().join("podinfo/deploy");
    let run = pull(&url, &out).ok();
    assert!(
        run.stderr.contains(&format!(
            "✔ artifact content extracted to {}",
            out.display()
        )),
        "{}",
        run.stderr
    );
    assert_eq!(files(&out), files(&src));

    // A path below a regular file cannot be created.
    let file = base.path().join("file");
    std::fs::write(&file, "x").unwrap();
    let run = pull(&url, &file.join("sub")).failed();
    assert!(
        run.stderr.contains(&format!(
            "✗ invalid output path \"{}\"",
            file.join("sub").display()
        )),
        "{}",
        run.stderr
    );

    // An artifact whose entry climbs out with `..` is refused; nothing lands outside.
    let evil = format!("{}/pull/evil:v1", registry.host());
    push_tar_with_skopeo(&evil, "../escape.yaml");
    let out = base.path().join("evil/out");
    let run = pull(&format!("oci://{evil}"), &out).failed();
    assert!(run.stderr.contains(".."), "{}", run.stderr);
    assert!(!base.path().join("evil/escape.yaml").exists());
    assert!(!out.join("escape.yaml").exists());
}

/// Pushes, with skopeo from an OCI layout, an image whose one layer is a tar+gzip holding a
/// file named `entry` (which our own tools would never write).
fn push_tar_with_skopeo(reference: &str, entry: &str) {
    let skopeo = test_support::tools::require("skopeo");
    let layout = tempfile::tempdir().unwrap();
    let script = r#"
import gzip, hashlib, io, json, os, sys, tarfile
layout, entry = sys.argv[1], sys.argv[2]
os.makedirs(os.path.join(layout, "blobs/sha256"))
def put(data):
    h = hashlib.sha256(data).hexdigest()
    open(os.path.join(layout, "blobs/sha256", h), "wb").write(data)
    return {"digest": "sha256:" + h, "size": len(data)}
raw = io.BytesIO()
with tarfile.open(fileobj=raw, mode="w") as t:
    info = tarfile.TarInfo(entry); body = b"escaped: true\n"; info.size = len(body)
    t.addfile(info, io.BytesIO(body))
layer = dict(mediaType="application/vnd.cncf.flux.content.v1.tar+gzip", **put(gzip.compress(raw.getvalue())))
config = dict(mediaType="application/vnd.cncf.flux.config.v1+json", **put(b"{}"))
manifest = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json", "config": config, "layers": [layer]}).encode()
m = dict(mediaType="application/vnd.oci.image.manifest.v1+json", annotations={"org.opencontainers.image.ref.name": "v1"}, **put(manifest))
json.dump({"schemaVersion": 2, "manifests": [m]}, open(os.path.join(layout, "index.json"), "w"))
open(os.path.join(layout, "oci-layout"), "w").write('{"imageLayoutVersion":"1.0.0"}')
"#;
    let dir = layout.path().join("layout");
    run_tool(
        Command::new("python3")
            .args(["-c", script])
            .arg(&dir)
            .arg(entry),
    );
    run_tool(Command::new(skopeo).args([
        "copy",
        "--quiet",
        "--dest-tls-verify=false",
        &format!("oci:{}:v1", dir.display()),
        &format!("docker://{reference}"),
    ]));
}

#[test]
fn resolve_symlinks_copies_link_targets_into_the_artifact() {
    let registry = RegistryBuilder::new().start();
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("shared.yaml"), "shared: true").unwrap();
    std::fs::create_dir(outside.path().join("base")).unwrap();
    std::fs::write(
        outside.path().join("base/kustomization.yaml"),
        "resources: []",
    )
    .unwrap();
    let src = tempfile::tempdir().unwrap();
    std::fs::write(src.path().join("own.yaml"), "own: true").unwrap();
    symlink(
        outside.path().join("shared.yaml"),
        src.path().join("shared.yaml"),
    )
    .unwrap();
    symlink(outside.path().join("base"), src.path().join("base")).unwrap();
    symlink(src.path(), src.path().join("loop")).unwrap();

    let plain = format!("{}:plain", registry.oci_url("links/app"));
    push(&plain, src.path(), &[]);
    let out = tempfile::tempdir().unwrap();
    pull(&plain, out.path()).ok();
    assert_eq!(
        files(out.path()).keys().collect::<Vec<_>>(),
        ["own.yaml"],
        "without the flag symlinks are left out"
    );

    let resolved = format!("{}:resolved", registry.oci_url("links/app"));
    push(&resolved, src.path(), &["--resolve-symlinks"]);
    let out = tempfile::tempdir().unwrap();
    pull(&resolved, out.path()).ok();
    let pulled = files(out.path());
    assert_eq!(
        pulled.keys().collect::<Vec<_>>(),
        ["base/kustomization.yaml", "own.yaml", "shared.yaml"],
        "link targets are copied in; the loop back to the root is cut"
    );
    assert_eq!(pulled["shared.yaml"], b"shared: true");

    let tgz = out.path().join("built.tgz");
    sourcectl(&[
        "build",
        "artifact",
        "--path",
        src.path().to_str().unwrap(),
        "--output",
        tgz.to_str().unwrap(),
        "--resolve-symlinks",
    ])
    .ok();
    let listing = run_tool(Command::new("tar").arg("-tzf").arg(&tgz));
    assert!(listing.lines().any(|l| l == "shared.yaml"), "{listing}");
    assert!(
        listing.lines().any(|l| l == "base/kustomization.yaml"),
        "{listing}"
    );
}

#[test]
fn push_debug_shows_the_registry_client_logs() {
    let registry = RegistryBuilder::new().start();
    let url = format!("{}:v1", registry.oci_url("debug/app"));
    let src = testdata("podinfo-kustomize");
    let run = |extra: &[&str]| {
        let mut args = vec!["push", "artifact", url.as_str(), "--path"];
        args.push(src.to_str().unwrap());
        args.extend(PUSH_FLAGS);
        args.extend_from_slice(extra);
        sourcectl(&args).ok()
    };
    let quiet = run(&[]);
    assert!(
        !quiet.stderr.contains("registry request"),
        "{}",
        quiet.stderr
    );
    let debug = run(&["--debug"]);
    assert!(
        debug.stderr.contains("DEBUG") && debug.stderr.contains("registry request"),
        "{}",
        debug.stderr
    );
}

#[test]
fn cloud_providers_are_refused_with_a_message_before_any_request() {
    let registry = RegistryBuilder::new().start();
    let url = format!("{}:v1", registry.oci_url("provider/app"));
    let src = testdata("podinfo-kustomize");
    let src = src.to_str().unwrap();
    let out = tempfile::tempdir().unwrap();
    let out = out.path().to_str().unwrap();
    let repository = format!("{}/provider/app", registry.host());
    let repository_url = registry.oci_url("provider/app");
    for provider in ["aws", "azure", "gcp"] {
        let mut push_args = vec!["push", "artifact", url.as_str(), "--path", src];
        push_args.extend(&PUSH_FLAGS[..4]);
        let commands: [Vec<&str>; 5] = [
            push_args,
            vec!["pull", "artifact", &url, "--output", out],
            vec!["tag", "artifact", &url, "--tag", "v2"],
            vec!["list", "artifacts", &repository_url],
            vec!["diff", "artifact", &url, "--path", src],
        ];
        for mut args in commands {
            args.extend(["--provider", provider, "--insecure-registry"]);
            let run = sourcectl(&args).failed();
            assert!(
                run.stderr
                    .contains("► logging in to registry with provider credentials")
                    && run.stderr.contains(&format!(
                        "✗ error during login with provider: could not login to provider \
                         {provider} with url {repository}: cloud provider authentication is \
                         not implemented"
                    )),
                "{args:?}: {}",
                run.stderr
            );
        }
    }
    assert!(
        !registry.logs().contains("/v2/provider/app"),
        "no request reached the registry:\n{}",
        registry.logs()
    );
    push(&url, Path::new(src), &["--provider", "generic"]);
    let run = sourcectl(&["list", "artifacts", &repository_url, "--provider", "oracle"]).failed();
    assert!(
        run.stderr
            .contains("possible values: generic, aws, azure, gcp"),
        "{}",
        run.stderr
    );
}

#[test]
fn list_artifacts_prints_flux_metadata_as_json_and_yaml() {
    let registry = RegistryBuilder::new().start();
    let src = testdata("podinfo-kustomize");
    let repo = registry.oci_url("list/app");
    // `created` is the manifest's annotation: the epoch with --reproducible, or as given.
    let v1 = push(&format!("{repo}:v1.0.0"), &src, &["--reproducible"]);
    let v2 = push(
        &format!("{repo}:v2.0.0"),
        &src,
        &[
            "-a",
            "org.opencontainers.image.created=2026-11-26T03:00:00Z",
        ],
    );
    let host = registry.host();

    let run = sourcectl(&[
        "list",
        "artifacts",
        &repo,
        "--insecure-registry",
        "-o",
        "json",
    ])
    .ok();
    let expected = format!(
        r#"[
  {{
    "created": "2026-11-26T03:00:00Z",
    "source_url": "https://github.com/stefanprodan/podinfo",
    "source_revision": "6.5.0@sha1:0123456789abcdef0123456789abcdef01234567",
    "digest": "{v2}",
    "url": "{host}/list/app:v2.0.0"
  }},
  {{
    "created": "1970-01-01T00:00:00Z",
    "source_url": "https://github.com/stefanprodan/podinfo",
    "source_revision": "6.5.0@sha1:0123456789abcdef0123456789abcdef01234567",
    "digest": "{v1}",
    "url": "{host}/list/app:v1.0.0"
  }}
]
"#
    );
    assert_eq!(run.stdout, expected);

    let run = sourcectl(&[
        "list",
        "artifacts",
        &repo,
        "--insecure-registry",
        "-o",
        "yaml",
        "--filter-semver",
        "<2.0.0",
    ])
    .ok();
    assert_eq!(
        run.stdout,
        format!(
            "- created: \"1970-01-01T00:00:00Z\"\n  digest: {v1}\n  source_revision: 6.5.0@sha1:0123456789abcdef0123456789abcdef01234567\n  \
             source_url: https://github.com/stefanprodan/podinfo\n  url: {host}/list/app:v1.0.0\n"
        )
    );
}

/// `sourcectl args...` on a pseudo-terminal (util-linux `script`); returns what was drawn.
fn on_a_terminal(args: &[&str]) -> String {
    let docker_config = tempfile::tempdir().unwrap();
    let command = std::iter::once(env!("CARGO_BIN_EXE_sourcectl"))
        .chain(args.iter().copied())
        .map(|a| format!("'{a}'"))
        .collect::<Vec<_>>()
        .join(" ");
    let out = Command::new(test_support::tools::require("script"))
        .args(["--quiet", "--return", "--command", &command, "/dev/null"])
        .env("DOCKER_CONFIG", docker_config.path())
        .env("TERM", "xterm")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .output()
        .expect("run script");
    let drawn = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{drawn}");
    drawn
}

/// Deterministic incompressible bytes (xorshift), so the layer is as large as the file.
fn noise(len: usize) -> Vec<u8> {
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

#[test]
fn progress_is_drawn_only_on_a_terminal_and_only_past_4_mib() {
    let registry = RegistryBuilder::new().start();
    let big = tempfile::tempdir().unwrap();
    std::fs::write(big.path().join("data.bin"), noise(6 << 20)).unwrap();
    let small = testdata("podinfo-kustomize");
    let rate = "B/s)";

    // Piped stderr: status lines only, however large the transfer.
    let url = format!("{}:piped", registry.oci_url("progress/big"));
    let mut args = vec!["push", "artifact", url.as_str(), "--path"];
    args.push(big.path().to_str().unwrap());
    args.extend(PUSH_FLAGS);
    let run = sourcectl(&args).ok();
    assert!(
        !run.stderr.contains(rate) && !run.stderr.contains('\r') && !run.stderr.contains('\x1b'),
        "{:?}",
        run.stderr
    );
    let out = tempfile::tempdir().unwrap();
    let run = pull(&url, out.path()).ok();
    assert!(!run.stderr.contains(rate), "{:?}", run.stderr);

    // A terminal and 6 MiB: the indicator is drawn, for the push and for the pull.
    let url = format!("{}:tty", registry.oci_url("progress/big"));
    let mut args = vec!["push", "artifact", url.as_str(), "--path"];
    args.push(big.path().to_str().unwrap());
    args.extend(PUSH_FLAGS);
    let drawn = on_a_terminal(&args);
    assert!(
        drawn.contains("pushing ") && drawn.contains(rate),
        "{drawn:?}"
    );
    let out = tempfile::tempdir().unwrap();
    let out = out.path().join("big");
    let drawn = on_a_terminal(&[
        "pull",
        "artifact",
        &url,
        "--output",
        out.to_str().unwrap(),
        "--insecure-registry",
    ]);
    assert!(
        drawn.contains("pulling ") && drawn.contains(rate),
        "{drawn:?}"
    );

    // A terminal and a small tree: nothing but the status lines.
    let url = format!("{}:tty", registry.oci_url("progress/small"));
    let mut args = vec!["push", "artifact", url.as_str(), "--path"];
    args.push(small.to_str().unwrap());
    args.extend(PUSH_FLAGS);
    let drawn = on_a_terminal(&args);
    assert!(
        drawn.contains("✔ artifact successfully pushed"),
        "{drawn:?}"
    );
    assert!(!drawn.contains(rate), "{drawn:?}");
}
