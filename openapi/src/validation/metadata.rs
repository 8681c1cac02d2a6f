//! Kubernetes object-metadata validation (`apimachinery/pkg/api/validation/objectmeta.go`).

use std::collections::BTreeMap;
use std::sync::LazyLock;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use regex::Regex;

use crate::error::Cause;

const DNS1123_LABEL: &str = "[a-z0-9]([-a-z0-9]*[a-z0-9])?";
const DNS1123_SUBDOMAIN: &str = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*";
const QUALIFIED_NAME: &str = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]";
const LABEL_VALUE: &str = "(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?";

static LABEL_RE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(&format!("^{DNS1123_LABEL}$")).expect("regex"));
static SUBDOMAIN_RE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(&format!("^{DNS1123_SUBDOMAIN}$")).expect("regex"));
static QUALIFIED_RE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(&format!("^{QUALIFIED_NAME}$")).expect("regex"));
static LABEL_VALUE_RE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(&format!("^{LABEL_VALUE}$")).expect("regex"));

/// Kubernetes' total annotation size limit (256 KiB).
const MAX_ANNOTATIONS_BYTES: usize = 256 * 1024;

/// Problems of `value` as a DNS-1123 subdomain (empty when valid), Kubernetes' wording.
pub(crate) fn dns1123_subdomain_errors(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if value.len() > 253 {
        errs.push("must be no more than 253 characters".to_owned());
    }
    if !SUBDOMAIN_RE.is_match(value) {
        errs.push(format!(
            "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '{DNS1123_SUBDOMAIN}')"
        ));
    }
    errs
}

/// Problems of `value` as a DNS-1123 label (empty when valid), Kubernetes' wording.
pub(crate) fn dns1123_label_errors(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if value.len() > 63 {
        errs.push("must be no more than 63 characters".to_owned());
    }
    if !LABEL_RE.is_match(value) {
        errs.push(format!(
            "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '{DNS1123_LABEL}')"
        ));
    }
    errs
}

fn qualified_name_errors(key: &str) -> Vec<String> {
    let (prefix, name) = match key.split_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    let mut errs = Vec::new();
    if let Some(prefix) = prefix {
        if prefix.is_empty() {
            errs.push("prefix part must be non-empty".to_owned());
        } else {
            errs.extend(
                dns1123_subdomain_errors(prefix)
                    .into_iter()
                    .map(|e| format!("prefix part {e}")),
            );
        }
    }
    if name.is_empty() {
        errs.push("name part must be non-empty".to_owned());
    } else {
        if name.len() > 63 {
            errs.push("name part must be no more than 63 characters".to_owned());
        }
        if !QUALIFIED_RE.is_match(name) {
            errs.push(format!("name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '{QUALIFIED_NAME}')"));
        }
    }
    errs
}

fn labels(labels: &BTreeMap<String, String>, causes: &mut Vec<Cause>) {
    for (key, value) in labels {
        for e in qualified_name_errors(key) {
            causes.push(Cause::invalid("metadata.labels", key, &e));
        }
        if value.len() > 63 {
            causes.push(Cause::invalid(
                format!("metadata.labels.{key}"),
                value,
                "must be no more than 63 characters",
            ));
        }
        if !LABEL_VALUE_RE.is_match(value) {
            causes.push(Cause::invalid(
                format!("metadata.labels.{key}"),
                value,
                &format!("a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '{LABEL_VALUE}')"),
            ));
        }
    }
}

fn annotations(annotations: &BTreeMap<String, String>, causes: &mut Vec<Cause>) {
    let mut total = 0;
    for (key, value) in annotations {
        total += key.len() + value.len();
        for e in qualified_name_errors(&key.to_lowercase()) {
            causes.push(Cause::invalid("metadata.annotations", key, &e));
        }
    }
    if total > MAX_ANNOTATIONS_BYTES {
        causes.push(Cause::too_long(
            "metadata.annotations",
            MAX_ANNOTATIONS_BYTES,
        ));
    }
}

/// Validates `metadata`: name (required unless `generateName` is set; DNS-1123 subdomain),
/// namespace (DNS-1123 label when set), labels and annotations.
pub(crate) fn validate(meta: &ObjectMeta, causes: &mut Vec<Cause>) {
    match meta.name.as_deref() {
        None | Some("") => {
            if meta.generate_name.as_deref().unwrap_or("").is_empty() {
                causes.push(Cause::required(
                    "metadata.name",
                    "name or generateName is required",
                ));
            }
        }
        Some(name) => {
            for e in dns1123_subdomain_errors(name) {
                causes.push(Cause::invalid("metadata.name", name, &e));
            }
        }
    }
    if let Some(ns) = meta.namespace.as_deref().filter(|ns| !ns.is_empty()) {
        for e in dns1123_label_errors(ns) {
            causes.push(Cause::invalid("metadata.namespace", ns, &e));
        }
    }
    if let Some(l) = &meta.labels {
        labels(l, causes);
    }
    if let Some(a) = &meta.annotations {
        annotations(a, causes);
    }
    if let Some(refs) = &meta.owner_references {
        owner_references(refs, causes);
    }
}

/// `metadata.ownerReferences` as kube-apiserver checks them for the garbage collector
/// (`ValidateOwnerReferences`): `apiVersion` with a version, `kind`, `name` and `uid` set, no
/// core `v1` `Event` as owner, at most one reference with `controller: true`. The field paths
/// carry no index, as upstream's.
fn owner_references(refs: &[OwnerReference], causes: &mut Vec<Cause>) {
    const FIELD: &str = "metadata.ownerReferences";
    let mut first_controller: Option<String> = None;
    for r in refs {
        let version = r.api_version.rsplit('/').next().unwrap_or_default();
        for (child, value, empty, detail) in [
            (
                "apiVersion",
                &r.api_version,
                version.is_empty(),
                "version must not be empty",
            ),
            ("kind", &r.kind, r.kind.is_empty(), "kind must not be empty"),
            ("name", &r.name, r.name.is_empty(), "name must not be empty"),
            ("uid", &r.uid, r.uid.is_empty(), "uid must not be empty"),
        ] {
            if empty {
                causes.push(Cause::invalid(format!("{FIELD}.{child}"), value, detail));
            }
        }
        if r.api_version == "v1" && r.kind == "Event" {
            causes.push(Cause::invalid(
                FIELD,
                &format!("{}/{}", r.kind, r.name),
                "/v1, Kind=Event is disallowed from being an owner",
            ));
        }
        if r.controller == Some(true) {
            let this = format!("{}/{}", r.kind, r.name);
            match &first_controller {
                Some(first) => causes.push(Cause::invalid(
                    FIELD,
                    &this,
                    &format!(
                        "Only one reference can have Controller set to true. Found \"true\" in references for {first} and {this}"
                    ),
                )),
                None => first_controller = Some(this),
            }
        }
    }
}
