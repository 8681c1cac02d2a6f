//! One thin module per command: validate flags, call `registry::artifact`, render.

pub(crate) mod build;
pub(crate) mod chart;
pub(crate) mod diff;
pub(crate) mod keypair;
pub(crate) mod list;
pub(crate) mod pull;
pub(crate) mod push;
pub(crate) mod sign;
pub(crate) mod tag;
pub(crate) mod verify;

use anyhow::Context;
use registry::Matcher;

use crate::args::IgnoreArgs;

/// The ignore matcher: `--ignore-paths` (replacing Flux's defaults when given), then
/// `--add-ignore-paths`.
pub(crate) fn ignore_matcher(args: &IgnoreArgs) -> anyhow::Result<Matcher> {
    let mut matcher =
        Matcher::flux_cli(args.ignore_paths.as_deref()).context("parsing --ignore-paths")?;
    matcher
        .push(
            std::path::Path::new(""),
            args.add_ignore_paths.iter().map(String::as_str),
            "--add-ignore-paths",
        )
        .context("parsing --add-ignore-paths")?;
    Ok(matcher)
}

/// Checks that `path` exists, with Flux's message.
pub(crate) fn check_source_path(path: &std::path::Path) -> anyhow::Result<()> {
    if path.as_os_str().is_empty() {
        anyhow::bail!("invalid path \"\"");
    }
    std::fs::metadata(path).map(|_| ()).with_context(|| {
        format!(
            "invalid path '{}', must point to an existing directory or file",
            path.display()
        )
    })
}
