//! Content negotiation: which representation a client asked for in `Accept`, and which body
//! format it sent in `Content-Type` (reference: aggregated-apiserver.md §3.1, §3.11, §3.12).
//!
//! Served: JSON and YAML objects and lists; `as=Table` (`meta.k8s.io` `v1` and `v1beta1`, JSON);
//! `as=PartialObjectMetadata` for one object and for each frame of a watch, and
//! `as=PartialObjectMetadataList` for a list (`meta.k8s.io` `v1` and `v1beta1`, JSON), as
//! client-go's metadata client asks for them (`client-go: metadata/metadata.go`). Protobuf is
//! never served; an `Accept` offering nothing we serve gets 406.

use http::HeaderMap;

use crate::http::error::ApiError;

/// Serialization of a response body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// `application/json`.
    Json,
    /// `application/yaml`.
    Yaml,
}

/// What `row.object` of a Table holds (`includeObject`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum IncludeObject {
    /// `PartialObjectMetadata` (the default).
    #[default]
    Metadata,
    /// The whole object.
    Object,
    /// Nothing.
    None,
}

/// The shape of a response.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    /// The object(s) themselves.
    Object,
    /// A `meta.k8s.io/v1` Table.
    Table,
    /// `PartialObjectMetadata` / `PartialObjectMetadataList`.
    PartialMetadata,
}

/// The version of `meta.k8s.io` a `Table` or `PartialObjectMetadata` answer is written in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum MetaVersion {
    /// `meta.k8s.io/v1` (also the version of plain objects' answers, where it is unused).
    #[default]
    V1,
    /// `meta.k8s.io/v1beta1`, still asked for by older clients.
    V1beta1,
}

impl MetaVersion {
    /// `meta.k8s.io/v1` or `meta.k8s.io/v1beta1`.
    pub fn api_version(self) -> &'static str {
        match self {
            MetaVersion::V1 => "meta.k8s.io/v1",
            MetaVersion::V1beta1 => "meta.k8s.io/v1beta1",
        }
    }
}

/// What a request answers with, which decides the `PartialObjectMetadata` form it accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Answer {
    /// One object (get, create, update, patch, delete): `as=PartialObjectMetadata`.
    Object,
    /// A list (list, deletecollection): `as=PartialObjectMetadataList`.
    List,
    /// A stream of watch events, each framing one object: `as=PartialObjectMetadata`, as
    /// client-go's metadata `Watch` sends it.
    Watch,
}

/// The negotiated output.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Output {
    /// Body format.
    pub format: Format,
    /// Body shape.
    pub shape: Shape,
    /// The `meta.k8s.io` version of a `Table` or `PartialObjectMetadata` shape.
    pub meta_version: MetaVersion,
}

const ACCEPTED: &str = "application/json, application/yaml, application/json;as=Table;v=v1;g=meta.k8s.io, application/json;as=PartialObjectMetadata;v=v1;g=meta.k8s.io, application/json;as=PartialObjectMetadataList;v=v1;g=meta.k8s.io";

/// One entry of an `Accept` header: type, subtype and parameters (lower-cased keys).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaRange {
    /// e.g. `application/json`.
    pub essence: String,
    /// Parameters such as `as`, `g`, `v`.
    pub params: Vec<(String, String)>,
}

