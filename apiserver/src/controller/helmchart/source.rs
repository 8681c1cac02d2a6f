//! The source steps of a HelmChart reconcile (`flux-source-controller.md` §4.2 steps 1–8):
//! the OCI HelmRepository named by `spec.sourceRef`, the registry client from its Secrets, the
//! chart version (exact: one HEAD; a range: the tags listed with pagination, `_` read as `+`),
//! cosign verification of the manifest digest before anything is pulled, and the decision
//! whether the stored artifact is up to date. The pull and the build are in `build`.

use std::sync::Arc;
use std::time::Duration;

use openapi::conditions::{self, reasons, types};
use openapi::v1::{HelmChart, HelmChartStatus, HelmRepository};
use registry::{Client, Digest, Reference};
use tokio::time::Instant;

use super::super::failure::{StepFailure, blocking};
use super::super::registry_access::{self as access, RegistryAccess};
use super::super::runtime::chain;
use super::{HelmChartReconciler, registry_failure};

/// Key of `status.artifact.metadata` holding the chart's OCI manifest digest, so a version
/// re-pushed with new content is noticed.
pub(super) const MANIFEST_DIGEST_KEY: &str = "source.toolkit.fluxcd.io/oci-manifest-digest";

/// The chart's source and settings, from the HelmChart and its HelmRepository.
#[derive(Clone, Debug)]
pub(super) struct ChartSource {
    /// `oci://<registry>/<path>/<chart>` (for messages).
    pub(super) url: String,
    /// The chart repository, `<registry>/<path>/<chart>`.
    pub(super) repository: Reference,
    /// `spec.version` (default `*`).
    pub(super) version: String,
    /// The HelmRepository's `spec.timeout` (default 1m) and its text.
    pub(super) timeout: Duration,
    pub(super) timeout_text: String,
    access: RegistryAccess,
}

/// The resolved chart version.
#[derive(Clone, Debug)]
pub(super) struct Resolved {
    /// The chart version (the tag with `_` read as `+`).
    pub(super) version: String,
    /// The digest reference to pull.
    pub(super) pull: Reference,
    /// The manifest digest.
    pub(super) digest: Digest,
}

/// What the source steps produced.
#[derive(Debug)]
pub(super) enum Outcome {
    /// The stored artifact is the resolved chart, built from this generation.
    UpToDate { revision: String },
    /// A new artifact was stored.
    Stored(Built),
}

/// A stored chart.
#[derive(Debug)]
pub(crate) struct Built {
    /// The artifact file.
    pub(crate) stored: storage::StoredArtifact,
    /// The chart name (`Chart.yaml`).
    pub(crate) name: String,
    /// The artifact revision (the chart version as stored).
    pub(crate) revision: String,
    /// Values files merged (`None`: the chart was stored as pulled).
    pub(crate) merged: Option<Vec<String>>,
    /// The artifact metadata (the manifest digest).
    pub(crate) metadata: std::collections::BTreeMap<String, String>,
}

/// The artifact revision: the chart version, with the generation as build metadata when
/// values files are merged (Flux's `VersionMetadata`: `6.6.0+build.7` → `6.6.0+1`).
pub(super) fn revision(version: &str, obj: &HelmChart) -> String {
    let merging = obj
        .spec
        .values_files
        .as_ref()
        .is_some_and(|v| !v.is_empty());
    if !merging {
        return version.to_owned();
    }
    let core = version.split('+').next().unwrap_or(version);
    format!("{core}+{}", obj.metadata.generation.unwrap_or(0))
}

impl HelmChartReconciler {
    /// HelmRepository → credentials → resolve → verify → (unless up to date) pull and build,
    /// bounded by the repository's `spec.timeout`.
    pub(super) async fn source(
        &self,
        obj: &Arc<HelmChart>,
        status: &mut HelmChartStatus,
    ) -> Result<Outcome, StepFailure> {
        let source = self.chart_source(obj).await?;
        let deadline = Instant::now() + source.timeout;
        let work = async {
            let client = self.credentials(&source).await?;
            let resolved = resolve(&client, &source).await?;
            let revision = revision(&resolved.version, obj);
            let with_revision = |f: StepFailure| f.with_revision(&revision);
            if let Some(verify) = &obj.spec.verify {
                self.verify(&client, &source, &resolved, verify)
                    .await
                    .map_err(with_revision)?;
                conditions::mark_true(
                    &mut status.conditions,
                    types::SOURCE_VERIFIED,
                    reasons::SUCCEEDED,
                    &format!("verified signature of revision {revision}"),
                    obj.metadata.generation,
                    super::super::failure::now(),
                );
            }
            if is_up_to_date(status, obj, &resolved, &revision) {
                return Ok(Outcome::UpToDate { revision });
            }
            tracing::info!(%revision, digest = %resolved.digest, "pulling chart");
            let built = self
                .pull_and_build(&client, obj, &source, &resolved, &revision, deadline)
                .await
                .map_err(with_revision)?;
            Ok(Outcome::Stored(built))
        };
        tokio::time::timeout_at(deadline, work)
            .await
            .unwrap_or_else(|_| {
                Err(StepFailure::fetch(
                    reasons::CHART_PULL_ERROR,
                    format!(
                        "failed to pull chart from '{}': timeout of {} exceeded (HelmRepository spec.timeout)",
                        source.url, source.timeout_text
                    ),
                ))
            })
    }

