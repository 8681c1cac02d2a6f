//! OCI image manifests, image indexes and descriptors (OCI image spec v1.1 `manifest.md`,
//! `image-index.md`, `descriptor.md`), plus the Docker schema 2 equivalents, which share the
//! same JSON shape and are parsed into the same types.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::digest::Digest;

/// Media types this crate and its callers use.
pub mod media_types {
    /// OCI image manifest (`application/vnd.oci.image.manifest.v1+json`).
    pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
    /// OCI image index (`application/vnd.oci.image.index.v1+json`).
    pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
    /// Docker image manifest schema 2.
    pub const DOCKER_MANIFEST_V2: &str = "application/vnd.docker.distribution.manifest.v2+json";
    /// Docker manifest list (multi-arch), the Docker form of an index.
    pub const DOCKER_MANIFEST_LIST: &str =
        "application/vnd.docker.distribution.manifest.list.v2+json";
    /// OCI 1.1 empty descriptor media type (content `{}`).
    pub const OCI_EMPTY: &str = "application/vnd.oci.empty.v1+json";
    /// OCI image config.
    pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
    /// Docker image config.
    pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
    /// Flux artifact config (`flux push artifact`).
    pub const FLUX_CONFIG: &str = "application/vnd.cncf.flux.config.v1+json";
    /// Flux artifact content layer: a gzipped tarball.
    pub const FLUX_CONTENT: &str = "application/vnd.cncf.flux.content.v1.tar+gzip";
    /// OCI gzipped tar layer.
    pub const OCI_LAYER_TAR_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
    /// OCI uncompressed tar layer.
    pub const OCI_LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";
    /// Docker gzipped tar layer.
    pub const DOCKER_LAYER_TAR_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
    /// Helm chart config.
    pub const HELM_CONFIG: &str = "application/vnd.cncf.helm.config.v1+json";
    /// Helm chart content (`.tgz`).
    pub const HELM_CHART_CONTENT: &str = "application/vnd.cncf.helm.chart.content.v1.tar+gzip";
    /// Helm chart provenance file.
    pub const HELM_CHART_PROVENANCE: &str = "application/vnd.cncf.helm.chart.provenance.v1.prov";
    /// Sigstore/cosign simple signing payload layer.
    pub const COSIGN_SIMPLE_SIGNING: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
    /// The `Accept` header value for manifest requests: every manifest/index type above.
    pub const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json";
}

/// Errors parsing a manifest.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The media type is not one of the manifest/index types in [`media_types`].
    #[error("unsupported manifest media type {media_type:?}")]
    UnsupportedMediaType {
        /// The media type from the response or the document.
        media_type: String,
    },
    /// The bytes are not valid JSON of the expected shape.
    #[error("invalid {media_type} document: {source}")]
    Parse {
        /// The media type it was parsed as.
        media_type: String,
        /// The JSON error.
        source: serde_json::Error,
    },
}

/// Platform of an index entry (OCI `image-index.md`).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq, Default)]
pub struct Platform {
    /// CPU architecture, e.g. `amd64`.
    pub architecture: String,
    /// Operating system, e.g. `linux`.
    pub os: String,
    /// `os.version`.
    #[serde(
        rename = "os.version",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub os_version: Option<String>,
    /// `os.features`.
    #[serde(
        rename = "os.features",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub os_features: Option<Vec<String>>,
    /// CPU variant, e.g. `v8`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

/// An OCI content descriptor (`descriptor.md`): media type, digest and size in bytes.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    /// Media type of the referenced content.
    pub media_type: String,
    /// Digest of the referenced content.
    pub digest: Digest,
    /// Size of the referenced content in bytes.
    pub size: u64,
    /// Alternative download URLs (rarely used).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub urls: Option<Vec<String>>,
    /// Annotations (e.g. `org.opencontainers.image.title`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
    /// OCI 1.1 artifact type of the referenced manifest (index/referrers entries).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    /// Platform (index entries only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
}

