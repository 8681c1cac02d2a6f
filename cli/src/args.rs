//! The command line, as clap derive structs. Doc comments are the `--help` text.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Package Kubernetes configuration as Flux OCI artifacts and push, pull, tag, list, diff and
/// build them.
///
/// Status lines go to stderr (`►` action, `✔` success, `✗` error), machine output to stdout.
/// Exit status: 0 on success, 1 on any failure (including usage errors, and `diff artifact`
/// finding a difference).
#[derive(Debug, Parser)]
#[command(
    name = "sourcectl",
    version,
    propagate_version = true,
    max_term_width = 100
)]
pub(crate) struct Cli {
    #[command(flatten)]
    pub(crate) global: GlobalArgs,
    #[command(subcommand)]
    pub(crate) command: Command,
}

/// Flags accepted by every command.
#[derive(Debug, Args)]
#[command(next_help_heading = "Global options")]
pub(crate) struct GlobalArgs {
    /// Timeout for the whole operation, e.g. `30s`, `5m`, `1h30m`.
    #[arg(long, global = true, default_value = "5m", value_parser = parse_duration)]
    pub(crate) timeout: Duration,
    /// Credentials for the registry: `<username>:<password>`, or a lone token. Without it the
    /// Docker config (`$DOCKER_CONFIG/config.json` or `~/.docker/config.json`, including
    /// credential helpers) is used, else anonymous access.
    #[arg(
        long,
        global = true,
        value_name = "USER:PASSWORD|TOKEN",
        hide_env_values = true
    )]
    pub(crate) creds: Option<String>,
    /// Talk plain HTTP to the registry (no TLS).
    #[arg(long, global = true)]
    pub(crate) insecure_registry: bool,
    /// PEM file of CA certificates to trust in addition to the system roots.
    #[arg(long, global = true, value_name = "FILE")]
    pub(crate) ca_file: Option<PathBuf>,
    /// PEM client certificate for mutual TLS (with --key-file).
    #[arg(long, global = true, value_name = "FILE", requires = "key_file")]
    pub(crate) cert_file: Option<PathBuf>,
    /// PEM private key of the client certificate (with --cert-file).
    #[arg(long, global = true, value_name = "FILE", requires = "cert_file")]
    pub(crate) key_file: Option<PathBuf>,
    /// Log the registry requests and retries (to stderr).
    #[arg(long, short = 'v', global = true)]
    pub(crate) verbose: bool,
}

/// The verbs; each takes the noun `artifact` (`artifacts` for list), as Flux's CLI does.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Push artifacts.
    #[command(subcommand)]
    Push(PushNoun),
    /// Pull artifacts.
    #[command(subcommand)]
    Pull(PullNoun),
    /// Tag artifacts.
    #[command(subcommand)]
    Tag(TagNoun),
    /// List artifacts.
    #[command(subcommand)]
    List(ListNoun),
    /// Diff an artifact against a local tree.
    #[command(subcommand)]
    Diff(DiffNoun),
    /// Build an artifact tarball locally.
    #[command(subcommand)]
    Build(BuildNoun),
    /// Generate a cosign key pair.
    #[command(subcommand)]
    Generate(GenerateNoun),
    /// Sign artifacts with a cosign key.
    #[command(subcommand)]
    Sign(SignNoun),
    /// Verify artifact signatures with cosign public keys.
    #[command(subcommand)]
    Verify(VerifyNoun),
}

/// `push artifact`.
#[derive(Debug, Subcommand)]
pub(crate) enum PushNoun {
    /// Push the contents of a directory or file as a Flux OCI artifact.
    Artifact(PushArgs),
    /// Package a Helm chart directory (or take a .tgz) and push it in Helm's OCI format.
    Chart(PushChartArgs),
}

/// `pull artifact`.
#[derive(Debug, Subcommand)]
pub(crate) enum PullNoun {
    /// Pull an artifact and extract its content into a directory.
    Artifact(PullArgs),
    /// Pull a Helm chart from an OCI registry into <name>-<version>.tgz.
    Chart(PullChartArgs),
}

/// `tag artifact`.
#[derive(Debug, Subcommand)]
pub(crate) enum TagNoun {
    /// Add tags to an artifact.
    Artifact(TagArgs),
}

/// `list artifacts`.
#[derive(Debug, Subcommand)]
pub(crate) enum ListNoun {
    /// List the tags of a repository with their digest, source and revision.
    Artifacts(ListArgs),
}

