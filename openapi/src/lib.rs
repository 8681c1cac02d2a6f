//! The API of `source.toolkit.fluxcd.io` as this server serves it: the one place that defines
//! the kinds `OCIRepository`, `HelmRepository` and `HelmChart` in versions `v1` (storage) and
//! `v1beta2` (deprecated).
//!
//! What it owns: Rust types for every kind and version ([`v1`], [`v1beta2`]), decoding of
//! request bodies with unknown-field detection ([`decode`]), Flux's defaulting ([`defaults`]),
//! validation with Kubernetes field paths ([`validate`]), lossless conversion ([`convert`]),
//! encoding in a requested version ([`encode`]), printer columns and Table rows ([`table`]),
//! discovery documents ([`discovery`]) and OpenAPI v2/v3 documents ([`schema`]); plus the
//! helpers reconcilers share: Go durations ([`parse_go_duration`]), Masterminds semver
//! constraints ([`SemverConstraint`]) and Flux's conditions ([`conditions`]).
//!
//! What it does not do: no IO, no HTTP, no storage. Callers parse JSON/YAML and serialize.
//!
//! ```
//! use openapi::{Version, decode, encode, resource_by_plural, validate};
//! use serde_json::json;
//!
//! let oci = resource_by_plural("ocirepositories").unwrap();
//! let body = json!({
//!     "apiVersion": "source.toolkit.fluxcd.io/v1beta2", "kind": "OCIRepository",
//!     "metadata": {"name": "podinfo", "namespace": "flux-system"},
//!     "spec": {"url": "oci://ghcr.io/stefanprodan/manifests/podinfo", "interval": "5m",
//!              "ref": {"tag": "latest"}, "extra": 1},
//! });
//! let decoded = decode(oci, Version::V1beta2, body).unwrap();
//! assert_eq!(decoded.unknown_fields, ["spec.extra"]);
//! assert_eq!(decoded.object["apiVersion"], "source.toolkit.fluxcd.io/v1");
//! assert_eq!(decoded.object["spec"]["timeout"], "60s"); // Flux's default
//! assert!(validate(oci, &decoded.object).is_empty());
//! let v1beta2 = encode(oci, Version::V1beta2, decoded.object).unwrap();
//! assert_eq!(v1beta2["apiVersion"], "source.toolkit.fluxcd.io/v1beta2");
//! ```
#![deny(missing_docs)]

pub mod codec;
pub use codec::{Decoded, decode, encode};
pub mod conditions;
pub mod convert;
pub mod defaults;
pub mod discovery;
pub use discovery::{api_group, api_group_discovery_list, api_group_list, api_resource_list};
pub mod duration;
pub use duration::parse_go_duration;
pub mod error;
pub use error::{Cause, CauseReason, Error};
pub mod meta;
pub use meta::Artifact;
pub mod resource;
pub use resource::{ResourceInfo, resource_by_kind, resource_by_plural, resources};
pub mod schema;
pub use schema::{openapi_v2, openapi_v3, openapi_v3_discovery};
pub mod semver_constraint;
pub use semver_constraint::SemverConstraint;
pub mod table;
pub use table::{TableColumnDefinition, table_columns, table_row_cells};
pub mod v1;
pub mod v1beta2;
pub mod validation;
pub use validation::validate;
pub mod version;
pub use version::{GROUP, Version};
