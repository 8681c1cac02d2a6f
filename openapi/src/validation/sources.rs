//! Spec and status validation of the three kinds.

use std::sync::LazyLock;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use regex::Regex;

use crate::SemverConstraint;
use crate::error::Cause;
use crate::meta::{Artifact, LocalObjectReference};
use crate::v1;

/// `spec.interval` pattern (hours allowed).
pub(crate) const INTERVAL_PATTERN: &str = r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$";
/// `spec.timeout` pattern (no hours).
pub(crate) const TIMEOUT_PATTERN: &str = r"^([0-9]+(\.[0-9]+)?(ms|s|m))+$";
const ARTIFACT_DIGEST_PATTERN: &str = r"^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$";
const CONDITION_TYPE_PATTERN: &str = r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])$";
const CONDITION_REASON_PATTERN: &str = r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$";

fn re(pattern: &str) -> Regex {
    Regex::new(pattern).expect("static pattern")
}

static INTERVAL_RE: LazyLock<Regex> = LazyLock::new(|| re(INTERVAL_PATTERN));
static TIMEOUT_RE: LazyLock<Regex> = LazyLock::new(|| re(TIMEOUT_PATTERN));
static ARTIFACT_DIGEST_RE: LazyLock<Regex> = LazyLock::new(|| re(ARTIFACT_DIGEST_PATTERN));
static CONDITION_TYPE_RE: LazyLock<Regex> = LazyLock::new(|| re(CONDITION_TYPE_PATTERN));
static CONDITION_REASON_RE: LazyLock<Regex> = LazyLock::new(|| re(CONDITION_REASON_PATTERN));
/// ASCII classes, not `\w`: Unicode word characters are not valid in a tag (the OCI
/// distribution spec's `[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}`), and `\w{0,127}` compiled to
/// ~6.7 MiB of automaton on the first create (heaptrack, issue 14).
static TAG_RE: LazyLock<Regex> = LazyLock::new(|| re(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$"));
static REPO_COMPONENT_RE: LazyLock<Regex> =
    LazyLock::new(|| re(r"^[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*$"));
static HOST_RE: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"^(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*|\[[0-9a-fA-F:.]+\])(?::[0-9]+)?$",
    )
});

/// A pattern failure, worded as kube-openapi's validator words it.
fn pattern(field: &str, value: &str, re: &Regex, pattern: &str, causes: &mut Vec<Cause>) {
    if !re.is_match(value) {
        causes.push(Cause::invalid(
            field,
            value,
            &format!("{field} in body should match '{pattern}'"),
        ));
    }
}

fn one_of(field: &str, value: Option<&str>, allowed: &[&str], causes: &mut Vec<Cause>) {
    if let Some(v) = value
        && !allowed.contains(&v)
    {
        causes.push(Cause::not_supported(field, v, allowed));
    }
}

fn interval(field: &str, value: &str, required: bool, causes: &mut Vec<Cause>) {
    if value.is_empty() {
        if required {
            causes.push(Cause::required(field, ""));
        }
        return;
    }
    pattern(field, value, &INTERVAL_RE, INTERVAL_PATTERN, causes);
}

fn timeout(field: &str, value: Option<&str>, causes: &mut Vec<Cause>) {
    if let Some(v) = value {
        pattern(field, v, &TIMEOUT_RE, TIMEOUT_PATTERN, causes);
    }
}

fn secret_ref(field: &str, r: Option<&LocalObjectReference>, causes: &mut Vec<Cause>) {
    if let Some(r) = r
        && r.name.is_empty()
    {
        causes.push(Cause::required(format!("{field}.name"), ""));
    }
}

fn go_regex(field: &str, value: &str, causes: &mut Vec<Cause>) {
    if let Err(e) = Regex::new(value) {
        let detail = e
            .to_string()
            .lines()
            .last()
            .unwrap_or("invalid regular expression")
            .trim()
            .to_owned();
        causes.push(Cause::invalid(
            field,
            value,
            &format!("invalid regular expression: {detail}"),
        ));
    }
}

