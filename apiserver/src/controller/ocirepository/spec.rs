//! `OCIRepository.spec` parsed once per reconcile into typed values. Defaults come only from
//! `openapi`'s defaulting ([`openapi::defaults::oci_repository`]) and the API's documented
//! code defaults (`layerSelector.operation`: extract; `ref`: tag `latest`); a value the API
//! validation should have refused stalls the object with Flux's reason.

use std::time::Duration;

use openapi::conditions::reasons;
use openapi::v1::{OCIRepository, OIDCIdentityMatch};
use registry::artifact::{DEFAULT_TAG, LayerOperation, LayerSelector};
use registry::{Digest, Reference};

use super::failure::StepFailure;

/// `spec.provider`: who provides registry credentials.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Provider {
    /// `generic`: `spec.secretRef` or anonymous.
    Generic,
    /// `aws`, `azure`, `gcp`: the cloud's workload identity (in-cluster mode only).
    Cloud(&'static str),
}

/// `spec.verify.provider`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum VerifyProvider {
    /// Sigstore cosign.
    Cosign,
    /// Notary Project notation (not supported by this build).
    Notation,
}

/// How `spec.verify` checks signatures (provider cosign).
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Verification {
    /// The `*.pub` keys of this Secret.
    Keys(String),
    /// Keyless: the trusted root in this Secret's `trusted_root.json`, and the accepted
    /// issuer/subject pairs.
    Keyless {
        trusted_root_secret: Option<String>,
        identities: Vec<OIDCIdentityMatch>,
    },
}

/// `spec.ref`, by Flux's precedence: digest > semver > tag > `latest`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum RefSpec {
    Digest(Digest),
    Semver {
        constraint: String,
        filter: Option<String>,
    },
    Tag(String),
}

/// The typed spec.
#[derive(Clone, Debug)]
pub(crate) struct Spec {
    /// `spec.url` as written (for messages).
    pub(crate) url: String,
    /// The repository of `spec.url` (no tag, no digest).
    pub(crate) repository: Reference,
    pub(crate) reference: RefSpec,
    pub(crate) layer: LayerSelector,
    pub(crate) provider: Provider,
    pub(crate) service_account: Option<String>,
    pub(crate) verify: Option<(VerifyProvider, Verification)>,
    pub(crate) interval: Duration,
    pub(crate) timeout: Duration,
    /// `spec.timeout` as written (for messages).
    pub(crate) timeout_text: String,
}

fn invalid(field: &str, value: &str, why: impl std::fmt::Display) -> StepFailure {
    StepFailure::stalled(
        reasons::INVALID_URL,
        format!("invalid spec.{field} '{value}': {why}"),
    )
}

impl Spec {
    /// Parses `obj.spec` after applying `openapi`'s defaults.
    ///
    /// # Errors
    /// A stalled [`StepFailure`] for a value that cannot be used.
    pub(crate) fn parse(obj: &OCIRepository) -> Result<Self, StepFailure> {
        let mut obj = obj.clone();
        openapi::defaults::oci_repository(&mut obj);
        let spec = &obj.spec;
        let duration = |field: &str, text: &str| {
            openapi::parse_go_duration(text).map_err(|e| invalid(field, text, e))
        };
        let timeout_text = spec.timeout.clone().unwrap_or_default();
        Ok(Self {
            repository: repository(&spec.url)?,
            url: spec.url.clone(),
            reference: ref_spec(spec.reference.clone().unwrap_or_default(), &spec.url)?,
            layer: layer_selector(spec.layer_selector.as_ref())?,
            provider: provider(spec.provider.as_deref().unwrap_or_default())?,
            service_account: spec.service_account_name.clone().filter(|s| !s.is_empty()),
            verify: spec.verify.as_ref().map(verification).transpose()?,
            interval: duration("interval", &spec.interval)?,
            timeout: duration("timeout", &timeout_text)?,
            timeout_text,
        })
    }
}

