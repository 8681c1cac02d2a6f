//! A small Kubernetes API client for the in-cluster mode: connection settings from a kubeconfig
//! or the pod's service account ([`config`]), and JSON requests and watches over `reqwest`
//! ([`client`]), typed with `k8s-openapi`.
//!
//! Why not the `kube` crate: this server needs a few calls (TokenReview, SubjectAccessReview, one
//! ConfigMap, and namespaces, Secrets and ServiceAccounts read and watched), and `reqwest` with OpenSSL is already in the
//! build for the registry client; `kube` would add its own hyper/tower client stack to compile
//! on every build for what this module does in a few hundred lines (docs/architecture.md).

pub mod client;
pub mod config;
pub mod namespaces;
pub mod reflector;
pub mod secrets;
pub mod service_accounts;

pub use client::{Client, Error, WatchEvent};
pub use config::ClusterConfig;