fn semver(field: &str, value: &str, causes: &mut Vec<Cause>) {
    if let Err(e) = value.parse::<SemverConstraint>() {
        causes.push(Cause::invalid(
            field,
            value,
            &format!("semver '{value}' parse error: {e}"),
        ));
    }
}

/// Checks an OCI image digest: `<algorithm>:<hex>`, hex length by algorithm.
fn oci_digest(field: &str, value: &str, causes: &mut Vec<Cause>) {
    let detail = match value.split_once(':') {
        None => Some(
            "must be of the form '<algorithm>:<hex>', e.g. 'sha256:<64 hex characters>'".to_owned(),
        ),
        Some((algo, hex)) => {
            let want = match algo {
                "sha256" => Some(64),
                "sha384" => Some(96),
                "sha512" => Some(128),
                _ => None,
            };
            match want {
                None => Some(format!(
                    "unsupported digest algorithm '{algo}': supported are sha256, sha384, sha512"
                )),
                Some(n) if hex.len() != n => Some(format!(
                    "{algo} digest must have {n} hex characters, found {}",
                    hex.len()
                )),
                Some(_)
                    if !hex
                        .bytes()
                        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) =>
                {
                    Some("digest must be lowercase hexadecimal".to_owned())
                }
                Some(_) => None,
            }
        }
    };
    if let Some(d) = detail {
        causes.push(Cause::invalid(field, value, &d));
    }
}

/// `spec.url` of an OCIRepository: `oci://<host>[:port]/<path>` without tag or digest.
fn oci_url(field: &str, url: &str, causes: &mut Vec<Cause>) {
    if url.is_empty() {
        causes.push(Cause::required(field, ""));
        return;
    }
    let Some(rest) = url.strip_prefix(v1::OCI_REPOSITORY_PREFIX) else {
        pattern(field, url, &re("^oci://.*$"), "^oci://.*$", causes);
        return;
    };
    let invalid = |detail: &str| Cause::invalid(field, url, detail);
    if let Some((_, digest)) = rest.split_once('@') {
        causes.push(invalid(&format!(
            "URL must not contain a digest; remove '@{digest}' and use spec.ref.digest"
        )));
        return;
    }
    let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
    if let Some((_, tag)) = path.rsplit_once(':') {
        causes.push(invalid(&format!(
            "URL must not contain a tag; remove ':{tag}'"
        )));
        return;
    }
    if !HOST_RE.is_match(host) {
        causes.push(invalid(&format!("invalid registry host '{host}'")));
    } else if path.is_empty() {
        causes.push(invalid(
            "URL must name a repository: oci://<host>/<repository>",
        ));
    } else if let Some(bad) = path.split('/').find(|c| !REPO_COMPONENT_RE.is_match(c)) {
        causes.push(invalid(&format!(
            "invalid repository path component '{bad}': must be lowercase alphanumerics separated by '.', '_', '__' or '-'"
        )));
    }
}

fn oidc_identities(
    field: &str,
    list: Option<&Vec<v1::OIDCIdentityMatch>>,
    causes: &mut Vec<Cause>,
) {
    for (i, m) in list.into_iter().flatten().enumerate() {
        for (name, value) in [("issuer", &m.issuer), ("subject", &m.subject)] {
            let f = format!("{field}[{i}].{name}");
            if value.is_empty() {
                causes.push(Cause::required(f, ""));
            } else {
                go_regex(&f, value, causes);
            }
        }
    }
}

