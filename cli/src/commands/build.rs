//! `sourcectl build artifact`.

use std::process::ExitCode;

use anyhow::Context;
use registry::artifact;

use crate::args::BuildArgs;
use crate::commands::{check_source_path, ignore_matcher};
use crate::status;

pub(crate) async fn run(args: BuildArgs) -> anyhow::Result<ExitCode> {
    check_source_path(&args.path)?;
    let ignore = ignore_matcher(&args.ignore)?;
    status::action(&format!("building artifact from {}", args.path.display()));
    artifact::build(&args.path, ignore, &args.output)
        .await
        .context("building artifact failed")?;
    status::success(&format!("artifact created at {}", args.output.display()));
    Ok(ExitCode::SUCCESS)
}
