//! `sourcectl tag artifact`.

use std::process::ExitCode;

use anyhow::{Context, bail};
use registry::artifact;

use crate::args::{GlobalArgs, TagArgs};
use crate::connect;
use crate::status;

pub(crate) async fn run(global: &GlobalArgs, args: TagArgs) -> anyhow::Result<ExitCode> {
    if args.tag.iter().all(String::is_empty) {
        bail!("--tag is required");
    }
    let reference = connect::parse_url(&args.url)?;
    connect::login_with_provider(&args.provider, &reference)?;
    let client = connect::client(global)?;
    status::action("tagging artifact");
    let tags: Vec<String> = args.tag.into_iter().filter(|t| !t.is_empty()).collect();
    artifact::tag(&client, &reference, &tags)
        .await
        .context("tagging artifact failed")?;
    for t in &tags {
        status::success(&format!(
            "artifact tagged as {}:{t}",
            connect::repository(&reference)
        ));
    }
    Ok(ExitCode::SUCCESS)
}
