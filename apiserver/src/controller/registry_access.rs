//! Registry access shared by every kind that pulls from an OCI registry (OCIRepository,
//! HelmRepository of type `oci` for HelmCharts): credentials, TLS material and proxies read from
//! the object's Secrets (`spec.secretRef`, `spec.certSecretRef`, `spec.proxySecretRef`, Flux's
//! keys and messages, `flux-source-controller.md` §2.4 steps 2–5), a cache of clients keyed by a
//! hash of that configuration, and the cosign keys and trusted roots named by `spec.verify`.
//!
//! Every failure is an [`AccessError`]; the kinds record it as `FetchFailed` with reason
//! `AuthenticationFailed` (client configuration) or as `SourceVerified=False` (verification
//! material), as Flux does.

use std::time::Duration;

use openapi::v1::OCIRepository;
use registry::client::{ClientIdentity, ProxyConfig};
use registry::{Client, ClientConfig, Credentials, DockerConfig};
use sha2::Digest as _;

use super::runtime::chain;
use super::secrets::{Secret, SecretStore};

/// Why a registry client or verification material could not be configured from an object's
/// Secrets: the message Flux writes, naming the Secret and the field.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub(crate) struct AccessError {
    /// The full message, e.g. `failed to get credential: secrets "x" not found in namespace 'ns'`.
    pub message: String,
}

/// What configures a registry client, taken from a source object's spec: the namespace its
/// Secret references resolve in, the referenced Secret names, and `spec.insecure`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct RegistryAccess {
    /// Namespace of the object (and so of its Secrets).
    pub namespace: String,
    /// `spec.secretRef.name`: a `kubernetes.io/dockerconfigjson` or `kubernetes.io/dockercfg`
    /// Secret.
    pub secret_ref: Option<String>,
    /// `spec.certSecretRef.name`: `ca.crt`, `tls.crt`, `tls.key` (or the legacy file names).
    pub cert_secret_ref: Option<String>,
    /// `spec.proxySecretRef.name`: `address`, `username`, `password`.
    pub proxy_secret_ref: Option<String>,
    /// `spec.insecure`: HTTPS without certificate verification when no `certSecretRef` is set,
    /// and plain HTTP for a registry that answers no TLS (see [`ClientConfig::insecure`]).
    pub insecure: bool,
    /// Whether `secret_ref` may instead hold `username` and `password` (HelmRepository's basic
    /// auth); otherwise it must be a `kubernetes.io/dockerconfigjson` Secret.
    pub basic_auth: bool,
    /// `spec.serviceAccountName` (in-cluster): the ServiceAccount whose `imagePullSecrets` are
    /// pull Secrets too, after `secret_ref`'s.
    pub service_account: Option<String>,
}

impl RegistryAccess {
    /// The access an OCIRepository's spec describes.
    pub(crate) fn of_oci_repository(obj: &OCIRepository) -> Self {
        let name =
            |r: &Option<openapi::meta::LocalObjectReference>| r.as_ref().map(|r| r.name.clone());
        Self {
            namespace: obj
                .metadata
                .namespace
                .clone()
                .unwrap_or_else(|| "default".to_owned()),
            secret_ref: name(&obj.spec.secret_ref),
            cert_secret_ref: name(&obj.spec.cert_secret_ref),
            proxy_secret_ref: name(&obj.spec.proxy_secret_ref),
            insecure: obj.spec.is_insecure(),
            basic_auth: false,
            service_account: obj
                .spec
                .service_account_name
                .clone()
                .filter(|s| !s.is_empty()),
        }
    }
}

/// Registry clients shared between reconciles, keyed by a hash of everything that configures
/// them (so token caches and connections are reused, and a changed Secret makes a new client).
#[derive(Debug, Default)]
pub(crate) struct ClientCache {
    clients: parking_lot::Mutex<std::collections::HashMap<String, Client>>,
}

/// Most clients kept; the cache is emptied when it would grow past this.
const MAX_CACHED_CLIENTS: usize = 4096;