/// `diff artifact`.
#[derive(Debug, Subcommand)]
pub(crate) enum DiffNoun {
    /// Compare an artifact's content with a local directory (exit 1 when they differ).
    Artifact(DiffArgs),
}

/// `build artifact`.
#[derive(Debug, Subcommand)]
pub(crate) enum BuildNoun {
    /// Build the artifact tarball of a directory or file into a local file.
    Artifact(BuildArgs),
}

/// Format of the machine output on stdout (`push artifact -o`, `list artifacts -o`). Variant
/// notes are plain comments so that `--help` stays in its compact form.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum OutputFormat {
    // JSON indented by two spaces, keys in Flux's order.
    Json,
    // The same keys as YAML, sorted (as Flux's `sigs.k8s.io/yaml`).
    Yaml,
}

/// `--provider`: where registry credentials come from (Flux's `SourceOCIProvider`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Provider {
    // `--creds`, the Docker config or anonymous access.
    Generic,
    // Amazon ECR (not implemented yet: refused with a message).
    Aws,
    // Azure Container Registry (not implemented yet: refused with a message).
    Azure,
    // Google Artifact Registry (not implemented yet: refused with a message).
    Gcp,
}

/// `--provider`, shared by the artifact commands that talk to a registry.
#[derive(Debug, Args)]
pub(crate) struct ProviderArgs {
    /// The OCI provider name. Only `generic` (--creds, the Docker config, else anonymous) is
    /// implemented; `aws`, `azure` and `gcp` are refused with a message until their
    /// authentication exists (use a Docker credential helper instead).
    #[arg(long, value_enum, default_value_t = Provider::Generic)]
    pub(crate) provider: Provider,
}

/// Ignore rules shared by push, diff and build.
#[derive(Debug, Args)]
pub(crate) struct IgnoreArgs {
    /// Paths to ignore in .gitignore format (comma-separated or repeated). Replaces the
    /// defaults: `.git/,.gitignore,.gitmodules,.gitattributes,*.jpg,*.jpeg,*.gif,*.png,*.wmv,*.flv,*.tar.gz,*.zip`.
    #[arg(long, value_delimiter = ',', value_name = "PATTERNS")]
    pub(crate) ignore_paths: Option<Vec<String>>,
    /// More paths to ignore in .gitignore format, added after --ignore-paths or the defaults
    /// (comma-separated or repeated).
    #[arg(long, value_delimiter = ',', value_name = "PATTERNS")]
    pub(crate) add_ignore_paths: Vec<String>,
}

/// `sourcectl push artifact oci://<host>/<repo>:<tag> --path <dir|file> --source <url> --revision <rev>`
#[derive(Debug, Args)]
pub(crate) struct PushArgs {
    /// Destination, `oci://<host>/<repository>[:<tag>]` (tag defaults to `latest`).
    pub(crate) url: String,
    /// Directory or single file to package; `-` reads the manifests from stdin into the
    /// artifact's one file `main.yaml` (trailing newlines trimmed).
    #[arg(long, short = 'f', value_name = "PATH")]
    pub(crate) path: PathBuf,
    /// The source address, e.g. the Git URL (annotation org.opencontainers.image.source).
    #[arg(long)]
    pub(crate) source: String,
    /// The source revision in the format '<branch|tag>@sha1:<commit-sha>' (annotation
    /// org.opencontainers.image.revision).
    #[arg(long)]
    pub(crate) revision: String,
    /// Custom OCI annotation in the format '<key>=<value>' (repeatable).
    #[arg(long = "annotations", short = 'a', value_name = "KEY=VALUE")]
    pub(crate) annotations: Vec<String>,
    #[command(flatten)]
    pub(crate) ignore: IgnoreArgs,
    /// Ensure reproducible image digests by setting the created timestamp to
    /// '1970-01-01T00:00:00Z'.
    #[arg(long)]
    pub(crate) reproducible: bool,
    /// Print `{url, repository, tag, digest}` of the pushed artifact to stdout as indented JSON
    /// or as YAML (sorted keys) instead of the success line.
    #[arg(long, short = 'o', value_enum)]
    pub(crate) output: Option<OutputFormat>,
    /// Resolve symlinks by copying their targets into the artifact (without it symlinks are
    /// left out).
    #[arg(long)]
    pub(crate) resolve_symlinks: bool,
    /// Display logs from the registry client (requests, retries) on stderr.
    #[arg(long)]
    pub(crate) debug: bool,
    #[command(flatten)]
    pub(crate) provider: ProviderArgs,
    /// Sign the pushed artifact (by digest) with this cosign private key (`cosign.key`; password
    /// from COSIGN_PASSWORD or a terminal prompt).
    #[arg(long, value_name = "FILE")]
    pub(crate) sign_key: Option<PathBuf>,
}

