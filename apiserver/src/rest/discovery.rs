//! Discovery (`/api`, `/apis`, `/apis/<group>[/<version>]`, aggregated discovery v2 and v2beta1),
//! `/version` and OpenAPI (`/openapi/v2`, `/openapi/v3`, `/openapi/v3/apis/<group>/<version>`),
//! served from documents serialised once at start with their ETags (reference:
//! aggregated-apiserver.md §1.5, §1.6).

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, HeaderValue, Request, StatusCode, header};
use sha2::{Digest, Sha512};

use openapi::Version;

use crate::http::error::ApiError;
use crate::http::negotiate::parse_accept;
use crate::http::request_info::{RequestInfo, query_pairs};

/// A serialised document and its strong ETag (uppercase hex SHA-512 of the bytes).
#[derive(Debug, Clone)]
pub struct Document {
    /// The JSON bytes.
    pub bytes: bytes::Bytes,
    /// Uppercase hex SHA-512 of `bytes`, also the OpenAPI v3 `?hash=`.
    pub hash: String,
}

impl Document {
    fn new(value: &serde_json::Value) -> Self {
        Self::from_bytes(serde_json::to_vec(value).expect("a JSON value always serialises"))
    }

    /// Each representation has its own ETag, or an HTTP cache (kubectl has one) answered 304
    /// would reuse the body of another representation.
    fn from_bytes(bytes: Vec<u8>) -> Self {
        let hash = hex::encode_upper(Sha512::digest(&bytes));
        Self {
            bytes: bytes.into(),
            hash,
        }
    }
}

/// Every discovery and OpenAPI document, built once.
#[derive(Debug)]
pub struct Documents {
    group_list: Document,
    group: Document,
    resource_lists: Vec<(Version, Document)>,
    aggregated_v2: Document,
    aggregated_v2beta1: Document,
    openapi_v2: Document,
    openapi_v2_protobuf: Document,
    openapi_v3: Vec<(Version, Document)>,
    openapi_v3_root: Document,
    version: Document,
}

impl Documents {
    /// Builds and serialises the documents from the `openapi` crate.
    pub fn build() -> Self {
        let openapi_v3: Vec<(Version, Document)> = Version::ALL
            .iter()
            .map(|&v| (v, Document::new(&openapi::openapi_v3(v))))
            .collect();
        let hashes: Vec<(Version, String)> = openapi_v3
            .iter()
            .map(|(v, d)| (*v, d.hash.clone()))
            .collect();
        Self {
            group_list: Document::new(&openapi::api_group_list()),
            group: Document::new(&openapi::api_group()),
            resource_lists: Version::ALL
                .iter()
                .map(|&v| (v, Document::new(&openapi::api_resource_list(v))))
                .collect(),
            aggregated_v2: Document::new(&openapi::api_group_discovery_list(
                "apidiscovery.k8s.io/v2",
            )),
            aggregated_v2beta1: Document::new(&openapi::api_group_discovery_list(
                "apidiscovery.k8s.io/v2beta1",
            )),
            openapi_v2_protobuf: Document::from_bytes(crate::rest::openapi_protobuf::encode(
                &openapi::openapi_v2(),
            )),
            openapi_v2: Document::new(&openapi::openapi_v2()),
            openapi_v3_root: Document::new(&openapi::openapi_v3_discovery(&hashes)),
            openapi_v3,
            version: Document::new(&serde_json::json!({
                "major": "1",
                "minor": "33",
                "gitVersion": concat!("v1.33.0+source-apiserver-", env!("CARGO_PKG_VERSION")),
                "gitCommit": "",
                "gitTreeState": "clean",
                "buildDate": "1970-01-01T00:00:00Z",
                "goVersion": "",
                "compiler": "rustc",
                "platform": format!("{}/{}", std::env::consts::OS, std::env::consts::ARCH),
            })),
        }
    }
}

