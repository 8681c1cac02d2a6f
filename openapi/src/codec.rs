//! Decoding request bodies into the storage version and encoding stored objects for a version.
//!
//! Both work on JSON values: the caller parses JSON (or converts YAML to JSON) and serializes.

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::error::{Error, Result};
use crate::resource::{Kind, ResourceInfo};
use crate::version::Version;
use crate::{convert, defaults, v1, v1beta2};

/// The result of [`decode`].
#[derive(Debug)]
pub struct Decoded {
    /// The object in v1 (`apiVersion: source.toolkit.fluxcd.io/v1`), defaulted.
    pub object: Value,
    /// Paths of fields the types do not know, e.g. `spec.foo`, `metadata.bar`,
    /// `spec.verify.matchOIDCIdentity[0].extra`; they were dropped (Kubernetes' pruning). Report
    /// them as warnings (`fieldValidation=Warn`, the default) or reject them (`Strict`).
    pub unknown_fields: Vec<String>,
}

/// Decodes a request body sent for `version` into a defaulted v1 object.
///
/// Steps: `apiVersion` and `kind` must equal the served group/version and kind; the body is
/// deserialized into that version's types (unknown fields are recorded, not fatal; `null`
/// values under `spec`/`status` are dropped like Kubernetes drops nulls of non-nullable
/// fields); converted to v1 ([`crate::convert`]); defaulted ([`crate::defaults`], including
/// `status.observedGeneration: -1` when `status` is absent). Metadata passes through
/// (k8s-openapi `ObjectMeta`: every standard field, including `managedFields`).
///
/// Validation is separate: call [`crate::validate`] on the result.
///
/// # Errors
/// - [`Error::NotAnObject`], [`Error::MissingTypeMeta`], [`Error::WrongApiVersion`],
///   [`Error::WrongKind`]: malformed input ([`Error::is_bad_request`] is true, 400).
/// - [`Error::InvalidField`]: a value of the wrong JSON type or unparsable (e.g.
///   `spec.interval: 5`, a bad `metadata.creationTimestamp`), with its path (422).
pub fn decode(resource: &ResourceInfo, version: Version, body: Value) -> Result<Decoded> {
    let Value::Object(mut map) = body else {
        return Err(Error::NotAnObject {
            found: json_type(&body),
        });
    };
    let api_version = match map.get("apiVersion") {
        Some(Value::String(s)) => s.clone(),
        _ => {
            return Err(Error::MissingTypeMeta {
                field: "apiVersion",
            });
        }
    };
    let kind = match map.get("kind") {
        Some(Value::String(s)) => s.clone(),
        _ => return Err(Error::MissingTypeMeta { field: "kind" }),
    };
    if api_version != version.api_version() {
        return Err(Error::WrongApiVersion {
            expected: version.api_version(),
            found: api_version,
        });
    }
    if kind != resource.kind {
        return Err(Error::WrongKind {
            expected: resource.kind,
            found: kind,
        });
    }
    for section in ["spec", "status"] {
        if let Some(value) = map.get_mut(section) {
            strip_nulls(value);
        }
        if map.get(section) == Some(&Value::Null) {
            map.remove(section);
        }
    }
    let body = Value::Object(map);
    let mut unknown = Vec::new();
    let object = match (resource.kind_enum(), version) {
        (Kind::OCIRepository, Version::V1) => {
            let mut obj: v1::OCIRepository = from_value(&body, &mut unknown)?;
            defaults::oci_repository(&mut obj);
            to_v1_value(obj, resource)?
        }
        (Kind::OCIRepository, Version::V1beta2) => {
            let obj: v1beta2::OCIRepository = from_value(&body, &mut unknown)?;
            let mut obj = convert::oci_repository_to_v1(obj);
            defaults::oci_repository(&mut obj);
            to_v1_value(obj, resource)?
        }
        (Kind::HelmRepository, Version::V1) => {
            let mut obj: v1::HelmRepository = from_value(&body, &mut unknown)?;
            defaults::helm_repository(&mut obj);
            to_v1_value(obj, resource)?
        }
        (Kind::HelmRepository, Version::V1beta2) => {
            let obj: v1beta2::HelmRepository = from_value(&body, &mut unknown)?;
            let mut obj = convert::helm_repository_to_v1(obj);
            defaults::helm_repository(&mut obj);
            to_v1_value(obj, resource)?
        }
        (Kind::HelmChart, Version::V1) => {
            let mut obj: v1::HelmChart = from_value(&body, &mut unknown)?;
            defaults::helm_chart(&mut obj);
            to_v1_value(obj, resource)?
        }
        (Kind::HelmChart, Version::V1beta2) => {
            let obj: v1beta2::HelmChart = from_value(&body, &mut unknown)?;
            let mut obj = convert::helm_chart_to_v1(obj);
            defaults::helm_chart(&mut obj);
            to_v1_value(obj, resource)?
        }
    };
    Ok(Decoded {
        object,
        unknown_fields: unknown,
    })
}