impl MediaRange {
    /// A parameter's value.
    pub fn param(&self, key: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// Parses an `Accept` header value into its media ranges, in the order given (q-values are
/// honoured by a stable sort, highest first).
pub fn parse_accept(value: &str) -> Vec<MediaRange> {
    let mut ranges: Vec<(f32, MediaRange)> = value
        .split(',')
        .filter_map(|part| {
            let mut pieces = part.split(';').map(str::trim);
            let essence = pieces.next()?.to_ascii_lowercase();
            if essence.is_empty() {
                return None;
            }
            let mut q = 1.0;
            let mut params = Vec::new();
            for p in pieces {
                if let Some((k, v)) = p.split_once('=') {
                    let k = k.trim().to_ascii_lowercase();
                    let v = v.trim().trim_matches('"').to_string();
                    if k == "q" {
                        q = v.parse().unwrap_or(1.0);
                    } else {
                        params.push((k, v));
                    }
                }
            }
            Some((q, MediaRange { essence, params }))
        })
        .collect();
    ranges.sort_by(|a, b| b.0.partial_cmp(&a.0).unwrap_or(std::cmp::Ordering::Equal));
    ranges
        .into_iter()
        .filter(|(q, _)| *q > 0.0)
        .map(|(_, r)| r)
        .collect()
}

/// Chooses the output for a request on our resources that answers with `answer`. Entries of
/// `Accept` that cannot be served (protobuf, an `as=` kind of another answer, a foreign group
/// or version) are skipped, so client-go's trailing `application/json` is the fallback.
///
/// # Errors
/// 406 NotAcceptable when nothing offered can be served.
pub fn negotiate(headers: &HeaderMap, answer: Answer) -> Result<Output, ApiError> {
    let Some(accept) = headers
        .get(http::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.trim().is_empty())
    else {
        return Ok(Output {
            format: Format::Json,
            shape: Shape::Object,
            meta_version: MetaVersion::V1,
        });
    };
    for range in parse_accept(accept) {
        let format = match range.essence.as_str() {
            "application/json" | "*/*" | "application/*" => Format::Json,
            "application/yaml" => Format::Yaml,
            _ => continue,
        };
        let Some((shape, meta_version)) = shape_of(&range, answer) else {
            continue;
        };
        if shape != Shape::Object && format != Format::Json {
            continue;
        }
        return Ok(Output {
            format,
            shape,
            meta_version,
        });
    }
    Err(ApiError::not_acceptable(ACCEPTED))
}

/// The shape an `Accept` entry asks for, or `None` when it names an `as=` we do not serve for
/// this answer.
fn shape_of(range: &MediaRange, answer: Answer) -> Option<(Shape, MetaVersion)> {
    let Some(kind) = range.param("as") else {
        return Some((Shape::Object, MetaVersion::V1));
    };
    if range.param("g") != Some("meta.k8s.io") {
        return None;
    }
    let version = match range.param("v") {
        Some("v1") => MetaVersion::V1,
        Some("v1beta1") => MetaVersion::V1beta1,
        _ => return None,
    };
    let shape = match (kind, answer) {
        ("Table", _) => Shape::Table,
        ("PartialObjectMetadata", Answer::Object | Answer::Watch)
        | ("PartialObjectMetadataList", Answer::List) => Shape::PartialMetadata,
        _ => return None,
    };
    Some((shape, version))
}

/// The media type of `Content-Type` without parameters, lower-cased.
pub fn content_type(headers: &HeaderMap) -> Option<String> {
    headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
}

/// The format of a request body, from `Content-Type` (JSON when absent).
///
/// # Errors
/// 415 for anything but JSON or YAML.
pub fn body_format(headers: &HeaderMap) -> Result<Format, ApiError> {
    match content_type(headers).as_deref() {
        None | Some("") | Some("application/json") => Ok(Format::Json),
        Some("application/yaml") | Some("application/x-yaml") | Some("text/yaml") => {
            Ok(Format::Yaml)
        }
        _ => Err(ApiError::unsupported_media_type(
            "application/json, application/yaml",
        )),
    }
}

/// Parses a body in `format` into JSON.
///
/// # Errors
/// 400 BadRequest naming the decode problem.
pub fn parse_body(format: Format, bytes: &[u8]) -> Result<serde_json::Value, ApiError> {
    match format {
        Format::Json => serde_json::from_slice(bytes)
            .map_err(|e| ApiError::bad_request(format!("error decoding JSON body: {e}"))),
        Format::Yaml => serde_yaml::from_slice(bytes)
            .map_err(|e| ApiError::bad_request(format!("error decoding YAML body: {e}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(accept: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(http::header::ACCEPT, accept.parse().unwrap());
        h
    }

    #[test]
    fn kubectl_get_asks_for_a_table_first() {
        let h = headers(
            "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json",
        );
        assert_eq!(negotiate(&h, Answer::List).unwrap().shape, Shape::Table);
    }

    #[test]
    fn the_metadata_client_gets_partial_metadata_and_protobuf_is_skipped() {
        let h = headers(
            "application/vnd.kubernetes.protobuf;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json",
        );
        assert_eq!(
            negotiate(&h, Answer::List).unwrap().shape,
            Shape::PartialMetadata
        );
        let h = headers("application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1");
        assert_eq!(
            negotiate(&h, Answer::Object).unwrap().shape,
            Shape::PartialMetadata
        );
    }

    #[test]
    fn a_metadata_watch_gets_partial_metadata_frames_and_forms_of_other_answers_fall_back() {
        let watch = headers(
            "application/vnd.kubernetes.protobuf;as=PartialObjectMetadata;g=meta.k8s.io;v=v1,application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1,application/json",
        );
        assert_eq!(
            negotiate(&watch, Answer::Watch).unwrap().shape,
            Shape::PartialMetadata
        );
        // The list form never frames a watch; the single form never answers a list.
        assert_eq!(
            negotiate(&watch, Answer::List).unwrap().shape,
            Shape::Object
        );
        let list_form = headers(
            "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json",
        );
        assert_eq!(
            negotiate(&list_form, Answer::Watch).unwrap().shape,
            Shape::Object
        );
    }

    #[test]
    fn v1beta1_forms_keep_their_version() {
        let h = headers("application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1beta1");
        let output = negotiate(&h, Answer::List).unwrap();
        assert_eq!(output.shape, Shape::PartialMetadata);
        assert_eq!(output.meta_version.api_version(), "meta.k8s.io/v1beta1");
        let h = headers("application/json;as=Table;g=meta.k8s.io;v=v1beta1");
        assert_eq!(
            negotiate(&h, Answer::List).unwrap().meta_version,
            MetaVersion::V1beta1
        );
        assert!(
            negotiate(
                &headers("application/json;as=Table;g=meta.k8s.io;v=v2"),
                Answer::List
            )
            .is_err()
        );
    }

    #[test]
    fn protobuf_only_and_unknown_as_are_not_acceptable() {
        let err = negotiate(
            &headers("application/vnd.kubernetes.protobuf"),
            Answer::Object,
        )
        .unwrap_err();
        assert_eq!(err.code, http::StatusCode::NOT_ACCEPTABLE);
        assert!(negotiate(&headers("application/json;as=Foo;g=x;v=v1"), Answer::Object).is_err());
    }

    #[test]
    fn yaml_and_wildcards_and_no_accept() {
        assert_eq!(
            negotiate(&headers("application/yaml"), Answer::Object)
                .unwrap()
                .format,
            Format::Yaml
        );
        assert_eq!(
            negotiate(&headers("*/*"), Answer::Object).unwrap().format,
            Format::Json
        );
        assert_eq!(
            negotiate(&HeaderMap::new(), Answer::Object).unwrap().shape,
            Shape::Object
        );
    }

    #[test]
    fn body_formats() {
        let mut h = HeaderMap::new();
        h.insert(
            http::header::CONTENT_TYPE,
            "application/yaml".parse().unwrap(),
        );
        assert_eq!(body_format(&h).unwrap(), Format::Yaml);
        h.insert(http::header::CONTENT_TYPE, "text/plain".parse().unwrap());
        assert_eq!(
            body_format(&h).unwrap_err().code,
            http::StatusCode::UNSUPPORTED_MEDIA_TYPE
        );
    }
}
