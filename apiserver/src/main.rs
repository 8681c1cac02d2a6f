//! `source-apiserver` binary: parse flags, set up logging, build the app, serve until SIGTERM.

use anyhow::Context;
use apiserver::config::{Command, LogFormat};
use apiserver::{App, Flags};
use clap::Parser;
use tokio_util::sync::CancellationToken;

/// jemalloc instead of glibc's allocator: serving lists and watches builds and drops many small
/// JSON values, where glibc's malloc spent about half the CPU (`perf`, 10,000-object lists).
/// Its settings are compiled in (`.cargo/config.toml`: one arena, a background purging thread,
/// freed pages returned after 1 s): a reconcile burst allocates on the async workers and the
/// blocking pool and frees elsewhere, and with per-thread heaps (mimalloc) or one arena per
/// thread group (jemalloc's default) the freed memory stayed resident: 1,000 reconciles peaked
/// at 68 MiB with mimalloc and 50 MiB with these settings, at the same CPU (issue 14,
/// bench/README.md).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let flags = Flags::parse();
    let serve = match flags.command {
        Some(Command::Serve(serve)) => serve,
        None => flags.serve,
    };
    let config = serve.into_config().context("invalid flags")?;
    let filter = tracing_subscriber::EnvFilter::try_from_env("SOURCE_APISERVER_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match config.log_format {
        LogFormat::Json => subscriber.json().init(),
        LogFormat::Text => subscriber.init(),
    }
    let shutdown = CancellationToken::new();
    let app = App::build(config, shutdown.clone())
        .await
        .context("starting source-apiserver")?;
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("signal received");
        shutdown.cancel();
    });
    app.run().await;
    Ok(())
}

async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("installing the SIGTERM handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

#[cfg(test)]
mod tests {
    /// The settings of `.cargo/config.toml` reach the allocator this binary links: without
    /// them jemalloc runs 4 arenas per CPU and no background thread.
    #[test]
    fn allocator_settings_are_compiled_in() {
        assert_eq!(tikv_jemalloc_ctl::opt::narenas::read().unwrap(), 1);
        assert!(tikv_jemalloc_ctl::opt::background_thread::read().unwrap());
    }
}
