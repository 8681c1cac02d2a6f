//! `sourcectl verify artifact`: check a cosign signature with public keys, or keyless against a
//! trusted root and identity regexes (`--trusted-root`, else the Sigstore public-good root
//! refreshed over TUF at most once per 24 h); prints the verified digest on stdout.

use std::process::ExitCode;

use anyhow::Context;
use registry::cosign::tuf::REFRESH_INTERVAL;
use registry::cosign::{
    self, Identity, PublicKey, SignatureSource, TrustedRoot, TrustedRootProvider, TufConfig,
};
use registry::{Client, Digest, Reference};

use crate::args::{GlobalArgs, VerifyArgs};
use crate::connect;
use crate::status;

pub(crate) async fn run(global: &GlobalArgs, args: VerifyArgs) -> anyhow::Result<ExitCode> {
    let reference = connect::parse_url(&args.url)?;
    let check = Check::from_args(&args).await?;
    let client = connect::client(global)?;
    status::action(&format!("verifying signatures of {reference}"));
    let digest = client
        .resolve(&reference)
        .await
        .with_context(|| format!("resolving {reference}"))?
        .digest;
    let (digest, by, source) = check.run(&client, &reference, &digest, &args).await?;
    let source = match source {
        SignatureSource::Tag => "signature tag",
        _ => "signature bundle",
    };
    status::success(&format!(
        "verified {}@{digest} with {by} ({source})",
        connect::repository(&reference),
    ));
    println!("{digest}");
    Ok(ExitCode::SUCCESS)
}

/// What to verify with, parsed from the flags before any registry request.
enum Check {
    Keys(Vec<PublicKey>),
    Keyless(TrustedRoot, Identity),
}

impl Check {
    async fn from_args(args: &VerifyArgs) -> anyhow::Result<Self> {
        if args.trusted_root.is_some() || args.certificate_identity_regexp.is_some() {
            let root = match &args.trusted_root {
                Some(path) => {
                    let json = std::fs::read(path)
                        .with_context(|| format!("reading {}", path.display()))?;
                    TrustedRoot::from_json(&json)
                        .with_context(|| format!("loading trusted root {}", path.display()))?
                }
                None => tuf_root(args).await?,
            };
            let regex = |flag: &str, value: &Option<String>| {
                regex::Regex::new(value.as_deref().unwrap_or_default())
                    .with_context(|| format!("invalid --{flag}"))
            };
            let identity = Identity {
                issuer: regex(
                    "certificate-oidc-issuer-regexp",
                    &args.certificate_oidc_issuer_regexp,
                )?,
                subject: regex(
                    "certificate-identity-regexp",
                    &args.certificate_identity_regexp,
                )?,
            };
            return Ok(Check::Keyless(root, identity));
        }
        let mut keys = Vec::with_capacity(args.key.len());
        for path in &args.key {
            let pem = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
            keys.push(
                PublicKey::from_pem(&pem)
                    .with_context(|| format!("loading public key {}", path.display()))?,
            );
        }
        Ok(Check::Keys(keys))
    }

    /// Returns the verified digest, who signed (key file or certificate identity) and where
    /// the signature was found.
    async fn run(
        &self,
        client: &Client,
        reference: &Reference,
        digest: &Digest,
        args: &VerifyArgs,
    ) -> anyhow::Result<(Digest, String, SignatureSource)> {
        match self {
            Check::Keys(keys) => {
                let v = cosign::verify(client, reference, digest, keys)
                    .await
                    .context("verification failed")?;
                let by = args.key[v.key_index].display().to_string();
                Ok((v.digest, by, v.source))
            }
            Check::Keyless(root, identity) => {
                let (v, signer) = cosign::verify_keyless(
                    client,
                    reference,
                    digest,
                    root,
                    std::slice::from_ref(identity),
                )
                .await
                .context("verification failed")?;
                let by = format!(
                    "certificate of {} (issuer {})",
                    signer.subject, signer.issuer
                );
                Ok((v.digest, by, v.source))
            }
        }
    }
}

/// The Sigstore root for keyless verification without `--trusted-root`: the embedded public-good
/// root, or the root of the TUF cache when it still verifies, refreshed from
/// `--sigstore-tuf-mirror` when the last attempt is 24 h old or more (an unreachable mirror is
/// a warning, a refused one an error, and the freshest verified root is used either way).
async fn tuf_root(args: &VerifyArgs) -> anyhow::Result<TrustedRoot> {
    if args.sigstore_tuf_mirror.is_empty() {
        return Ok(TrustedRoot::public_good());
    }
    let mirror = url::Url::parse(&args.sigstore_tuf_mirror)
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https"))
        .with_context(|| {
            format!(
                "--sigstore-tuf-mirror {:?} is not an http(s) URL",
                args.sigstore_tuf_mirror
            )
        })?;
    let mut config = TufConfig::new(mirror, tuf_cache_dir());
    if let Some(path) = &args.sigstore_tuf_root {
        let root = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        config = config.with_initial_root(root);
    }
    let provider = TrustedRootProvider::new(config).context("--sigstore-tuf-mirror")?;
    if let Err(e) = provider.load_cache().await {
        tracing::debug!(error = %e, "TUF cache not used");
    }
    if provider.refresh_due(REFRESH_INTERVAL) {
        provider.refresh_logged().await;
    }
    Ok((*provider.current()).clone())
}

/// `$XDG_CACHE_HOME/sourcectl/tuf`, else `$HOME/.cache/sourcectl/tuf`, else under the temporary
/// directory.
fn tuf_cache_dir() -> std::path::PathBuf {
    let var = |name| std::env::var_os(name).filter(|v| !v.is_empty());
    var("XDG_CACHE_HOME")
        .map(std::path::PathBuf::from)
        .or_else(|| var("HOME").map(|home| std::path::Path::new(&home).join(".cache")))
        .unwrap_or_else(std::env::temp_dir)
        .join("sourcectl/tuf")
}