/// `sourcectl pull artifact oci://... --output <dir>`
#[derive(Debug, Args)]
pub(crate) struct PullArgs {
    /// Source, `oci://<host>/<repository>[:<tag>|@<digest>]`.
    pub(crate) url: String,
    /// Directory the artifact content is extracted into; created (with its parents) when it
    /// is missing. Entries are confined to it.
    #[arg(long, short = 'o', value_name = "DIR")]
    pub(crate) output: PathBuf,
    /// Refuse artifacts whose extracted content exceeds this many bytes.
    #[arg(long, default_value_t = registry::extract::DEFAULT_MAX_SIZE_BYTES, value_name = "BYTES")]
    pub(crate) max_size_bytes: u64,
    /// Refuse artifacts with more entries than this.
    #[arg(long, default_value_t = registry::extract::DEFAULT_MAX_FILES, value_name = "COUNT")]
    pub(crate) max_files: u64,
    #[command(flatten)]
    pub(crate) provider: ProviderArgs,
}

/// `sourcectl push chart <chart dir | .tgz> oci://<host>/<path>`
#[derive(Debug, Args)]
pub(crate) struct PushChartArgs {
    /// The chart: a directory with Chart.yaml (packaged as `helm package` does) or a .tgz.
    pub(crate) chart: PathBuf,
    /// Destination repository, `oci://<host>/<path>`; the chart is pushed to
    /// `<path>/<name>:<version>` (`+` in the version written `_`).
    pub(crate) url: String,
    /// Leave out the created annotation, for reproducible digests.
    #[arg(long)]
    pub(crate) reproducible: bool,
    /// Sign the pushed chart (by digest) with this cosign private key (`cosign.key`; password
    /// from COSIGN_PASSWORD or a terminal prompt).
    #[arg(long, value_name = "FILE")]
    pub(crate) sign_key: Option<PathBuf>,
}

/// `sourcectl pull chart oci://<host>/<path>/<name>:<version>`
#[derive(Debug, Args)]
pub(crate) struct PullChartArgs {
    /// The chart, `oci://<host>/<path>/<name>:<version>` (or `@<digest>`).
    pub(crate) url: String,
    /// Directory the chart archive is written into.
    #[arg(long, short = 'o', value_name = "DIR", default_value = ".")]
    pub(crate) output: PathBuf,
    /// Verify the chart's cosign signature with this public key first (repeatable; any one
    /// valid signature passes).
    #[arg(long, value_name = "FILE")]
    pub(crate) key: Vec<PathBuf>,
}

/// `sourcectl tag artifact oci://...:<tag> --tag <new>...`
#[derive(Debug, Args)]
pub(crate) struct TagArgs {
    /// The artifact to tag, `oci://<host>/<repository>:<tag>` or `@<digest>`.
    pub(crate) url: String,
    /// New tag (repeatable or comma-separated).
    #[arg(long, required = true, value_delimiter = ',')]
    pub(crate) tag: Vec<String>,
    #[command(flatten)]
    pub(crate) provider: ProviderArgs,
}

/// `sourcectl list artifacts oci://<host>/<repo>`
#[derive(Debug, Args)]
pub(crate) struct ListArgs {
    /// Repository, `oci://<host>/<repository>`.
    pub(crate) url: String,
    /// Keep tags matching this semver constraint, e.g. '>=1.0.0 <2.0.0' or '1.x'.
    #[arg(long, value_name = "CONSTRAINT")]
    pub(crate) filter_semver: Option<String>,
    /// Keep tags matching this regular expression (unanchored).
    #[arg(long, value_name = "REGEX")]
    pub(crate) filter_regex: Option<String>,
    /// Print the artifacts to stdout as indented JSON or as YAML (sorted keys) instead of the
    /// table: a list of Flux's `{created, source_url, source_revision, digest, url}`.
    #[arg(long, short = 'o', value_enum)]
    pub(crate) output: Option<OutputFormat>,
    #[command(flatten)]
    pub(crate) provider: ProviderArgs,
}

