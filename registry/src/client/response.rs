//! Reading responses: capped bodies, registry error bodies, classification of transport
//! errors and HTTP statuses into [`Error`] variants, `Retry-After`.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use reqwest::header::{self, HeaderMap};
use reqwest::{Response, StatusCode};
use url::Url;

use super::docker_config::Resolved;
use super::{Error, Result};

/// How much of an error body is kept for messages: 4 KiB.
const MAX_ERROR_BODY_BYTES: u64 = 4 * 1024;

/// `Retry-After`: delay seconds or an HTTP date (RFC 9110 §10.2.3).
pub(crate) fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let v = headers.get(header::RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = jiff::fmt::rfc2822::DateTimeParser::new()
        .parse_timestamp(v)
        .ok()?;
    let now = jiff::Timestamp::now();
    let secs = when.as_second().saturating_sub(now.as_second());
    Some(Duration::from_secs(secs.max(0) as u64))
}

/// The URL without its query (upload URLs carry state tokens; keep messages short).
pub(crate) fn strip_query(url: &Url) -> String {
    let mut u = url.clone();
    u.set_query(None);
    u.to_string()
}

/// Maps a `reqwest` error to [`Error::Timeout`], [`Error::Tls`], [`Error::Connect`] or
/// [`Error::Transport`].
pub(crate) fn classify(url: &str, e: reqwest::Error) -> Error {
    if e.is_timeout() {
        return Error::Timeout {
            url: url.to_owned(),
        };
    }
    if let Some(message) = tls_cause(&e) {
        return Error::Tls {
            url: url.to_owned(),
            message,
        };
    }
    if e.is_connect() {
        // The URL is in our message: the cause's copy of it would repeat it.
        Error::Connect {
            url: url.to_owned(),
            source: e.without_url(),
        }
    } else {
        Error::Transport {
            url: url.to_owned(),
            source: e.without_url(),
        }
    }
}

/// The TLS failure in `e`'s chain, described by [`describe_tls`]. tokio-rustls reports a
/// handshake failure as an `io::Error` wrapping the `rustls::Error`, and `io::Error::source`
/// skips the wrapped error, so the walk descends into a wrapping `io::Error` instead.
fn tls_cause(e: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(tls) = err.downcast_ref::<rustls::Error>() {
            return Some(describe_tls(tls));
        }
        cur = match err.downcast_ref::<std::io::Error>() {
            Some(io) if io.get_ref().is_some() => io
                .get_ref()
                .map(|inner| inner as &(dyn std::error::Error + 'static)),
            _ => err.source(),
        };
    }
    None
}

/// A TLS failure in the words operators know from OpenSSL and Go: a refused server certificate
/// is `certificate verify failed: <why>`, an alert from the server names it in words
/// (`received fatal alert: bad certificate` when a client certificate is missing).
fn describe_tls(e: &rustls::Error) -> String {
    match e {
        rustls::Error::InvalidCertificate(why) => {
            // Contextual variants have sentences; the others print their name (`UnknownIssuer`).
            let why = why.to_string();
            let why = if why.bytes().all(|b| b.is_ascii_alphanumeric()) {
                words(&why)
            } else {
                why
            };
            format!("certificate verify failed: {why}")
        }
        rustls::Error::AlertReceived(alert) => {
            format!("received fatal alert: {}", words(&format!("{alert:?}")))
        }
        other => other.to_string(),
    }
}

/// `BadCertificate` → `bad certificate`.
fn words(camel: &str) -> String {
    let mut out = String::with_capacity(camel.len() + 4);
    for (i, c) in camel.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            out.push(' ');
        }
        out.push(c.to_ascii_lowercase());
    }
    out
}

/// Reads a whole body, failing with [`Error::TooLarge`] past `limit` bytes; bounded by `timeout`.
pub(crate) async fn read_capped(
    resp: Response,
    limit: u64,
    url: &str,
    timeout: Duration,
) -> Result<Bytes> {
    if resp.content_length().is_some_and(|n| n > limit) {
        return Err(Error::TooLarge {
            url: url.to_owned(),
            limit_bytes: limit,
        });
    }
    let read = async {
        let mut resp = resp;
        let mut buf = BytesMut::new();
        while let Some(chunk) = resp.chunk().await.map_err(|e| classify(url, e))? {
            if (buf.len() + chunk.len()) as u64 > limit {
                return Err(Error::TooLarge {
                    url: url.to_owned(),
                    limit_bytes: limit,
                });
            }
            buf.extend_from_slice(&chunk);
        }
        Ok(buf.freeze())
    };
    tokio::time::timeout(timeout, read)
        .await
        .map_err(|_| Error::Timeout {
            url: url.to_owned(),
        })?
}

