//! The remote half of an OCIRepository reconcile: reference resolution (digest > semver > tag >
//! `latest`, one HEAD for a tag), and the pull of one layer streamed into the artifact store
//! (extracted safely and re-archived, or copied).
//!
//! Failures are [`Failure`]s carrying Flux's condition type, reason and message
//! (`flux-source-controller.md` §2.4, §2.5).

use std::collections::BTreeMap;
use std::io::{self, BufWriter, Read, Write};
use std::path::PathBuf;

use futures::StreamExt as _;
use openapi::conditions::reasons;
use openapi::v1::OCIRepository;
use registry::manifest::{ImageManifest, Manifest};
use registry::{Client, Descriptor, Digest, Reference};
use storage::{ArtifactStore, StoredArtifact};

/// Media type of Helm chart layers: semver tags use `_` for `+` (Helm's encoding).
const HELM_CHART_CONTENT: &str = registry::manifest::media_types::HELM_CHART_CONTENT;

/// Which condition a failure sets, and whether retrying can help.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum FailureKind {
    /// `Stalled=True`: the spec must change first; no retry.
    Stalled,
    /// `FetchFailed=True`: retried with backoff.
    Fetch,
    /// `StorageOperationFailed=True`: retried with backoff.
    Storage,
    /// `SourceVerified=False`: retried with backoff.
    Verify,
}

/// A failed step: condition kind, Flux reason and message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Failure {
    pub(crate) kind: FailureKind,
    pub(crate) reason: &'static str,
    pub(crate) message: String,
}

impl Failure {
    pub(crate) fn fetch(reason: &'static str, message: impl Into<String>) -> Self {
        Self {
            kind: FailureKind::Fetch,
            reason,
            message: message.into(),
        }
    }
    pub(crate) fn stalled(reason: &'static str, message: impl Into<String>) -> Self {
        Self {
            kind: FailureKind::Stalled,
            reason,
            message: message.into(),
        }
    }
    pub(crate) fn storage(reason: &'static str, message: impl Into<String>) -> Self {
        Self {
            kind: FailureKind::Storage,
            reason,
            message: message.into(),
        }
    }
}

/// An error chain as one line: `outer: cause: cause`.
pub(crate) fn chain(err: &dyn std::error::Error) -> String {
    let mut s = err.to_string();
    let mut source = err.source();
    while let Some(e) = source {
        let text = e.to_string();
        if !s.contains(&text) {
            s.push_str(": ");
            s.push_str(&text);
        }
        source = e.source();
    }
    s
}

/// The repository of `spec.url`, refusing tags and digests in the URL (Flux:
/// "URL must not contain a tag").
pub(crate) fn repository(url: &str) -> Result<Reference, Failure> {
    let invalid = |m: String| {
        Failure::stalled(
            reasons::URL_INVALID,
            format!("URL validation failed for '{url}': {m}"),
        )
    };
    if !url.starts_with(openapi::v1::OCI_REPOSITORY_PREFIX) {
        return Err(invalid(
            "URL must be in format 'oci://<domain>/<org>/<repo>'".into(),
        ));
    }
    let reference: Reference = url
        .parse()
        .map_err(|e: registry::reference::Error| invalid(e.to_string()))?;
    if let Some(tag) = &reference.tag {
        return Err(invalid(format!(
            "URL must not contain a tag; remove ':{tag}'"
        )));
    }
    if reference.digest.is_some() {
        return Err(invalid("URL must not contain a digest".into()));
    }
    Ok(reference)
}

fn client_failure(
    default_reason: &'static str,
    prefix: String,
    e: &registry::client::Error,
) -> Failure {
    let reason = if e.is_auth() || matches!(e, registry::client::Error::Tls { .. }) {
        reasons::AUTHENTICATION_FAILED
    } else {
        default_reason
    };
    Failure::fetch(reason, format!("{prefix}: {}", chain(e)))
}

/// The resolved artifact: revision (`<tag>@sha256:<hex>` or `sha256:<hex>`) and the
/// digest reference to pull.
#[derive(Clone, Debug)]
pub(crate) struct Resolved {
    pub(crate) revision: String,
    pub(crate) pull: Reference,
}

