//! `sourcectl push chart` and `sourcectl pull chart`: Helm charts in Helm's OCI format without
//! the helm binary (`registry::helm`), signed and verified with cosign keys as the artifact
//! commands are.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use registry::artifact;
use registry::cosign::{self, PublicKey};
use registry::helm;
use registry::manifest::media_types;

use crate::args::{GlobalArgs, PullChartArgs, PushChartArgs};
use crate::commands::keypair::load_private_key;
use crate::connect;
use crate::status;

/// `push chart <dir|.tgz> oci://<host>/<path>`: packages a directory as `helm package` does
/// (a `.tgz` is pushed as it is), pushes it to `<path>/<name>:<version, + as _>`, then signs
/// the pushed digest with `--sign-key`. Prints the reference by digest on stdout.
pub(crate) async fn push(global: &GlobalArgs, args: PushChartArgs) -> anyhow::Result<ExitCode> {
    let repository = connect::parse_url(&args.url)?;
    if repository.tag.is_some() || repository.digest.is_some() {
        bail!("the destination is a repository, oci://<host>/<path>: the tag is the chart version");
    }
    let key = match &args.sign_key {
        Some(path) => Some(load_private_key(path).await?),
        None => None,
    };
    let packaged = tempfile::Builder::new()
        .prefix("sourcectl-chart-")
        .suffix(".tgz")
        .tempfile()
        .context("creating a temporary file for the chart")?;
    let archive = if args.chart.is_dir() {
        let (dir, out) = (args.chart.clone(), packaged.reopen()?);
        tokio::task::spawn_blocking(move || {
            let mut writer = std::io::BufWriter::new(out);
            helm::package(&dir, &mut writer)?;
            std::io::Write::flush(&mut writer).map_err(helm::Error::WriteArchive)
        })
        .await?
        .with_context(|| format!("packaging the chart {}", args.chart.display()))?;
        packaged.path().to_path_buf()
    } else {
        args.chart.clone()
    };
    let client = connect::client(global)?;
    status::action(&format!(
        "pushing chart {} to {repository}",
        args.chart.display()
    ));
    let created = args.reproducible.then_some(artifact::REPRODUCIBLE_CREATED);
    let pushed = helm::oci::push_chart(&client, &repository, &archive, created)
        .await
        .context("pushing chart failed")?;
    let by_digest = pushed.reference.with_digest(pushed.digest.clone());
    status::success(&format!(
        "chart {} {} pushed to {}@{}",
        pushed.metadata.name,
        pushed.metadata.version,
        connect::repository(&pushed.reference),
        pushed.digest
    ));
    if let Some(key) = key {
        let signed = cosign::sign(&client, &by_digest, &key)
            .await
            .context("signing chart failed")?;
        status::success(&format!("chart signed: {}", signed.signature_reference));
    }
    println!(
        "oci://{}:{}@{}",
        connect::repository(&pushed.reference),
        pushed.reference.tag.clone().unwrap_or_default(),
        pushed.digest
    );
    Ok(ExitCode::SUCCESS)
}

/// `pull chart oci://<host>/<path>/<name>:<version>`: verifies the signature with `--key`
/// (before anything is downloaded), downloads the chart layer digest-checked into
/// `url` with `+` in the version written `_` (Helm's tag spelling); names and digests have no
/// `+`, so every `+` of the last path segment is in the version.
fn helm_tag_url(url: &str) -> String {
    match url.rsplit_once('/') {
        Some((base, last)) => format!("{base}/{}", helm::tag_of_version(last)),
        None => url.to_owned(),
    }
}

/// `<output>/<name>-<version>.tgz`, and checks that it is a chart.
pub(crate) async fn pull(global: &GlobalArgs, args: PullChartArgs) -> anyhow::Result<ExitCode> {
    let reference = connect::parse_url(&helm_tag_url(&args.url))?;
    let keys = args
        .key
        .iter()
        .map(|path| {
            let pem = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
            PublicKey::from_pem(&pem)
                .with_context(|| format!("loading public key {}", path.display()))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let client = connect::client(global)?;
    let reference = artifact::with_default_tag(&reference);
    let digest = artifact::resolve(&client, &reference)
        .await
        .with_context(|| format!("resolving {reference}"))?
        .digest;
    let pinned = reference.with_digest(digest.clone());
    if !keys.is_empty() {
        cosign::verify(&client, &pinned, &digest, &keys)
            .await
            .context("verification failed")?;
        status::success(&format!("verified signature of {pinned}"));
    }
    std::fs::create_dir_all(&args.output)
        .with_context(|| format!("creating {}", args.output.display()))?;
    let tmp = tempfile::Builder::new()
        .prefix(".chart-")
        .tempfile_in(&args.output)
        .context("creating a temporary file")?;
    status::action(&format!("pulling chart {pinned}"));
    artifact::pull_layer_to_file(
        &client,
        &pinned,
        Some(media_types::HELM_CHART_CONTENT),
        tmp.path(),
        None,
    )
    .await
    .context("pulling chart failed")?;
    let dest = chart_file(tmp.path(), &args.output).await?;
    tmp.persist(&dest)
        .with_context(|| format!("writing {}", dest.display()))?;
    status::success(&format!("chart {pinned} pulled to {}", dest.display()));
    println!("{}", dest.display());
    Ok(ExitCode::SUCCESS)
}

/// `<output>/<name>-<version>.tgz` from the pulled archive's `Chart.yaml`.
async fn chart_file(archive: &Path, output: &Path) -> anyhow::Result<PathBuf> {
    let path = archive.to_path_buf();
    let chart = tokio::task::spawn_blocking(move || {
        let file = std::fs::File::open(&path)?;
        helm::inspect(file, helm::DEFAULT_MAX_CHART_FILE_BYTES, &[]).map_err(anyhow::Error::from)
    })
    .await?
    .context("the pulled layer is not a Helm chart")?;
    let meta = chart.metadata;
    Ok(output.join(format!("{}-{}.tgz", meta.name, meta.version)))
}