/// The registry credentials of a pull Secret, by its type.
enum PullSecret {
    /// `kubernetes.io/dockerconfigjson`: `.dockerconfigjson`, a docker `config.json`.
    DockerConfigJson(Vec<u8>),
    /// `kubernetes.io/dockercfg`: `.dockercfg`, the legacy `~/.dockercfg` (the `auths` map).
    DockerCfg(Vec<u8>),
}

impl PullSecret {
    fn bytes(&self) -> &[u8] {
        match self {
            PullSecret::DockerConfigJson(b) | PullSecret::DockerCfg(b) => b,
        }
    }

    fn parse(&self) -> registry::client::Result<DockerConfig> {
        match self {
            PullSecret::DockerConfigJson(b) => DockerConfig::from_json(b),
            PullSecret::DockerCfg(b) => DockerConfig::from_legacy_json(b),
        }
    }
}

/// What the object's Secrets resolved to.
struct Access {
    docker_config: Option<PullSecret>,
    basic: Option<(String, String)>,
    ca: Option<Vec<u8>>,
    identity: Option<(Vec<u8>, Vec<u8>)>,
    proxy: Option<(String, Option<String>, Option<String>)>,
}

fn load_secret(secrets: &SecretStore, namespace: &str, name: &str) -> Result<Secret, String> {
    match secrets.get(namespace, name) {
        Ok(Some(s)) => Ok(s),
        Ok(None) => Err(match secrets.not_found_hint() {
            Some(hint) => {
                format!("secrets \"{name}\" not found in namespace '{namespace}' ({hint})")
            }
            None => format!("secrets \"{name}\" not found in namespace '{namespace}'"),
        }),
        Err(e) => Err(chain(&e)),
    }
}

/// The pull Secrets of the ServiceAccount `namespace/name` (its `imagePullSecrets`, in order),
/// as fluxcd/pkg's `PullSecretsFromServiceAccountRef`: a missing ServiceAccount or a missing
/// listed Secret is an error. Secrets of neither pull-secret type are skipped, as k8schain does.
fn service_account_pull_secrets(
    secrets: &SecretStore,
    namespace: &str,
    name: &str,
) -> Result<Vec<PullSecret>, String> {
    let names = secrets
        .image_pull_secrets(namespace, name)
        .map_err(|e| chain(&e))?
        .ok_or_else(|| {
            format!("serviceaccounts \"{name}\" not found in namespace '{namespace}'")
        })?;
    let mut out = Vec::new();
    for secret in names {
        let s = load_secret(secrets, namespace, &secret).map_err(|m| {
            format!("image pull secret of service account '{namespace}/{name}': {m}")
        })?;
        if let Some(json) = s.data.get(".dockerconfigjson") {
            out.push(PullSecret::DockerConfigJson(json.clone()));
        } else if let Some(legacy) = s.data.get(".dockercfg") {
            out.push(PullSecret::DockerCfg(legacy.clone()));
        }
    }
    Ok(out)
}

/// One docker `config.json` holding every registry of `pulls`, the first Secret naming a
/// registry winning (k8schain's keyring order). A single Secret is kept as it is.
fn merge_pull_secrets(mut pulls: Vec<PullSecret>) -> Result<Option<PullSecret>, String> {
    if pulls.len() <= 1 {
        return Ok(pulls.pop());
    }
    let mut auths = serde_json::Map::new();
    for pull in &pulls {
        let value: serde_json::Value = serde_json::from_slice(pull.bytes())
            .map_err(|e| format!("an image pull secret is not valid JSON: {e}"))?;
        let entries = match pull {
            PullSecret::DockerConfigJson(_) => value.get("auths").cloned(),
            PullSecret::DockerCfg(_) => Some(value),
        };
        if let Some(serde_json::Value::Object(entries)) = entries {
            for (registry, entry) in entries {
                auths.entry(registry).or_insert(entry);
            }
        }
    }
    let merged = serde_json::json!({ "auths": auths })
        .to_string()
        .into_bytes();
    Ok(Some(PullSecret::DockerConfigJson(merged)))
}

