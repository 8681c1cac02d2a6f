//! Turns stored (v1) objects into responses in the version and shape the client asked for:
//! objects, lists, `Table` (Flux's printer columns) and `PartialObjectMetadata[List]`.

use axum::body::Body;
use axum::response::Response;
use http::{HeaderValue, StatusCode, header};
use serde_json::{Value, json};

use openapi::{ResourceInfo, Version};

use crate::http::error::ApiError;
use crate::http::negotiate::{Format, IncludeObject, MetaVersion, Output, Shape};

/// Everything needed to render one request's responses.
#[derive(Debug, Clone)]
pub struct Renderer {
    /// The resource.
    pub resource: &'static ResourceInfo,
    /// The version asked for in the path.
    pub version: Version,
    /// The negotiated output.
    pub output: Output,
    /// `includeObject` for Tables.
    pub include_object: IncludeObject,
    /// `Warning` header values (already formatted as `299 - "..."`).
    pub warnings: Vec<String>,
}

impl Renderer {
    /// A stored object converted to the requested version.
    ///
    /// # Errors
    /// 500 when a stored object cannot be converted (a bug or a corrupted row).
    pub fn encode(&self, stored: Value) -> Result<Value, ApiError> {
        openapi::encode(self.resource, self.version, stored)
            .map_err(|e| ApiError::internal("converting a stored object", &e))
    }

    /// One object as object, single-row Table or PartialObjectMetadata.
    ///
    /// # Errors
    /// As [`Renderer::encode`].
    pub fn object(&self, stored: Value, status: StatusCode) -> Result<Response, ApiError> {
        let body = match self.output.shape {
            Shape::Object => self.encode(stored)?,
            Shape::PartialMetadata => partial(stored, self.output.meta_version),
            Shape::Table => {
                let rv = stored["metadata"]["resourceVersion"].clone();
                let row = self.row(stored)?;
                json!({
                    "kind": "Table",
                    "apiVersion": self.output.meta_version.api_version(),
                    "metadata": {"resourceVersion": rv},
                    "columnDefinitions": self.columns(),
                    "rows": [row],
                })
            }
        };
        Ok(self.respond(status, &body))
    }

    /// A list page in the requested shape.
    ///
    /// # Errors
    /// As [`Renderer::encode`].
    pub fn list(&self, page: storage::ListPage) -> Result<Response, ApiError> {
        let mut metadata = json!({"resourceVersion": page.resource_version.to_string()});
        if let Some(token) = &page.continue_token {
            metadata["continue"] = json!(token);
        }
        if let Some(remaining) = page.remaining_item_count {
            metadata["remainingItemCount"] = json!(remaining);
        }
        let body = match self.output.shape {
            Shape::Object => {
                let items = page
                    .items
                    .into_iter()
                    .map(|item| self.encode(item))
                    .collect::<Result<Vec<_>, _>>()?;
                json!({
                    "apiVersion": self.version.api_version(),
                    "kind": self.resource.list_kind,
                    "metadata": metadata,
                    "items": items,
                })
            }
            Shape::PartialMetadata => {
                let meta_version = self.output.meta_version;
                json!({
                    "apiVersion": meta_version.api_version(),
                    "kind": "PartialObjectMetadataList",
                    "metadata": metadata,
                    "items": page
                        .items
                        .into_iter()
                        .map(|item| partial(item, meta_version))
                        .collect::<Vec<_>>(),
                })
            }
            Shape::Table => {
                let rows = page
                    .items
                    .into_iter()
                    .map(|item| self.row(item))
                    .collect::<Result<Vec<_>, _>>()?;
                json!({
                    "kind": "Table",
                    "apiVersion": self.output.meta_version.api_version(),
                    "metadata": metadata,
                    "columnDefinitions": self.columns(),
                    "rows": rows,
                })
            }
        };
        Ok(self.respond(StatusCode::OK, &body))
    }

    /// The Table column definitions of this resource and version.
    pub fn columns(&self) -> Value {
        serde_json::to_value(openapi::table_columns(self.resource, self.version))
            .unwrap_or_else(|_| json!([]))
    }

