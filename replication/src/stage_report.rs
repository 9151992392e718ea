//! Reporting a replication stage's problems through `tracing` as they appear and clear.
//!
//! The stages (shipper, inspector, replayer) run in their own threads and keep their last
//! problem in the copy's observations, which the status shows at its next evaluation. Each
//! round repeats the same problem, so only a change is reported: a new or different problem
//! as a warning, its clearing as information. The library installs no subscriber; an
//! embedding program (or the `bluejet` tool) chooses where events go.

use std::path::Path;

/// Sets `slot` to `problem`, reporting the change (if any) for `stage` of the copy in
/// `copy`.
pub(crate) fn note_problem(
    slot: &mut Option<String>,
    stage: &str,
    copy: &Path,
    problem: Option<String>,
) {
    if *slot == problem {
        return;
    }
    match &problem {
        Some(problem) => tracing::warn!(
            copy = %copy.display(),
            stage,
            %problem,
            "replication stage failed"
        ),
        None => tracing::info!(copy = %copy.display(), stage, "replication stage recovered"),
    }
    *slot = problem;
}

#[cfg(test)]
mod tests {
    use super::*;
    use parking_lot::Mutex;
    use std::sync::Arc;

    /// The events `work` reports, as text.
    fn reported(work: impl FnOnce()) -> String {
        let buffer = Arc::new(Mutex::new(Vec::new()));
        let writing = Arc::clone(&buffer);
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_max_level(tracing::Level::INFO)
            .with_writer(move || Capture(Arc::clone(&writing)))
            .finish();
        tracing::subscriber::with_default(subscriber, work);
        let text = String::from_utf8_lossy(&buffer.lock()).into_owned();
        text
    }

    struct Capture(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Capture {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().extend_from_slice(bytes);
            Ok(bytes.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_problem_is_reported_when_it_appears_changes_and_clears_not_every_round() {
        let copy = Path::new("/replicas/b");
        let mut slot = None;
        let text = reported(|| {
            for _ in 0..3 {
                note_problem(&mut slot, "ship", copy, Some("share unreachable".into()));
            }
            note_problem(&mut slot, "ship", copy, Some("permission denied".into()));
            note_problem(&mut slot, "ship", copy, None);
            note_problem(&mut slot, "ship", copy, None);
        });
        let lines: Vec<_> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{text}");
        assert!(
            lines[0].contains("WARN") && lines[0].contains("problem=share unreachable"),
            "{text}"
        );
        assert!(
            lines[0].contains("copy=/replicas/b") && lines[0].contains("stage=\"ship\""),
            "{text}"
        );
        assert!(
            lines[1].contains("WARN") && lines[1].contains("problem=permission denied"),
            "{text}"
        );
        assert!(
            lines[2].contains("INFO") && lines[2].contains("recovered"),
            "{text}"
        );
        assert_eq!(slot, None);
    }
}