fn access(secrets: &SecretStore, spec: &RegistryAccess) -> Result<Access, AccessError> {
    let ns = spec.namespace.as_str();
    let auth = |message: String| AccessError { message };
    let mut out = Access {
        docker_config: None,
        basic: None,
        ca: None,
        identity: None,
        proxy: None,
    };
    if let Some(name) = &spec.secret_ref {
        let s = load_secret(secrets, ns, name)
            .map_err(|m| auth(format!("failed to get credential: {m}")))?;
        let text = |k: &str| {
            s.data
                .get(k)
                .map(|v| String::from_utf8_lossy(v).into_owned())
        };
        // Both pull-secret types, as k8schain reads them; HelmRepositories also take
        // `username`/`password` (Flux's basic auth for Helm registries).
        match (
            s.data.get(".dockerconfigjson"),
            s.data.get(".dockercfg"),
            text("username"),
            text("password"),
        ) {
            (Some(json), _, _, _) => {
                out.docker_config = Some(PullSecret::DockerConfigJson(json.clone()));
            }
            (None, Some(legacy), _, _) => {
                out.docker_config = Some(PullSecret::DockerCfg(legacy.clone()));
            }
            (None, None, Some(user), Some(password)) if spec.basic_auth => {
                out.basic = Some((user, password));
            }
            _ if spec.basic_auth => {
                return Err(auth(format!(
                    "failed to get credential: secret '{ns}/{name}' has neither '.dockerconfigjson', '.dockercfg' nor both 'username' and 'password'"
                )));
            }
            _ => {
                return Err(auth(format!(
                    "failed to get credential: secret '{ns}/{name}' has neither a '.dockerconfigjson' nor a '.dockercfg' key (type kubernetes.io/dockerconfigjson or kubernetes.io/dockercfg expected)"
                )));
            }
        }
    }
    if let Some(name) = &spec.cert_secret_ref {
        let s = load_secret(secrets, ns, name)
            .map_err(|m| auth(format!("failed to get TLS configuration: {m}")))?;
        let get = |k: &str, legacy: &str| {
            s.data
                .get(k)
                .or_else(|| s.data.get(legacy))
                .filter(|v| !v.is_empty())
                .cloned()
        };
        let cert = get("tls.crt", "certFile");
        let key = get("tls.key", "keyFile");
        out.ca = get("ca.crt", "caFile");
        match (cert, key) {
            (Some(c), Some(k)) => out.identity = Some((c, k)),
            (None, None) => {}
            _ => {
                return Err(auth(format!(
                    "failed to get TLS configuration: secret '{ns}/{}' must contain both 'tls.crt' and 'tls.key'",
                    name
                )));
            }
        }
        if out.identity.is_none() && out.ca.is_none() {
            return Err(auth(format!(
                "failed to get TLS configuration: secret '{ns}/{}' must contain either 'ca.crt' or both 'tls.crt' and 'tls.key'",
                name
            )));
        }
    }
    if let Some(name) = &spec.proxy_secret_ref {
        let s = load_secret(secrets, ns, name)
            .map_err(|m| auth(format!("failed to configure proxy: {m}")))?;
        let text = |k: &str| {
            s.data
                .get(k)
                .map(|v| String::from_utf8_lossy(v).trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let address = text("address").ok_or_else(|| {
            auth(format!(
                "failed to configure proxy: secret '{ns}/{}' has no 'address' key",
                name
            ))
        })?;
        let scheme_ok = ["http://", "https://", "socks5://"]
            .iter()
            .any(|p| address.starts_with(p));
        if !scheme_ok || address.len() > 2048 {
            return Err(auth(format!(
                "failed to configure proxy: invalid proxy address in secret '{ns}/{}': scheme must be http, https or socks5",
                name
            )));
        }
        out.proxy = Some((address, text("username"), text("password")));
    }
    if let Some(account) = &spec.service_account {
        let mut pulls: Vec<PullSecret> = out.docker_config.take().into_iter().collect();
        pulls.extend(
            service_account_pull_secrets(secrets, ns, account)
                .map_err(|m| auth(format!("failed to get credential: {m}")))?,
        );
        out.docker_config = merge_pull_secrets(pulls)
            .map_err(|m| auth(format!("failed to get credential: {m}")))?;
    }
    Ok(out)
}

/// A hash of everything that configures a client (the cache key).
fn fingerprint(access: &Access, insecure: bool, timeout: Duration) -> String {
    let mut h = sha2::Sha256::new();
    let mut feed = |label: &str, bytes: Option<&[u8]>| {
        h.update(label.as_bytes());
        match bytes {
            Some(b) => {
                h.update((b.len() as u64).to_le_bytes());
                h.update(b);
            }
            None => h.update([0xff]),
        }
    };
    feed("insecure", Some(&[u8::from(insecure)]));
    feed("timeout", Some(&timeout.as_millis().to_le_bytes()));
    let docker = access.docker_config.as_ref();
    feed("docker", docker.map(PullSecret::bytes));
    feed(
        "dockercfg",
        Some(&[u8::from(matches!(docker, Some(PullSecret::DockerCfg(_))))]),
    );
    let basic = access.basic.as_ref();
    feed("user", basic.map(|b| b.0.as_bytes()));
    feed("pass", basic.map(|b| b.1.as_bytes()));
    feed("ca", access.ca.as_deref());
    feed("cert", access.identity.as_ref().map(|i| i.0.as_slice()));
    feed("key", access.identity.as_ref().map(|i| i.1.as_slice()));
    let proxy = access.proxy.as_ref();
    feed("proxy", proxy.map(|p| p.0.as_bytes()));
    feed(
        "puser",
        proxy.and_then(|p| p.1.as_deref()).map(str::as_bytes),
    );
    feed(
        "ppass",
        proxy.and_then(|p| p.2.as_deref()).map(str::as_bytes),
    );
    hex::encode(h.finalize())
}

impl ClientCache {
    /// The client for `obj`: Secrets are read (blocking file IO, so callers use
    /// `spawn_blocking`), hashed, and the cached client for that configuration returned.
    pub(crate) fn client(
        &self,
        secrets: &SecretStore,
        spec: &RegistryAccess,
        timeout: Duration,
    ) -> Result<Client, AccessError> {
        let access = access(secrets, spec)?;
        let fingerprint = fingerprint(&access, spec.insecure, timeout);
        if let Some(c) = self.clients.lock().get(&fingerprint) {
            return Ok(c.clone());
        }
        let auth = |message: String| AccessError { message };
        let credentials = match &access.docker_config {
            Some(secret) => Credentials::DockerConfig(
                secret
                    .parse()
                    .map_err(|e| auth(format!("failed to get credential: {}", chain(&e))))?,
            ),
            None => match &access.basic {
                Some((username, password)) => Credentials::Basic {
                    username: username.clone(),
                    password: password.clone(),
                },
                None => Credentials::Anonymous,
            },
        };
        let config = ClientConfig {
            timeout,
            insecure: spec.insecure,
            ca_certs_pem: access.ca.into_iter().collect(),
            client_identity: access
                .identity
                .map(|(cert_pem, key_pem)| ClientIdentity { cert_pem, key_pem }),
            credentials,
            proxy: access
                .proxy
                .map(|(address, username, password)| ProxyConfig {
                    address,
                    username,
                    password,
                }),
            user_agent: concat!("source-apiserver/", env!("CARGO_PKG_VERSION")).to_owned(),
            ..ClientConfig::default()
        };
        let client = Client::new(config).map_err(|e| {
            auth(format!(
                "failed to configure the registry client: {}",
                chain(&e)
            ))
        })?;
        let mut clients = self.clients.lock();
        if clients.len() >= MAX_CACHED_CLIENTS {
            clients.clear();
        }
        clients.insert(fingerprint, client.clone());
        Ok(client)
    }
}

/// The Sigstore trusted root in `trusted_root.json` of `spec.verify.trustedRootSecretRef`.
/// Blocking (Secret files).
pub(crate) fn trusted_root(
    secrets: &SecretStore,
    namespace: &str,
    name: &str,
) -> Result<registry::cosign::TrustedRoot, String> {
    let secret = load_secret(secrets, namespace, name)?;
    let json = secret
        .data
        .get("trusted_root.json")
        .ok_or_else(|| format!("secret '{namespace}/{name}' has no 'trusted_root.json' entry"))?;
    registry::cosign::TrustedRoot::from_json(json).map_err(|e| {
        format!(
            "invalid trusted_root.json in secret '{namespace}/{name}': {}",
            chain(&e)
        )
    })
}

/// The cosign public keys of `spec.verify.secretRef`: every `*.pub` entry, in key order (Flux
/// iterates a map, in random order). Blocking (Secret files).
pub(crate) fn cosign_keys(
    secrets: &SecretStore,
    namespace: &str,
    name: &str,
) -> Result<Vec<registry::cosign::PublicKey>, String> {
    let secret = load_secret(secrets, namespace, name)?;
    let mut keys = Vec::new();
    for (key, pem) in secret.data.iter().filter(|(k, _)| k.ends_with(".pub")) {
        let parsed = registry::cosign::PublicKey::from_pem(pem).map_err(|e| {
            format!(
                "invalid public key '{key}' in secret '{namespace}/{name}': {}",
                chain(&e)
            )
        })?;
        keys.push(parsed);
    }
    if keys.is_empty() {
        return Err(format!(
            "no public keys found in secret '{namespace}/{name}'"
        ));
    }
    Ok(keys)
}

/// `matchOIDCIdentity` as regular expressions; none means any identity (Flux's `.*`/`.*`).
pub(crate) fn keyless_identities(
    matches: &[openapi::v1::OIDCIdentityMatch],
) -> Result<Vec<registry::cosign::Identity>, String> {
    let compile = |what: &str, re: &str| {
        regex::Regex::new(re).map_err(|e| format!("invalid matchOIDCIdentity {what} '{re}': {e}"))
    };
    if matches.is_empty() {
        return Ok(vec![registry::cosign::Identity {
            issuer: compile("issuer", ".*")?,
            subject: compile("subject", ".*")?,
        }]);
    }
    matches
        .iter()
        .map(|m| {
            Ok(registry::cosign::Identity {
                issuer: compile("issuer", &m.issuer)?,
                subject: compile("subject", &m.subject)?,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn pull_secrets_merge_with_the_first_naming_a_registry_winning() {
        let one = PullSecret::DockerConfigJson(
            json!({"auths": {"a.example": {"auth": "first"}}})
                .to_string()
                .into_bytes(),
        );
        let legacy = PullSecret::DockerCfg(
            json!({"a.example": {"auth": "second"}, "b.example": {"auth": "legacy"}})
                .to_string()
                .into_bytes(),
        );
        let merged = merge_pull_secrets(vec![one, legacy]).unwrap().unwrap();
        let value: serde_json::Value = serde_json::from_slice(merged.bytes()).unwrap();
        assert_eq!(
            value,
            json!({"auths": {"a.example": {"auth": "first"}, "b.example": {"auth": "legacy"}}})
        );
        assert!(merge_pull_secrets(Vec::new()).unwrap().is_none());
    }

    /// A `--secrets-dir` holding one Secret `default/creds` with `data` (plain text values).
    fn secrets_with(data: &[(&str, &str)]) -> (tempfile::TempDir, SecretStore) {
        use base64::Engine as _;
        let dir = tempfile::tempdir().unwrap();
        let data: serde_json::Map<String, serde_json::Value> = data
            .iter()
            .map(|(k, v)| {
                let encoded = base64::engine::general_purpose::STANDARD.encode(v);
                ((*k).to_owned(), json!(encoded))
            })
            .collect();
        let secret = json!({"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "creds", "namespace": "default"}, "data": data});
        std::fs::write(dir.path().join("creds.json"), secret.to_string()).unwrap();
        let store = SecretStore::new(dir.path());
        (dir, store)
    }

    fn repository(spec: serde_json::Value) -> OCIRepository {
        let mut spec_object = json!({"url": "oci://r.example/app", "interval": "1m"});
        spec_object
            .as_object_mut()
            .unwrap()
            .extend(spec.as_object().unwrap().clone());
        serde_json::from_value(json!({
            "apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "OCIRepository",
            "metadata": {"name": "app", "namespace": "default"}, "spec": spec_object}))
        .unwrap()
    }

    fn refused(secrets: &SecretStore, obj: &OCIRepository) -> AccessError {
        match access(secrets, &RegistryAccess::of_oci_repository(obj)) {
            Ok(_) => panic!("the Secret must be refused"),
            Err(failure) => failure,
        }
    }

    #[test]
    fn a_client_certificate_without_its_key_names_the_secret_and_both_fields() {
        let (_dir, secrets) = secrets_with(&[("tls.crt", "-----BEGIN CERTIFICATE-----")]);
        let failure = refused(
            &secrets,
            &repository(json!({"certSecretRef": {"name": "creds"}})),
        );
        assert_eq!(
            failure.message,
            "failed to get TLS configuration: secret 'default/creds' must contain both 'tls.crt' and 'tls.key'"
        );
    }

    #[test]
    fn a_proxy_address_of_another_scheme_names_the_secret() {
        let (_dir, secrets) = secrets_with(&[("address", "ftp://proxy.example:21")]);
        let failure = refused(
            &secrets,
            &repository(json!({"proxySecretRef": {"name": "creds"}})),
        );
        assert_eq!(
            failure.message,
            "failed to configure proxy: invalid proxy address in secret 'default/creds': scheme must be http, https or socks5"
        );
        let (_dir, secrets) = secrets_with(&[("username", "u")]);
        let failure = refused(
            &secrets,
            &repository(json!({"proxySecretRef": {"name": "creds"}})),
        );
        assert_eq!(
            failure.message,
            "failed to configure proxy: secret 'default/creds' has no 'address' key"
        );
    }

    #[test]
    fn complete_secrets_are_accepted() {
        let (_dir, secrets) = secrets_with(&[
            ("tls.crt", "cert"),
            ("tls.key", "key"),
            ("address", "http://proxy.example:3128"),
        ]);
        let obj = repository(json!({"certSecretRef": {"name": "creds"},
            "proxySecretRef": {"name": "creds"}}));
        let access = access(&secrets, &RegistryAccess::of_oci_repository(&obj))
            .unwrap_or_else(|f| panic!("{f}"));
        assert_eq!(access.identity, Some((b"cert".to_vec(), b"key".to_vec())));
        assert_eq!(
            access.proxy.map(|p| p.0).as_deref(),
            Some("http://proxy.example:3128")
        );
    }

    #[test]
    fn username_and_password_are_basic_credentials_only_where_the_kind_allows_them() {
        let (_dir, secrets) = secrets_with(&[("username", "u"), ("password", "p")]);
        let mut spec = RegistryAccess {
            namespace: "default".into(),
            secret_ref: Some("creds".into()),
            ..RegistryAccess::default()
        };
        let refused = access(&secrets, &spec)
            .err()
            .expect("dockerconfigjson expected");
        assert!(
            refused
                .message
                .contains("has neither a '.dockerconfigjson' nor a '.dockercfg' key")
        );
        spec.basic_auth = true;
        let access = access(&secrets, &spec).unwrap_or_else(|f| panic!("{f}"));
        assert_eq!(access.basic, Some(("u".to_owned(), "p".to_owned())));
    }
}
