//! Turns the global flags into a registry client, as Flux's CLI does: `--creds` (user:password
//! or a token), else the Docker config, else anonymous; extra CA; client certificate; plain
//! HTTP with `--insecure-registry`.

use anyhow::{Context, bail};
use registry::client::{ClientConfig, ClientIdentity, Credentials, DockerConfig};
use registry::{Client, Reference};

use crate::args::{GlobalArgs, Provider, ProviderArgs};
use crate::status;

/// Parses an artifact URL; it must start with `oci://`.
pub(crate) fn parse_url(url: &str) -> anyhow::Result<Reference> {
    if !url.starts_with("oci://") {
        bail!("URL must be in format 'oci://<domain>/<org>/<repo>'");
    }
    url.parse::<Reference>()
        .with_context(|| format!("'{url}' invalid URL"))
}

/// `<registry>/<repository>` (no tag or digest), as Flux prints it.
pub(crate) fn repository(reference: &Reference) -> String {
    format!("{}/{}", reference.registry, reference.repository)
}

/// Logs in with `--provider` as Flux does for a non-generic provider. Only `generic` is
/// implemented: the cloud providers print Flux's `► logging in to registry with provider
/// credentials` and fail with a message saying what to use instead, before any request.
///
/// # Errors
/// Always for `aws`, `azure` and `gcp`.
pub(crate) fn login_with_provider(
    args: &ProviderArgs,
    reference: &Reference,
) -> anyhow::Result<()> {
    let helper = match args.provider {
        Provider::Generic => return Ok(()),
        Provider::Aws => "docker-credential-ecr-login",
        Provider::Azure => "docker-credential-acr-env",
        Provider::Gcp => "docker-credential-gcr",
    };
    let name = clap::ValueEnum::to_possible_value(&args.provider)
        .map(|v| v.get_name().to_owned())
        .unwrap_or_default();
    status::action("logging in to registry with provider credentials");
    bail!(
        "error during login with provider: could not login to provider {name} with url {}: \
         cloud provider authentication is not implemented in sourcectl yet; use --creds, or \
         --provider generic with a Docker credential helper such as {helper}",
        repository(reference)
    )
}

/// Builds the client for the global flags.
pub(crate) fn client(global: &GlobalArgs) -> anyhow::Result<Client> {
    let credentials = match &global.creds {
        Some(creds) => {
            status::action("logging in to registry with credentials");
            parse_creds(creds).context("could not login with credentials")?
        }
        None => Credentials::DockerConfig(
            DockerConfig::load_default().context("reading the Docker config")?,
        ),
    };
    let mut config = ClientConfig {
        timeout: global
            .timeout
            .min(ClientConfig::default().timeout)
            .max(std::time::Duration::from_secs(1)),
        insecure: global.insecure_registry,
        credentials,
        user_agent: concat!("sourcectl/", env!("CARGO_PKG_VERSION")).to_owned(),
        ..ClientConfig::default()
    };
    if global.timeout.is_zero() {
        config.timeout = ClientConfig::default().timeout;
    }
    if let Some(ca) = &global.ca_file {
        config.ca_certs_pem.push(
            std::fs::read(ca).with_context(|| format!("reading --ca-file {}", ca.display()))?,
        );
    }
    if let (Some(cert), Some(key)) = (&global.cert_file, &global.key_file) {
        config.client_identity = Some(ClientIdentity {
            cert_pem: std::fs::read(cert)
                .with_context(|| format!("reading --cert-file {}", cert.display()))?,
            key_pem: std::fs::read(key)
                .with_context(|| format!("reading --key-file {}", key.display()))?,
        });
    }
    Client::new(config).context("setting up the registry client")
}

/// `user:password` → Basic, a lone value → Token (Flux's `GetAuthFromCredentials`).
fn parse_creds(creds: &str) -> anyhow::Result<Credentials> {
    if creds.is_empty() {
        bail!("credentials cannot be empty");
    }
    Ok(match creds.split_once(':') {
        Some((username, password)) => Credentials::Basic {
            username: username.to_owned(),
            password: password.to_owned(),
        },
        None => Credentials::Token(creds.to_owned()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_need_the_oci_scheme() {
        assert!(
            parse_url("localhost:5000/app")
                .unwrap_err()
                .to_string()
                .contains("oci://")
        );
        let r = parse_url("oci://localhost:5000/org/app:v1").unwrap();
        assert_eq!(repository(&r), "localhost:5000/org/app");
    }

    #[test]
    fn creds_split_at_the_first_colon() {
        assert!(
            matches!(parse_creds("u:p:q").unwrap(), Credentials::Basic { username, password } if username == "u" && password == "p:q")
        );
        assert!(matches!(parse_creds("tok").unwrap(), Credentials::Token(t) if t == "tok"));
        assert!(parse_creds("").is_err());
    }
}
