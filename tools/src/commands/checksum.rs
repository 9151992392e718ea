//! `bluejet checksum DB` (alias `k`): reads every page and checks it, like `eseutil /k`.

use crate::exit::{ToolError, Verdict};
use crate::image;
use crate::output;
use crate::progress::Progress;
use bluejet_engine::format::inspect::{checksum, BadPage, ChecksumReport};
use serde::Serialize;
use std::path::Path;

/// The JSON document of `checksum`.
#[derive(Serialize)]
struct ChecksumDocument<'a> {
    kind: &'static str,
    path: String,
    page_size: usize,
    pages: u64,
    good: u64,
    bad_checksums: u64,
    wrong_page_numbers: u64,
    uninitialised: u64,
    malformed: u64,
    bytes: u64,
    elapsed_seconds: f64,
    mib_per_second: f64,
    bad_pages: &'a [BadPage],
    passed: bool,
}

/// Checks every page of the database at `path`; any bad page is damage (exit 1).
pub fn run(path: &Path, json: bool) -> Result<Verdict, ToolError> {
    let image = image::open(path)?;
    let progress = Progress::new("checksum {bar:30} {pos}/{len} pages, {eta} left");
    let report = checksum(&image, &mut |done, total| progress.update(done, total));
    progress.finish();
    let report = report?;
    if json {
        print_json(&image.path, image.page_size(), &report);
    } else {
        print_text(&image.path, image.page_size(), &report);
    }
    Ok(Verdict::from_problems(report.bad_pages.len()))
}

/// MiB read per second.
fn throughput(report: &ChecksumReport) -> f64 {
    report.bytes as f64 / (1 << 20) as f64 / report.elapsed.as_secs_f64().max(1e-9)
}

fn print_text(file: &Path, page_size: usize, report: &ChecksumReport) {
    crate::out!("database file: {}", file.display());
    crate::out!("  {:<20} {page_size}", "page size");
    crate::out!("  {:<20} {}", "pages seen", report.pages);
    crate::out!("  {:<20} {}", "good", report.good);
    crate::out!("  {:<20} {}", "bad checksums", report.bad_checksums);
    crate::out!(
        "  {:<20} {}",
        "wrong page numbers",
        report.wrong_page_numbers
    );
    crate::out!("  {:<20} {}", "uninitialised", report.uninitialised);
    crate::out!("  {:<20} {}", "malformed", report.malformed);
    crate::out!(
        "  {:<20} {} in {:.3} s, {:.1} MiB/s",
        "read",
        output::bytes(report.bytes),
        report.elapsed.as_secs_f64(),
        throughput(report)
    );
    for bad in &report.bad_pages {
        crate::out!("bad page {}: {}", bad.page, bad.problem);
    }
    if report.bad_pages.is_empty() {
        crate::out!("checksum passed: every page verified");
    } else {
        crate::out!(
            "checksum FAILED: {}",
            output::plural(report.bad_pages.len() as u64, "bad page")
        );
    }
}

fn print_json(file: &Path, page_size: usize, report: &ChecksumReport) {
    output::print_json(&ChecksumDocument {
        kind: "checksum",
        path: file.display().to_string(),
        page_size,
        pages: report.pages,
        good: report.good,
        bad_checksums: report.bad_checksums,
        wrong_page_numbers: report.wrong_page_numbers,
        uninitialised: report.uninitialised,
        malformed: report.malformed,
        bytes: report.bytes,
        elapsed_seconds: report.elapsed.as_secs_f64(),
        mib_per_second: throughput(report),
        bad_pages: &report.bad_pages,
        passed: report.bad_pages.is_empty(),
    });
}
