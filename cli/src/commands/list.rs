//! `sourcectl list artifacts`: a table on stdout, as Flux prints it.

use std::collections::BTreeMap;
use std::process::ExitCode;

use anyhow::Context;
use openapi::SemverConstraint;
use openapi::semver_constraint::parse_flux_version;
use registry::artifact::{self, TagRow};

use serde::Serialize;

use crate::args::{GlobalArgs, ListArgs, OutputFormat};
use crate::connect;

pub(crate) async fn run(global: &GlobalArgs, args: ListArgs) -> anyhow::Result<ExitCode> {
    let reference = connect::parse_url(&args.url)?;
    // Masterminds semantics, exactly as Flux's `--filter-semver` (the same parser validates
    // `spec.ref.semver` and picks tags in the reconciler).
    let semver = args
        .filter_semver
        .as_deref()
        .map(|c| {
            c.parse::<SemverConstraint>()
                .map_err(|e| anyhow::anyhow!("semver '{c}' parse error: {e}"))
        })
        .transpose()?;
    let regex = args
        .filter_regex
        .as_deref()
        .map(|r| regex::Regex::new(r).with_context(|| format!("regex '{r}' parse error")))
        .transpose()?;
    connect::login_with_provider(&args.provider, &reference)?;
    let client = connect::client(global)?;
    let filter = move |tag: &str| {
        semver
            .as_ref()
            .is_none_or(|c| parse_flux_version(tag).is_some_and(|v| c.matches(&v)))
            && regex.as_ref().is_none_or(|r| r.is_match(tag))
    };
    let rows = artifact::list(&client, &reference, &filter)
        .await
        .context("listing artifacts failed")?;
    match args.output {
        None => print!("{}", render_table(&rows)),
        Some(OutputFormat::Json) => {
            println!("{}", serde_json::to_string_pretty(&metadata(&rows))?);
        }
        Some(OutputFormat::Yaml) => print!("{}", serde_yaml::to_string(&sorted(&rows)?)?),
    }
    Ok(ExitCode::SUCCESS)
}

/// One artifact as Flux's `oci.Metadata` serialises it (`fluxcd/pkg: oci/meta.go`), in its
/// field order for JSON; empty created, source and revision are left out (`omitempty`).
/// `created` is the manifest's `org.opencontainers.image.created`, as `fluxcd/pkg:
/// oci/list.go` copies it; `List` sets no `annotations`, so they are absent.
#[derive(Serialize)]
struct Metadata<'a> {
    #[serde(skip_serializing_if = "str::is_empty")]
    created: &'a str,
    #[serde(rename = "source_url", skip_serializing_if = "str::is_empty")]
    source: &'a str,
    #[serde(rename = "source_revision", skip_serializing_if = "str::is_empty")]
    revision: &'a str,
    digest: String,
    url: String,
}

/// The same objects with sorted keys, as Flux's YAML printer (JSON → `sigs.k8s.io/yaml`) writes.
fn sorted(rows: &[TagRow]) -> anyhow::Result<Vec<BTreeMap<String, serde_json::Value>>> {
    metadata(rows)
        .iter()
        .map(|m| Ok(serde_json::from_value(serde_json::to_value(m)?)?))
        .collect()
}

fn metadata(rows: &[TagRow]) -> Vec<Metadata<'_>> {
    rows.iter()
        .map(|r| Metadata {
            created: &r.created,
            source: &r.source,
            revision: &r.revision,
            digest: r.digest.to_string(),
            url: r.reference.to_string(),
        })
        .collect()
}

/// Flux's table: upper-case header, cells padded to the column width, each followed by a tab.
fn render_table(rows: &[TagRow]) -> String {
    let header = ["ARTIFACT", "DIGEST", "SOURCE", "REVISION"];
    let body: Vec<[String; 4]> = rows
        .iter()
        .map(|r| {
            [
                r.reference.to_string(),
                r.digest.to_string(),
                r.source.clone(),
                r.revision.clone(),
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for row in &body {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: [&str; 4]| {
        for (cell, w) in cells.iter().zip(widths) {
            out.push_str(&format!("{cell:<w$}\t"));
        }
        out.push('\n');
    };
    line(header);
    for row in &body {
        line([&row[0], &row[1], &row[2], &row[3]]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_cells_are_padded_and_tab_terminated() {
        let row = TagRow {
            tag: "v1".into(),
            reference: "localhost:5000/app:v1".parse().unwrap(),
            digest: registry::Digest::sha256_of(b"x"),
            created: "2026-11-26T03:00:00Z".into(),
            source: "git".into(),
            revision: "main@sha1:abc".into(),
        };
        let table = render_table(&[row]);
        let lines: Vec<&str> = table.lines().collect();
        assert!(
            lines[0].starts_with("ARTIFACT             \tDIGEST"),
            "{table}"
        );
        assert!(
            lines[1].starts_with("localhost:5000/app:v1\tsha256:"),
            "{table}"
        );
        assert!(lines[1].ends_with("main@sha1:abc\t"));
    }
}