impl Descriptor {
    /// A descriptor with only media type, digest and size set.
    pub fn new(media_type: impl Into<String>, digest: Digest, size: u64) -> Self {
        Descriptor {
            media_type: media_type.into(),
            digest,
            size,
            urls: None,
            annotations: None,
            artifact_type: None,
            platform: None,
        }
    }

    /// The descriptor of `bytes` with `media_type` (sha256).
    pub fn of_bytes(media_type: impl Into<String>, bytes: &[u8]) -> Self {
        Self::new(media_type, Digest::sha256_of(bytes), bytes.len() as u64)
    }

    /// The OCI 1.1 empty descriptor: media type [`media_types::OCI_EMPTY`], content `{}`.
    pub fn empty() -> Self {
        Self::of_bytes(media_types::OCI_EMPTY, b"{}")
    }
}

fn schema_version_two() -> u32 {
    2
}

/// An image manifest (OCI or Docker schema 2).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ImageManifest {
    /// Always `2`.
    #[serde(default = "schema_version_two")]
    pub schema_version: u32,
    /// Media type (recommended by OCI, required by Docker).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    /// OCI 1.1 artifact type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    /// Config blob descriptor.
    pub config: Descriptor,
    /// Layer descriptors, in order.
    #[serde(default)]
    pub layers: Vec<Descriptor>,
    /// OCI 1.1 subject (what this manifest refers to, e.g. a signature's image).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<Descriptor>,
    /// Annotations (Flux puts source/revision/created here).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
}

/// An image index (OCI) or manifest list (Docker).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ImageIndex {
    /// Always `2`.
    #[serde(default = "schema_version_two")]
    pub schema_version: u32,
    /// Media type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    /// OCI 1.1 artifact type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    /// Entries.
    #[serde(default)]
    pub manifests: Vec<Descriptor>,
    /// OCI 1.1 subject.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<Descriptor>,
    /// Annotations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
}

impl ImageIndex {
    /// An empty OCI index (`schemaVersion` 2, media type [`media_types::OCI_INDEX`]).
    pub fn empty() -> Self {
        ImageIndex {
            schema_version: 2,
            media_type: Some(media_types::OCI_INDEX.to_owned()),
            artifact_type: None,
            manifests: Vec::new(),
            subject: None,
            annotations: None,
        }
    }
}

/// A parsed manifest: an image manifest or an index.
#[derive(Clone, Debug, PartialEq)]
#[expect(
    clippy::large_enum_variant,
    reason = "the contract exposes both variants unboxed; manifests are few and short-lived"
)]
pub enum Manifest {
    /// OCI image manifest or Docker schema 2 manifest.
    Image(ImageManifest),
    /// OCI image index or Docker manifest list.
    Index(ImageIndex),
}

impl Manifest {
    /// Parses `bytes` served with `media_type` (the `Content-Type`; parameters after `;` are
    /// ignored). An empty or unknown transport media type falls back to the document's own
    /// `mediaType` field, and then to the shape (`manifests` means index).
    ///
    /// # Errors
    /// [`Error::UnsupportedMediaType`] for non-manifest types (e.g. Docker schema 1),
    /// [`Error::Parse`] for bad JSON.
    pub fn from_bytes(bytes: &[u8], media_type: &str) -> Result<Manifest, Error> {
        let mt = media_type.split(';').next().unwrap_or("").trim();
        let effective = if is_manifest_type(mt) {
            mt.to_owned()
        } else {
            #[derive(Deserialize)]
            #[serde(rename_all = "camelCase")]
            struct Probe {
                media_type: Option<String>,
                manifests: Option<serde::de::IgnoredAny>,
            }
            let probe: Probe = serde_json::from_slice(bytes).map_err(|source| Error::Parse {
                media_type: mt.to_owned(),
                source,
            })?;
            match probe.media_type {
                Some(inner) if is_manifest_type(&inner) => inner,
                Some(inner) => return Err(Error::UnsupportedMediaType { media_type: inner }),
                None if probe.manifests.is_some() => media_types::OCI_INDEX.to_owned(),
                None if mt.is_empty()
                    || mt == "application/json"
                    || mt == "application/octet-stream" =>
                {
                    media_types::OCI_MANIFEST.to_owned()
                }
                None => {
                    return Err(Error::UnsupportedMediaType {
                        media_type: mt.to_owned(),
                    });
                }
            }
        };
        let parse_err = |source| Error::Parse {
            media_type: effective.clone(),
            source,
        };
        if effective == media_types::OCI_INDEX || effective == media_types::DOCKER_MANIFEST_LIST {
            serde_json::from_slice(bytes)
                .map(Manifest::Index)
                .map_err(parse_err)
        } else {
            serde_json::from_slice(bytes)
                .map(Manifest::Image)
                .map_err(parse_err)
        }
    }

