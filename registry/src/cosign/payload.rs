//! What cosign signs: the simple-signing payload of `.sig` signatures
//! (`sigstore/sigstore: pkg/signature/payload/payload.go`) and the in-toto statement inside a
//! cosign v3 DSSE bundle (`sigstore/cosign: pkg/types`, DSSE spec `protocol.md`).

use serde::{Deserialize, Serialize};

use crate::digest::Digest;

/// `critical.type` of a cosign image signature payload.
pub const SIMPLE_SIGNING_TYPE: &str = "cosign container image signature";
/// `predicateType` of the statement `cosign sign` (v3, new bundle format) signs.
pub const COSIGN_SIGN_PREDICATE: &str = "https://sigstore.dev/cosign/sign/v1";
/// DSSE `payloadType` of an in-toto statement.
pub const IN_TOTO_PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";

#[derive(Serialize, Deserialize)]
struct SimpleSigning {
    critical: Critical,
    optional: Option<serde_json::Map<String, serde_json::Value>>,
}

#[derive(Serialize, Deserialize)]
struct Critical {
    identity: Identity,
    image: Image,
    #[serde(rename = "type")]
    kind: String,
}

#[derive(Serialize, Deserialize)]
struct Identity {
    #[serde(rename = "docker-reference")]
    docker_reference: String,
}

#[derive(Serialize, Deserialize)]
struct Image {
    #[serde(rename = "docker-manifest-digest")]
    docker_manifest_digest: String,
}

/// The payload bytes cosign signs for `digest`: compact JSON in Go's field order,
/// `{"critical":{"identity":{"docker-reference":…},"image":{"docker-manifest-digest":…},
/// "type":"cosign container image signature"},"optional":null}`.
/// `docker_reference` is `registry/repository` (no tag), as `cosign sign` writes it.
pub(crate) fn simple_signing(docker_reference: &str, digest: &Digest) -> Vec<u8> {
    let payload = SimpleSigning {
        critical: Critical {
            identity: Identity {
                docker_reference: docker_reference.to_owned(),
            },
            image: Image {
                docker_manifest_digest: digest.to_string(),
            },
            kind: SIMPLE_SIGNING_TYPE.to_owned(),
        },
        optional: None,
    };
    // Serialising plain strings into a Vec cannot fail.
    serde_json::to_vec(&payload).unwrap_or_default()
}

/// The `docker-manifest-digest` a simple-signing payload names.
///
/// # Errors
/// A message when the bytes are not a cosign simple-signing document.
pub(crate) fn signed_digest(payload: &[u8]) -> Result<String, String> {
    let doc: SimpleSigning = serde_json::from_slice(payload)
        .map_err(|e| format!("not a simple-signing payload: {e}"))?;
    if doc.critical.kind != SIMPLE_SIGNING_TYPE {
        return Err(format!(
            "critical.type is {:?}, want {SIMPLE_SIGNING_TYPE:?}",
            doc.critical.kind
        ));
    }
    Ok(doc.critical.image.docker_manifest_digest)
}

/// DSSE pre-authentication encoding: `DSSEv1 <len(type)> <type> <len(body)> <body>`.
pub(crate) fn dsse_pae(payload_type: &str, body: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "DSSEv1 {} {payload_type} {} ",
        payload_type.len(),
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(body);
    out
}

#[derive(Deserialize)]
struct Statement {
    #[serde(rename = "_type")]
    kind: String,
    #[serde(default)]
    subject: Vec<Subject>,
    #[serde(rename = "predicateType")]
    predicate_type: String,
}

#[derive(Deserialize)]
struct Subject {
    #[serde(default)]
    digest: std::collections::BTreeMap<String, String>,
}

/// The statement's subject digests (`sha256:<hex>`), when it is a cosign signing statement.
/// `Ok(None)` for a statement with another predicate (an attestation, not a signature).
///
/// # Errors
/// A message when the bytes are not an in-toto statement.
pub(crate) fn statement_subjects(payload: &[u8]) -> Result<Option<Vec<String>>, String> {
    let st: Statement =
        serde_json::from_slice(payload).map_err(|e| format!("not an in-toto statement: {e}"))?;
    if !st.kind.starts_with("https://in-toto.io/Statement/") {
        return Err(format!("statement _type is {:?}", st.kind));
    }
    if st.predicate_type != COSIGN_SIGN_PREDICATE {
        return Ok(None);
    }
    Ok(Some(
        st.subject
            .iter()
            .flat_map(|s| s.digest.iter().map(|(alg, hex)| format!("{alg}:{hex}")))
            .collect(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_payload_is_byte_for_byte_cosigns() {
        let d: Digest = format!("sha256:{}", "ab".repeat(32)).parse().unwrap();
        let p = simple_signing("ghcr.io/org/app", &d);
        assert_eq!(
            String::from_utf8(p.clone()).unwrap(),
            format!(
                "{{\"critical\":{{\"identity\":{{\"docker-reference\":\"ghcr.io/org/app\"}},\"image\":{{\"docker-manifest-digest\":\"{d}\"}},\"type\":\"cosign container image signature\"}},\"optional\":null}}"
            )
        );
        assert_eq!(signed_digest(&p).unwrap(), d.to_string());
        let err = signed_digest(b"{}").unwrap_err();
        assert!(
            err.starts_with("not a simple-signing payload: missing field `critical`"),
            "{err}"
        );
    }

    #[test]
    fn pae_follows_the_dsse_spec() {
        assert_eq!(dsse_pae("t", b"hello"), b"DSSEv1 1 t 5 hello");
    }
}