    /// One Table row for a stored object.
    ///
    /// # Errors
    /// As [`Renderer::encode`] when the row embeds the whole object.
    pub fn row(&self, stored: Value) -> Result<Value, ApiError> {
        let cells =
            openapi::table_row_cells(self.resource, self.version, &stored, jiff::Timestamp::now());
        let mut row = json!({"cells": cells});
        match self.include_object {
            IncludeObject::Metadata => row["object"] = partial(stored, self.output.meta_version),
            IncludeObject::Object => row["object"] = self.encode(stored)?,
            IncludeObject::None => {}
        }
        Ok(row)
    }

    /// Serialises `body` in the negotiated format with the warnings.
    pub fn respond(&self, status: StatusCode, body: &Value) -> Response {
        let (bytes, content_type) = match self.output.format {
            Format::Yaml if self.output.shape == Shape::Object => (
                serde_yaml::to_string(body).unwrap_or_default().into_bytes(),
                "application/yaml",
            ),
            _ => (
                serde_json::to_vec(body).unwrap_or_default(),
                "application/json",
            ),
        };
        let mut response = Response::builder()
            .status(status)
            .header(header::CONTENT_TYPE, content_type)
            .body(Body::from(bytes))
            .expect("static response");
        self.add_warnings(response.headers_mut());
        response
    }

    /// Adds the `Warning` headers (deprecation and unknown fields).
    pub fn add_warnings(&self, headers: &mut http::HeaderMap) {
        for warning in &self.warnings {
            if let Ok(value) = HeaderValue::from_str(warning) {
                headers.append(header::WARNING, value);
            }
        }
    }
}

/// The parts of a stored object a Table row reads; `metadata` stays raw text.
#[derive(serde::Deserialize)]
struct RowSource<'a> {
    #[serde(borrow)]
    metadata: &'a serde_json::value::RawValue,
    #[serde(default)]
    spec: Value,
    #[serde(default)]
    status: Value,
}

/// The metadata fields Table cells read.
#[derive(serde::Deserialize)]
struct RowMetadata {
    #[serde(default)]
    name: Value,
    #[serde(default, rename = "creationTimestamp")]
    creation_timestamp: Value,
}

impl Renderer {
    /// Whether [`Renderer::list_raw`] can render this request from stored JSON text: objects
    /// as JSON in the storage version (passed through), Tables and PartialObjectMetadata
    /// (built from the few fields they read).
    pub fn renders_raw(&self) -> bool {
        match self.output.shape {
            Shape::Object => self.output.format == Format::Json && self.version == Version::STORAGE,
            Shape::Table => {
                self.include_object != IncludeObject::Object || self.version == Version::STORAGE
            }
            Shape::PartialMetadata => true,
        }
    }

    /// A list page rendered from stored JSON text without decoding whole objects: items are
    /// copied through, and Table rows decode only `spec` and `status` (metadata stays raw).
    /// Call only when [`Renderer::renders_raw`] is true.
    ///
    /// # Errors
    /// 500 when a stored item is not a JSON object.
    pub fn list_raw(&self, page: storage::ListPage<String>) -> Result<Response, ApiError> {
        let corrupt = |e: serde_json::Error| ApiError::internal("reading a stored object", &e);
        let mut metadata = json!({"resourceVersion": page.resource_version.to_string()});
        if let Some(token) = &page.continue_token {
            metadata["continue"] = json!(token);
        }
        if let Some(remaining) = page.remaining_item_count {
            metadata["remainingItemCount"] = json!(remaining);
        }
        let capacity = page.items.iter().map(|i| i.len() + 16).sum::<usize>() + 1024;
        let mut out = Vec::with_capacity(capacity);
        let push = |out: &mut Vec<u8>, value: &Value| {
            serde_json::to_writer(out, value).expect("writing to memory")
        };
        let separate = |out: &mut Vec<u8>, i: usize| {
            if i > 0 {
                out.push(b',');
            }
        };
        match self.output.shape {
            Shape::Object => {
                out.extend_from_slice(b"{\"apiVersion\":");
                push(&mut out, &json!(self.version.api_version()));
                out.extend_from_slice(b",\"kind\":");
                push(&mut out, &json!(self.resource.list_kind));
                out.extend_from_slice(b",\"metadata\":");
                push(&mut out, &metadata);
                out.extend_from_slice(b",\"items\":[");
                for (i, item) in page.items.iter().enumerate() {
                    separate(&mut out, i);
                    out.extend_from_slice(item.as_bytes());
                }
            }
            Shape::PartialMetadata => {
                out.extend_from_slice(b"{\"apiVersion\":");
                push(&mut out, &json!(self.output.meta_version.api_version()));
                out.extend_from_slice(b",\"kind\":\"PartialObjectMetadataList\",\"metadata\":");
                push(&mut out, &metadata);
                out.extend_from_slice(b",\"items\":[");
                for (i, item) in page.items.iter().enumerate() {
                    separate(&mut out, i);
                    let source: RowSource<'_> = serde_json::from_str(item).map_err(corrupt)?;
                    write_partial(&mut out, source.metadata, self.output.meta_version);
                }
            }
            Shape::Table => {
                out.extend_from_slice(b"{\"kind\":\"Table\",\"apiVersion\":");
                push(&mut out, &json!(self.output.meta_version.api_version()));
                out.extend_from_slice(b",\"metadata\":");
                push(&mut out, &metadata);
                out.extend_from_slice(b",\"columnDefinitions\":");
                push(&mut out, &self.columns());
                out.extend_from_slice(b",\"rows\":[");
                let now = jiff::Timestamp::now();
                for (i, item) in page.items.iter().enumerate() {
                    separate(&mut out, i);
                    self.write_table_row(&mut out, item, now)?;
                }
            }
        }
        out.extend_from_slice(b"]}");
        let mut response = Response::builder()
            .status(StatusCode::OK)
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(out))
            .expect("static response");
        self.add_warnings(response.headers_mut());
        Ok(response)
    }
}

