//! `source-apiserver`: the Flux source API (`source.toolkit.fluxcd.io`: OCIRepository,
//! HelmRepository, HelmChart in `v1` and `v1beta2`) served as a Kubernetes API server over
//! HTTPS, with objects in SQLite (the `storage` crate) and the API's types, defaulting,
//! validation, conversion and documents from the `openapi` crate.
//!
//! The modules follow a request's path: [`http`] (TLS listener, router and its layers, request
//! timeout, request info, content negotiation, errors, shared state) → [`auth`] (authentication,
//! authorisation, the standalone PKI) → [`rest`] (the REST handlers and their one write pipeline
//! with admission, field ownership, discovery and OpenAPI documents) → the `storage` crate.
//! [`artifacts`] serves stored artifact files, [`controller`] reconciles objects, [`config`] and
//! [`app`] make and run the process. It does not own the API types (`openapi`) or persistence
//! (`storage`).
#![deny(missing_docs)]

pub mod app;
pub mod artifacts;
pub mod auth;
pub mod config;
pub mod controller;
pub mod http;
pub mod kube;
pub mod leader;
pub mod metrics;
pub mod rest;

pub use app::App;
pub use config::{Config, Flags};
pub use http::error::ApiError;

// The paths of the flat layout, kept for callers (tests, benches).
pub use auth::pki;
pub use http::router;
pub use rest::discovery;
