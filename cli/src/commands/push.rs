//! `sourcectl push artifact`.

use std::process::ExitCode;

use anyhow::{Context, bail};
use registry::artifact::{self, PushOptions, REPRODUCIBLE_CREATED};
use registry::reference::Reference;
use serde::Serialize;

use crate::args::{GlobalArgs, OutputFormat, PushArgs};
use crate::commands::ignore_matcher;
use crate::connect;
use crate::stage;
use crate::status::{self, Transfer};

/// Machine output, in Flux's key order for JSON (YAML sorts keys, as Flux's does).
#[derive(Serialize)]
struct PushOutput {
    url: String,
    repository: String,
    tag: String,
    digest: String,
}

pub(crate) async fn run(global: &GlobalArgs, args: PushArgs) -> anyhow::Result<ExitCode> {
    push(global, args).await?;
    Ok(ExitCode::SUCCESS)
}

/// Pushes and reports; returns the pushed artifact's reference by digest (what `--sign-key`
/// signs, so a concurrent push to the same tag cannot be signed instead).
pub(crate) async fn push(global: &GlobalArgs, args: PushArgs) -> anyhow::Result<Reference> {
    if args.source.is_empty() {
        bail!("--source is required");
    }
    if args.revision.is_empty() {
        bail!("--revision is required");
    }
    let reference = artifact::with_default_tag(&connect::parse_url(&args.url)?);
    let staged = stage::stage(&args.path, args.resolve_symlinks, std::io::stdin().lock())?;
    let annotations = artifact::parse_annotations(&args.annotations)?;
    let ignore = ignore_matcher(&args.ignore)?;
    connect::login_with_provider(&args.provider, &reference)?;
    let client = connect::client(global)?;
    if args.output.is_none() {
        status::action(&format!("pushing artifact to {reference}"));
    }
    let transfer = Transfer::start("pushing");
    let options = PushOptions {
        source: args.source,
        revision: args.revision,
        created: args.reproducible.then(|| REPRODUCIBLE_CREATED.to_owned()),
        annotations,
        ignore,
        progress: transfer.callback(),
    };
    let result = artifact::push(&client, &reference, staged.path(), options).await;
    transfer.finish();
    let pushed = result.context("pushing artifact failed")?;
    let repository = connect::repository(&pushed.reference);
    let output = PushOutput {
        url: format!("oci://{repository}@{}", pushed.digest),
        repository: repository.clone(),
        tag: pushed.reference.tag.clone().unwrap_or_default(),
        digest: pushed.digest.to_string(),
    };
    match args.output {
        Some(OutputFormat::Json) => println!("{}", serde_json::to_string_pretty(&output)?),
        Some(OutputFormat::Yaml) => {
            let sorted: std::collections::BTreeMap<&str, &str> = [
                ("digest", output.digest.as_str()),
                ("repository", output.repository.as_str()),
                ("tag", output.tag.as_str()),
                ("url", output.url.as_str()),
            ]
            .into();
            print!("{}", serde_yaml::to_string(&sorted)?);
        }
        None => status::success(&format!(
            "artifact successfully pushed to {repository}@{}",
            pushed.digest
        )),
    }
    Ok(pushed.reference.with_digest(pushed.digest))
}
