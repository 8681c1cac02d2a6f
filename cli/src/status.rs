//! Status lines on stderr in Flux's format (`► action`, `✔ success`, `✗ failure`) and the
//! transfer progress bar, drawn only when stderr is a terminal.

use std::io::IsTerminal;
use std::sync::Arc;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use registry::client::ProgressFn;

/// `► <message>`
pub(crate) fn action(message: &str) {
    eprintln!("► {message}");
}

/// `✔ <message>`
pub(crate) fn success(message: &str) {
    eprintln!("✔ {message}");
}

/// `✗ <message>`
pub(crate) fn failure(message: &str) {
    eprintln!("✗ {message}");
}

/// How long a transfer runs before its indicator appears.
const SHOW_AFTER: Duration = Duration::from_millis(500);

/// A transfer progress indicator: a spinner with bytes and rate on a terminal, nothing
/// otherwise. It only appears after the transfer has run for a moment.
#[derive(Debug)]
pub(crate) struct Transfer {
    bar: Option<ProgressBar>,
}

impl Transfer {
    /// Starts an indicator labelled `label` (`pushing`, `pulling`); it stays hidden for the
    /// first [`SHOW_AFTER`] so quick transfers print nothing.
    pub(crate) fn start(label: &'static str) -> Self {
        if !std::io::stderr().is_terminal() {
            return Transfer { bar: None };
        }
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::hidden());
        bar.set_style(
            ProgressStyle::with_template("{spinner} {msg} {bytes} ({binary_bytes_per_sec})")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        bar.set_message(label);
        let shown = bar.clone();
        std::thread::spawn(move || {
            std::thread::sleep(SHOW_AFTER);
            if !shown.is_finished() {
                shown.set_draw_target(ProgressDrawTarget::stderr_with_hz(10));
                shown.enable_steady_tick(Duration::from_millis(200));
            }
        });
        Transfer { bar: Some(bar) }
    }

    /// The callback to hand to the library (bytes done so far), if a bar is shown.
    pub(crate) fn callback(&self) -> Option<ProgressFn> {
        let bar = self.bar.clone()?;
        Some(Arc::new(move |done| bar.set_position(done)))
    }

    /// Removes the indicator.
    pub(crate) fn finish(self) {
        if let Some(bar) = self.bar {
            bar.finish_and_clear();
        }
    }
}