/// Resolves `spec.ref` in `repo`: a digest needs no request, a semver lists the tags, and the
/// chosen tag is resolved with one HEAD.
pub(crate) async fn resolve(
    client: &Client,
    repo: &Reference,
    obj: &OCIRepository,
) -> Result<Resolved, Failure> {
    let url = &obj.spec.url;
    let r = obj.spec.reference.clone().unwrap_or_default();
    let tag_failure = |m: String| {
        Failure::fetch(
            reasons::READ_OPERATION_FAILED,
            format!("failed to determine the artifact tag for '{url}': {m}"),
        )
    };
    if let Some(d) = r.digest.as_deref().filter(|d| !d.is_empty()) {
        let digest: Digest = d
            .parse()
            .map_err(|e: registry::digest::Error| tag_failure(e.to_string()))?;
        return Ok(Resolved {
            revision: digest.to_string(),
            pull: repo.with_digest(digest),
        });
    }
    let tag = if let Some(expr) = r.semver.as_deref().filter(|s| !s.is_empty()) {
        let tags = client.list_tags(repo).await.map_err(|e| {
            let mut f = client_failure(
                reasons::READ_OPERATION_FAILED,
                format!("failed to determine the artifact tag for '{url}'"),
                &e,
            );
            if f.reason == reasons::READ_OPERATION_FAILED {
                f.message = format!(
                    "failed to determine the artifact tag for '{url}': {}",
                    chain(&e)
                );
            }
            f
        })?;
        let helm = obj
            .spec
            .layer_selector
            .as_ref()
            .and_then(|l| l.media_type.as_deref())
            == Some(HELM_CHART_CONTENT);
        select_semver(&tags, expr, r.semver_filter.as_deref(), helm).map_err(tag_failure)?
    } else {
        r.tag
            .filter(|t| !t.is_empty())
            .unwrap_or_else(|| "latest".to_owned())
    };
    let tagged = repo.with_tag(&tag);
    let descriptor = client.resolve(&tagged).await.map_err(|e| {
        client_failure(
            reasons::OCI_PULL_FAILED,
            "failed to determine artifact digest".into(),
            &e,
        )
    })?;
    Ok(Resolved {
        revision: format!("{tag}@{}", descriptor.digest),
        pull: repo.with_digest(descriptor.digest),
    })
}

/// Flux's `getTagBySemver`: filter tags by the regular expression, keep those that parse as
/// three-part versions within the constraint, return the highest (its original spelling).
pub(crate) fn select_semver(
    tags: &[String],
    expr: &str,
    filter: Option<&str>,
    helm: bool,
) -> Result<String, String> {
    let filter = match filter.filter(|f| !f.is_empty()) {
        Some(f) => Some(regex::Regex::new(f).map_err(|e| format!("failed to filter tags: {e}"))?),
        None => None,
    };
    let constraint: openapi::SemverConstraint = expr
        .parse()
        .map_err(|e| format!("semver '{expr}' parse error: {e}"))?;
    let mut best: Option<(semver::Version, &String)> = None;
    for tag in tags {
        if let Some(f) = &filter
            && !f.is_match(tag)
        {
            continue;
        }
        let text = if helm {
            tag.replace('_', "+")
        } else {
            tag.clone()
        };
        let Some(v) = openapi::semver_constraint::parse_flux_version(&text) else {
            continue;
        };
        if !constraint.matches(&v) {
            continue;
        }
        let better = match &best {
            None => true,
            Some((b, _)) => {
                v.cmp_precedence(b).then_with(|| v.cmp(b)) == std::cmp::Ordering::Greater
            }
        };
        if better {
            best = Some((v, tag));
        }
    }
    best.map(|(_, t)| t.clone())
        .ok_or_else(|| format!("no match found for semver: {expr}"))
}

/// Limits and places for a pull.
#[derive(Clone, Debug)]
pub(crate) struct PullSettings {
    pub(crate) limits: registry::Limits,
    /// Where extraction directories are created (inside the data directory).
    pub(crate) scratch: PathBuf,
    pub(crate) deadline: tokio::time::Instant,
}

/// A stored artifact with the manifest annotations.
#[derive(Debug)]
pub(crate) struct Pulled {
    pub(crate) stored: StoredArtifact,
    pub(crate) annotations: Option<BTreeMap<String, String>>,
}

