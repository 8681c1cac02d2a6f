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
        Some(OutputFormat::Yaml) => print!("{}", render_yaml(&sorted(&rows)?)?),
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

/// The objects as YAML, written as Flux's printer writes them (JSON → `sigs.k8s.io/yaml`, i.e.
/// go-yaml v2): a string that YAML 1.1 would read as a timestamp, as every RFC 3339 `created`
/// is, stays a string by being double-quoted (`created: "2026-11-26T03:00:00Z"`), so that YAML
/// 1.1 readers (go-yaml v2, PyYAML) get the string back; serde_yaml follows YAML 1.2, which has
/// no timestamps, and would leave it plain. Other values are serde_yaml's scalars.
fn render_yaml(objects: &[BTreeMap<String, serde_json::Value>]) -> anyhow::Result<String> {
    if objects.is_empty() {
        return Ok("[]\n".to_owned());
    }
    let mut out = String::new();
    for object in objects {
        for (i, (key, value)) in object.iter().enumerate() {
            out.push_str(if i == 0 { "- " } else { "  " });
            out.push_str(key);
            out.push_str(": ");
            out.push_str(&yaml_scalar(value)?);
            out.push('\n');
        }
    }
    Ok(out)
}

/// One value on one line: a string that a plain scalar would not carry back as that string is
/// double-quoted, as go-yaml v2 quotes it (a JSON string is a valid YAML double-quoted scalar):
/// one YAML 1.1 reads as a timestamp or a boolean (`yes`, `off`, …), one that spans lines, and
/// one serde_yaml would quote (`'true'`, `'1.0'`, `'null'`); anything else is serde_yaml's
/// rendering.
fn yaml_scalar(value: &serde_json::Value) -> anyhow::Result<String> {
    let plain = serde_yaml::to_string(value)?.trim_end().to_owned();
    match value {
        serde_json::Value::String(s)
            if is_yaml11_timestamp(s)
                || is_yaml11_bool(s)
                || s.contains('\n')
                || plain.starts_with('\'') =>
        {
            Ok(serde_json::to_string(s)?)
        }
        _ => Ok(plain),
    }
}

/// Whether YAML 1.1 reads the plain scalar `s` as a boolean (the `bool` type's words, which
/// YAML 1.2 and so serde_yaml leave plain).
fn is_yaml11_bool(s: &str) -> bool {
    matches!(
        s,
        "y" | "Y"
            | "yes"
            | "Yes"
            | "YES"
            | "n"
            | "N"
            | "no"
            | "No"
            | "NO"
            | "on"
            | "On"
            | "ON"
            | "off"
            | "Off"
            | "OFF"
    )
}

/// Whether YAML 1.1's timestamp type matches `s` (`yyyy-m-d`, optionally followed by a time
/// after `T`, `t` or spaces), as go-yaml v2 resolves plain scalars.
fn is_yaml11_timestamp(s: &str) -> bool {
    static TIMESTAMP: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
        regex::Regex::new(
            r"^[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}(([Tt]|[ \t]+)[0-9]{1,2}:[0-9]{2}:[0-9]{2}(\.[0-9]*)?([ \t]*(Z|[-+][0-9]{1,2}(:[0-9]{2})?))?)?$",
        )
        .expect("timestamp pattern")
    });
    TIMESTAMP.is_match(s)
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

    #[test]
    fn yaml_quotes_timestamps_as_flux_does() {
        let object = |created: &str| {
            BTreeMap::from([
                ("created".to_owned(), created.into()),
                ("digest".to_owned(), "sha256:abc".into()),
                ("source_revision".to_owned(), "main@sha1:abc".into()),
            ])
        };
        let yaml = render_yaml(&[object("2026-11-26T03:00:00Z"), object("1970-01-01")]).unwrap();
        assert_eq!(
            yaml,
            "- created: \"2026-11-26T03:00:00Z\"\n  digest: sha256:abc\n  source_revision: main@sha1:abc\n\
             - created: \"1970-01-01\"\n  digest: sha256:abc\n  source_revision: main@sha1:abc\n"
        );
        assert_eq!(render_yaml(&[]).unwrap(), "[]\n");
        // strings a plain scalar would turn into something else are double-quoted too
        let tags =
            |tag: &str| render_yaml(&[BTreeMap::from([("tag".to_owned(), tag.into())])]).unwrap();
        assert_eq!(tags("1.0"), "- tag: \"1.0\"\n");
        assert_eq!(tags("true"), "- tag: \"true\"\n");
        assert_eq!(tags("null"), "- tag: \"null\"\n");
        assert_eq!(tags("on"), "- tag: \"on\"\n");
        assert_eq!(tags("v1.0"), "- tag: v1.0\n");
        assert!(is_yaml11_timestamp("2001-12-14 21:59:43.10 -5"));
        assert!(!is_yaml11_timestamp("6.5.0@sha1:0123"));
        assert!(!is_yaml11_timestamp("2026-11-26T03:00:00Zx"));
    }
}
