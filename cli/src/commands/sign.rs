//! `sourcectl sign artifact` and `push artifact --sign-key`: cosign `.sig` signatures.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use registry::cosign::{self, PrivateKey};
use registry::{Client, Reference};

use crate::args::{GlobalArgs, PushArgs, SignArgs};
use crate::commands::keypair::load_private_key;
use crate::connect;
use crate::status;

pub(crate) async fn run(global: &GlobalArgs, args: SignArgs) -> anyhow::Result<ExitCode> {
    let reference = connect::parse_url(&args.url)?;
    let key = load_private_key(&args.key).await?;
    let client = connect::client(global)?;
    sign(&client, &reference, &key).await?;
    Ok(ExitCode::SUCCESS)
}

/// `push artifact ... --sign-key <file>`: the key is decrypted before pushing (a wrong password
/// fails early), then the pushed artifact is signed by digest.
pub(crate) async fn push_and_sign(
    global: &GlobalArgs,
    args: PushArgs,
    key_path: &Path,
) -> anyhow::Result<ExitCode> {
    // Decrypt first: a wrong password pushes nothing.
    let key = load_private_key(key_path).await?;
    let pushed = crate::commands::push::push(global, args).await?;
    let client = connect::client(global)?;
    sign(&client, &pushed, &key).await?;
    Ok(ExitCode::SUCCESS)
}

async fn sign(client: &Client, reference: &Reference, key: &PrivateKey) -> anyhow::Result<()> {
    status::action(&format!("signing artifact {reference}"));
    let signed = cosign::sign(client, reference, key)
        .await
        .context("signing artifact failed")?;
    let at = format!("{}@{}", connect::repository(reference), signed.digest);
    if signed.appended {
        status::success(&format!(
            "artifact {at} signed: {} ({} signature(s))",
            signed.signature_reference, signed.signatures
        ));
    } else {
        status::success(&format!(
            "artifact {at} is already signed with this key in {}",
            signed.signature_reference
        ));
    }
    Ok(())
}
