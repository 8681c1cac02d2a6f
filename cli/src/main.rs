//! `sourcectl`: Flux-compatible OCI artifacts from the command line.
//!
//! Exit status: 0 on success; 1 on any failure, on usage errors, and when `diff artifact`
//! finds a difference.

use std::process::ExitCode;

use clap::Parser;

mod args;
mod commands;
mod connect;
mod stage;
mod status;

use args::{Cli, Command};

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e)
            if matches!(
                e.kind(),
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion
            ) =>
        {
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            let _ = e.print();
            return ExitCode::FAILURE;
        }
    };
    // `push artifact --debug` is Flux's name for showing the registry library's logs.
    let push_debug = matches!(&cli.command, Command::Push(args::PushNoun::Artifact(a)) if a.debug);
    init_tracing(cli.global.verbose || push_debug);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            status::failure(&format!("starting the async runtime: {e}"));
            return ExitCode::FAILURE;
        }
    };
    let timeout = cli.global.timeout;
    let result = runtime.block_on(async {
        let run = run(cli);
        if timeout.is_zero() {
            run.await
        } else {
            match tokio::time::timeout(timeout, run).await {
                Ok(result) => result,
                Err(_) => Err(anyhow::anyhow!("timeout of {timeout:?} exceeded")),
            }
        }
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            status::failure(&format!("{e:#}"));
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    use args::{BuildNoun, DiffNoun, ListNoun, PullNoun, PushNoun, TagNoun};
    use args::{GenerateNoun, SignNoun, VerifyNoun};
    let global = cli.global;
    match cli.command {
        Command::Push(PushNoun::Artifact(mut a)) => match a.sign_key.take() {
            Some(key) => commands::sign::push_and_sign(&global, a, &key).await,
            None => commands::push::run(&global, a).await,
        },
        Command::Pull(PullNoun::Artifact(a)) => commands::pull::run(&global, a).await,
        Command::Push(PushNoun::Chart(a)) => commands::chart::push(&global, a).await,
        Command::Pull(PullNoun::Chart(a)) => commands::chart::pull(&global, a).await,
        Command::Tag(TagNoun::Artifact(a)) => commands::tag::run(&global, a).await,
        Command::List(ListNoun::Artifacts(a)) => commands::list::run(&global, a).await,
        Command::Diff(DiffNoun::Artifact(a)) => commands::diff::run(&global, a).await,
        Command::Build(BuildNoun::Artifact(a)) => commands::build::run(a).await,
        Command::Generate(GenerateNoun::KeyPair(a)) => commands::keypair::run(a).await,
        Command::Sign(SignNoun::Artifact(a)) => commands::sign::run(&global, a).await,
        Command::Verify(VerifyNoun::Artifact(a)) => commands::verify::run(&global, a).await,
    }
}

fn init_tracing(verbose: bool) {
    let filter = if verbose {
        "registry=debug,sourcectl=debug,info"
    } else {
        "warn"
    };
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
}
