//! `sourcectl diff artifact`: content comparison; exit 1 when the contents differ.

use std::process::ExitCode;

use anyhow::Context;
use registry::artifact;
use registry::extract::Limits;

use crate::args::{DiffArgs, GlobalArgs};
use crate::commands::{check_source_path, ignore_matcher};
use crate::connect;
use crate::status;

pub(crate) async fn run(global: &GlobalArgs, args: DiffArgs) -> anyhow::Result<ExitCode> {
    check_source_path(&args.path)?;
    let reference = connect::parse_url(&args.url)?;
    let ignore = ignore_matcher(&args.ignore)?;
    connect::login_with_provider(&args.provider, &reference)?;
    let client = connect::client(global)?;
    let report = artifact::diff(&client, &reference, &args.path, ignore, Limits::default())
        .await
        .context("diffing artifact failed")?;
    if report.is_empty() {
        status::success("no changes detected");
        return Ok(ExitCode::SUCCESS);
    }
    status::failure("the remote artifact contents differs from the local one");
    for path in &report.added {
        eprintln!("  + {path} (only local)");
    }
    for path in &report.removed {
        eprintln!("  - {path} (only in the artifact)");
    }
    for path in &report.modified {
        eprintln!("  ~ {path} (content or mode differs)");
    }
    Ok(ExitCode::FAILURE)
}
