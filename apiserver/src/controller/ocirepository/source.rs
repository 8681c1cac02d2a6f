//! The source steps of an OCIRepository reconcile (`flux-source-controller.md` §2.4), each a
//! small function returning a [`StepFailure`]: credentials → resolve → verify → pull →
//! archive and store, all bounded by `spec.timeout`. The registry work is
//! [`registry::artifact`]'s one pull path.

use std::collections::BTreeMap;
use std::sync::Arc;

use openapi::conditions::{self, reasons, types};
use openapi::v1::{OCIRepository, OCIRepositoryStatus};
use registry::artifact::{self, Fetched, PullOptions};
use registry::{Client, Reference};
use storage::StoredArtifact;
use tokio::time::Instant;

use super::super::registry_access::{self as credentials, RegistryAccess};
use super::super::runtime::chain;
use super::failure::{StepFailure, client_failure, pull_failure};
use super::shared::{BuildKey, Built};
use super::spec::{Provider, RefSpec, Spec, Verification, VerifyProvider};
use super::{ARTIFACT_KIND, OCIRepositoryReconciler, Progress, blocking, object_ref};

/// Media type of Helm chart layers: semver tags use `_` for `+` (Helm's encoding).
const HELM_CHART_CONTENT: &str = registry::manifest::media_types::HELM_CHART_CONTENT;

/// The resolved artifact: revision (`<tag>@sha256:<hex>` or `sha256:<hex>`) and the digest
/// reference to pull.
#[derive(Clone, Debug)]
pub(super) struct Resolved {
    pub(super) revision: String,
    pub(super) pull: Reference,
    /// The reference resolved, as Flux prints it (`<host>/<repo>:<tag>` or `…@sha256:…`).
    pub(super) reference: String,
}

/// The outcome of the source steps.
#[derive(Debug)]
pub(super) enum Source {
    /// The stored artifact already has the resolved revision.
    UpToDate { revision: String },
    /// A new artifact was stored.
    Stored {
        revision: String,
        stored: StoredArtifact,
        /// When the archive was written (`status.artifact.lastUpdateTime`).
        written_at: k8s_openapi::apimachinery::pkg::apis::meta::v1::Time,
        annotations: Option<BTreeMap<String, String>>,
    },
}

/// The refusals that need no network: in-cluster-only fields and verification settings this
/// build cannot honour. Returns the verification to run, if any.
pub(super) fn preflight(
    spec: &Spec,
    cluster_mode: bool,
) -> Result<Option<Verification>, StepFailure> {
    let in_cluster = |what: String| {
        StepFailure::stalled(
            reasons::INVALID_PROVIDER_CONFIGURATION,
            format!(
                "{what} needs the in-cluster mode; in standalone mode use spec.secretRef with a kubernetes.io/dockerconfigjson Secret in --secrets-dir"
            ),
        )
    };
    if let Provider::Cloud(name) = spec.provider {
        return Err(in_cluster(format!("spec.provider '{name}'")));
    }
    if let Some(sa) = spec.service_account.as_ref().filter(|_| !cluster_mode) {
        return Err(in_cluster(format!("spec.serviceAccountName '{sa}'")));
    }
    match &spec.verify {
        None => Ok(None),
        Some((VerifyProvider::Notation, _)) => Err(StepFailure::stalled(
            reasons::VERIFICATION_ERROR,
            "verification provider 'notation' is not supported by this build: use cosign with spec.verify.secretRef",
        )),
        Some((VerifyProvider::Cosign, how)) => Ok(Some(how.clone())),
    }
}

