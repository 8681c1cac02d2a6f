//! Flux OCI artifacts: push, pull, tag, list, diff and build, composed from [`crate::client`],
//! [`crate::archive`] and [`crate::extract`] (reference `flux-cli-artifacts.md` §1–§2).
//!
//! Format written (Flux v2.9, `fluxcd/pkg/oci`): an OCI image manifest serialised in Go's
//! field order, config [`FLUX_CONFIG`](crate::manifest::media_types::FLUX_CONFIG) with the 115-byte empty image
//! config ggcr v0.21.6+ writes ([`FLUX_CONFIG_BLOB`]), one layer
//! [`FLUX_CONTENT`](crate::manifest::media_types::FLUX_CONTENT) (the deterministic tarball of [`crate::archive`]),
//! and manifest annotations [`ANNOTATION_CREATED`], [`ANNOTATION_SOURCE`],
//! [`ANNOTATION_REVISION`] plus user annotations (which may override the three).
//!
//! Reading is one path for `sourcectl pull`, `sourcectl diff` and the server's reconcilers
//! ([`pull`](pull())): resolve the reference (HEAD, then GET when HEAD fails in any way), follow
//! an image index by the [`Platform`] rule, select the layer by [`LayerSelector`] (default: the
//! first layer), stream it under an optional deadline, then extract it safely (as tar or
//! tar+gzip whatever its media type) or copy it, and for the reconcilers re-archive the
//! extracted tree deterministically ([`pull_artifact`]). Artifacts of other tools (OCI and
//! Docker media types, indexes) are accepted.
//!
//! Everything streams: archives are built into a temporary file and uploaded from it; layers
//! are extracted or hashed while downloading, verified against their digest.
//!
//! ```no_run
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! use registry::artifact::{self, PullOptions, PushOptions, REPRODUCIBLE_CREATED};
//! use registry::{Client, ClientConfig, Matcher, Reference};
//!
//! let client = Client::new(ClientConfig { insecure: true, ..ClientConfig::default() })?;
//! let reference: Reference = "oci://localhost:5000/podinfo/deploy:v1.0.0".parse()?;
//! let pushed = artifact::push(
//!     &client,
//!     &reference,
//!     "./deploy".as_ref(),
//!     PushOptions {
//!         source: "https://github.com/stefanprodan/podinfo".into(),
//!         revision: "main@sha1:0123456789abcdef0123456789abcdef01234567".into(),
//!         created: Some(REPRODUCIBLE_CREATED.into()),
//!         ignore: Matcher::flux_cli_default()?,
//!         ..PushOptions::default()
//!     },
//! )
//! .await?;
//! println!("pushed {}@{}", pushed.reference, pushed.digest);
//!
//! let dest = tempfile::tempdir()?;
//! let pulled = artifact::pull(&client, &reference, dest.path(), PullOptions::default()).await?;
//! println!("{} files from {:?}", pulled.extracted.files, pulled.revision);
//! # Ok(())
//! # }
//! ```

use std::collections::BTreeMap;
use std::io;

use crate::client;
use crate::digest::Digest;
use crate::manifest::ImageManifest;
use crate::reference::Reference;

mod diff;
mod list;
mod pull;
mod push;
mod stream;

pub use diff::{ContentEntry, ContentIndex, DiffReport, diff, index_tree};
pub use list::{LIST_PAGE_SIZE, TagRow, is_cosign_tag, list};
pub use pull::{
    Fetched, LayerOperation, LayerSelector, Platform, PullOptions, Pulled, fetch, pull,
    pull_artifact, pull_layer_to_file, resolve,
};
pub use push::{PushOptions, Pushed, build, push, tag};

/// Manifest annotation: when the artifact was created (RFC 3339, UTC).
pub const ANNOTATION_CREATED: &str = "org.opencontainers.image.created";
/// Manifest annotation: the source address, e.g. a Git URL (`--source`).
pub const ANNOTATION_SOURCE: &str = "org.opencontainers.image.source";
/// Manifest annotation: the source revision, e.g. `main@sha1:<commit>` (`--revision`).
pub const ANNOTATION_REVISION: &str = "org.opencontainers.image.revision";
/// `created` written by `--reproducible` (the Unix epoch in UTC, as fluxcd/flux2#6074 fixed it).
pub const REPRODUCIBLE_CREATED: &str = "1970-01-01T00:00:00Z";
/// The config blob Flux v2.9 pushes (ggcr's empty image config, 115 bytes,
/// `sha256:5b943e2b…`); nothing reads it.
pub const FLUX_CONFIG_BLOB: &[u8] = br#"{"architecture":"","created":"0001-01-01T00:00:00Z","os":"","rootfs":{"type":"layers","diff_ids":null},"config":{}}"#;
/// The tag used when a reference has none (ggcr's default).
pub const DEFAULT_TAG: &str = "latest";