/// `sourcectl diff artifact oci://... --path <dir>`
#[derive(Debug, Args)]
pub(crate) struct DiffArgs {
    /// The artifact, `oci://<host>/<repository>[:<tag>|@<digest>]`.
    pub(crate) url: String,
    /// Local directory or file to compare with.
    #[arg(long, value_name = "PATH")]
    pub(crate) path: PathBuf,
    #[command(flatten)]
    pub(crate) ignore: IgnoreArgs,
    #[command(flatten)]
    pub(crate) provider: ProviderArgs,
}

/// `sourcectl build artifact --path <dir> --output <file>`
#[derive(Debug, Args)]
pub(crate) struct BuildArgs {
    /// Directory or single file to package; `-` reads the manifests from stdin into the
    /// artifact's one file `main.yaml` (trailing newlines trimmed).
    #[arg(long, short = 'p', value_name = "PATH")]
    pub(crate) path: PathBuf,
    /// File the tarball is written to.
    #[arg(long, short = 'o', default_value = "artifact.tgz", value_name = "FILE")]
    pub(crate) output: PathBuf,
    #[command(flatten)]
    pub(crate) ignore: IgnoreArgs,
    /// Resolve symlinks by copying their targets into the artifact (without it symlinks are
    /// left out).
    #[arg(long)]
    pub(crate) resolve_symlinks: bool,
}

/// `generate key-pair`.
#[derive(Debug, Subcommand)]
pub(crate) enum GenerateNoun {
    /// Write a cosign-compatible key pair: `<prefix>.key` (encrypted with COSIGN_PASSWORD or a
    /// password typed at the terminal) and `<prefix>.pub`.
    KeyPair(KeyPairArgs),
}

/// `sourcectl generate key-pair [--output-key-prefix cosign]`
#[derive(Debug, Args)]
pub(crate) struct KeyPairArgs {
    /// File name prefix of the key pair: `<prefix>.key` and `<prefix>.pub`.
    #[arg(long, default_value = "cosign", value_name = "PREFIX")]
    pub(crate) output_key_prefix: String,
}

/// `sign artifact`.
#[derive(Debug, Subcommand)]
pub(crate) enum SignNoun {
    /// Sign an artifact in cosign's format (`sha256-<hex>.sig` tag), adding to its existing
    /// signatures.
    Artifact(SignArgs),
}

/// `sourcectl sign artifact oci://...[:tag|@digest] --key cosign.key`
#[derive(Debug, Args)]
pub(crate) struct SignArgs {
    /// The artifact, `oci://<host>/<repository>[:<tag>|@<digest>]`.
    pub(crate) url: String,
    /// Cosign private key file (password from COSIGN_PASSWORD or a terminal prompt).
    #[arg(long, value_name = "FILE")]
    pub(crate) key: PathBuf,
}

/// `verify artifact`.
#[derive(Debug, Subcommand)]
pub(crate) enum VerifyNoun {
    /// Verify an artifact's cosign signature; print the verified digest (exit 1 if no signature
    /// verifies).
    Artifact(VerifyArgs),
}