impl OCIRepositoryReconciler {
    /// Credentials → resolve → verify → pull → archive and store, bounded by `spec.timeout`.
    /// Marks `SourceVerified=True` in `status` once the signature is verified.
    pub(super) async fn source(
        &self,
        obj: &Arc<OCIRepository>,
        spec: &Spec,
        progress: &mut Progress,
    ) -> Result<Source, StepFailure> {
        let verification = preflight(spec, self.secrets.is_cluster())?;
        let deadline = Instant::now() + spec.timeout;
        let work = async {
            let client = self.credentials(obj, spec).await?;
            let resolved = self.resolve(&client, spec).await?;
            let with_revision =
                |f: StepFailure| f.with_resolved(&resolved.revision, &resolved.reference);
            if let Some(how) = verification
                && needs_verification(&progress.status, obj, &resolved)
            {
                self.verify(&client, spec, &resolved, obj, how)
                    .await
                    .map_err(with_revision)?;
                mark_verified(&mut progress.status, obj, &resolved.revision);
            }
            if is_up_to_date(&progress.status, obj, &resolved) {
                return Ok(Source::UpToDate {
                    revision: resolved.revision,
                });
            }
            let mut slot = self.shared.claim(BuildKey::of(obj, &resolved)).await;
            if let Some(built) = slot.as_ref() {
                match self.link(obj, built).await {
                    Ok(stored) => {
                        return Ok(Source::Stored {
                            revision: resolved.revision,
                            stored,
                            written_at: super::now(),
                            annotations: built.annotations.clone(),
                        });
                    }
                    Err(error) => {
                        tracing::debug!(%error, path = %built.path, "the shared archive is gone; building it");
                        *slot = None;
                    }
                }
            }
            self.mark_building(obj, progress, &resolved.revision, &resolved.reference)
                .await;
            tracing::info!(revision = %resolved.revision, "pulling new revision");
            let fetched = self
                .pull(&client, spec, &resolved)
                .await
                .map_err(with_revision)?;
            let stored = self
                .store(&client, obj, spec, &fetched, deadline)
                .await
                .map_err(with_revision)?;
            *slot = Some(Built {
                path: stored.path.clone(),
                digest: stored.digest.clone(),
                file_name: file_name(&fetched),
                annotations: fetched.manifest.annotations.clone(),
            });
            Ok(Source::Stored {
                revision: resolved.revision.clone(),
                stored,
                written_at: super::now(),
                annotations: fetched.manifest.annotations,
            })
        };
        tokio::time::timeout_at(deadline, work)
            .await
            .unwrap_or_else(|_| {
                Err(StepFailure::fetch(
                    reasons::OCI_PULL_FAILED,
                    format!(
                        "failed to pull artifact from '{}': timeout of {} exceeded (spec.timeout)",
                        spec.url, spec.timeout_text
                    ),
                ))
            })
    }

    /// Credentials step: the registry client configured from the object's Secrets.
    async fn credentials(
        &self,
        obj: &Arc<OCIRepository>,
        spec: &Spec,
    ) -> Result<Client, StepFailure> {
        let (secrets, clients) = (self.secrets.clone(), self.clients.clone());
        let access = RegistryAccess::of_oci_repository(obj);
        let timeout = spec.timeout;
        blocking(move || clients.client(&secrets, &access, timeout))
            .await
            .map_err(|e| StepFailure::fetch(reasons::AUTHENTICATION_FAILED, e.to_string()))?
            .map_err(|e| StepFailure::fetch(reasons::AUTHENTICATION_FAILED, e.message))
    }

    /// Resolve step: a digest needs no request, a semver lists the tags, and the chosen tag
    /// is resolved with one HEAD (GET when the HEAD fails).
    async fn resolve(&self, client: &Client, spec: &Spec) -> Result<Resolved, StepFailure> {
        let url = &spec.url;
        let tag = match &spec.reference {
            RefSpec::Digest(digest) => {
                let pull = spec.repository.with_digest(digest.clone());
                return Ok(Resolved {
                    revision: digest.to_string(),
                    reference: pull.to_string(),
                    pull,
                });
            }
            RefSpec::Semver { constraint, filter } => {
                let prefix = format!("failed to determine the artifact tag for '{url}'");
                let tags = client
                    .list_tags(&spec.repository)
                    .await
                    .map_err(|e| client_failure(reasons::READ_OPERATION_FAILED, &prefix, &e))?;
                let helm = spec.layer.media_type.as_deref() == Some(HELM_CHART_CONTENT);
                select_semver(&tags, constraint, filter.as_deref(), helm).map_err(|m| {
                    StepFailure::fetch(reasons::READ_OPERATION_FAILED, format!("{prefix}: {m}"))
                })?
            }
            RefSpec::Tag(tag) => tag.clone(),
        };
        let tagged = spec.repository.with_tag(&tag);
        let descriptor = artifact::resolve(client, &tagged)
            .await
            .map_err(|e| match &e {
                artifact::Error::GetManifest { source, .. } => client_failure(
                    reasons::OCI_PULL_FAILED,
                    "failed to determine artifact digest",
                    source,
                ),
                other => StepFailure::fetch(
                    reasons::OCI_PULL_FAILED,
                    format!("failed to determine artifact digest: {}", chain(other)),
                ),
            })?;
        Ok(Resolved {
            revision: format!("{tag}@{}", descriptor.digest),
            pull: spec.repository.with_digest(descriptor.digest),
            reference: tagged.to_string(),
        })
    }