fn conditions(list: &[Condition], causes: &mut Vec<Cause>) {
    for (i, c) in list.iter().enumerate() {
        let f = |name: &str| format!("status.conditions[{i}].{name}");
        if c.type_.is_empty() {
            causes.push(Cause::required(f("type"), ""));
        } else if c.type_.len() > 316 {
            causes.push(Cause::too_long(f("type"), 316));
        } else {
            pattern(
                &f("type"),
                &c.type_,
                &CONDITION_TYPE_RE,
                CONDITION_TYPE_PATTERN,
                causes,
            );
        }
        one_of(
            &f("status"),
            Some(&c.status),
            &["True", "False", "Unknown"],
            causes,
        );
        if c.reason.is_empty() {
            causes.push(Cause::required(f("reason"), ""));
        } else if c.reason.len() > 1024 {
            causes.push(Cause::too_long(f("reason"), 1024));
        } else {
            pattern(
                &f("reason"),
                &c.reason,
                &CONDITION_REASON_RE,
                CONDITION_REASON_PATTERN,
                causes,
            );
        }
        if c.message.len() > 32768 {
            causes.push(Cause::too_long(f("message"), 32768));
        }
        if c.observed_generation.is_some_and(|g| g < 0) {
            causes.push(Cause::invalid(
                f("observedGeneration"),
                &c.observed_generation.unwrap_or_default().to_string(),
                "should be greater than or equal to 0",
            ));
        }
    }
}

fn artifact(a: Option<&Artifact>, causes: &mut Vec<Cause>) {
    let Some(a) = a else { return };
    for (name, value) in [
        ("path", &a.path),
        ("url", &a.url),
        ("revision", &a.revision),
        ("digest", &a.digest),
    ] {
        if value.is_empty() {
            causes.push(Cause::required(format!("status.artifact.{name}"), ""));
        }
    }
    if !a.digest.is_empty() {
        pattern(
            "status.artifact.digest",
            &a.digest,
            &ARTIFACT_DIGEST_RE,
            ARTIFACT_DIGEST_PATTERN,
            causes,
        );
    }
}

/// Validates an OCIRepository's spec and status.
pub(crate) fn oci_repository(obj: &v1::OCIRepository, causes: &mut Vec<Cause>) {
    let s = &obj.spec;
    oci_url("spec.url", &s.url, causes);
    if let Some(r) = &s.reference {
        if let Some(d) = &r.digest {
            oci_digest("spec.ref.digest", d, causes);
        }
        if let Some(v) = &r.semver {
            semver("spec.ref.semver", v, causes);
        }
        if let Some(f) = &r.semver_filter {
            go_regex("spec.ref.semverFilter", f, causes);
        }
        if let Some(t) = r.tag.as_deref()
            && !TAG_RE.is_match(t)
        {
            causes.push(Cause::invalid(
                "spec.ref.tag",
                t,
                "a tag must be 1-128 characters of [A-Za-z0-9_.-], not starting with '.' or '-'",
            ));
        }
    }
    if let Some(l) = &s.layer_selector {
        one_of(
            "spec.layerSelector.operation",
            l.operation.as_deref(),
            v1::LAYER_OPERATIONS,
            causes,
        );
    }
    one_of(
        "spec.provider",
        s.provider.as_deref(),
        v1::OCI_PROVIDERS,
        causes,
    );
    secret_ref("spec.secretRef", s.secret_ref.as_ref(), causes);
    if let Some(v) = &s.verify {
        match v.provider.as_deref() {
            None => causes.push(Cause::required("spec.verify.provider", "")),
            p => one_of(
                "spec.verify.provider",
                p,
                v1::VERIFICATION_PROVIDERS,
                causes,
            ),
        }
        secret_ref("spec.verify.secretRef", v.secret_ref.as_ref(), causes);
        oidc_identities(
            "spec.verify.matchOIDCIdentity",
            v.match_oidc_identity.as_ref(),
            causes,
        );
        secret_ref(
            "spec.verify.trustedRootSecretRef",
            v.trusted_root_secret_ref.as_ref(),
            causes,
        );
    }
    if let Some(sa) = s
        .service_account_name
        .as_deref()
        .filter(|sa| !sa.is_empty())
    {
        for e in super::metadata::dns1123_subdomain_errors(sa) {
            causes.push(Cause::invalid("spec.serviceAccountName", sa, &e));
        }
    }
    secret_ref("spec.certSecretRef", s.cert_secret_ref.as_ref(), causes);
    secret_ref("spec.proxySecretRef", s.proxy_secret_ref.as_ref(), causes);
    interval("spec.interval", &s.interval, true, causes);
    timeout("spec.timeout", s.timeout.as_deref(), causes);
    if let Some(st) = &obj.status {
        conditions(&st.conditions, causes);
        artifact(st.artifact.as_ref(), causes);
        if let Some(l) = &st.observed_layer_selector {
            one_of(
                "status.observedLayerSelector.operation",
                l.operation.as_deref(),
                v1::LAYER_OPERATIONS,
                causes,
            );
        }
    }
}

