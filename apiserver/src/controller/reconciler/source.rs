//! The source step of a reconcile (`flux-source-controller.md` §2.4): in-cluster-only fields,
//! verification settings, credentials, reference resolution, cosign verification and the pull,
//! all bounded by `spec.timeout`.

use std::time::Duration;

use openapi::conditions::{self, reasons, types};
use openapi::v1::{OCIRepository, OCIRepositoryStatus};

use super::super::credentials;
use super::super::events::ObjectRef;
use super::super::fetch::{self, Failure, FailureKind, PullSettings};
use super::{Reconciler, Source, blocking};

impl Reconciler {
    /// Credentials, reference, pull and store, bounded by `spec.timeout`. On failure, also the
    /// new revision when it was resolved.
    pub(super) async fn source(
        &self,
        obj: &OCIRepository,
        status: &OCIRepositoryStatus,
        object: &ObjectRef,
        verified: &mut Option<String>,
    ) -> Result<Source, (Failure, Option<String>)> {
        let spec = &obj.spec;
        let in_cluster = |what: String| {
            Err((
                Failure::stalled(
                    "InvalidProviderConfiguration",
                    format!(
                        "{what} needs the in-cluster mode; in standalone mode use spec.secretRef with a kubernetes.io/dockerconfigjson Secret in --secrets-dir"
                    ),
                ),
                None,
            ))
        };
        if spec.provider_or_default() != "generic" {
            return in_cluster(format!("spec.provider '{}'", spec.provider_or_default()));
        }
        if let Some(sa) = spec
            .service_account_name
            .as_deref()
            .filter(|s| !s.is_empty())
        {
            return in_cluster(format!("spec.serviceAccountName '{sa}'"));
        }
        let verify_secret = match &spec.verify {
            None => None,
            Some(v) if v.provider_or_default() != "cosign" => {
                return Err((
                    Failure::stalled(
                        reasons::VERIFICATION_ERROR,
                        format!(
                            "verification provider '{}' is not supported by this build: use cosign with spec.verify.secretRef",
                            v.provider_or_default()
                        ),
                    ),
                    None,
                ));
            }
            Some(v) => match &v.secret_ref {
                Some(r) if !r.name.is_empty() => Some(r.name.clone()),
                _ => {
                    return Err((
                        Failure::stalled(
                            reasons::VERIFICATION_ERROR,
                            "keyless cosign verification (spec.verify without secretRef) is not supported by this build: set spec.verify.secretRef to a Secret with cosign public keys (*.pub)".to_owned(),
                        ),
                        None,
                    ));
                }
            },
        };
        let repo = fetch::repository(&spec.url).map_err(|f| (f, None))?;
        let timeout = openapi::parse_go_duration(spec.timeout_or_default())
            .unwrap_or(Duration::from_secs(60));
        let deadline = tokio::time::Instant::now() + timeout;
        let work = async {
            let (secrets, clients, obj2) =
                (self.secrets.clone(), self.clients.clone(), obj.clone());
            let client = blocking(move || clients.client(&secrets, &obj2, timeout))
                .await
                .map_err(|e| {
                    (
                        Failure::fetch(reasons::AUTHENTICATION_FAILED, e.to_string()),
                        None,
                    )
                })?
                .map_err(|f| (f, None))?;
            let resolved = fetch::resolve(&client, &repo, obj)
                .await
                .map_err(|f| (f, None))?;
            if let Some(secret) = verify_secret {
                let generation = obj.metadata.generation;
                let current = conditions::get(&status.conditions, types::SOURCE_VERIFIED);
                let needed = !status
                    .artifact
                    .as_ref()
                    .is_some_and(|a| a.has_revision(&resolved.revision))
                    || current
                        .is_none_or(|c| c.status != "True" || c.observed_generation != generation);
                if needed {
                    self.verify(&client, &repo, &resolved, object, &secret)
                        .await
                        .map_err(|f| (f, Some(resolved.revision.clone())))?;
                    *verified = Some(resolved.revision.clone());
                }
            }
            let unchanged_config = status.observed_ignore == spec.ignore
                && status.observed_layer_selector == spec.layer_selector;
            if status
                .artifact
                .as_ref()
                .is_some_and(|a| a.has_revision(&resolved.revision))
                && unchanged_config
            {
                return Ok(Source::UpToDate {
                    revision: resolved.revision,
                });
            }
            tracing::info!(object = %object, revision = %resolved.revision, "pulling new revision");
            let settings = PullSettings {
                limits: self.config.limits,
                scratch: self.config.scratch_dir.clone(),
                deadline,
            };
            let pulled = fetch::pull(&client, &resolved, obj, &self.artifacts, &settings)
                .await
                .map_err(|f| (f, Some(resolved.revision.clone())))?;
            Ok(Source::Stored {
                revision: resolved.revision,
                pulled,
            })
        };
        match tokio::time::timeout_at(deadline, work).await {
            Ok(r) => r,
            Err(_) => Err((
                Failure::fetch(
                    reasons::OCI_PULL_FAILED,
                    format!(
                        "failed to pull artifact from '{}': timeout of {} exceeded (spec.timeout)",
                        spec.url,
                        spec.timeout_or_default()
                    ),
                ),
                None,
            )),
        }
    }

    /// Checks the cosign signature of the resolved digest with the `*.pub` keys of the
    /// verification Secret, before anything is pulled.
    async fn verify(
        &self,
        client: &registry::Client,
        repo: &registry::Reference,
        resolved: &fetch::Resolved,
        object: &ObjectRef,
        secret: &str,
    ) -> Result<(), Failure> {
        let failed = |m: String| Failure {
            kind: FailureKind::Verify,
            reason: reasons::VERIFICATION_ERROR,
            message: format!("failed to verify the signature using provider 'cosign': {m}"),
        };
        let (secrets, ns, name) = (
            self.secrets.clone(),
            object.namespace.clone(),
            secret.to_owned(),
        );
        let keys = blocking(move || credentials::cosign_keys(&secrets, &ns, &name))
            .await
            .map_err(|e| failed(e.to_string()))?
            .map_err(failed)?;
        let digest = resolved
            .pull
            .digest
            .clone()
            .expect("resolved references carry a digest");
        registry::cosign::verify(client, repo, &digest, &keys)
            .await
            .map_err(|e| failed(fetch::chain(&e)))?;
        Ok(())
    }
}