/// Errors of artifact operations. Each names the reference or path involved; the cause is in
/// `source()`.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An annotation is not `key=value` with exactly one `=` (Flux's rule).
    #[error("invalid annotation {annotation}, must be in the format key=value")]
    InvalidAnnotation {
        /// The annotation as given.
        annotation: String,
    },
    /// Building the tarball failed.
    #[error("building the artifact from {path}")]
    Build {
        /// The source path.
        path: String,
        /// The archive error.
        #[source]
        source: crate::archive::Error,
    },
    /// A temporary file for the tarball could not be created.
    #[error("creating a temporary file for the artifact")]
    TempFile(#[source] io::Error),
    /// Uploading a blob failed.
    #[error("pushing a blob to {reference}")]
    PushBlob {
        /// Destination repository.
        reference: String,
        /// The client error.
        #[source]
        source: Box<client::Error>,
    },
    /// Uploading the manifest failed.
    #[error("pushing the manifest to {reference}")]
    PushManifest {
        /// Destination reference.
        reference: String,
        /// The client error.
        #[source]
        source: Box<client::Error>,
    },
    /// Fetching a manifest failed.
    #[error("fetching the manifest of {reference}")]
    GetManifest {
        /// The reference.
        reference: String,
        /// The client error.
        #[source]
        source: Box<client::Error>,
    },
    /// An image index with several manifests has none for the wanted platform.
    #[error("{reference} is an index of {count} manifests without a {platform} entry")]
    NoPlatformMatch {
        /// The reference.
        reference: String,
        /// Number of manifests in the index.
        count: usize,
        /// The platform wanted (`os/architecture`).
        platform: String,
    },
    /// The index entry chosen is itself an index.
    #[error("{reference} is a nested image index, which is not supported")]
    NestedIndex {
        /// The reference of the inner index.
        reference: String,
    },
    /// The manifest has no layers.
    #[error("no layers found in artifact {reference}")]
    NoLayers {
        /// The reference.
        reference: String,
    },
    /// No layer has the media type of the [`LayerSelector`].
    #[error("no layer with media type '{media_type}' in artifact {reference}")]
    NoMatchingLayer {
        /// The reference.
        reference: String,
        /// The media type wanted.
        media_type: String,
    },
    /// The size of a layer to copy is over [`Limits::max_size_bytes`](crate::Limits).
    #[error(
        "layer {digest} of {reference} is {size_bytes} bytes, over the limit of {limit_bytes} bytes"
    )]
    LayerTooLarge {
        /// The reference.
        reference: String,
        /// The layer digest.
        digest: Digest,
        /// The layer size in bytes, as the manifest gives it.
        size_bytes: u64,
        /// The limit in bytes.
        limit_bytes: u64,
    },
    /// The layer download did not finish before [`PullOptions::deadline`].
    #[error("timeout reached while downloading layer {digest} of {reference}")]
    Deadline {
        /// The reference.
        reference: String,
        /// The layer digest.
        digest: Digest,
    },
    /// Downloading the layer failed (including digest or size mismatch).
    #[error("pulling layer {digest} of {reference}")]
    PullLayer {
        /// The reference.
        reference: String,
        /// The layer digest.
        digest: Digest,
        /// The client error.
        #[source]
        source: Box<client::Error>,
    },
    /// Extracting the layer failed or was refused.
    #[error("extracting layer {digest} of {reference}")]
    Extract {
        /// The reference.
        reference: String,
        /// The layer digest.
        digest: Digest,
        /// The extraction error.
        #[source]
        source: crate::extract::Error,
    },
    /// Writing a downloaded layer to its file failed.
    #[error("writing the layer to {path}")]
    WriteLayer {
        /// The destination file.
        path: String,
        /// The IO error.
        #[source]
        source: io::Error,
    },
    /// A scratch directory for extraction could not be created.
    #[error("creating a temporary working directory in {path}")]
    Scratch {
        /// The parent directory.
        path: String,
        /// The IO error.
        #[source]
        source: io::Error,
    },
    /// The ignore rules of the extracted content (`.sourceignore`, `spec.ignore`) are invalid.
    #[error("loading the ignore rules of the extracted content")]
    Ignore(#[source] crate::sourceignore::Error),
    /// Re-archiving the extracted content failed (including writing it to its destination).
    #[error("archiving the extracted content")]
    Archive(#[source] crate::archive::Error),
    /// Writing a copied layer to its destination writer failed.
    #[error("writing the layer")]
    WriteArtifact(#[source] io::Error),
    /// Reading the local tree for a diff failed.
    #[error("reading {path}")]
    ReadLocal {
        /// The path.
        path: String,
        /// The IO error.
        #[source]
        source: io::Error,
    },
    /// Listing tags failed.
    #[error("listing tags of {reference}")]
    ListTags {
        /// The repository.
        reference: String,
        /// The client error.
        #[source]
        source: Box<client::Error>,
    },
    /// A blocking task (archive, extraction) panicked or was cancelled.
    #[error("background task failed: {message}")]
    Task {
        /// The join error.
        message: String,
    },
}

/// Parses `key=value` annotations the way `flux push artifact -a` does: exactly one `=`
/// (values containing `=` are rejected).
///
/// # Errors
/// [`Error::InvalidAnnotation`] naming the first bad entry.
pub fn parse_annotations<S: AsRef<str>>(items: &[S]) -> Result<BTreeMap<String, String>, Error> {
    let mut out = BTreeMap::new();
    for item in items {
        let item = item.as_ref();
        let parts: Vec<&str> = item.split('=').collect();
        match parts.as_slice() {
            [key, value] => {
                out.insert((*key).to_owned(), (*value).to_owned());
            }
            _ => {
                return Err(Error::InvalidAnnotation {
                    annotation: item.to_owned(),
                });
            }
        }
    }
    Ok(out)
}

/// `reference` with [`DEFAULT_TAG`] when it has neither tag nor digest.
pub fn with_default_tag(reference: &Reference) -> Reference {
    if reference.tag.is_none() && reference.digest.is_none() {
        reference.with_tag(DEFAULT_TAG)
    } else {
        reference.clone()
    }
}

/// The manifest annotation `key`, if present.
fn annotation(manifest: &ImageManifest, key: &str) -> Option<String> {
    manifest
        .annotations
        .as_ref()
        .and_then(|a| a.get(key))
        .cloned()
}

/// `GET` of the manifest at `reference`: the manifest, its descriptor and its bytes.
///
/// # Errors
/// [`Error::GetManifest`] naming the reference, with the client error as its source.
async fn get_manifest(
    client: &client::Client,
    reference: &Reference,
) -> Result<
    (
        crate::manifest::Manifest,
        crate::manifest::Descriptor,
        bytes::Bytes,
    ),
    Error,
> {
    client
        .get_manifest(reference)
        .await
        .map_err(|source| Error::GetManifest {
            reference: reference.to_string(),
            source: Box::new(source),
        })
}

fn join_error(e: tokio::task::JoinError) -> Error {
    Error::Task {
        message: e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn annotations_need_exactly_one_equals_sign() {
        let ok = parse_annotations(&["a=b", "c="]).unwrap();
        assert_eq!(ok.get("a").map(String::as_str), Some("b"));
        assert_eq!(ok.get("c").map(String::as_str), Some(""));
        let err = parse_annotations(&["a=b=c"]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid annotation a=b=c, must be in the format key=value"
        );
        assert_eq!(
            parse_annotations(&["novalue"]).unwrap_err().to_string(),
            "invalid annotation novalue, must be in the format key=value"
        );
    }

    #[test]
    fn flux_config_blob_is_ggcrs_empty_image_config() {
        assert_eq!(FLUX_CONFIG_BLOB.len(), 115);
        assert_eq!(
            Digest::sha256_of(FLUX_CONFIG_BLOB).to_string(),
            "sha256:5b943e2b943f6c81dbbd4e2eca5121f4fcc39139e3d1219d6d89bd925b77d9fe"
        );
    }
}