/// Validates a HelmRepository's spec and status.
pub(crate) fn helm_repository(obj: &v1::HelmRepository, causes: &mut Vec<Cause>) {
    let s = &obj.spec;
    if s.url.is_empty() {
        causes.push(Cause::required("spec.url", ""));
    } else {
        let p = r"^(http|https|oci)://.*$";
        pattern("spec.url", &s.url, &re(p), p, causes);
        if s.is_oci() && !s.url.starts_with("oci://") {
            causes.push(Cause::invalid(
                "spec.url",
                &s.url,
                "must be an oci:// URL when spec.type is 'oci'",
            ));
        }
    }
    secret_ref("spec.secretRef", s.secret_ref.as_ref(), causes);
    secret_ref("spec.certSecretRef", s.cert_secret_ref.as_ref(), causes);
    interval(
        "spec.interval",
        s.interval.as_deref().unwrap_or(""),
        false,
        causes,
    );
    timeout("spec.timeout", s.timeout.as_deref(), causes);
    one_of(
        "spec.type",
        s.type_.as_deref(),
        v1::HELM_REPOSITORY_TYPES,
        causes,
    );
    one_of(
        "spec.provider",
        s.provider.as_deref(),
        v1::OCI_PROVIDERS,
        causes,
    );
    if let Some(st) = &obj.status {
        conditions(&st.conditions, causes);
        artifact(st.artifact.as_ref(), causes);
    }
}

/// Validates a HelmChart's spec and status.
pub(crate) fn helm_chart(obj: &v1::HelmChart, causes: &mut Vec<Cause>) {
    let s = &obj.spec;
    if s.chart.is_empty() {
        causes.push(Cause::required("spec.chart", ""));
    }
    if s.source_ref.kind.is_empty() {
        causes.push(Cause::required("spec.sourceRef.kind", ""));
    } else {
        one_of(
            "spec.sourceRef.kind",
            Some(&s.source_ref.kind),
            v1::SOURCE_KINDS,
            causes,
        );
    }
    if s.source_ref.name.is_empty() {
        causes.push(Cause::required("spec.sourceRef.name", ""));
    }
    if s.source_ref.kind == "HelmRepository"
        && let Some(v) = s.version.as_deref().filter(|v| !v.is_empty())
    {
        semver("spec.version", v, causes);
    }
    interval("spec.interval", &s.interval, true, causes);
    one_of(
        "spec.reconcileStrategy",
        s.reconcile_strategy.as_deref(),
        v1::RECONCILE_STRATEGIES,
        causes,
    );
    for (i, f) in s.values_files.iter().flatten().enumerate() {
        if f.is_empty() {
            causes.push(Cause::required(format!("spec.valuesFiles[{i}]"), ""));
        }
    }
    if let Some(v) = &s.verify {
        if s.source_ref.kind != "HelmRepository" {
            causes.push(Cause::invalid(
                "spec",
                "object",
                "spec.verify is only supported when spec.sourceRef.kind is 'HelmRepository'",
            ));
        }
        match v.provider.as_deref() {
            None => causes.push(Cause::required("spec.verify.provider", "")),
            p => one_of(
                "spec.verify.provider",
                p,
                v1::VERIFICATION_PROVIDERS,
                causes,
            ),
        }
        secret_ref("spec.verify.secretRef", v.secret_ref.as_ref(), causes);
        oidc_identities(
            "spec.verify.matchOIDCIdentity",
            v.match_oidc_identity.as_ref(),
            causes,
        );
    }
    if let Some(st) = &obj.status {
        conditions(&st.conditions, causes);
        artifact(st.artifact.as_ref(), causes);
    }
}
