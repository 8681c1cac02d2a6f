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
                Some(r) if !r.name.is_empty() => Some(Verification::Keys(r.name.clone())),
                _ => match v
                    .trusted_root_secret_ref
                    .as_ref()
                    .filter(|r| !r.name.is_empty())
                {
                    Some(root) => Some(Verification::Keyless {
                        trusted_root_secret: root.name.clone(),
                        identities: v.match_oidc_identity.clone().unwrap_or_default(),
                    }),
                    None => {
                        return Err((
                            Failure::stalled(
                                reasons::VERIFICATION_ERROR,
                                "keyless cosign verification needs a Sigstore trusted root and this build embeds none (it would have to be fetched from the public-good TUF repository): set spec.verify.trustedRootSecretRef to a Secret with trusted_root.json, or spec.verify.secretRef to a Secret with cosign public keys (*.pub)".to_owned(),
                            ),
                            None,
                        ));
                    }
                },
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
            if let Some(verification) = verify_secret {
                let generation = obj.metadata.generation;
                let current = conditions::get(&status.conditions, types::SOURCE_VERIFIED);
                let needed = !status
                    .artifact
                    .as_ref()
                    .is_some_and(|a| a.has_revision(&resolved.revision))
                    || current
                        .is_none_or(|c| c.status != "True" || c.observed_generation != generation);
                if needed {
                    self.verify(&client, &repo, &resolved, object, verification)
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

    /// Checks the cosign signature of the resolved digest, before anything is pulled: with the
    /// `*.pub` keys of the verification Secret, or keyless against the trusted root of
    /// `trustedRootSecretRef` and the `matchOIDCIdentity` pairs (none: any identity, as Flux).
    async fn verify(
        &self,
        client: &registry::Client,
        repo: &registry::Reference,
        resolved: &fetch::Resolved,
        object: &ObjectRef,
        verification: Verification,
    ) -> Result<(), Failure> {
        let failed = |m: String| Failure {
            kind: FailureKind::Verify,
            reason: reasons::VERIFICATION_ERROR,
            message: format!("failed to verify the signature using provider 'cosign': {m}"),
        };
        let digest = resolved
            .pull
            .digest
            .clone()
            .expect("resolved references carry a digest");
        let (secrets, ns) = (self.secrets.clone(), object.namespace.clone());
        match verification {
            Verification::Keys(name) => {
                let keys = blocking(move || credentials::cosign_keys(&secrets, &ns, &name))
                    .await
                    .map_err(|e| failed(e.to_string()))?
                    .map_err(failed)?;
                registry::cosign::verify(client, repo, &digest, &keys)
                    .await
                    .map_err(|e| failed(fetch::chain(&e)))?;
            }
            Verification::Keyless {
                trusted_root_secret,
                identities,
            } => {
                let root = blocking(move || {
                    credentials::trusted_root(&secrets, &ns, &trusted_root_secret)
                })
                .await
                .map_err(|e| failed(e.to_string()))?
                .map_err(failed)?;
                let identities = keyless_identities(&identities).map_err(failed)?;
                registry::cosign::verify_keyless(client, repo, &digest, &root, &identities)
                    .await
                    .map_err(|e| failed(fetch::chain(&e)))?;
            }
        }
        Ok(())
    }
}

/// How `spec.verify` (provider cosign) checks signatures.
#[derive(Debug, Clone)]
pub(crate) enum Verification {
    /// The `*.pub` keys of this Secret.
    Keys(String),
    /// Keyless: the trusted root in this Secret's `trusted_root.json`, and the accepted
    /// issuer/subject pairs.
    Keyless {
        trusted_root_secret: String,
        identities: Vec<openapi::v1::OIDCIdentityMatch>,
    },
}

/// `matchOIDCIdentity` as regular expressions; none means any identity (Flux's `.*`/`.*`).
fn keyless_identities(
    matches: &[openapi::v1::OIDCIdentityMatch],
) -> Result<Vec<registry::cosign::Identity>, String> {
    let compile = |what: &str, re: &str| {
        regex::Regex::new(re).map_err(|e| format!("invalid matchOIDCIdentity {what} '{re}': {e}"))
    };
    if matches.is_empty() {
        return Ok(vec![registry::cosign::Identity {
            issuer: compile("issuer", ".*")?,
            subject: compile("subject", ".*")?,
        }]);
    }
    matches
        .iter()
        .map(|m| {
            Ok(registry::cosign::Identity {
                issuer: compile("issuer", &m.issuer)?,
                subject: compile("subject", &m.subject)?,
            })
        })
        .collect()
}
