//! `sourcectl verify artifact`: check a cosign signature with public keys, or keyless against a
//! trusted root and identity regexes; prints the verified digest on stdout.

use std::process::ExitCode;

use anyhow::Context;
use registry::cosign::{self, Identity, PublicKey, SignatureSource, TrustedRoot};
use registry::{Client, Digest, Reference};

use crate::args::{GlobalArgs, VerifyArgs};
use crate::connect;
use crate::status;

pub(crate) async fn run(global: &GlobalArgs, args: VerifyArgs) -> anyhow::Result<ExitCode> {
    let reference = connect::parse_url(&args.url)?;
    let check = Check::from_args(&args)?;
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
    fn from_args(args: &VerifyArgs) -> anyhow::Result<Self> {
        if let Some(path) = &args.trusted_root {
            let json =
                std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
            let root = TrustedRoot::from_json(&json)
                .with_context(|| format!("loading trusted root {}", path.display()))?;
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
