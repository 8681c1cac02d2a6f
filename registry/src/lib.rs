//! OCI distribution client, Flux artifact build/extract and ignore rules.
//!
//! Shared by `sourcectl` and the server's reconcilers. Knows nothing of Kubernetes objects.
#![deny(missing_docs)]

pub mod archive;
pub mod artifact;
pub mod client;
pub mod digest;
pub mod extract;
pub mod sourceignore;
pub mod manifest;
pub mod reference;
