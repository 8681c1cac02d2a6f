//! Errors of decoding and encoding, and field causes in the shape of `metav1.StatusCause`.

use std::fmt;

/// Kubernetes' field error types (`k8s.io/apimachinery/pkg/util/validation/field.ErrorType`),
/// used as `metav1.StatusCause.reason`. [`CauseReason::as_str`] gives the exact string.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CauseReason {
    /// `FieldValueNotFound`: a referenced value does not exist.
    FieldValueNotFound,
    /// `FieldValueRequired`: a required field is missing or empty.
    FieldValueRequired,
    /// `FieldValueDuplicate`: a value that must be unique is repeated.
    FieldValueDuplicate,
    /// `FieldValueInvalid`: malformed value (pattern, syntax, range).
    FieldValueInvalid,
    /// `FieldValueNotSupported`: a value outside an enum.
    FieldValueNotSupported,
    /// `FieldValueForbidden`: the field may not be set in this context.
    FieldValueForbidden,
    /// `FieldValueTooLong`: a string or list longer than allowed.
    FieldValueTooLong,
    /// `FieldValueTooMany`: too many items.
    FieldValueTooMany,
    /// `FieldValueTypeInvalid`: the JSON type is wrong (a number where a string belongs).
    FieldValueTypeInvalid,
    /// `InternalError`: validation itself failed.
    InternalError,
}

impl CauseReason {
    /// The exact Kubernetes string, e.g. `"FieldValueRequired"`.
    pub fn as_str(self) -> &'static str {
        match self {
            CauseReason::FieldValueNotFound => "FieldValueNotFound",
            CauseReason::FieldValueRequired => "FieldValueRequired",
            CauseReason::FieldValueDuplicate => "FieldValueDuplicate",
            CauseReason::FieldValueInvalid => "FieldValueInvalid",
            CauseReason::FieldValueNotSupported => "FieldValueNotSupported",
            CauseReason::FieldValueForbidden => "FieldValueForbidden",
            CauseReason::FieldValueTooLong => "FieldValueTooLong",
            CauseReason::FieldValueTooMany => "FieldValueTooMany",
            CauseReason::FieldValueTypeInvalid => "FieldValueTypeInvalid",
            CauseReason::InternalError => "InternalError",
        }
    }
}

impl fmt::Display for CauseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl serde::Serialize for CauseReason {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// One field problem, the shape of `metav1.StatusCause` (`{"reason","message","field"}`).
///
/// `message` is what Kubernetes' `field.Error.ErrorBody()` prints (`Required value`,
/// `Invalid value: "x": <detail>`, `Unsupported value: "x": supported values: "a", "b"`);
/// `field` is the path without a leading dot (`spec.ref.digest`, `spec.valuesFiles[0]`).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Cause {
    /// The error type.
    pub reason: CauseReason,
    /// The human-readable message (without the field path).
    pub message: String,
    /// The JSON path of the field (`metadata.name`, `spec.url`).
    pub field: String,
}

/// Quotes a string like Go's `%q` (JSON string escaping is close enough for messages).
pub(crate) fn quote(value: &str) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| format!("\"{value}\""))
}

impl Cause {
    /// `FieldValueRequired` with message `Required value` (plus `: detail` when given).
    pub fn required(field: impl Into<String>, detail: &str) -> Cause {
        let message = if detail.is_empty() {
            "Required value".to_owned()
        } else {
            format!("Required value: {detail}")
        };
        Cause {
            reason: CauseReason::FieldValueRequired,
            message,
            field: field.into(),
        }
    }

    /// `FieldValueInvalid` with message `Invalid value: "<value>": <detail>`.
    pub fn invalid(field: impl Into<String>, value: &str, detail: &str) -> Cause {
        Cause {
            reason: CauseReason::FieldValueInvalid,
            message: format!("Invalid value: {}: {detail}", quote(value)),
            field: field.into(),
        }
    }

    /// `FieldValueNotSupported` with message
    /// `Unsupported value: "<value>": supported values: "a", "b"`.
    pub fn not_supported(field: impl Into<String>, value: &str, supported: &[&str]) -> Cause {
        let list: Vec<String> = supported.iter().map(|s| quote(s)).collect();
        Cause {
            reason: CauseReason::FieldValueNotSupported,
            message: format!(
                "Unsupported value: {}: supported values: {}",
                quote(value),
                list.join(", ")
            ),
            field: field.into(),
        }
    }

    /// `FieldValueForbidden` with message `Forbidden: <detail>`.
    pub fn forbidden(field: impl Into<String>, detail: &str) -> Cause {
        Cause {
            reason: CauseReason::FieldValueForbidden,
            message: format!("Forbidden: {detail}"),
            field: field.into(),
        }
    }

    /// `FieldValueDuplicate` with message `Duplicate value: "<value>"`.
    pub fn duplicate(field: impl Into<String>, value: &str) -> Cause {
        Cause {
            reason: CauseReason::FieldValueDuplicate,
            message: format!("Duplicate value: {}", quote(value)),
            field: field.into(),
        }
    }

    /// `FieldValueTooLong` with message `Too long: may not be more than <max> bytes`.
    pub fn too_long(field: impl Into<String>, max_bytes: usize) -> Cause {
        Cause {
            reason: CauseReason::FieldValueTooLong,
            message: format!("Too long: may not be more than {max_bytes} bytes"),
            field: field.into(),
        }
    }