/// Fetches the manifest of `resolved.pull`, selects the layer, and streams it into `store`
/// under `ocirepository/<ns>/<name>/<hex>.tar.gz`.
pub(crate) async fn pull(
    client: &Client,
    resolved: &Resolved,
    obj: &OCIRepository,
    store: &ArtifactStore,
    settings: &PullSettings,
) -> Result<Pulled, Failure> {
    let url = &obj.spec.url;
    let pull_failure = |e: &registry::client::Error| {
        client_failure(
            reasons::OCI_PULL_FAILED,
            format!("failed to pull artifact from '{url}'"),
            e,
        )
    };
    let (manifest, _, _) = client
        .get_manifest(&resolved.pull)
        .await
        .map_err(|e| pull_failure(&e))?;
    let image = image_manifest(client, &resolved.pull, manifest)
        .await
        .map_err(|e| match e {
            Ok(f) => f,
            Err(e) => pull_failure(&e),
        })?;
    let layer_failure = |m: String| Failure::fetch(reasons::OCI_LAYER_OPERATION_FAILED, m);
    let selector = obj.spec.layer_selector.clone().unwrap_or_default();
    let layer: Descriptor = match selector.media_type.as_deref().filter(|m| !m.is_empty()) {
        Some(mt) => image
            .layers
            .iter()
            .find(|l| l.media_type == mt)
            .cloned()
            .ok_or_else(|| {
                layer_failure(format!(
                    "failed to find layer with media type '{mt}' in artifact"
                ))
            })?,
        None => image
            .layers
            .first()
            .cloned()
            .ok_or_else(|| layer_failure("no layers found in artifact".into()))?,
    };
    if layer.size > settings.limits.max_size_bytes {
        return Err(layer_failure(format!(
            "layer {} is {} bytes, over the artifact size limit of {} bytes (--artifact-max-size)",
            layer.digest, layer.size, settings.limits.max_size_bytes
        )));
    }
    let blob = client
        .get_blob(&resolved.pull, &layer)
        .await
        .map_err(|e| pull_failure(&e))?;
    let deadline = settings.deadline;
    let bounded = futures::stream::unfold(Some(blob), move |state| async move {
        let mut blob = state?;
        match tokio::time::timeout_at(deadline, blob.next()).await {
            Ok(Some(Ok(bytes))) => Some((Ok(bytes), Some(blob))),
            Ok(Some(Err(e))) => Some((Err(io::Error::other(chain(&e))), None)),
            Ok(None) => None,
            Err(_) => Some((
                Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "timeout reached while downloading the layer",
                )),
                None,
            )),
        }
    });
    let reader =
        tokio_util::io::SyncIoBridge::new(tokio_util::io::StreamReader::new(Box::pin(bounded)));
    let ns = obj
        .metadata
        .namespace
        .clone()
        .unwrap_or_else(|| "default".into());
    let name = obj.metadata.name.clone().unwrap_or_default();
    let hex_name = resolved
        .pull
        .digest
        .as_ref()
        .map_or_else(|| layer.digest.hex().to_owned(), |d| d.hex().to_owned());
    let file_name = format!("{hex_name}.tar.gz");
    let copy = selector.operation_or_default() == "copy";
    let ignore = obj.spec.ignore.clone();
    let store = store.clone();
    let settings = settings.clone();
    let span = tracing::Span::current();
    let stored = tokio::task::spawn_blocking(move || {
        let _enter = span.enter();
        if copy {
            copy_layer(
                reader,
                &store,
                &ns,
                &name,
                &file_name,
                settings.limits.max_size_bytes,
            )
        } else {
            extract_layer(
                reader,
                &store,
                &ns,
                &name,
                &file_name,
                &settings,
                ignore.as_deref(),
            )
        }
    })
    .await
    .map_err(|e| {
        Failure::storage(
            reasons::ARCHIVE_OPERATION_FAILED,
            format!("artifact task failed: {e}"),
        )
    })??;
    Ok(Pulled {
        stored,
        annotations: image.annotations.clone(),
    })
}

/// The image manifest, following an index to its `linux/amd64` entry (or its only entry), as
/// go-containerregistry's default platform does.
async fn image_manifest(
    client: &Client,
    reference: &Reference,
    manifest: Manifest,
) -> Result<ImageManifest, Result<Failure, registry::client::Error>> {
    match manifest {
        Manifest::Image(image) => Ok(image),
        Manifest::Index(index) => {
            let entry = index
                .manifests
                .iter()
                .find(|m| {
                    m.platform
                        .as_ref()
                        .is_some_and(|p| p.os == "linux" && p.architecture == "amd64")
                })
                .or_else(|| (index.manifests.len() == 1).then(|| &index.manifests[0]))
                .ok_or_else(|| {
                    Ok(Failure::fetch(
                        reasons::OCI_LAYER_OPERATION_FAILED,
                        format!(
                            "artifact is an index of {} manifests without a linux/amd64 entry",
                            index.manifests.len()
                        ),
                    ))
                })?;
            let inner = reference.with_digest(entry.digest.clone());
            match client.get_manifest(&inner).await.map_err(Err)? {
                (Manifest::Image(image), _, _) => Ok(image),
                (Manifest::Index(_), _, _) => Err(Ok(Failure::fetch(
                    reasons::OCI_LAYER_OPERATION_FAILED,
                    "nested image indexes are not supported".to_owned(),
                ))),
            }
        }
    }
}

fn storage_failure(e: &dyn std::error::Error) -> Failure {
    Failure::storage(
        reasons::ARCHIVE_OPERATION_FAILED,
        format!("unable to archive artifact to storage: {}", chain(e)),
    )
}

