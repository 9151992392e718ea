//! Running the demo: the cluster under the transport, the story, then every check.

use super::document;
use super::place::Place;
use super::replicate::Cluster;
use super::report;
use super::scenario::{self, Compared, FailedOver, Story, Timeline};
use super::verify::{self, Verified};
use super::write::{Delivered, Plan, Transport};
use crate::commands::log_directory::{self, StreamCheck};
use crate::exit::{ToolError, Verdict};
use crate::image;
use crate::output;
use bluejet_engine::format::inspect::{integrity, space, IntegrityReport, SpaceReport};
use bluejet_engine::BaseName;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The demo's options.
#[derive(Clone, Debug)]
pub struct DemoOptions {
    /// Where to put the cluster; a fresh temporary directory if `None`.
    pub directory: Option<PathBuf>,
    /// Leave the files in place.
    pub keep: bool,
    /// Concurrent writer threads of the transport.
    pub writers: usize,
    /// Messages delivered at least (delivery goes on until the story is told).
    pub messages: u64,
    /// Mailboxes they are delivered into.
    pub mailboxes: u32,
    /// Messages per second, all writers together.
    pub rate: f64,
    /// Print one JSON document.
    pub json: bool,
}

/// Everything the run measured and checked.
pub(super) struct Run {
    pub(super) delivered: Delivered,
    pub(super) story: Story,
    pub(super) compared: Compared,
    pub(super) active: PathBuf,
    pub(super) verified: Verified,
    pub(super) integrity: IntegrityReport,
    pub(super) space: SpaceReport,
    pub(super) file_bytes: u64,
    pub(super) stream: StreamCheck,
    pub(super) check: Duration,
    pub(super) elapsed: Duration,
}

impl Run {
    pub(super) fn problems(&self) -> usize {
        self.delivered.problems.len()
            + self.verified.problems()
            + self.integrity.problems.len()
            + self.stream.problems.len()
            + self.compared.differences.len()
            + self.story.failed_over.resubmitted.possibly_lost.len()
            + usize::try_from(self.story.failed_over.resubmitted.possibly_lost_untracked)
                .unwrap_or(usize::MAX)
            + usize::from(!self.story.moved.lossless)
            + synchronous_problems(&self.story.synchronous).len()
    }
}

/// What is wrong with the failover after synchronous commit: it must be proved lossless,
/// and the dumpster's resubmission must find every message on the new active.
pub(super) fn synchronous_problems(failed: &FailedOver) -> Vec<String> {
    let mut problems = Vec::new();
    if !failed.report.lossless || failed.report.synchronous_proof.is_none() {
        problems.push(format!(
            "the failover after synchronous commit was not proved lossless: {}",
            scenario::loss_text(&failed.report)
        ));
    }
    if failed.resubmitted.stored > 0 {
        problems.push(format!(
            "the failover after synchronous commit lost {} acknowledged messages (the dumpster \
             stored them again)",
            failed.resubmitted.stored
        ));
    }
    problems
}

/// Runs the demo.
pub fn run(options: &DemoOptions) -> Result<Verdict, ToolError> {
    super::replicate::stop_on_signals()?;
    let place = Place::new(options)?;
    let directory = place.path().to_owned();
    if !options.json {
        crate::out!(
            "demo: two nodes (a, b) and a witness in {}; {} writers deliver about {} messages/s \
             into {} mailboxes",
            directory.display(),
            options.writers,
            options.rate,
            options.mailboxes
        );
    }
    let timeline = Timeline::new(options.json);
    let run = cluster_run(&directory, options, &timeline)?;
    if options.json {
        output::print_json(&document::document(&directory, &run, &timeline));
    } else {
        report::print_summary(&run);
    }
    let kept = place.finish(options.keep)?;
    if let (Some(kept), false) = (kept, options.json) {
        crate::out!("database kept in {}", kept.display());
    }
    Ok(Verdict::from_problems(run.problems()))
}

/// Runs the cluster under the transport, tells the story, stops, and checks everything.
fn cluster_run(
    directory: &Path,
    options: &DemoOptions,
    timeline: &Timeline,
) -> Result<Run, ToolError> {
    let cluster = Cluster::new(directory)?;
    scenario::start(&cluster, timeline)?;
    let plan = Plan {
        writers: options.writers,
        mailboxes: options.mailboxes,
        rate: options.rate,
    };
    let transport = Transport::new(&cluster, plan)?;
    let (story, delivered) = std::thread::scope(|scope| {
        let delivering = scope.spawn(|| transport.run());
        let story = scenario::run(
            &cluster,
            &transport,
            timeline,
            options.messages,
            options.rate,
        );
        transport.stop();
        let delivered = delivering
            .join()
            .map_err(|_| ToolError::Failure("the transport panicked".into()));
        (story, delivered)
    });
    let (story, delivered) = (story?, delivered?);
    timeline.note(format!(
        "transport: stopped after {} ({} attempts refused and retried)",
        output::plural(delivered.delivered, "message"),
        delivered.retries
    ));
    let compared = scenario::finish(&cluster, timeline)?;
    let active = cluster.instance(compared.active).join("database");
    let options = cluster.config(compared.active).options.clone();
    drop(cluster);
    let started = Instant::now();
    let verified = verify::verify(&active, options, &delivered.acknowledged)?;
    let image = image::open(&active)?;
    let integrity = integrity(&image)?;
    let space = space(&image)?;
    let file_bytes = image.store.file().length();
    drop(image);
    let stream = log_directory::check(&active, BaseName::default())?;
    Ok(Run {
        delivered,
        story,
        compared,
        active,
        verified,
        integrity,
        space,
        file_bytes,
        stream,
        check: started.elapsed(),
        elapsed: timeline.elapsed(),
    })
}
