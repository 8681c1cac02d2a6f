//! A small HTTPS client for the suites that must control the wire: exact `Accept` headers,
//! streamed watch bodies, and HTTP/1.1 or HTTP/2 (ALPN) on one connection. It presents the
//! server's generated admin certificate (`<data-dir>/pki/admin.{crt,key}`, `system:masters`)
//! and trusts the server's CA.

#![allow(
    dead_code,
    unreachable_pub,
    reason = "each suite uses part of this module"
)]

use std::time::Duration;

use axum::body::Body;
use futures::StreamExt;
use hyper_util::rt::{TokioExecutor, TokioIo};
use openssl::ssl::{SslConnector, SslFiletype, SslMethod};
use serde_json::Value;
use test_support::server::ApiServer;

/// Which protocol to ask for in ALPN.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    /// `http/1.1`.
    Http1,
    /// `h2`.
    Http2,
}

/// One connection to the server.
pub enum Connection {
    /// An HTTP/1.1 connection (one request at a time).
    Http1(hyper::client::conn::http1::SendRequest<Body>),
    /// An HTTP/2 connection (requests multiplexed as streams).
    Http2(hyper::client::conn::http2::SendRequest<Body>),
}

/// Opens a TLS connection as the admin and negotiates `protocol`.
///
/// # Panics
/// When the handshake fails or the server does not agree to `protocol`.
pub async fn connect(server: &ApiServer, protocol: Protocol) -> Connection {
    let pki = server.data_dir().join("pki");
    let mut builder = SslConnector::builder(SslMethod::tls_client()).unwrap();
    builder.set_ca_file(server.ca_cert()).unwrap();
    builder
        .set_certificate_file(pki.join("admin.crt"), SslFiletype::PEM)
        .unwrap();
    builder
        .set_private_key_file(pki.join("admin.key"), SslFiletype::PEM)
        .unwrap();
    let alpn: &[u8] = match protocol {
        Protocol::Http1 => b"\x08http/1.1",
        Protocol::Http2 => b"\x02h2",
    };
    builder.set_alpn_protos(alpn).unwrap();
    let ssl = builder
        .build()
        .configure()
        .unwrap()
        .into_ssl("127.0.0.1")
        .unwrap();
    let tcp = tokio::net::TcpStream::connect(server.addr()).await.unwrap();
    let mut stream = tokio_openssl::SslStream::new(ssl, tcp).unwrap();
    std::pin::Pin::new(&mut stream).connect().await.unwrap();
    let agreed = stream.ssl().selected_alpn_protocol().map(<[u8]>::to_vec);
    let io = TokioIo::new(stream);
    match protocol {
        Protocol::Http1 => {
            let (sender, connection) = hyper::client::conn::http1::handshake(io).await.unwrap();
            tokio::spawn(connection);
            Connection::Http1(sender)
        }
        Protocol::Http2 => {
            assert_eq!(
                agreed.as_deref(),
                Some(&b"h2"[..]),
                "the server agrees to h2"
            );
            let (sender, connection) =
                hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
                    .await
                    .unwrap();
            tokio::spawn(connection);
            Connection::Http2(sender)
        }
    }
}

impl Connection {
    /// A handle that opens streams on this HTTP/2 connection (clone it per concurrent request).
    ///
    /// # Panics
    /// On an HTTP/1.1 connection.
    pub fn http2(&self) -> hyper::client::conn::http2::SendRequest<Body> {
        match self {
            Connection::Http2(sender) => sender.clone(),
            Connection::Http1(_) => panic!("not an HTTP/2 connection"),
        }
    }

    /// Sends a request and returns the response head with its body unread.
    ///
    /// # Panics
    /// When the request cannot be sent.
    pub async fn send(&mut self, request: http::Request<Body>) -> http::Response<Body> {
        let response = match self {
            Connection::Http1(sender) => {
                sender.ready().await.unwrap();
                sender.send_request(request).await
            }
            Connection::Http2(sender) => {
                sender.ready().await.unwrap();
                sender.send_request(request).await
            }
        };
        response.unwrap().map(Body::new)
    }

    /// A request with these headers; `body` as JSON when given. Returns status and the whole
    /// body.
    pub async fn call(
        &mut self,
        method: http::Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&Value>,
    ) -> (http::StatusCode, Vec<u8>) {
        let response = self.send(request(method, path, headers, body)).await;
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        (status, bytes.to_vec())
    }
}

/// Builds a request for `path` on the server (the `Host` header/`:authority` is set).
pub fn request(
    method: http::Method,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&Value>,
) -> http::Request<Body> {
    let mut builder = http::Request::builder()
        .method(method)
        .uri(format!("https://127.0.0.1{path}"));
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    let body = match body {
        Some(value) => {
            builder = builder.header(http::header::CONTENT_TYPE, "application/json");
            Body::from(serde_json::to_vec(value).unwrap())
        }
        None => Body::empty(),
    };
    builder.body(body).unwrap()
}

/// Reads the newline-delimited JSON frames of a watch body as they arrive.
pub struct Frames {
    stream: axum::body::BodyDataStream,
    buffer: Vec<u8>,
}

impl Frames {
    /// Wraps a watch response's body.
    pub fn new(body: Body) -> Self {
        Self {
            stream: body.into_data_stream(),
            buffer: Vec::new(),
        }
    }

    /// The next frame, or `None` when the body ends or nothing arrives within `patience`.
    pub async fn next(&mut self, patience: Duration) -> Option<Value> {
        let deadline = tokio::time::Instant::now() + patience;
        loop {
            if let Some(end) = self.buffer.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = self.buffer.drain(..=end).collect();
                return Some(serde_json::from_slice(&line).unwrap_or_else(|e| {
                    panic!(
                        "frame is not JSON ({e}): {}",
                        String::from_utf8_lossy(&line)
                    )
                }));
            }
            match tokio::time::timeout_at(deadline, self.stream.next()).await {
                Ok(Some(Ok(chunk))) => self.buffer.extend_from_slice(&chunk),
                _ => return None,
            }
        }
    }
}
