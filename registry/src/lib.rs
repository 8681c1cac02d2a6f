//! OCI distribution client, Flux artifact build/extract and ignore rules.
//!
//! Shared by `sourcectl` and the server's reconcilers. Knows nothing of Kubernetes objects.
#![deny(missing_docs)]

pub mod archive;
pub mod artifact;
pub mod client;
pub mod cosign;
pub use client::{Client, ClientConfig, Credentials, DockerConfig};
pub mod digest;
pub use digest::Digest;
pub mod extract;
pub use extract::Limits;
pub mod helm;
pub mod sourceignore;
pub use sourceignore::Matcher;
pub mod manifest;
pub use manifest::{Descriptor, Manifest};
pub mod reference;
pub use reference::Reference;