    /// The OCI HelmRepository of `spec.sourceRef` and the settings it gives the chart.
    async fn chart_source(&self, obj: &HelmChart) -> Result<ChartSource, StepFailure> {
        let spec = &obj.spec;
        let source_ref = &spec.source_ref;
        if source_ref.kind != "HelmRepository" {
            return Err(StepFailure::stalled(
                reasons::UNSUPPORTED_SOURCE_KIND,
                format!(
                    "unsupported source kind '{}': this server builds charts from OCI HelmRepositories only (use an OCIRepository with the Helm chart layer for HelmRelease spec.chartRef)",
                    source_ref.kind
                ),
            ));
        }
        let ns = obj.metadata.namespace.clone().unwrap_or_default();
        let key = super::super::helm_repositories().object(ns.clone(), source_ref.name.clone());
        let unavailable = |m: String| {
            StepFailure::fetch(
                reasons::SOURCE_UNAVAILABLE,
                format!("failed to get source: {m}"),
            )
        };
        let raw = self.store.get(&key).await.map_err(|e| match e {
            storage::Error::NotFound { .. } => unavailable(format!(
                "HelmRepository.source.toolkit.fluxcd.io \"{}\" not found",
                source_ref.name
            )),
            other => unavailable(chain(&other)),
        })?;
        let repo: HelmRepository =
            serde_json::from_value(raw).map_err(|e| unavailable(e.to_string()))?;
        if !repo.spec.is_oci() {
            return Err(StepFailure::stalled(
                reasons::UNSUPPORTED_SOURCE_KIND,
                format!(
                    "HelmRepository '{}' is of type 'default' (an HTTP/S Helm index), which is not supported yet: use type 'oci'",
                    source_ref.name
                ),
            ));
        }
        chart_source(obj, &repo, ns)
    }

    /// The registry client from the HelmRepository's `secretRef` (dockerconfigjson or
    /// username/password), `certSecretRef` and `insecure`.
    async fn credentials(&self, source: &ChartSource) -> Result<Client, StepFailure> {
        let (secrets, clients) = (self.secrets.clone(), self.clients.clone());
        let (access, timeout) = (source.access.clone(), source.timeout);
        blocking(move || clients.client(&secrets, &access, timeout))
            .await
            .map_err(|e| StepFailure::fetch(reasons::AUTHENTICATION_FAILED, e.to_string()))?
            .map_err(|e| StepFailure::fetch(reasons::AUTHENTICATION_FAILED, e.message))
    }

    /// The cosign signature of the resolved manifest digest: with the `*.pub` keys of
    /// `spec.verify.secretRef`, else keyless against the embedded public-good root and
    /// `spec.verify.matchOIDCIdentity`.
    async fn verify(
        &self,
        client: &Client,
        source: &ChartSource,
        resolved: &Resolved,
        verify: &openapi::v1::HelmChartVerification,
    ) -> Result<(), StepFailure> {
        let stalled = |m: &str| StepFailure::stalled(reasons::VERIFICATION_ERROR, m);
        if verify.provider.as_deref().unwrap_or("cosign") != "cosign" {
            return Err(stalled(
                "verification provider 'notation' is not supported by this build: use cosign with spec.verify.secretRef",
            ));
        }
        let Some(secret) = verify.secret_ref.as_ref().map(|r| r.name.clone()) else {
            // Keyless: HelmChart names no trusted root, so the embedded Sigstore public-good
            // root is the one (as Flux's HelmChart, which uses the public-good instance).
            let matches = verify.match_oidc_identity.clone().unwrap_or_default();
            let identities = access::keyless_identities(&matches).map_err(StepFailure::verify)?;
            let root = self.config.base.sigstore_root.current();
            return registry::cosign::verify_keyless(
                client,
                &source.repository,
                &resolved.digest,
                &root,
                &identities,
            )
            .await
            .map(drop)
            .map_err(|e| StepFailure::verify(chain(&e)));
        };
        let (secrets, ns) = (self.secrets.clone(), source.access.namespace.clone());
        let keys = blocking(move || access::cosign_keys(&secrets, &ns, &secret))
            .await
            .map_err(StepFailure::verify)?
            .map_err(StepFailure::verify)?;
        registry::cosign::verify(client, &source.repository, &resolved.digest, &keys)
            .await
            .map(drop)
            .map_err(|e| StepFailure::verify(chain(&e)))
    }
}

