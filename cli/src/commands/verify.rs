//! `sourcectl verify artifact`: check a cosign signature with public keys; prints the verified
//! digest on stdout.

use std::process::ExitCode;

use anyhow::Context;
use registry::cosign::{self, PublicKey, SignatureSource};

use crate::args::{GlobalArgs, VerifyArgs};
use crate::connect;
use crate::status;

pub(crate) async fn run(global: &GlobalArgs, args: VerifyArgs) -> anyhow::Result<ExitCode> {
    let reference = connect::parse_url(&args.url)?;
    let mut keys = Vec::with_capacity(args.key.len());
    for path in &args.key {
        let pem = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        keys.push(
            PublicKey::from_pem(&pem)
                .with_context(|| format!("loading public key {}", path.display()))?,
        );
    }
    let client = connect::client(global)?;
    status::action(&format!("verifying signatures of {reference}"));
    let digest = client
        .resolve(&reference)
        .await
        .with_context(|| format!("resolving {reference}"))?
        .digest;
    let verified = cosign::verify(&client, &reference, &digest, &keys)
        .await
        .context("verification failed")?;
    let source = match verified.source {
        SignatureSource::Tag => "signature tag",
        _ => "signature bundle",
    };
    status::success(&format!(
        "verified {}@{} with {} ({source})",
        connect::repository(&reference),
        verified.digest,
        args.key[verified.key_index].display()
    ));
    println!("{}", verified.digest);
    Ok(ExitCode::SUCCESS)
}