/// Renders a stored v1 object in `version`: converted ([`crate::convert`]), with `apiVersion`
/// and `kind` set. No defaulting and no validation happen here.
///
/// In the storage version the stored object is returned as it is (only `apiVersion`/`kind`
/// are set): everything stored went through [`decode`] or a typed status write, so it is
/// already canonical v1, and re-serialising it on every read (get, list, watch frame) would be
/// work done again on the hot path.
///
/// # Errors
/// [`Error::Stored`] when `stored` is not an object or (for v1beta2) does not deserialize as a
/// v1 object, [`Error::Conversion`] when its v1beta2 annotation is corrupt; both are
/// server-side faults (500).
pub fn encode(resource: &ResourceInfo, version: Version, stored: Value) -> Result<Value> {
    let kind = resource.kind;
    match (resource.kind_enum(), version) {
        (_, Version::STORAGE) => {
            let mut object = stored;
            let Some(map) = object.as_object_mut() else {
                return Err(Error::Stored {
                    kind,
                    field: String::new(),
                    message: format!("expected an object, found {}", json_type(&object)),
                });
            };
            map.insert("apiVersion".into(), Value::from(version.api_version()));
            map.insert("kind".into(), Value::from(kind));
            Ok(object)
        }
        (Kind::OCIRepository, Version::V1beta2) => {
            let obj = convert::oci_repository_to_v1beta2(stored_from_value(stored, kind)?)?;
            to_value(obj, version, kind)
        }
        (Kind::HelmRepository, Version::V1beta2) => {
            let obj = convert::helm_repository_to_v1beta2(stored_from_value(stored, kind)?);
            to_value(obj, version, kind)
        }
        (Kind::HelmChart, Version::V1beta2) => {
            let obj = convert::helm_chart_to_v1beta2(stored_from_value(stored, kind)?)?;
            to_value(obj, version, kind)
        }
    }
}

/// The JSON type name Kubernetes uses in messages (`object`, `array`, `string`, ...).
pub(crate) fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn strip_nulls(value: &mut Value) {
    match value {
        Value::Object(map) => {
            map.retain(|_, v| !v.is_null());
            map.values_mut().for_each(strip_nulls);
        }
        Value::Array(items) => items.iter_mut().for_each(strip_nulls),
        _ => {}
    }
}

/// Formats a serde_ignored path as a Kubernetes field path (`spec.items[0].foo`).
fn ignored_path(path: &serde_ignored::Path<'_>) -> String {
    use serde_ignored::Path;
    match path {
        Path::Root => String::new(),
        Path::Seq { parent, index } => format!("{}[{index}]", ignored_path(parent)),
        Path::Map { parent, key } => {
            let parent = ignored_path(parent);
            if parent.is_empty() {
                key.to_string()
            } else {
                format!("{parent}.{key}")
            }
        }
        Path::Some { parent }
        | Path::NewtypeStruct { parent }
        | Path::NewtypeVariant { parent } => ignored_path(parent),
    }
}

