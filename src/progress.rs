//! Progress of long operations (backups, restores, rotations): a bar or spinner on a terminal
//! (`indicatif`, on stderr), plain lines on stderr otherwise (logs, CI), nothing with `--json`
//! (stdout stays one JSON document; errors still go to stderr).

use std::io::IsTerminal as _;

use indicatif::{ProgressBar, ProgressStyle};

/// One long operation's progress.
pub(crate) enum Progress {
    /// An `indicatif` bar or spinner.
    Bar(ProgressBar),
    /// Plain lines; the last tenth printed (`u64::MAX`: none yet).
    Lines(std::cell::Cell<u64>),
    /// Nothing (`--json`).
    Quiet,
}

impl Progress {
    /// Progress of a command; `quiet` with `--json`.
    pub(crate) fn new(quiet: bool) -> Progress {
        if quiet {
            Progress::Quiet
        } else if std::io::stderr().is_terminal() {
            let bar = ProgressBar::new_spinner();
            bar.set_style(
                ProgressStyle::with_template("{spinner} {msg} [{elapsed}]")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            bar.enable_steady_tick(std::time::Duration::from_millis(120));
            Progress::Bar(bar)
        } else {
            Progress::Lines(std::cell::Cell::new(u64::MAX))
        }
    }

    /// The step now under way.
    pub(crate) fn step(&self, what: &str) {
        match self {
            Progress::Bar(b) => b.set_message(what.to_owned()),
            Progress::Lines(_) => eprintln!("{what}…"),
            Progress::Quiet => {}
        }
    }

    /// A step with a count: `done` of `total`.
    pub(crate) fn count(&self, what: &str, done: u64, total: u64) {
        match self {
            Progress::Bar(b) => {
                if b.length() != Some(total) {
                    b.set_length(total);
                    b.set_style(
                        ProgressStyle::with_template(
                            "{msg} {wide_bar} {pos}/{len} [{elapsed}, {eta} left]",
                        )
                        .unwrap_or_else(|_| ProgressStyle::default_bar()),
                    );
                }
                b.set_message(what.to_owned());
                b.set_position(done);
            }
            // At the first count, then each time it reaches a new tenth.
            Progress::Lines(last) => {
                let tenth = done.saturating_mul(10) / total.max(1);
                if last.get() == u64::MAX || tenth > last.get() {
                    last.set(tenth);
                    eprintln!("{what}: {done}/{total}");
                }
            }
            Progress::Quiet => {}
        }
    }

    /// Ends the bar (it disappears), leaving the terminal clean for the result.
    pub(crate) fn finish(&self) {
        if let Progress::Bar(b) = self {
            b.finish_and_clear();
        }
    }
}