    /// The media type declared inside the document, if any.
    pub fn media_type(&self) -> Option<&str> {
        match self {
            Manifest::Image(m) => m.media_type.as_deref(),
            Manifest::Index(i) => i.media_type.as_deref(),
        }
    }

    /// The image manifest, if this is one.
    pub fn as_image(&self) -> Option<&ImageManifest> {
        match self {
            Manifest::Image(m) => Some(m),
            Manifest::Index(_) => None,
        }
    }

    /// The index, if this is one.
    pub fn as_index(&self) -> Option<&ImageIndex> {
        match self {
            Manifest::Index(i) => Some(i),
            Manifest::Image(_) => None,
        }
    }
}

/// Whether `media_type` is one of the four manifest/index types.
pub fn is_manifest_type(media_type: &str) -> bool {
    matches!(
        media_type,
        media_types::OCI_MANIFEST
            | media_types::OCI_INDEX
            | media_types::DOCKER_MANIFEST_V2
            | media_types::DOCKER_MANIFEST_LIST
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const FLUX: &str = r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.cncf.flux.config.v1+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2},"layers":[{"mediaType":"application/vnd.cncf.flux.content.v1.tar+gzip","digest":"sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855","size":0,"annotations":{"org.opencontainers.image.title":"x.tgz"}}],"annotations":{"org.opencontainers.image.revision":"main@sha1:abc"}}"#;

    #[test]
    fn parses_a_flux_manifest_and_reserialises_field_names() {
        let m = Manifest::from_bytes(FLUX.as_bytes(), media_types::OCI_MANIFEST).unwrap();
        let img = m.as_image().unwrap();
        assert_eq!(img.config.media_type, media_types::FLUX_CONFIG);
        assert_eq!(img.layers[0].size, 0);
        let json = serde_json::to_string(img).unwrap();
        assert_eq!(json, FLUX);
    }

    #[test]
    fn falls_back_to_the_document_media_type_and_shape() {
        let idx = r#"{"schemaVersion":2,"manifests":[]}"#;
        assert!(
            Manifest::from_bytes(idx.as_bytes(), "")
                .unwrap()
                .as_index()
                .is_some()
        );
        let m = Manifest::from_bytes(FLUX.as_bytes(), "application/json").unwrap();
        assert!(m.as_image().is_some());
        let docker_list = r#"{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.list.v2+json","manifests":[]}"#;
        assert!(
            Manifest::from_bytes(docker_list.as_bytes(), media_types::DOCKER_MANIFEST_LIST)
                .unwrap()
                .as_index()
                .is_some()
        );
    }

    #[test]
    fn rejects_schema1_and_garbage() {
        let s1 = r#"{"schemaVersion":1,"mediaType":"application/vnd.docker.distribution.manifest.v1+prettyjws"}"#;
        assert!(matches!(
            Manifest::from_bytes(s1.as_bytes(), ""),
            Err(Error::UnsupportedMediaType { .. })
        ));
        assert!(matches!(
            Manifest::from_bytes(b"nope", media_types::OCI_MANIFEST),
            Err(Error::Parse { .. })
        ));
    }

    #[test]
    fn empty_descriptor_is_the_spec_value() {
        assert_eq!(
            Descriptor::empty().digest.to_string(),
            "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
        );
    }
}