    /// Verify step: the cosign signature of the resolved digest, before anything is pulled:
    /// with the `*.pub` keys of the verification Secret, or keyless against the trusted root
    /// of `trustedRootSecretRef` and the `matchOIDCIdentity` pairs (none: any identity, as
    /// Flux).
    async fn verify(
        &self,
        client: &Client,
        spec: &Spec,
        resolved: &Resolved,
        obj: &OCIRepository,
        how: Verification,
    ) -> Result<(), StepFailure> {
        let digest = resolved
            .pull
            .digest
            .clone()
            .expect("resolved references carry a digest");
        let secrets = self.secrets.clone();
        let ns = object_ref(obj).namespace;
        let repo = &spec.repository;
        match how {
            Verification::Keys(name) => {
                let keys = blocking(move || credentials::cosign_keys(&secrets, &ns, &name))
                    .await
                    .map_err(StepFailure::verify)?
                    .map_err(StepFailure::verify)?;
                registry::cosign::verify(client, repo, &digest, &keys)
                    .await
                    .map(drop)
                    .map_err(|e| StepFailure::verify(chain(&e)))
            }
            Verification::Keyless {
                trusted_root_secret,
                identities,
            } => {
                let root = match trusted_root_secret {
                    None => (*self.config.sigstore_root.current()).clone(),
                    Some(root_secret) => {
                        blocking(move || credentials::trusted_root(&secrets, &ns, &root_secret))
                            .await
                            .map_err(StepFailure::verify)?
                            .map_err(StepFailure::verify)?
                    }
                };
                let identities =
                    credentials::keyless_identities(&identities).map_err(StepFailure::verify)?;
                registry::cosign::verify_keyless(client, repo, &digest, &root, &identities)
                    .await
                    .map(drop)
                    .map_err(|e| StepFailure::verify(chain(&e)))
            }
        }
    }

    /// Pull step: the manifest of the resolved digest and its selected layer.
    async fn pull(
        &self,
        client: &Client,
        spec: &Spec,
        resolved: &Resolved,
    ) -> Result<Fetched, StepFailure> {
        let fetched = artifact::fetch(client, &resolved.pull, &self.pull_options(spec, None))
            .await
            .map_err(|e| pull_failure(&spec.url, &spec.timeout_text, &e))?;
        if let Some(platform) = &fetched.platform {
            tracing::info!(%platform, digest = %fetched.digest, "followed the image index entry");
        }
        Ok(fetched)
    }

    /// Archive and store step: the layer streamed, extracted and re-archived (or copied) into
    /// `ocirepository/<ns>/<name>/<manifest hex>.tar.gz`, written atomically.
    async fn store(
        &self,
        client: &Client,
        obj: &OCIRepository,
        spec: &Spec,
        fetched: &Fetched,
        deadline: Instant,
    ) -> Result<StoredArtifact, StepFailure> {
        let storage_failure = |e: &dyn std::error::Error| {
            StepFailure::storage(
                reasons::ARCHIVE_OPERATION_FAILED,
                format!("unable to archive artifact to storage: {}", chain(e)),
            )
        };
        let object = object_ref(obj);
        let file_name = file_name(fetched);
        let store = self.artifacts.clone();
        let writer = blocking(move || {
            store.create(ARTIFACT_KIND, &object.namespace, &object.name, &file_name)
        })
        .await
        .map_err(|e| storage_failure(&e))?
        .map_err(|e| storage_failure(&e))?;
        let options = self.pull_options(spec, Some(deadline));
        let ignore = obj.spec.ignore.as_deref();
        let writer = artifact::pull_artifact(
            client,
            fetched,
            &options,
            &self.config.scratch_dir,
            ignore,
            writer,
        )
        .await
        .map_err(|e| pull_failure(&spec.url, &spec.timeout_text, &e))?;
        let stored = blocking(move || writer.finish())
            .await
            .map_err(|e| storage_failure(&e))?
            .map_err(|e| storage_failure(&e))?;
        crate::metrics::artifact_pulled("OCIRepository", stored.size);
        Ok(stored)
    }