/// Handles every non-resource path that passed authentication.
///
/// # Errors
/// 404 for unknown paths (including `/api`, which client-go tolerates from aggregated servers),
/// 405 for methods other than GET/HEAD, 406 for an `Accept` we cannot serve.
pub async fn handle(
    docs: &Documents,
    info: &RequestInfo,
    request: Request<Body>,
) -> Result<Response, ApiError> {
    if !matches!(*request.method(), http::Method::GET | http::Method::HEAD) {
        return Err(ApiError::method_not_allowed(request.method()));
    }
    let headers = request.headers();
    let path = info.path.trim_end_matches('/');
    let group_path = format!("/apis/{}", openapi::GROUP);
    let v3_prefix = format!("/openapi/v3/apis/{}/", openapi::GROUP);
    match path {
        "/apis" => apis(docs, headers),
        "/version" => Ok(json(&docs.version, headers, None)),
        "/openapi/v2" => openapi_v2(docs, headers),
        "/openapi/v3" => Ok(json(&docs.openapi_v3_root, headers, None)),
        p if p == group_path => Ok(json(&docs.group, headers, None)),
        p if p.starts_with(&group_path) => {
            let version: Version = p[group_path.len() + 1..]
                .parse()
                .map_err(|_| ApiError::no_route())?;
            let doc = docs
                .resource_lists
                .iter()
                .find(|(v, _)| *v == version)
                .map(|(_, d)| d)
                .ok_or_else(ApiError::no_route)?;
            Ok(json(doc, headers, None))
        }
        p if p.starts_with(&v3_prefix) => {
            let version: Version = p[v3_prefix.len()..]
                .parse()
                .map_err(|_| ApiError::no_route())?;
            let doc = docs
                .openapi_v3
                .iter()
                .find(|(v, _)| *v == version)
                .map(|(_, d)| d)
                .ok_or_else(ApiError::no_route)?;
            let hash = query_pairs(request.uri().query())
                .into_iter()
                .find(|(k, _)| k == "hash")
                .map(|(_, v)| v);
            match hash {
                Some(h) if h != doc.hash => Ok(Response::builder()
                    .status(StatusCode::MOVED_PERMANENTLY)
                    .header(header::LOCATION, format!("{p}?hash={}", doc.hash))
                    .body(Body::empty())
                    .expect("static response")),
                Some(_) => Ok(json(doc, headers, Some("public, immutable"))),
                None => Ok(json(doc, headers, None)),
            }
        }
        _ => Err(ApiError::no_route()),
    }
}

/// `/openapi/v2`: JSON, or gnostic protobuf for clients that ask for it (kubectl <= 1.27).
fn openapi_v2(docs: &Documents, headers: &HeaderMap) -> Result<Response, ApiError> {
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json");
    for range in parse_accept(accept) {
        match range.essence.as_str() {
            "application/json" | "*/*" | "application/*" => {
                return Ok(json(&docs.openapi_v2, headers, None));
            }
            t if crate::rest::openapi_protobuf::MEDIA_TYPES.contains(&t) => {
                // kube-openapi answers `application/octet-stream`: Go's mime parser (used by
                // client-go) rejects the `@` of the requested media type.
                let mut response = json(&docs.openapi_v2_protobuf, headers, None);
                response.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/octet-stream"),
                );
                return Ok(response);
            }
            _ => continue,
        }
    }
    Err(ApiError::not_acceptable(
        "application/json, application/com.github.proto-openapi.spec.v2@v1.0+protobuf",
    ))
}

/// `/apis`: aggregated discovery when the client asks for it first, else the legacy
/// `APIGroupList`; 406 when it accepts neither (kube-aggregator's fallback trigger).
fn apis(docs: &Documents, headers: &HeaderMap) -> Result<Response, ApiError> {
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json");
    for range in parse_accept(accept) {
        if !matches!(
            range.essence.as_str(),
            "application/json" | "*/*" | "application/*"
        ) {
            continue;
        }
        match (range.param("as"), range.param("g"), range.param("v")) {
            (None, _, _) => return Ok(json(&docs.group_list, headers, None)),
            (
                Some("APIGroupDiscoveryList"),
                Some("apidiscovery.k8s.io"),
                Some(v @ ("v2" | "v2beta1")),
            ) => {
                let doc = if v == "v2" {
                    &docs.aggregated_v2
                } else {
                    &docs.aggregated_v2beta1
                };
                let mut response = json(doc, headers, Some("public"));
                response.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_str(&format!(
                        "application/json;g=apidiscovery.k8s.io;v={v};as=APIGroupDiscoveryList"
                    ))
                    .expect("valid header"),
                );
                return Ok(response);
            }
            _ => continue,
        }
    }
    Err(ApiError::not_acceptable(
        "application/json, application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList",
    ))
}

/// A JSON document with `ETag`, `Vary: Accept`, and 304 for a matching `If-None-Match`.
fn json(doc: &Document, headers: &HeaderMap, cache_control: Option<&'static str>) -> Response {
    let etag = format!("\"{}\"", doc.hash);
    let not_modified = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag));
    let mut builder = Response::builder()
        .header(header::ETAG, &etag)
        .header(header::VARY, "Accept")
        .header(header::CONTENT_TYPE, "application/json");
    if let Some(cc) = cache_control {
        builder = builder.header(header::CACHE_CONTROL, cc);
    }
    if not_modified {
        return builder
            .status(StatusCode::NOT_MODIFIED)
            .body(Body::empty())
            .expect("static response");
    }
    builder
        .body(Body::from(doc.bytes.clone()))
        .expect("static response")
        .into_response()
}