/// Serde's "invalid type: integer `5`, expected a string" → ("integer", "string").
fn type_words(message: &str) -> Option<(String, String)> {
    let rest = message.strip_prefix("invalid type: ")?;
    let (found, expected) = rest.split_once(", expected ")?;
    let found = match found.split_whitespace().next()? {
        "integer" => "integer",
        "floating" => "number",
        "string" => "string",
        "boolean" => "boolean",
        "map" => "object",
        "sequence" => "array",
        "null" | "unit" => "null",
        other => other,
    }
    .to_owned();
    let expected = if expected.contains("string") {
        "string"
    } else if expected.contains("bool") {
        "boolean"
    } else if expected.contains("i64")
        || expected.contains("i32")
        || expected.contains("u64")
        || expected.contains("integer")
    {
        "integer"
    } else if expected.contains("sequence") {
        "array"
    } else {
        "object"
    }
    .to_owned();
    Some((found, expected))
}

/// The value at a field path like `spec.items[0].name` (for error messages).
fn lookup<'a>(value: &'a Value, path: &str) -> Option<&'a Value> {
    let mut current = value;
    for segment in path.split('.').filter(|s| !s.is_empty()) {
        let (key, indexes) = match segment.find('[') {
            Some(i) => (&segment[..i], &segment[i..]),
            None => (segment, ""),
        };
        if !key.is_empty() {
            current = current.get(key)?;
        }
        for index in indexes.split(['[', ']']).filter(|s| !s.is_empty()) {
            current = current.get(index.parse::<usize>().ok()?)?;
        }
    }
    Some(current)
}

/// Builds an error from a path-tracked serde error; `body` (when available) supplies the
/// offending value for the message.
pub(crate) fn field_error(
    err: serde_path_to_error::Error<serde_json::Error>,
    body: Option<&Value>,
) -> Error {
    let field = err.path().to_string();
    let field = if field == "." { String::new() } else { field };
    let message = err.inner().to_string();
    if let Some(rest) = message.strip_prefix("missing field `") {
        let name = rest.split('`').next().unwrap_or_default();
        let full = if field.is_empty() {
            name.to_owned()
        } else {
            format!("{field}.{name}")
        };
        return Error::MissingField { field: full };
    }
    if let Some((found, expected)) = type_words(&message) {
        return Error::InvalidField {
            message: format!("{field} in body must be of type {expected}: \"{found}\""),
            field,
            found: Some(found),
        };
    }
    let found = body.and_then(|b| lookup(b, &field)).map(|v| match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    });
    Error::InvalidField {
        field,
        message,
        found,
    }
}

fn from_value<T: DeserializeOwned>(value: &Value, unknown: &mut Vec<String>) -> Result<T> {
    let mut record = |path: serde_ignored::Path<'_>| unknown.push(ignored_path(&path));
    let ignoring = serde_ignored::Deserializer::new(value, &mut record);
    serde_path_to_error::deserialize(ignoring).map_err(|e| field_error(e, Some(value)))
}

fn stored_from_value<T: DeserializeOwned>(value: Value, kind: &'static str) -> Result<T> {
    serde_path_to_error::deserialize(value).map_err(|e| Error::Stored {
        kind,
        field: e.path().to_string(),
        message: e.inner().to_string(),
    })
}

fn to_value<T: Serialize>(obj: T, version: Version, kind: &'static str) -> Result<Value> {
    let mut value = serde_json::to_value(obj).map_err(|e| Error::Stored {
        kind,
        field: String::new(),
        message: e.to_string(),
    })?;
    if let Value::Object(map) = &mut value {
        map.insert(
            "apiVersion".to_owned(),
            Value::String(version.api_version().to_owned()),
        );
        map.insert("kind".to_owned(), Value::String(kind.to_owned()));
    }
    Ok(value)
}

fn to_v1_value<T: Serialize>(obj: T, resource: &ResourceInfo) -> Result<Value> {
    to_value(obj, Version::V1, resource.kind)
}

/// Deserializes a v1 object value into its typed form (used by validation and tables).
pub(crate) fn typed_v1<T: DeserializeOwned>(value: &Value) -> Result<T> {
    serde_path_to_error::deserialize(value).map_err(|e| field_error(e, Some(value)))
}
