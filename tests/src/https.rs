//! An HTTPS server for test fakes: an axum `Router` served over OpenSSL on a loopback port, in
//! its own tokio runtime (the e2e tests are synchronous), stopped on drop. With a client CA the
//! handshake asks for a client certificate, and one that verifies becomes a [`ClientIdentity`]
//! request extension.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo};
use openssl::nid::Nid;
use openssl::pkey::PKey;
use openssl::ssl::{AlpnError, Ssl, SslAcceptor, SslMethod, SslVerifyMode, select_next_proto};
use openssl::x509::{X509, X509VerifyResult};
use tower::ServiceExt;

/// The verified client certificate's subject: CN and O entries.
#[derive(Clone, Debug)]
pub struct ClientIdentity {
    /// Common name (the user).
    pub common_name: String,
    /// Organisations (the groups).
    pub organizations: Vec<String>,
}

/// A running HTTPS server; stops with its runtime on drop.
#[derive(Debug)]
pub struct HttpsServer {
    addr: SocketAddr,
    runtime: Option<tokio::runtime::Runtime>,
}

impl HttpsServer {
    /// Serves `router` with the serving certificate and key (PEM), asking for client
    /// certificates signed by `client_ca` (PEM) when given.
    ///
    /// # Panics
    /// On invalid PEM or when no port can be bound.
    pub fn start(router: Router, cert: &[u8], key: &[u8], client_ca: Option<&[u8]>) -> Self {
        let mut builder = SslAcceptor::mozilla_intermediate_v5(SslMethod::tls_server()).unwrap();
        builder
            .set_certificate(&X509::from_pem(cert).unwrap())
            .unwrap();
        builder
            .set_private_key(&PKey::private_key_from_pem(key).unwrap())
            .unwrap();
        if let Some(ca) = client_ca {
            for cert in X509::stack_from_pem(ca).unwrap() {
                builder.cert_store_mut().add_cert(cert.clone()).unwrap();
                builder.add_client_ca(&cert).unwrap();
            }
            builder.set_verify_callback(SslVerifyMode::PEER, |_, _| true);
        }
        builder.set_alpn_select_callback(|_, client| {
            select_next_proto(b"\x08http/1.1", client).ok_or(AlpnError::NOACK)
        });
        let acceptor = Arc::new(builder.build());
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let addr = listener.local_addr().unwrap();
        runtime.spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    continue;
                };
                let acceptor = acceptor.clone();
                let router = router.clone();
                tokio::spawn(async move {
                    let ssl = Ssl::new(acceptor.context()).unwrap();
                    let mut stream = tokio_openssl::SslStream::new(ssl, tcp).unwrap();
                    if Pin::new(&mut stream).accept().await.is_err() {
                        return;
                    }
                    let identity = identity(stream.ssl());
                    let service = hyper::service::service_fn(
                        move |mut request: http::Request<hyper::body::Incoming>| {
                            if let Some(identity) = &identity {
                                request.extensions_mut().insert(identity.clone());
                            }
                            router.clone().oneshot(request.map(axum::body::Body::new))
                        },
                    );
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection_with_upgrades(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Self {
            addr,
            runtime: Some(runtime),
        }
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `https://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("https://{}", self.addr)
    }

    /// A handle to the server's runtime (to run async helpers from synchronous tests).
    pub fn handle(&self) -> tokio::runtime::Handle {
        self.runtime.as_ref().expect("running").handle().clone()
    }
}

impl Drop for HttpsServer {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

fn identity(ssl: &openssl::ssl::SslRef) -> Option<ClientIdentity> {
    let cert = ssl.peer_certificate()?;
    if ssl.verify_result() != X509VerifyResult::OK {
        return None;
    }
    let entries = |nid| {
        cert.subject_name()
            .entries_by_nid(nid)
            .map(|e| String::from_utf8_lossy(e.data().as_slice()).into_owned())
            .collect::<Vec<_>>()
    };
    Some(ClientIdentity {
        common_name: entries(Nid::COMMONNAME).into_iter().next()?,
        organizations: entries(Nid::ORGANIZATIONNAME),
    })
}