    /// `FieldValueTypeInvalid` with message `Invalid value: "<found>": <detail>`.
    pub fn type_invalid(field: impl Into<String>, found: &str, detail: &str) -> Cause {
        Cause {
            reason: CauseReason::FieldValueTypeInvalid,
            message: format!("Invalid value: {}: {detail}", quote(found)),
            field: field.into(),
        }
    }
}

impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// Errors of [`crate::decode`] and [`crate::encode`].
///
/// Map to HTTP: [`Error::is_bad_request`] → 400 BadRequest; otherwise, when
/// [`Error::causes`] is non-empty → 422 Invalid with those causes; otherwise 500 (a stored object
/// that no longer decodes).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The body is not a JSON object.
    #[error("the body of the request is not a JSON object (found {found})")]
    NotAnObject {
        /// The JSON type found instead (`array`, `string`, ...).
        found: &'static str,
    },
    /// `apiVersion` or `kind` is missing or not a string.
    #[error("Object '{field}' is missing or not a string")]
    MissingTypeMeta {
        /// `apiVersion` or `kind`.
        field: &'static str,
    },
    /// `apiVersion` names another group/version than the one being served.
    #[error(
        "the API version in the data ({found}) does not match the expected API version ({expected})"
    )]
    WrongApiVersion {
        /// The served `apiVersion`.
        expected: &'static str,
        /// The value in the body.
        found: String,
    },
    /// `kind` is not the kind being served.
    #[error("the kind in the data ({found}) does not match the expected kind ({expected})")]
    WrongKind {
        /// The served kind.
        expected: &'static str,
        /// The value in the body.
        found: String,
    },
    /// A field has the wrong JSON type or an unparsable value (e.g. `spec.interval: 5`, a
    /// malformed timestamp in metadata).
    #[error("{field}: {message}")]
    InvalidField {
        /// Path of the field, e.g. `spec.interval`.
        field: String,
        /// What was wrong (serde's message).
        message: String,
        /// The JSON type found for a type mismatch (`integer`, `object`...), else the offending
        /// value as text, when known.
        found: Option<String>,
    },
    /// A field the types require is missing (e.g. `status.conditions[0].lastTransitionTime`,
    /// `status.artifact.lastUpdateTime`); required strings of `spec` are reported by
    /// [`crate::validate`] instead.
    #[error("{field}: Required value")]
    MissingField {
        /// Path of the missing field.
        field: String,
    },
    /// The conversion annotation of a stored object is corrupt.
    #[error("conversion of {kind} failed at {field}: {message}")]
    Conversion {
        /// The kind being converted.
        kind: &'static str,
        /// The field (annotation path) that failed.
        field: String,
        /// What was wrong.
        message: String,
    },
    /// A stored object no longer deserializes into the v1 types (a server bug or corrupt store).
    #[error("stored {kind} does not decode at {field}: {message}")]
    Stored {
        /// The kind.
        kind: &'static str,
        /// Path of the offending field.
        field: String,
        /// What was wrong.
        message: String,
    },
}

impl Error {
    /// Field causes for a 422 response: one cause for [`Error::InvalidField`], empty otherwise
    /// (the 400 variants carry their field in the message).
    pub fn causes(&self) -> Vec<Cause> {
        match self {
            Error::InvalidField {
                field,
                message,
                found: Some(found),
            } => {
                if message.contains(" in body must be of type ") {
                    vec![Cause::type_invalid(field.clone(), found, message)]
                } else {
                    vec![Cause::invalid(field.clone(), found, message)]
                }
            }
            Error::InvalidField {
                field,
                message,
                found: None,
            } => vec![Cause {
                reason: CauseReason::FieldValueInvalid,
                message: format!("Invalid value: {message}"),
                field: field.clone(),
            }],
            Error::MissingField { field } => vec![Cause::required(field.clone(), "")],
            Error::WrongApiVersion { found, .. } => {
                vec![Cause::invalid(
                    "apiVersion",
                    found,
                    "does not match the served API version",
                )]
            }
            Error::WrongKind { found, .. } => {
                vec![Cause::invalid(
                    "kind",
                    found,
                    "does not match the served kind",
                )]
            }
            Error::MissingTypeMeta { field } => vec![Cause::required(*field, "")],
            _ => Vec::new(),
        }
    }

    /// Whether the input was malformed (400 BadRequest): not an object, missing or wrong
    /// `apiVersion`/`kind`, as kube-apiserver answers for a body of the wrong type.
    pub fn is_bad_request(&self) -> bool {
        matches!(
            self,
            Error::NotAnObject { .. }
                | Error::MissingTypeMeta { .. }
                | Error::WrongApiVersion { .. }
                | Error::WrongKind { .. }
        )
    }
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_match_kubernetes_field_errors() {
        assert_eq!(Cause::required("spec.url", "").message, "Required value");
        assert_eq!(
            Cause::invalid("spec.url", "x", "must start with oci://").message,
            "Invalid value: \"x\": must start with oci://"
        );
        assert_eq!(
            Cause::not_supported("spec.provider", "x", &["a", "b"]).message,
            "Unsupported value: \"x\": supported values: \"a\", \"b\""
        );
        assert_eq!(
            serde_json::to_value(Cause::required("a", "")).unwrap()["reason"],
            "FieldValueRequired"
        );
    }
}
