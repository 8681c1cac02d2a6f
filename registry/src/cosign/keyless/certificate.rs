//! The signing certificate: chain to a trusted authority at the signing time (OpenSSL), the
//! code-signing EKU, and the signer identity from the Fulcio OIDC issuer extensions
//! (`sigstore/fulcio: docs/oid-info.md`) and the SAN.

use openssl::stack::Stack;
use openssl::x509::store::X509StoreBuilder;
use openssl::x509::verify::X509VerifyParam;
use openssl::x509::{X509, X509StoreContext};

use super::{SignerIdentity, TrustedRoot, untrusted};
use crate::cosign::verify::VerifyError;

pub(super) fn check_chain(
    leaf: &X509,
    cert_der: &[u8],
    root: &TrustedRoot,
    at: i64,
) -> Result<(), VerifyError> {
    if !has_code_signing_eku(cert_der) {
        return Err(untrusted(
            "the certificate is not for code signing (extended key usage)".to_owned(),
        ));
    }
    let mut last = "no certificate authority in the trusted root".to_owned();
    for ca in &root.authorities {
        if ca.valid_from.is_some_and(|s| at < s) || ca.valid_until.is_some_and(|e| at > e) {
            last = "the signing time is outside the authority's validity".to_owned();
            continue;
        }
        match verify_chain(leaf, &ca.chain, at) {
            Ok(()) => return Ok(()),
            Err(reason) => last = reason,
        }
    }
    Err(untrusted(last))
}

fn verify_chain(leaf: &X509, chain: &[X509], at: i64) -> Result<(), String> {
    let err = |e: openssl::error::ErrorStack| e.to_string();
    let (root, intermediates) = chain.split_last().ok_or("empty chain")?;
    let mut store = X509StoreBuilder::new().map_err(err)?;
    store.add_cert(root.clone()).map_err(err)?;
    let mut param = X509VerifyParam::new().map_err(err)?;
    param.set_time(at);
    store.set_param(&param).map_err(err)?;
    let store = store.build();
    let mut stack = Stack::new().map_err(err)?;
    for c in intermediates {
        stack.push(c.clone()).map_err(err)?;
    }
    let mut ctx = X509StoreContext::new().map_err(err)?;
    let (ok, result) = ctx
        .init(&store, leaf, &stack, |c| {
            let ok = c.verify_cert()?;
            Ok((ok, c.error()))
        })
        .map_err(err)?;
    if ok {
        Ok(())
    } else {
        Err(format!(
            "the certificate does not chain to the trusted root at the signing time: {}",
            result.error_string()
        ))
    }
}

/// OID 1.3.6.1.4.1.57264.1.8 (Fulcio OIDC issuer v2, DER UTF8String value).
const OID_ISSUER_V2: &[u8] = &[0x2B, 6, 1, 4, 1, 0x83, 0xBF, 0x30, 1, 8];
/// OID 1.3.6.1.4.1.57264.1.1 (Fulcio OIDC issuer v1, raw string value).
const OID_ISSUER_V1: &[u8] = &[0x2B, 6, 1, 4, 1, 0x83, 0xBF, 0x30, 1, 1];
/// OID 2.5.29.37 (extended key usage).
const OID_EKU: &[u8] = &[0x55, 0x1D, 0x25];
/// OID 1.3.6.1.5.5.7.3.3 (id-kp-codeSigning).
const OID_CODE_SIGNING: &[u8] = &[0x2B, 6, 1, 5, 5, 7, 3, 3];

pub(super) fn signer_identity(leaf: &X509, cert_der: &[u8]) -> Result<SignerIdentity, String> {
    let extensions = der::extensions(cert_der).ok_or("cannot read the certificate extensions")?;
    let issuer = extensions
        .iter()
        .find(|(oid, _)| *oid == OID_ISSUER_V2)
        .and_then(|(_, v)| der::tlv(v).filter(|t| t.0 == 0x0C).map(|t| t.1))
        .or_else(|| {
            extensions
                .iter()
                .find(|(oid, _)| *oid == OID_ISSUER_V1)
                .map(|(_, v)| *v)
        })
        .and_then(|b| std::str::from_utf8(b).ok())
        .ok_or("the certificate has no OIDC issuer extension")?
        .to_owned();
    let subject = leaf
        .subject_alt_names()
        .and_then(|names| {
            names
                .iter()
                .find_map(|n| n.email().or_else(|| n.uri()).map(str::to_owned))
        })
        .ok_or("the certificate has no email or URI subject alternative name")?;
    Ok(SignerIdentity { issuer, subject })
}

fn has_code_signing_eku(cert_der: &[u8]) -> bool {
    let Some(extensions) = der::extensions(cert_der) else {
        return false;
    };
    extensions
        .iter()
        .filter(|(oid, _)| *oid == OID_EKU)
        .any(|(_, value)| {
            let Some((0x30, mut rest, _)) = der::tlv(value) else {
                return false;
            };
            while let Some((tag, oid, next)) = der::tlv(rest) {
                if tag == 0x06 && oid == OID_CODE_SIGNING {
                    return true;
                }
                rest = next;
            }
            false
        })
}

/// Just enough DER to list a certificate's extensions (RFC 5280 §4.1).
mod der {
    /// `(tag, content, rest)` of the first TLV in `input` (definite lengths up to 4 bytes).
    pub(super) fn tlv(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
        let (&tag, rest) = input.split_first()?;
        let (&first, rest) = rest.split_first()?;
        let (len, rest) = if first < 0x80 {
            (usize::from(first), rest)
        } else {
            let n = usize::from(first & 0x7F);
            if n == 0 || n > 4 || rest.len() < n {
                return None;
            }
            let len = rest[..n]
                .iter()
                .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
            (len, &rest[n..])
        };
        if rest.len() < len {
            return None;
        }
        Some((tag, &rest[..len], &rest[len..]))
    }

    /// `(extnID content, extnValue content)` of every extension of a DER certificate.
    pub(super) fn extensions(cert: &[u8]) -> Option<Vec<(&[u8], &[u8])>> {
        let (0x30, cert, _) = tlv(cert)? else {
            return None;
        };
        let (0x30, mut tbs, _) = tlv(cert)? else {
            return None;
        };
        let mut out = Vec::new();
        while let Some((tag, content, rest)) = tlv(tbs) {
            tbs = rest;
            if tag != 0xA3 {
                continue;
            }
            let (0x30, mut list, _) = tlv(content)? else {
                return None;
            };
            while let Some((0x30, ext, rest)) = tlv(list) {
                list = rest;
                let (0x06, oid, mut fields) = tlv(ext)? else {
                    return None;
                };
                if let Some((0x01, _, after)) = tlv(fields) {
                    fields = after;
                }
                let (0x04, value, _) = tlv(fields)? else {
                    return None;
                };
                out.push((oid, value));
            }
        }
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn der_reads_lengths() {
        assert_eq!(
            der::tlv(&[0x04, 2, 9, 9, 1]),
            Some((4, &[9u8, 9][..], &[1u8][..]))
        );
        assert_eq!(
            der::tlv(&[0x04, 0x81, 1, 7]),
            Some((4, &[7u8][..], &[][..]))
        );
        assert_eq!(der::tlv(&[0x04, 5, 1]), None);
    }
}
