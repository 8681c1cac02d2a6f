//! `sourcectl build artifact`.

use std::process::ExitCode;

use anyhow::Context;
use registry::artifact;

use crate::args::BuildArgs;
use crate::commands::ignore_matcher;
use crate::{stage, status};

pub(crate) async fn run(args: BuildArgs) -> anyhow::Result<ExitCode> {
    let staged = stage::stage(&args.path, args.resolve_symlinks, std::io::stdin().lock())?;
    let ignore = ignore_matcher(&args.ignore)?;
    status::action(&format!("building artifact from {}", args.path.display()));
    artifact::build(staged.path(), ignore, &args.output)
        .await
        .context("building artifact failed")?;
    status::success(&format!("artifact created at {}", args.output.display()));
    Ok(ExitCode::SUCCESS)
}
