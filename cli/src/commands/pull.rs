//! `sourcectl pull artifact`.

use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, bail};
use registry::artifact::{self, PullOptions};
use registry::extract::Limits;

use crate::args::{GlobalArgs, PullArgs};
use crate::connect;
use crate::status::{self, Transfer};

pub(crate) async fn run(global: &GlobalArgs, args: PullArgs) -> anyhow::Result<ExitCode> {
    if args.output.as_os_str().is_empty() {
        bail!("output path cannot be empty");
    }
    let reference = connect::parse_url(&args.url)?;
    connect::login_with_provider(&args.provider, &reference)?;
    ensure_output_dir(&args.output)?;
    let client = connect::client(global)?;
    status::action(&format!("pulling artifact from {}", args.url));
    let transfer = Transfer::start("pulling");
    let options = PullOptions {
        limits: Limits {
            max_size_bytes: args.max_size_bytes,
            max_files: args.max_files,
        },
        progress: transfer.callback(),
        ..PullOptions::default()
    };
    let result = artifact::pull(&client, &reference, &args.output, options).await;
    transfer.finish();
    let pulled = result.context("pulling artifact failed")?;
    if let Some(source) = pulled.source.as_deref().filter(|s| !s.is_empty()) {
        status::success(&format!("source {source}"));
    }
    if let Some(revision) = pulled.revision.as_deref().filter(|s| !s.is_empty()) {
        status::success(&format!("revision {revision}"));
    }
    status::success(&format!(
        "digest {}@{}",
        connect::repository(&pulled.reference),
        pulled.digest
    ));
    if !pulled.extracted.skipped.is_empty() {
        eprintln!(
            "⚠️ skipped {} links or special files: {}",
            pulled.extracted.skipped.len(),
            pulled.extracted.skipped.join(", ")
        );
    }
    status::success(&format!(
        "artifact content extracted to {}",
        args.output.display()
    ));
    Ok(ExitCode::SUCCESS)
}

/// Creates `dir` (and its parents) when it is missing; an existing path must be a directory.
/// What is extracted stays inside it: the extractor refuses absolute names and `..`
/// components, and skips links.
fn ensure_output_dir(dir: &Path) -> anyhow::Result<()> {
    let invalid = |why: String| anyhow::anyhow!("invalid output path \"{}\": {why}", dir.display());
    match std::fs::metadata(dir) {
        Ok(meta) if meta.is_dir() => Ok(()),
        Ok(_) => Err(invalid("not a directory".into())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(dir).map_err(|e| invalid(format!("cannot create it: {e}")))
        }
        Err(e) => Err(invalid(e.to_string())),
    }
}
