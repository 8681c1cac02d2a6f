//! Status lines on stderr in Flux's format (`► action`, `✔ success`, `✗ failure`) and the
//! transfer progress bar, drawn only when stderr is a terminal.

use std::io::IsTerminal;
use std::sync::{Arc, Once};
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

/// Bytes a transfer must reach before its indicator appears (4 MiB): smaller transfers
/// finish too fast for a bar to say anything.
pub(crate) const SHOW_FROM_BYTES: u64 = 4 * 1024 * 1024;

/// Whether the indicator is drawn after `done` bytes: only on a terminal, and only from
/// [`SHOW_FROM_BYTES`] on.
pub(crate) fn shows_progress(stderr_is_terminal: bool, done: u64) -> bool {
    stderr_is_terminal && done >= SHOW_FROM_BYTES
}

/// A transfer progress indicator: a spinner with bytes and rate on stderr when it is a
/// terminal and the transfer has passed [`SHOW_FROM_BYTES`]; nothing otherwise (pipes, files,
/// CI logs stay clean).
#[derive(Debug)]
pub(crate) struct Transfer {
    bar: Option<ProgressBar>,
}

impl Transfer {
    /// Starts an indicator labelled `label` (`pushing`, `pulling`), hidden until the transfer
    /// passes [`SHOW_FROM_BYTES`].
    pub(crate) fn start(label: &'static str) -> Self {
        Self::new(label, std::io::stderr().is_terminal())
    }

    fn new(label: &'static str, stderr_is_terminal: bool) -> Self {
        if !stderr_is_terminal {
            return Transfer { bar: None };
        }
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::hidden());
        bar.set_style(
            ProgressStyle::with_template("{spinner} {msg} {bytes} ({binary_bytes_per_sec})")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        bar.set_message(label);
        Transfer { bar: Some(bar) }
    }

    /// The callback to hand to the library (bytes done so far); `None` when stderr is not a
    /// terminal, so nothing is ever drawn.
    pub(crate) fn callback(&self) -> Option<ProgressFn> {
        let bar = self.bar.clone()?;
        let shown = Arc::new(Once::new());
        Some(Arc::new(move |done| {
            bar.set_position(done);
            if shows_progress(true, done) {
                shown.call_once(|| {
                    bar.set_draw_target(ProgressDrawTarget::stderr_with_hz(10));
                    // Drawn now, on this thread: the steady tick's thread may first run after
                    // a short transfer has ended (seen on a loaded machine), and then the
                    // indicator never appeared.
                    bar.force_draw();
                    bar.enable_steady_tick(Duration::from_millis(200));
                });
            }
        }))
    }

    /// Removes the indicator.
    pub(crate) fn finish(self) {
        if let Some(bar) = self.bar {
            bar.finish_and_clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_shows_only_on_a_terminal_from_the_threshold() {
        assert!(!shows_progress(true, 0));
        assert!(!shows_progress(true, SHOW_FROM_BYTES - 1));
        assert!(shows_progress(true, SHOW_FROM_BYTES));
        assert!(shows_progress(true, 1 << 30));
        assert!(!shows_progress(false, 1 << 30));
    }

    #[test]
    fn off_a_terminal_there_is_no_callback_at_all() {
        assert!(Transfer::new("pushing", false).callback().is_none());
        let transfer = Transfer::new("pushing", true);
        let callback = transfer.callback().expect("a callback on a terminal");
        callback(SHOW_FROM_BYTES + 1);
        assert_eq!(
            transfer.bar.as_ref().unwrap().position(),
            SHOW_FROM_BYTES + 1
        );
        transfer.finish();
    }
}
