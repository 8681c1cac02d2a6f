//! `list`: tags of a repository with their digest, creation time, source and revision, filtered like
//! `flux list artifacts` (`--filter-semver`, `--filter-regex`).

use futures::{StreamExt, TryStreamExt};

use super::{ANNOTATION_CREATED, ANNOTATION_REVISION, ANNOTATION_SOURCE, Error};
use crate::client::Client;
use crate::digest::Digest;
use crate::manifest::Manifest;
use crate::reference::Reference;

/// Manifests fetched concurrently while listing.
const LIST_CONCURRENCY: usize = 8;
/// Tags asked for per page (`?n=`); further pages follow the `Link` header.
pub const LIST_PAGE_SIZE: u32 = 100;

/// One row of `list artifacts`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagRow {
    /// The tag.
    pub tag: String,
    /// `host/repo:tag`.
    pub reference: Reference,
    /// The manifest digest the tag points at.
    pub digest: Digest,
    /// `org.opencontainers.image.created`, as written (RFC 3339; empty when unset).
    pub created: String,
    /// `org.opencontainers.image.source` (empty when unset).
    pub source: String,
    /// `org.opencontainers.image.revision` (empty when unset).
    pub revision: String,
}

/// Whether a tag names a cosign signature, attestation or SBOM (`.sig`, `.att`, `.sbom`), which
/// Flux hides from listings.
pub fn is_cosign_tag(tag: &str) -> bool {
    tag.ends_with(".sig") || tag.ends_with(".att") || tag.ends_with(".sbom")
}

/// Lists `repository`'s tags (all pages of [`LIST_PAGE_SIZE`]) sorted descending as byte strings, without cosign
/// tags, keeps those `filter` accepts, then fetches each one's manifest (a few concurrently,
/// order kept) for its digest, source and revision.
///
/// # Errors
/// [`Error::ListTags`] when tags cannot be listed, [`Error::GetManifest`] naming the tag whose
/// manifest failed.
pub async fn list(
    client: &Client,
    repository: &Reference,
    filter: &(dyn Fn(&str) -> bool + Sync),
) -> Result<Vec<TagRow>, Error> {
    let repository = repository.without_version();
    let mut tags = client
        .list_tags_paged(&repository, Some(LIST_PAGE_SIZE))
        .await
        .map_err(|source| Error::ListTags {
            reference: repository.to_string(),
            source: Box::new(source),
        })?;
    tags.sort_by(|a, b| b.as_bytes().cmp(a.as_bytes()));
    tags.retain(|t| !is_cosign_tag(t) && filter(t));
    futures::stream::iter(tags)
        .map(|tag| {
            let reference = repository.with_tag(&tag);
            async move {
                let (manifest, descriptor, _) = super::get_manifest(client, &reference).await?;
                let annotations = match &manifest {
                    Manifest::Image(m) => m.annotations.clone(),
                    Manifest::Index(i) => i.annotations.clone(),
                }
                .unwrap_or_default();
                Ok(TagRow {
                    tag,
                    reference,
                    digest: descriptor.digest,
                    created: annotations
                        .get(ANNOTATION_CREATED)
                        .cloned()
                        .unwrap_or_default(),
                    source: annotations
                        .get(ANNOTATION_SOURCE)
                        .cloned()
                        .unwrap_or_default(),
                    revision: annotations
                        .get(ANNOTATION_REVISION)
                        .cloned()
                        .unwrap_or_default(),
                })
            }
        })
        .buffered(LIST_CONCURRENCY)
        .try_collect()
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cosign_tags_are_recognised() {
        assert!(is_cosign_tag("sha256-abc.sig"));
        assert!(is_cosign_tag("sha256-abc.att"));
        assert!(!is_cosign_tag("v1.0.0"));
    }
}