/// `sourcectl verify artifact oci://... --key cosign.pub`
#[derive(Debug, Args)]
pub(crate) struct VerifyArgs {
    /// The artifact, `oci://<host>/<repository>[:<tag>|@<digest>]`.
    pub(crate) url: String,
    /// Cosign public key file (repeatable; any one valid signature passes).
    #[arg(
        long,
        value_name = "FILE",
        required_unless_present_any = ["trusted_root", "certificate_identity_regexp"],
        conflicts_with_all = ["trusted_root", "certificate_identity_regexp"]
    )]
    pub(crate) key: Vec<PathBuf>,
    /// Keyless: Sigstore trusted root (`trusted_root.json`) the signing certificate and the
    /// transparency log entry are checked against (offline). Needs both regexp flags. Without
    /// it, keyless verification uses the Sigstore public-good root, refreshed over TUF.
    #[arg(
        long,
        value_name = "FILE",
        requires_all = ["certificate_oidc_issuer_regexp", "certificate_identity_regexp"]
    )]
    pub(crate) trusted_root: Option<PathBuf>,
    /// Keyless: regular expression the certificate's OIDC issuer must match (unanchored).
    #[arg(long, value_name = "REGEX", requires = "certificate_identity_regexp")]
    pub(crate) certificate_oidc_issuer_regexp: Option<String>,
    /// Keyless: regular expression the certificate's subject (email or URI) must match
    /// (unanchored).
    #[arg(
        long,
        value_name = "REGEX",
        requires = "certificate_oidc_issuer_regexp"
    )]
    pub(crate) certificate_identity_regexp: Option<String>,
    /// Keyless without --trusted-root: TUF repository the Sigstore trusted root is refreshed
    /// from, at most once per 24 h, cached in `$XDG_CACHE_HOME/sourcectl/tuf`. Empty: no
    /// refresh, the root embedded in this build is used.
    #[arg(long, value_name = "URL", default_value = registry::cosign::tuf::PUBLIC_GOOD_TUF_MIRROR)]
    pub(crate) sigstore_tuf_mirror: String,
    /// Keyless without --trusted-root: initial TUF root metadata (`root.json`) for a private
    /// Sigstore deployment. Default: the public-good root embedded in this build.
    #[arg(long, value_name = "FILE")]
    pub(crate) sigstore_tuf_root: Option<PathBuf>,
}

/// Parses Go-style durations: a sequence of `<number><unit>` with units `ms`, `s`, `m`, `h`
/// (e.g. `90s`, `1m30s`, `1.5h`); a bare `0` is zero.
pub(crate) fn parse_duration(input: &str) -> Result<Duration, String> {
    let bad = || format!("invalid duration {input:?} (want e.g. 30s, 5m, 1h30m)");
    if input == "0" {
        return Ok(Duration::ZERO);
    }
    let mut rest = input;
    let mut total = 0f64;
    if rest.is_empty() {
        return Err(bad());
    }
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(bad)?;
        let (num, tail) = rest.split_at(num_len);
        let value: f64 = num.parse().map_err(|_| bad())?;
        let unit_len = tail
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(unit_len);
        let seconds = match unit {
            "ms" => 0.001,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return Err(bad()),
        };
        total += value * seconds;
        rest = tail;
    }
    Ok(Duration::from_secs_f64(total))
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn durations_parse_like_go() {
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("1.5h"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert!(parse_duration("5").is_err());
        assert!(parse_duration("5d").is_err());
        assert!(parse_duration("").is_err());
    }

    #[test]
    fn push_parses_flux_flags() {
        let cli = Cli::try_parse_from([
            "sourcectl",
            "push",
            "artifact",
            "oci://localhost:5000/app:v1",
            "-f",
            "./deploy",
            "--source",
            "git@x",
            "--revision",
            "main@sha1:abc",
            "-a",
            "k=v",
            "-a",
            "k2=v2",
            "--ignore-paths",
            "a,b",
            "--reproducible",
            "-o",
            "json",
            "--creds",
            "u:p",
            "--insecure-registry",
            "--resolve-symlinks",
            "--debug",
            "--provider",
            "aws",
        ])
        .unwrap();
        let Command::Push(PushNoun::Artifact(args)) = cli.command else {
            panic!("push")
        };
        assert_eq!(args.annotations, ["k=v", "k2=v2"]);
        assert_eq!(
            args.ignore.ignore_paths,
            Some(vec!["a".to_owned(), "b".to_owned()])
        );
        assert_eq!(args.output, Some(OutputFormat::Json));
        assert!(args.resolve_symlinks && args.debug);
        assert_eq!(args.provider.provider, Provider::Aws);
        assert!(cli.global.insecure_registry);
        assert_eq!(cli.global.creds.as_deref(), Some("u:p"));
    }

    #[test]
    fn list_takes_an_output_format_and_the_provider_defaults_to_generic() {
        let cli =
            Cli::try_parse_from(["sourcectl", "list", "artifacts", "oci://h/r", "-o", "yaml"])
                .unwrap();
        let Command::List(ListNoun::Artifacts(args)) = cli.command else {
            panic!("list")
        };
        assert_eq!(args.output, Some(OutputFormat::Yaml));
        assert_eq!(args.provider.provider, Provider::Generic);
        assert!(
            Cli::try_parse_from(["sourcectl", "pull", "artifact", "oci://h/r", "-o", "d"]).is_ok()
        );
    }
}
