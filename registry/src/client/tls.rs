//! The TLS settings of the registry client: one rustls `ClientConfig` per client, handed to
//! reqwest as is (`use_preconfigured_tls`).
//!
//! Built here rather than through reqwest's TLS options because every `reqwest::Certificate`
//! is also parsed by OpenSSL while reqwest's `native-tls` feature is on (the Kubernetes client
//! needs it): ~45 ms of CPU for the system bundle, which is the cost this module avoids
//! (bench/README.md, start-up).
//!
//! - TLS 1.2 or 1.3, ring's algorithms.
//! - Verified (the default): the system roots ([`super::roots`], read once per process) plus
//!   `ca_certs_pem`. Not verified (Flux's one `InsecureSkipVerify`: `insecure` without a CA or
//!   client certificate): no roots are read and any server certificate is accepted.
//! - A client certificate when `client_identity` is set (PKCS#8, PKCS#1 RSA or SEC1 EC key).
//! - ALPN `http/1.1` only, as native-tls offered: under TLS 1.3 a registry refuses a missing or
//!   untrusted client certificate after the client's handshake has finished, with an alert read
//!   on the first response; hyper's HTTP/1 client hands that read error to the request
//!   (`received fatal alert: bad certificate`), its HTTP/2 client only a closed channel.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig as TlsConfig, DigitallySignedStruct, SignatureScheme};

use super::{ClientConfig, Error, Result, roots};

/// The rustls configuration for `config` (see the module docs).
///
/// # Errors
/// [`Error::InvalidConfig`] for a CA PEM holding no or bad certificates, or a client
/// certificate or key that does not parse or does not match.
pub(crate) fn client_tls(config: &ClientConfig) -> Result<TlsConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = TlsConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| invalid(format!("TLS versions: {e}")))?;
    let builder = if skips_verification(config) {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate(provider)))
    } else {
        let mut trusted = roots::system_roots().clone();
        for pem in &config.ca_certs_pem {
            let certs = CertificateDer::pem_slice_iter(pem)
                .collect::<std::result::Result<Vec<_>, _>>()
                .map_err(|e| invalid(format!("invalid CA certificate PEM: {e}")))?;
            if certs.is_empty() {
                return Err(invalid("CA certificate PEM holds no certificate".into()));
            }
            for cert in certs {
                trusted
                    .add(cert)
                    .map_err(|e| invalid(format!("invalid CA certificate: {e}")))?;
            }
        }
        builder.with_root_certificates(trusted)
    };
    let mut tls = match &config.client_identity {
        None => builder.with_no_client_auth(),
        Some(id) => {
            let chain = CertificateDer::pem_slice_iter(&id.cert_pem)
                .collect::<std::result::Result<Vec<_>, _>>()
                .map_err(|e| invalid(format!("invalid client certificate PEM: {e}")))?;
            if chain.is_empty() {
                return Err(invalid(
                    "client certificate PEM holds no certificate".into(),
                ));
            }
            let key = PrivateKeyDer::from_pem_slice(&id.key_pem)
                .map_err(|e| invalid(format!("invalid client key PEM: {e}")))?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| invalid(format!("invalid client certificate: {e}")))?
        }
    };
    tls.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(tls)
}

/// Whether certificate verification is off: `insecure` without a CA or client certificate
/// (Flux: `spec.insecure` and no `certSecretRef`).
fn skips_verification(config: &ClientConfig) -> bool {
    config.insecure && config.ca_certs_pem.is_empty() && config.client_identity.is_none()
}

fn invalid(message: String) -> Error {
    Error::InvalidConfig { message }
}

/// Accepts any server certificate; the handshake signatures are still checked, so the peer
/// holds the key of the certificate it sent.
#[derive(Debug)]
struct AcceptAnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
