//! JSON requests and watches against the Kubernetes API (client-go's `rest.RESTClient`, the
//! part this server uses): `POST` a review, `GET` an object, `GET ?watch=true` as a stream of
//! [`WatchEvent`]s. A request other than a watch times out after [`REQUEST_TIMEOUT`].

use std::path::PathBuf;
use std::time::Duration;

use futures::{Stream, StreamExt};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::kube::config::{ClusterConfig, Token};

/// Timeout of one request other than a watch (the webhooks' 10 s upstream).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// A failed call.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The HTTP client could not be built (an invalid CA or client certificate).
    #[error("building the Kubernetes client")]
    BuildClient(#[source] reqwest::Error),
    /// The client certificate or key is not valid PEM.
    #[error("reading the Kubernetes client certificate")]
    ClientIdentity(#[source] openssl::error::ErrorStack),
    /// The bearer token file could not be read.
    #[error("reading the token file {path}")]
    ReadToken {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The request could not be sent or its body not read.
    #[error("{method} {url}")]
    Send {
        /// The method.
        method: &'static str,
        /// The URL.
        url: String,
        /// The cause.
        source: reqwest::Error,
    },
    /// The API answered with an error status.
    #[error("{method} {url}: {code} {message}")]
    Status {
        /// The method.
        method: &'static str,
        /// The URL.
        url: String,
        /// The HTTP status code.
        code: u16,
        /// The `Status` message, or the body.
        message: String,
    },
    /// The answer is not the JSON expected.
    #[error("decoding the answer to {url}")]
    Decode {
        /// The URL.
        url: String,
        /// The cause.
        source: serde_json::Error,
    },
}

impl Error {
    /// The HTTP status code of an error answer.
    pub fn code(&self) -> Option<u16> {
        match self {
            Error::Status { code, .. } => Some(*code),
            _ => None,
        }
    }
}

/// One event of a watch (`metav1.WatchEvent`).
#[derive(Debug, serde::Deserialize)]
pub struct WatchEvent<T> {
    /// `ADDED`, `MODIFIED`, `DELETED`, `BOOKMARK` or `ERROR`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The object (a `Status` for `ERROR`).
    pub object: T,
}

/// A client of one API server; cheap to clone.
#[derive(Clone, Debug)]
pub struct Client {
    http: reqwest::Client,
    server: url::Url,
    token: Option<Token>,
}

impl Client {
    /// Builds a client from connection settings.
    ///
    /// # Errors
    /// [`Error::ClientIdentity`] or [`Error::BuildClient`] when a certificate is invalid.
    pub fn new(config: &ClusterConfig) -> Result<Self, Error> {
        let mut builder = reqwest::Client::builder()
            .use_native_tls()
            .connect_timeout(REQUEST_TIMEOUT)
            .danger_accept_invalid_certs(config.insecure);
        if let Some(ca) = &config.ca_pem {
            for cert in reqwest::Certificate::from_pem_bundle(ca).map_err(Error::BuildClient)? {
                builder = builder.add_root_certificate(cert);
            }
        }
        if let Some((cert, key)) = &config.identity {
            // native-tls wants PKCS#8; kubeconfigs often hold SEC1 or PKCS#1 keys.
            let key = openssl::pkey::PKey::private_key_from_pem(key)
                .and_then(|k| k.private_key_to_pem_pkcs8())
                .map_err(Error::ClientIdentity)?;
            let identity =
                reqwest::Identity::from_pkcs8_pem(cert, &key).map_err(Error::BuildClient)?;
            builder = builder.identity(identity);
        }
        Ok(Self {
            http: builder.build().map_err(Error::BuildClient)?,
            server: config.server.clone(),
            token: config.token.clone(),
        })
    }

    fn url(&self, path_and_query: &str) -> String {
        format!(
            "{}{}",
            self.server.as_str().trim_end_matches('/'),
            path_and_query
        )
    }

    async fn send(
        &self,
        method: &'static str,
        url: String,
        request: reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, Error> {
        let request = match &self.token {
            Some(Token::Static(token)) => request.bearer_auth(token),
            Some(Token::File(path)) => {
                let token =
                    tokio::fs::read_to_string(path)
                        .await
                        .map_err(|source| Error::ReadToken {
                            path: path.clone(),
                            source,
                        })?;
                request.bearer_auth(token.trim())
            }
            None => request,
        };
        let response = request.send().await.map_err(|source| Error::Send {
            method,
            url: url.clone(),
            source,
        })?;
        if response.status().is_success() {
            return Ok(response);
        }
        let code = response.status().as_u16();
        let body = response.text().await.unwrap_or_default();
        let message = serde_json::from_str::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v["message"].as_str().map(String::from))
            .unwrap_or(body);
        Err(Error::Status {
            method,
            url,
            code,
            message,
        })
    }

    async fn decode<R: DeserializeOwned>(
        url: String,
        response: reqwest::Response,
    ) -> Result<R, Error> {
        let bytes = response.bytes().await.map_err(|source| Error::Send {
            method: "GET",
            url: url.clone(),
            source,
        })?;
        serde_json::from_slice(&bytes).map_err(|source| Error::Decode { url, source })
    }

    /// `POST` of `body` to `path` (e.g. `/apis/authentication.k8s.io/v1/tokenreviews`),
    /// decoding the answer.
    ///
    /// # Errors
    /// [`Error::Send`], [`Error::Status`] or [`Error::Decode`].
    pub async fn create<B: Serialize + Sync, R: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<R, Error> {
        let url = self.url(path);
        let request = self.http.post(&url).timeout(REQUEST_TIMEOUT).json(body);
        let response = self.send("POST", url.clone(), request).await?;
        Self::decode(url, response).await
    }

    /// `PATCH` of `path` with the JSON merge patch `patch` (`application/merge-patch+json`),
    /// decoding the answer.
    ///
    /// # Errors
    /// [`Error::Send`], [`Error::Status`] (404 for a missing object) or [`Error::Decode`].
    pub async fn merge_patch<R: DeserializeOwned>(
        &self,
        path: &str,
        patch: &serde_json::Value,
    ) -> Result<R, Error> {
        let url = self.url(path);
        let body = patch.to_string();
        let request = self
            .http
            .patch(&url)
            .timeout(REQUEST_TIMEOUT)
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/merge-patch+json",
            )
            .body(body);
        let response = self.send("PATCH", url.clone(), request).await?;
        Self::decode(url, response).await
    }

    /// `GET` of `path_and_query`, decoding the answer.
    ///
    /// # Errors
    /// [`Error::Send`], [`Error::Status`] (404 for a missing object) or [`Error::Decode`].
    pub async fn get<R: DeserializeOwned>(&self, path_and_query: &str) -> Result<R, Error> {
        let url = self.url(path_and_query);
        let request = self.http.get(&url).timeout(REQUEST_TIMEOUT);
        let response = self.send("GET", url.clone(), request).await?;
        Self::decode(url, response).await
    }

    /// Starts a watch (`path_and_query` must carry `watch=true`): a stream of events that ends
    /// when the server closes the connection.
    ///
    /// # Errors
    /// [`Error::Send`] or [`Error::Status`] when the watch cannot start; a stream item is
    /// [`Error::Send`] when the connection breaks or [`Error::Decode`] for a bad line.
    pub async fn watch<T: DeserializeOwned + Send + 'static>(
        &self,
        path_and_query: &str,
    ) -> Result<impl Stream<Item = Result<WatchEvent<T>, Error>> + Send + use<T>, Error> {
        let url = self.url(path_and_query);
        let response = self.send("GET", url.clone(), self.http.get(&url)).await?;
        let bytes = response.bytes_stream();
        let lines = futures::stream::unfold(
            (bytes, Vec::<u8>::new(), url),
            |(mut bytes, mut buffer, url)| async move {
                loop {
                    if let Some(end) = buffer.iter().position(|b| *b == b'\n') {
                        let line: Vec<u8> = buffer.drain(..=end).collect();
                        if line.iter().all(u8::is_ascii_whitespace) {
                            continue;
                        }
                        let event = serde_json::from_slice(&line).map_err(|source| Error::Decode {
                            url: url.clone(),
                            source,
                        });
                        return Some((event, (bytes, buffer, url)));
                    }
                    match bytes.next().await {
                        Some(Ok(chunk)) => buffer.extend_from_slice(&chunk),
                        Some(Err(source)) => {
                            let error = Error::Send {
                                method: "GET",
                                url: url.clone(),
                                source,
                            };
                            return Some((Err(error), (bytes, Vec::new(), url)));
                        }
                        None => return None,
                    }
                }
            },
        );
        Ok(lines)
    }
}