    /// Share step: the archive `built` for the same [`BuildKey`] by another object, hard-linked
    /// into this object's directory under the same file name (no registry request).
    /// Fails (with the reason, for the log) when the file is gone or no longer matches.
    async fn link(&self, obj: &OCIRepository, built: &Built) -> Result<StoredArtifact, String> {
        let object = object_ref(obj);
        let (store, from) = (self.artifacts.clone(), built.clone());
        let stored = blocking(move || {
            store.link(
                &from.path,
                &from.digest,
                ARTIFACT_KIND,
                &object.namespace,
                &object.name,
                &from.file_name,
            )
        })
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| chain(&e))?;
        tracing::debug!(path = %stored.path, from = %built.path, "shared the archive");
        Ok(stored)
    }

    fn pull_options(&self, spec: &Spec, deadline: Option<Instant>) -> PullOptions {
        PullOptions {
            limits: self.config.limits,
            layer: spec.layer.clone(),
            deadline,
            ..PullOptions::default()
        }
    }
}

/// Flux's artifact file name: `<manifest hex>.tar.gz`.
fn file_name(fetched: &Fetched) -> String {
    super::artifact_file_name(fetched.digest.hex())
}

impl BuildKey {
    /// The key of what `obj` builds from `resolved`.
    fn of(obj: &OCIRepository, resolved: &Resolved) -> Self {
        Self {
            namespace: object_ref(obj).namespace,
            reference: resolved.pull.to_string(),
            ignore: obj.spec.ignore.clone(),
            layer_selector: obj
                .spec
                .layer_selector
                .as_ref()
                .map(|l| serde_json::to_string(l).expect("layer selectors serialize")),
        }
    }
}

/// Whether the signature must be checked: the stored artifact has another revision, or
/// `SourceVerified` is not `True` for this generation.
fn needs_verification(status: &OCIRepositoryStatus, obj: &OCIRepository, r: &Resolved) -> bool {
    let current = conditions::get(&status.conditions, types::SOURCE_VERIFIED);
    !status
        .artifact
        .as_ref()
        .is_some_and(|a| a.has_revision(&r.revision))
        || current
            .is_none_or(|c| c.status != "True" || c.observed_generation != obj.metadata.generation)
}

fn mark_verified(status: &mut OCIRepositoryStatus, obj: &OCIRepository, revision: &str) {
    conditions::mark_true(
        &mut status.conditions,
        types::SOURCE_VERIFIED,
        reasons::SUCCEEDED,
        &format!("verified signature of revision {revision}"),
        obj.metadata.generation,
        super::now(),
    );
}

/// Whether the stored artifact is the resolved revision built with the current ignore rules
/// and layer selector.
fn is_up_to_date(status: &OCIRepositoryStatus, obj: &OCIRepository, r: &Resolved) -> bool {
    let unchanged_config = status.observed_ignore == obj.spec.ignore
        && status.observed_layer_selector == obj.spec.layer_selector;
    unchanged_config
        && status
            .artifact
            .as_ref()
            .is_some_and(|a| a.has_revision(&r.revision))
}

/// Flux's `getTagBySemver`: filter tags by the regular expression, keep those that parse as
/// three-part versions within the constraint, return the highest (its original spelling).
pub(super) fn select_semver(
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
        if filter.as_ref().is_some_and(|f| !f.is_match(tag)) {
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
        let better = best.as_ref().is_none_or(|(b, _)| {
            v.cmp_precedence(b).then_with(|| v.cmp(b)) == std::cmp::Ordering::Greater
        });
        if better {
            best = Some((v, tag));
        }
    }
    best.map(|(_, t)| t.clone())
        .ok_or_else(|| format!("no match found for semver: {expr}"))
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
}