/// `copy`: the blob as is, at most `max_bytes`.
fn copy_layer(
    mut reader: impl Read,
    store: &ArtifactStore,
    ns: &str,
    name: &str,
    file_name: &str,
    max_bytes: u64,
) -> Result<StoredArtifact, Failure> {
    let mut writer = store
        .create("ocirepository", ns, name, file_name)
        .map_err(|e| storage_failure(&e))?;
    let mut buf = vec![0u8; 128 * 1024];
    loop {
        let n = reader.read(&mut buf).map_err(|e| {
            Failure::fetch(
                reasons::OCI_LAYER_OPERATION_FAILED,
                format!("failed to copy layer from artifact: {e}"),
            )
        })?;
        if n == 0 {
            break;
        }
        if writer.size() + n as u64 > max_bytes {
            return Err(Failure::fetch(
                reasons::OCI_LAYER_OPERATION_FAILED,
                format!(
                    "failed to copy layer from artifact: layer exceeds the size limit of {max_bytes} bytes (--artifact-max-size)"
                ),
            ));
        }
        writer
            .write_all(&buf[..n])
            .map_err(|e| storage_failure(&e))?;
    }
    writer.finish().map_err(|e| storage_failure(&e))
}

/// `extract`: safe extraction into a scratch directory, ignore rules, deterministic archive.
fn extract_layer(
    mut reader: impl Read,
    store: &ArtifactStore,
    ns: &str,
    name: &str,
    file_name: &str,
    settings: &PullSettings,
    ignore: Option<&str>,
) -> Result<StoredArtifact, Failure> {
    let layer_failure = |m: String| {
        Failure::fetch(
            reasons::OCI_LAYER_OPERATION_FAILED,
            format!("failed to extract layer contents from artifact: {m}"),
        )
    };
    std::fs::create_dir_all(&settings.scratch).map_err(|e| {
        Failure::storage(
            reasons::DIRECTORY_CREATION_FAILED,
            format!("failed to create temporary working directory: {e}"),
        )
    })?;
    let dir = tempfile::Builder::new()
        .prefix(&format!("ocirepository-{ns}-{name}-"))
        .tempdir_in(&settings.scratch)
        .map_err(|e| {
            Failure::storage(
                reasons::DIRECTORY_CREATION_FAILED,
                format!("failed to create temporary working directory: {e}"),
            )
        })?;
    let content = dir.path().join("content");
    registry::extract::extract(&mut reader, &content, &settings.limits)
        .map_err(|e| layer_failure(chain(&e)))?;
    // Read to the end so the stream verifies the blob's size and digest before anything is
    // stored (tar stops reading at its end-of-archive marker).
    io::copy(&mut reader, &mut io::sink()).map_err(|e| layer_failure(e.to_string()))?;
    let matcher =
        registry::sourceignore::Matcher::for_source_dir(&content, ignore).map_err(|e| {
            Failure::fetch(
                reasons::SOURCE_IGNORE_ERROR,
                format!(
                    "failed to load source ignore patterns from artifact: {}",
                    chain(&e)
                ),
            )
        })?;
    let writer = store
        .create("ocirepository", ns, name, file_name)
        .map_err(|e| storage_failure(&e))?;
    let mut out = BufWriter::with_capacity(256 * 1024, writer);
    registry::archive::build(&content, &matcher, &mut out).map_err(|e| storage_failure(&e))?;
    let writer = out.into_inner().map_err(|e| storage_failure(e.error()))?;
    writer.finish().map_err(|e| storage_failure(&e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tags(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn semver_picks_the_highest_matching_tag() {
        let t = tags(&[
            "6.0.0",
            "6.1.0",
            "6.1.1-rc.1",
            "7.0.0",
            "latest",
            "v6.1.2",
            "6.2",
        ]);
        assert_eq!(
            select_semver(&t, ">=6.0.0 <7.0.0", None, false).unwrap(),
            "v6.1.2"
        );
        assert_eq!(
            select_semver(&t, "6.1.x-0", Some(".*-rc.*"), false).unwrap(),
            "6.1.1-rc.1"
        );
        assert!(
            select_semver(&t, ">=8.0.0", None, false)
                .unwrap_err()
                .contains("no match found for semver: >=8.0.0")
        );
        let helm = tags(&["1.0.0_build1", "0.9.0"]);
        assert_eq!(
            select_semver(&helm, ">=0.9.0", None, true).unwrap(),
            "1.0.0_build1"
        );
        assert!(select_semver(&helm, ">=1.0.0", None, false).is_err());
    }

    #[test]
    fn urls_with_tags_are_refused() {
        let f = repository("oci://127.0.0.1:5000/podinfo:6.0").unwrap_err();
        assert_eq!(f.kind, FailureKind::Stalled);
        assert_eq!(
            f.message,
            "URL validation failed for 'oci://127.0.0.1:5000/podinfo:6.0': URL must not contain a tag; remove ':6.0'"
        );
        assert!(repository("https://x/y").is_err());
        assert_eq!(
            repository("oci://127.0.0.1:5000/a/b").unwrap().repository,
            "a/b"
        );
    }
}
