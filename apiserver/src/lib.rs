//! `source-apiserver`: the Flux source API (`source.toolkit.fluxcd.io`: OCIRepository,
//! HelmRepository, HelmChart in `v1` and `v1beta2`) served as a Kubernetes API server over
//! HTTPS, with objects in SQLite (the `storage` crate) and the API's types, defaulting,
//! validation, conversion and documents from the `openapi` crate.
//!
//! This crate owns HTTP: TLS and the listener ([`listener`]), authentication and authorisation
//! ([`auth`]), request attributes ([`request`]), content negotiation ([`negotiate`]), discovery
//! and OpenAPI endpoints ([`discovery`]), the REST semantics ([`rest`]), field ownership and
//! server-side apply ([`managed_fields`]), the standalone bootstrap ([`pki`]) and the process
//! lifecycle ([`app`]). It does not own the API types (`openapi`) or persistence (`storage`).
#![deny(missing_docs)]

pub mod app;
pub mod artifact_server;
pub mod auth;
pub mod config;
pub mod controller;
pub mod discovery;
pub mod error;
pub mod listener;
pub mod managed_fields;
pub mod negotiate;
pub mod openapi_protobuf;
pub mod pki;
pub mod request;
pub mod rest;
pub mod router;

pub use app::App;
pub use config::{Config, Flags};
pub use error::ApiError;
