//! Client certificates in the in-cluster mode, verified per request against CA bundles that can
//! change at run time (`k8s.io/apiserver/pkg/authentication/request/x509`): the listener puts
//! the presented, unverified [`PeerChain`] in the request, and [`CaBundle::verify`] checks it
//! with the `clientAuth` usage, as Go's `x509.Verify` with `ExtKeyUsageClientAuth` does.

use openssl::nid::Nid;
use openssl::stack::Stack;
use openssl::x509::store::{X509Store, X509StoreBuilder};
use openssl::x509::{X509, X509PurposeId, X509Ref, X509StoreContext};

/// The certificates a TLS client presented (leaf first), not yet verified; a request extension.
#[derive(Clone, Debug)]
pub struct PeerChain {
    /// The client's certificate.
    pub leaf: X509,
    /// Intermediate certificates sent with it.
    pub intermediates: Vec<X509>,
}

impl PeerChain {
    /// The leaf's subject common name (empty when it has none).
    pub fn common_name(&self) -> String {
        subject_entries(&self.leaf, Nid::COMMONNAME)
            .into_iter()
            .next()
            .unwrap_or_default()
    }

    /// The leaf's subject organisations (Kubernetes groups).
    pub fn organizations(&self) -> Vec<String> {
        subject_entries(&self.leaf, Nid::ORGANIZATIONNAME)
    }
}

fn subject_entries(cert: &X509Ref, nid: Nid) -> Vec<String> {
    cert.subject_name()
        .entries_by_nid(nid)
        .map(|e| String::from_utf8_lossy(e.data().as_slice()).into_owned())
        .collect()
}

/// A set of trusted CA certificates for client certificates.
pub struct CaBundle {
    store: X509Store,
    certificates: Vec<X509>,
}

impl std::fmt::Debug for CaBundle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let subjects: Vec<String> = self
            .certificates
            .iter()
            .map(|c| subject_entries(c, Nid::COMMONNAME).join(","))
            .collect();
        f.debug_struct("CaBundle")
            .field("subjects", &subjects)
            .finish()
    }
}

impl CaBundle {
    /// Parses a PEM bundle of one or more certificates.
    ///
    /// # Errors
    /// OpenSSL's error when the PEM is invalid or holds no certificate.
    pub fn from_pem(pem: &[u8]) -> Result<Self, openssl::error::ErrorStack> {
        let certificates = X509::stack_from_pem(pem)?;
        if certificates.is_empty() {
            // Make the same error an empty file gives OpenSSL's parser.
            X509::from_pem(pem)?;
        }
        let mut builder = X509StoreBuilder::new()?;
        builder.set_purpose(X509PurposeId::SSL_CLIENT)?;
        for cert in &certificates {
            builder.add_cert(cert.clone())?;
        }
        Ok(Self {
            store: builder.build(),
            certificates,
        })
    }

    /// The CA certificates.
    pub fn certificates(&self) -> &[X509] {
        &self.certificates
    }

    /// Verifies that `chain` leads to one of these CAs, is valid now and allows client
    /// authentication.
    ///
    /// # Errors
    /// OpenSSL's verification message, e.g. `unable to get local issuer certificate`.
    pub fn verify(&self, chain: &PeerChain) -> Result<(), String> {
        let mut intermediates = Stack::new().map_err(|e| e.to_string())?;
        for cert in &chain.intermediates {
            intermediates
                .push(cert.clone())
                .map_err(|e| e.to_string())?;
        }
        let mut context = X509StoreContext::new().map_err(|e| e.to_string())?;
        context
            .init(&self.store, &chain.leaf, &intermediates, |ctx| {
                Ok(ctx.verify_cert()?.then_some(()).ok_or(ctx.error()))
            })
            .map_err(|e| e.to_string())?
            .map_err(|result| result.error_string().to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chain_verifies_only_against_its_own_ca() {
        let dir = tempfile::tempdir().unwrap();
        let ours = crate::auth::pki::ensure(dir.path(), &[]).unwrap();
        let (cert, _) = crate::auth::pki::issue_client_pem(dir.path(), "alice", &["dev"]).unwrap();
        let other = tempfile::tempdir().unwrap();
        let theirs = crate::auth::pki::ensure(other.path(), &[]).unwrap();
        let chain = PeerChain {
            leaf: X509::from_pem(&cert).unwrap(),
            intermediates: vec![],
        };
        assert_eq!(chain.common_name(), "alice");
        assert_eq!(chain.organizations(), vec!["dev"]);
        let bundle = |path| CaBundle::from_pem(&std::fs::read(path).unwrap()).unwrap();
        assert_eq!(bundle(&ours.ca_cert).verify(&chain), Ok(()));
        assert!(bundle(&theirs.ca_cert).verify(&chain).is_err());
        // A serving certificate lacks the clientAuth usage.
        let serving = PeerChain {
            leaf: X509::from_pem(&std::fs::read(&ours.serving.cert).unwrap()).unwrap(),
            intermediates: vec![],
        };
        assert!(bundle(&ours.ca_cert).verify(&serving).is_err());
    }
}