/// The chart's settings from the HelmChart and its OCI HelmRepository.
fn chart_source(
    obj: &HelmChart,
    repo: &HelmRepository,
    ns: String,
) -> Result<ChartSource, StepFailure> {
    let invalid = |m: String| StepFailure::stalled(reasons::URL_INVALID, m);
    let base = repo.spec.url.trim_end_matches('/');
    let url = format!("{base}/{}", obj.spec.chart);
    let repository: Reference = url
        .parse()
        .map_err(|e| invalid(format!("invalid chart URL '{url}': {e}")))?;
    let duration = |field: &str, text: &str| {
        openapi::duration::parse_go_duration(text)
            .map_err(|e| invalid(format!("invalid {field} '{text}': {e}")))
    };
    let timeout_text = repo.spec.timeout_or_default().to_owned();
    let timeout = duration("HelmRepository spec.timeout", &timeout_text)?;
    duration("spec.interval", &obj.spec.interval)?;
    if repo.spec.secret_ref.is_none()
        && let Some(p) = repo.spec.provider.as_deref().filter(|p| *p != "generic")
    {
        return Err(StepFailure::stalled(
            reasons::INVALID_PROVIDER_CONFIGURATION,
            format!(
                "HelmRepository spec.provider '{p}' needs the in-cluster mode; in standalone mode use spec.secretRef"
            ),
        ));
    }
    let name = |r: &Option<openapi::meta::LocalObjectReference>| r.as_ref().map(|r| r.name.clone());
    Ok(ChartSource {
        url,
        repository,
        version: obj.spec.version_or_default().to_owned(),
        timeout,
        timeout_text,
        access: RegistryAccess {
            namespace: ns,
            secret_ref: name(&repo.spec.secret_ref),
            cert_secret_ref: name(&repo.spec.cert_secret_ref),
            proxy_secret_ref: None,
            insecure: repo.spec.insecure == Some(true),
            basic_auth: true,
            service_account: None,
        },
    })
}

/// Resolves `spec.version`: an exact version is one HEAD of its tag (`+` written `_`); a
/// range lists the tags (with pagination), reads `_` as `+`, and takes the highest match
/// (prereleases only when the range names one, Masterminds' rule).
async fn resolve(client: &Client, source: &ChartSource) -> Result<Resolved, StepFailure> {
    let wanted = source.version.trim();
    let tag = if openapi::semver_constraint::parse_flux_version(wanted).is_some() {
        registry::helm::tag_of_version(wanted.trim_start_matches('v'))
    } else {
        let constraint: openapi::SemverConstraint = wanted.parse().map_err(|e| {
            StepFailure::stalled(
                reasons::INVALID_CHART_REFERENCE,
                format!("invalid version constraint '{wanted}': {e}"),
            )
        })?;
        let prefix = format!("failed to list the tags of '{}'", source.url);
        let tags = client
            .list_tags(&source.repository)
            .await
            .map_err(|e| registry_failure(&prefix, &e))?;
        let best = openapi::semver_constraint::latest_matching(
            tags.iter().map(String::as_str),
            &constraint,
            None,
            true,
        );
        best.map(str::to_owned).ok_or_else(|| {
            StepFailure::fetch(
                reasons::CHART_PULL_ERROR,
                format!(
                    "could not locate a version matching provided version string {wanted} in '{}'",
                    source.url
                ),
            )
        })?
    };
    let reference = source.repository.with_tag(&tag);
    let descriptor = registry::artifact::resolve(client, &reference)
        .await
        .map_err(|e| match &e {
            registry::artifact::Error::GetManifest { source: s, .. } => registry_failure(
                &format!("failed to get chart version for remote reference '{reference}'"),
                s,
            ),
            other => StepFailure::fetch(reasons::CHART_PULL_ERROR, chain(other)),
        })?;
    Ok(Resolved {
        version: registry::helm::version_of_tag(&tag),
        pull: source.repository.with_digest(descriptor.digest.clone()),
        digest: descriptor.digest,
    })
}

/// Whether the stored artifact is this revision of this manifest, built for this generation
/// and chart name.
fn is_up_to_date(status: &HelmChartStatus, obj: &HelmChart, r: &Resolved, revision: &str) -> bool {
    let Some(artifact) = &status.artifact else {
        return false;
    };
    let same_manifest = artifact
        .metadata
        .as_ref()
        .and_then(|m| m.get(MANIFEST_DIGEST_KEY))
        .is_some_and(|d| *d == r.digest.to_string());
    artifact.has_revision(revision)
        && same_manifest
        && status.observed_generation == obj.metadata.generation
        && status.observed_chart_name.as_deref() == Some(obj.spec.chart.as_str())
}