impl Renderer {
    /// One `Table` row (`{"cells":[...],"object":...}`) made from a stored object's text.
    fn write_table_row(
        &self,
        out: &mut Vec<u8>,
        item: &str,
        now: jiff::Timestamp,
    ) -> Result<(), ApiError> {
        let corrupt = |e: serde_json::Error| ApiError::internal("reading a stored object", &e);
        let source: RowSource<'_> = serde_json::from_str(item).map_err(corrupt)?;
        let meta: RowMetadata = serde_json::from_str(source.metadata.get()).map_err(corrupt)?;
        let view = json!({
            "metadata": {"name": meta.name, "creationTimestamp": meta.creation_timestamp},
            "spec": source.spec,
            "status": source.status,
        });
        let cells = openapi::table_row_cells(self.resource, self.version, &view, now);
        out.extend_from_slice(b"{\"cells\":");
        serde_json::to_writer(&mut *out, &json!(cells)).expect("writing to memory");
        match self.include_object {
            IncludeObject::Metadata => {
                out.extend_from_slice(b",\"object\":");
                write_partial(out, source.metadata, self.output.meta_version);
            }
            IncludeObject::Object => {
                out.extend_from_slice(b",\"object\":");
                out.extend_from_slice(item.as_bytes());
            }
            IncludeObject::None => {}
        }
        out.push(b'}');
        Ok(())
    }
}

/// `{"kind":"PartialObjectMetadata","apiVersion":"meta.k8s.io/<v>","metadata":<raw>}`.
fn write_partial(out: &mut Vec<u8>, metadata: &serde_json::value::RawValue, meta: MetaVersion) {
    out.extend_from_slice(b"{\"kind\":\"PartialObjectMetadata\",\"apiVersion\":\"");
    out.extend_from_slice(meta.api_version().as_bytes());
    out.extend_from_slice(b"\",\"metadata\":");
    out.extend_from_slice(metadata.get().as_bytes());
    out.push(b'}');
}

/// `PartialObjectMetadata` of a stored object in `meta.k8s.io/<meta>` (its metadata is moved,
/// not copied). A watch bookmark becomes one too, keeping its `resourceVersion` and the
/// `k8s.io/initial-events-end` annotation, as kube-apiserver transforms bookmarks.
pub fn partial(stored: Value, meta: MetaVersion) -> Value {
    let metadata = match stored {
        Value::Object(mut map) => map.remove("metadata"),
        _ => None,
    };
    json!({
        "kind": "PartialObjectMetadata",
        "apiVersion": meta.api_version(),
        "metadata": metadata.unwrap_or_else(|| json!({})),
    })
}

/// A `Warning` header value: `299 - "<text>"` with quotes and backslashes escaped.
pub fn warning(text: &str) -> String {
    format!(
        "299 - \"{}\"",
        text.replace('\\', "\\\\").replace('"', "\\\"")
    )
}
