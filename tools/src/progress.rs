//! A progress bar on stderr, shown only when stderr is a terminal (never in pipes, logs or
//! tests, where it would be noise).

use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;

/// A bar that may not be shown.
pub struct Progress {
    bar: Option<ProgressBar>,
}

impl Progress {
    /// A bar drawn with the indicatif `template` (`{pos}`, `{len}`, `{bar:40}`, ...), if stderr
    /// is a terminal.
    pub fn new(template: &str) -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::new(0);
            if let Ok(style) = ProgressStyle::with_template(template) {
                bar.set_style(style);
            }
            bar
        });
        Self { bar }
    }

    /// `done` of `total`.
    pub fn update(&self, done: u64, total: u64) {
        if let Some(bar) = &self.bar {
            bar.set_length(total);
            bar.set_position(done);
        }
    }

    /// Removes the bar, so the report that follows starts on a clean line.
    pub fn finish(self) {
        if let Some(bar) = self.bar {
            bar.finish_and_clear();
        }
    }
}
