//! The HTTPS listener: OpenSSL (TLS 1.2+), HTTP/1.1 and HTTP/2 (ALPN), client certificates
//! requested but optional (kube-apiserver's `RequestClientCert`: probes come without one).
//!
//! The handshake runs inside each connection's task, never in the accept loop, so one slow client
//! cannot stall the others. Every presented certificate becomes a [`PeerChain`] request
//! extension (unverified: the in-cluster authenticators verify it per request against the
//! client CA or the requestheader CA, whichever applies, as they are reloaded). In standalone
//! mode the acceptor also trusts the client CA, and a certificate that chains to it becomes a
//! [`PeerCertificate`] extension; one that does not is ignored (the request is then
//! anonymous and gets 401), as upstream's x509 authenticator does.

use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder;
use openssl::nid::Nid;
use openssl::ssl::{
    AlpnError, Ssl, SslAcceptor, SslFiletype, SslMethod, SslVerifyMode, SslVersion,
    select_next_proto,
};
use openssl::x509::X509VerifyResult;
use tokio::net::TcpListener;
use tokio_openssl::SslStream;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

use crate::auth::PeerCertificate;
use crate::auth::x509::PeerChain;

/// Concurrent HTTP/2 streams per connection: 1,000, as k8s.io/apiserver's recommended options
/// for aggregated servers set `HTTP2MaxStreamsPerConnection` (`pkg/server/options/
/// recommended.go`: the aggregator multiplexes many watches into one connection); hyper's
/// default is 200.
const MAX_CONCURRENT_STREAMS: u32 = 1000;

/// How long a client may take to finish the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Builds the OpenSSL acceptor from PEM files. With `client_ca` (standalone mode) the
/// handshake verifies client certificates against it and advertises it; without (in-cluster
/// mode) certificates are requested from any issuer and verified per request.
///
/// # Errors
/// OpenSSL's error when a file is missing or not valid PEM, or the key does not match.
pub fn acceptor(
    cert: &Path,
    key: &Path,
    client_ca: Option<&Path>,
) -> Result<Arc<SslAcceptor>, openssl::error::ErrorStack> {
    let mut builder = SslAcceptor::mozilla_intermediate_v5(SslMethod::tls_server())?;
    builder.set_min_proto_version(Some(SslVersion::TLS1_2))?;
    builder.set_certificate_chain_file(cert)?;
    builder.set_private_key_file(key, SslFiletype::PEM)?;
    builder.check_private_key()?;
    if let Some(client_ca) = client_ca {
        builder.set_ca_file(client_ca)?;
        let pem = std::fs::read(client_ca).unwrap_or_default();
        for ca in openssl::x509::X509::stack_from_pem(&pem)? {
            builder.add_client_ca(&ca)?;
        }
    }
    // Ask for a certificate, accept the handshake whatever it is; the verdict is read after the
    // handshake from `verify_result`.
    builder.set_verify_callback(SslVerifyMode::PEER, |_, _| true);
    builder.set_alpn_select_callback(|_, client| {
        select_next_proto(b"\x02h2\x08http/1.1", client).ok_or(AlpnError::NOACK)
    });
    Ok(Arc::new(builder.build()))
}

/// Accepts connections until `shutdown` is cancelled; each connection is served in a task of
/// `tracker` and finishes its in-flight requests when shutdown begins.
pub async fn serve(
    listener: TcpListener,
    acceptor: Arc<SslAcceptor>,
    router: Router,
    shutdown: CancellationToken,
    tracker: TaskTracker,
) {
    loop {
        let (tcp, remote) = tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(error) => {
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let acceptor = acceptor.clone();
        let router = router.clone();
        let shutdown = shutdown.clone();
        tracker.spawn(async move {
            if let Err(error) = serve_connection(tcp, acceptor, router, shutdown).await {
                tracing::debug!(%remote, %error, "connection ended with an error");
            }
        });
    }
}

async fn serve_connection(
    tcp: tokio::net::TcpStream,
    acceptor: Arc<SslAcceptor>,
    router: Router,
    shutdown: CancellationToken,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let _ = tcp.set_nodelay(true);
    let ssl = Ssl::new(acceptor.context())?;
    let mut stream = SslStream::new(ssl, tcp)?;
    tokio::time::timeout(HANDSHAKE_TIMEOUT, Pin::new(&mut stream).accept()).await??;
    let peer = peer_certificate(stream.ssl());
    let chain = peer_chain(stream.ssl());
    let service =
        hyper::service::service_fn(move |mut request: http::Request<hyper::body::Incoming>| {
            if let Some(peer) = &peer {
                request.extensions_mut().insert(peer.clone());
            }
            if let Some(chain) = &chain {
                request.extensions_mut().insert(chain.clone());
            }
            router.clone().oneshot(request.map(axum::body::Body::new))
        });
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http2()
        .max_concurrent_streams(MAX_CONCURRENT_STREAMS);
    let connection = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
    tokio::pin!(connection);
    tokio::select! {
        result = connection.as_mut() => result,
        () = shutdown.cancelled() => {
            connection.as_mut().graceful_shutdown();
            connection.await
        }
    }
}

/// The presented certificates, unverified: the leaf and the intermediates sent with it.
fn peer_chain(ssl: &openssl::ssl::SslRef) -> Option<PeerChain> {
    let leaf = ssl.peer_certificate()?;
    let leaf_der = leaf.to_der().ok();
    let intermediates = ssl
        .peer_cert_chain()
        .map(|stack| {
            stack
                .iter()
                .filter(|c| c.to_der().ok() != leaf_der)
                .map(|c| c.to_owned())
                .collect()
        })
        .unwrap_or_default();
    Some(PeerChain {
        leaf,
        intermediates,
    })
}

fn peer_certificate(ssl: &openssl::ssl::SslRef) -> Option<PeerCertificate> {
    let cert = ssl.peer_certificate()?;
    if ssl.verify_result() != X509VerifyResult::OK {
        tracing::debug!(result = %ssl.verify_result(), "client certificate not verified in the handshake");
        return None;
    }
    let text = |nid| {
        cert.subject_name()
            .entries_by_nid(nid)
            .map(|e| String::from_utf8_lossy(e.data().as_slice()).into_owned())
            .collect::<Vec<_>>()
    };
    let common_name = text(Nid::COMMONNAME).into_iter().next()?;
    Some(PeerCertificate {
        common_name,
        organizations: text(Nid::ORGANIZATIONNAME),
    })
}