/// The repository of `spec.url`, refusing tags and digests in the URL (Flux: "URL must not
/// contain a tag").
pub(crate) fn repository(url: &str) -> Result<Reference, StepFailure> {
    let invalid = |m: String| {
        StepFailure::stalled(
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

fn ref_spec(r: openapi::v1::OCIRepositoryRef, url: &str) -> Result<RefSpec, StepFailure> {
    let set = |v: Option<String>| v.filter(|s| !s.is_empty());
    if let Some(d) = set(r.digest) {
        return d.parse().map(RefSpec::Digest).map_err(|e| {
            StepFailure::fetch(
                reasons::READ_OPERATION_FAILED,
                format!("failed to determine the artifact tag for '{url}': {e}"),
            )
        });
    }
    if let Some(constraint) = set(r.semver) {
        return Ok(RefSpec::Semver {
            constraint,
            filter: set(r.semver_filter),
        });
    }
    Ok(RefSpec::Tag(
        set(r.tag).unwrap_or_else(|| DEFAULT_TAG.to_owned()),
    ))
}

fn layer_selector(
    selector: Option<&openapi::v1::OCILayerSelector>,
) -> Result<LayerSelector, StepFailure> {
    let Some(s) = selector else {
        return Ok(LayerSelector::default());
    };
    let op = s.operation_or_default();
    Ok(LayerSelector {
        media_type: s.media_type.clone().filter(|m| !m.is_empty()),
        operation: LayerOperation::parse(op)
            .ok_or_else(|| invalid("layerSelector.operation", op, "must be extract or copy"))?,
    })
}

fn provider(name: &str) -> Result<Provider, StepFailure> {
    match name {
        "generic" => Ok(Provider::Generic),
        "aws" => Ok(Provider::Cloud("aws")),
        "azure" => Ok(Provider::Cloud("azure")),
        "gcp" => Ok(Provider::Cloud("gcp")),
        other => Err(StepFailure::stalled(
            reasons::INVALID_PROVIDER_CONFIGURATION,
            format!("invalid spec.provider '{other}': must be generic, aws, azure or gcp"),
        )),
    }
}

fn verification(
    v: &openapi::v1::OCIRepositoryVerification,
) -> Result<(VerifyProvider, Verification), StepFailure> {
    let provider = match v.provider.as_deref().unwrap_or_default() {
        "cosign" => VerifyProvider::Cosign,
        "notation" => VerifyProvider::Notation,
        other => {
            return Err(StepFailure::stalled(
                reasons::VERIFICATION_ERROR,
                format!("unknown verification provider '{other}'"),
            ));
        }
    };
    let named = |r: Option<&openapi::meta::LocalObjectReference>| {
        r.map(|r| r.name.clone()).filter(|n| !n.is_empty())
    };
    let how = match named(v.secret_ref.as_ref()) {
        Some(secret) => Verification::Keys(secret),
        None => Verification::Keyless {
            trusted_root_secret: named(v.trusted_root_secret_ref.as_ref()),
            identities: v.match_oidc_identity.clone().unwrap_or_default(),
        },
    };
    Ok((provider, how))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(spec: serde_json::Value) -> OCIRepository {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "OCIRepository",
            "metadata": {"name": "a", "namespace": "default"}, "spec": spec,
        }))
        .unwrap()
    }

    #[test]
    fn defaults_come_from_openapi_and_values_are_typed() {
        let spec = Spec::parse(&object(serde_json::json!({
            "url": "oci://r.example/app", "interval": "5m",
            "layerSelector": {"mediaType": "application/x", "operation": "copy"},
            "verify": {"secretRef": {"name": "keys"}},
        })))
        .unwrap();
        assert_eq!(spec.timeout, Duration::from_secs(60), "openapi's default");
        assert_eq!(spec.interval, Duration::from_secs(300));
        assert_eq!(spec.provider, Provider::Generic);
        assert_eq!(spec.reference, RefSpec::Tag("latest".into()));
        assert_eq!(spec.layer.operation, LayerOperation::Copy);
        assert_eq!(
            spec.verify,
            Some((VerifyProvider::Cosign, Verification::Keys("keys".into())))
        );
        assert_eq!(spec.repository.repository, "app");
    }

    #[test]
    fn urls_with_tags_are_refused() {
        let f = repository("oci://127.0.0.1:5000/podinfo:6.0").unwrap_err();
        assert_eq!(f.kind, super::super::failure::FailureKind::Stalled);
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