/// The first 4 KiB of an error body, lossily decoded; empty on any failure.
pub(crate) async fn read_error_body(mut resp: Response) -> String {
    let mut buf = Vec::new();
    let read = async {
        while let Ok(Some(chunk)) = resp.chunk().await {
            let room = MAX_ERROR_BODY_BYTES as usize - buf.len();
            buf.extend_from_slice(&chunk[..chunk.len().min(room)]);
            if buf.len() >= MAX_ERROR_BODY_BYTES as usize {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(5), read).await;
    String::from_utf8_lossy(&buf).trim().to_owned()
}

/// The registry error codes and messages in a distribution error body
/// (`{"errors":[{"code":…,"message":…}]}`).
pub(crate) fn error_codes(body: &str) -> Vec<(String, String)> {
    #[derive(serde::Deserialize)]
    struct Errors {
        #[serde(default)]
        errors: Vec<ErrorEntry>,
    }
    #[derive(serde::Deserialize)]
    struct ErrorEntry {
        #[serde(default)]
        code: String,
        #[serde(default)]
        message: String,
    }
    serde_json::from_str::<Errors>(body)
        .map(|e| e.errors.into_iter().map(|e| (e.code, e.message)).collect())
        .unwrap_or_default()
}

pub(crate) fn body_suffix(body: &str) -> String {
    let codes = error_codes(body);
    if let Some((code, message)) = codes.first() {
        format!(": {code}: {message}")
    } else if body.is_empty() {
        String::new()
    } else {
        format!(": {body}")
    }
}

pub(crate) async fn unauthorized(registry: &str, resp: Response, creds: &Resolved) -> Error {
    let status = resp.status();
    let body = read_error_body(resp).await;
    let who = match creds {
        Resolved::Anonymous => "anonymous",
        _ => "with credentials",
    };
    Error::Unauthorized {
        registry: registry.to_owned(),
        message: format!("{status} ({who}){}", body_suffix(&body)),
    }
}

/// Turns a non-success response into a classified error: 401/403 → `Unauthorized`,
/// 404 `MANIFEST_UNKNOWN` → `ManifestUnknown`, other 404 → `NotFound`, else `Status`.
pub(crate) async fn status_error(resp: Response, what: &str) -> Error {
    let status = resp.status();
    let url = strip_query(resp.url());
    let registry = resp.url().host_str().map(|h| match resp.url().port() {
        Some(p) => format!("{h}:{p}"),
        None => h.to_owned(),
    });
    let body = read_error_body(resp).await;
    match status {
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => Error::Unauthorized {
            registry: registry.unwrap_or_default(),
            message: format!("{status}{}", body_suffix(&body)),
        },
        StatusCode::NOT_FOUND => {
            if error_codes(&body)
                .iter()
                .any(|(c, _)| c == "MANIFEST_UNKNOWN")
            {
                Error::ManifestUnknown {
                    reference: what.to_owned(),
                }
            } else {
                Error::NotFound {
                    reference: what.to_owned(),
                }
            }
        }
        _ => Error::Status {
            url,
            status: status.as_u16(),
            body,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    #[test]
    fn retry_after_accepts_seconds_and_dates() {
        let mut h = HeaderMap::new();
        h.insert(header::RETRY_AFTER, HeaderValue::from_static("7"));
        assert_eq!(retry_after(&h), Some(Duration::from_secs(7)));
        h.insert(
            header::RETRY_AFTER,
            HeaderValue::from_static("Sun, 06 Nov 1994 08:49:37 GMT"),
        );
        assert_eq!(retry_after(&h), Some(Duration::ZERO));
        h.insert(header::RETRY_AFTER, HeaderValue::from_static("soon"));
        assert_eq!(retry_after(&h), None);
    }

    #[test]
    fn error_codes_are_parsed() {
        let b =
            r#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown","detail":{}}]}"#;
        assert_eq!(
            error_codes(b),
            vec![("MANIFEST_UNKNOWN".into(), "manifest unknown".into())]
        );
        assert!(error_codes("not json").is_empty());
    }

    #[test]
    fn tls_failures_are_described_in_words() {
        use rustls::{AlertDescription, CertificateError};
        let unknown = rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer);
        assert_eq!(
            describe_tls(&unknown),
            "certificate verify failed: unknown issuer"
        );
        let refused = rustls::Error::AlertReceived(AlertDescription::BadCertificate);
        assert_eq!(
            describe_tls(&refused),
            "received fatal alert: bad certificate"
        );
    }
}
