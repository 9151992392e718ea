//! Reading every page and checking its checksum, like `eseutil /k`.

use super::DatabaseImage;
use crate::db::DbError;
use crate::page::format::{self, PageProblem};
use std::time::{Duration, Instant};

/// A page that failed its check.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct BadPage {
    /// The page number.
    pub page: u64,
    /// What is wrong.
    pub problem: String,
}

/// What a checksum pass found.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct ChecksumReport {
    /// Pages read (header pages excluded).
    pub pages: u64,
    /// Pages that verified.
    pub good: u64,
    /// Bad checksums.
    pub bad_checksums: u64,
    /// Pages holding another page's number.
    pub wrong_page_numbers: u64,
    /// All-zero pages (never written: normal past the allocated pages).
    pub uninitialised: u64,
    /// Pages with an unknown type or inconsistent content.
    pub malformed: u64,
    /// Every bad page.
    pub bad_pages: Vec<BadPage>,
    /// Bytes read.
    pub bytes: u64,
    /// Time taken.
    pub elapsed: Duration,
}

impl ChecksumReport {
    /// Whether any page is damaged.
    pub fn damaged(&self) -> bool {
        !self.bad_pages.is_empty()
    }
}

/// Reads every page of the file; `progress(done, total)` is called as it goes.
pub fn checksum(
    image: &DatabaseImage,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<ChecksumReport, DbError> {
    let started = Instant::now();
    let file = image.store.file();
    let first = image.first_data_page();
    let last = file.length() / image.page_size() as u64;
    let mut report = ChecksumReport::default();
    for number in first..last {
        let page = file.read_raw(number)?;
        report.pages += 1;
        report.bytes += page.len() as u64;
        classify(&mut report, number, &page);
        if number % 256 == 0 || number + 1 == last {
            progress(number + 1 - first, last - first);
        }
    }
    report.elapsed = started.elapsed();
    Ok(report)
}

fn classify(report: &mut ChecksumReport, number: u64, page: &[u8]) {
    let problem = match format::verify(page, number) {
        Ok(page_type) => match crate::page::store::validate(page, page_type) {
            Ok(()) => {
                report.good += 1;
                return;
            }
            Err(problem) => problem,
        },
        Err(PageProblem::NotInitialised) => {
            report.uninitialised += 1;
            return;
        }
        Err(problem) => problem,
    };
    match problem {
        PageProblem::BadChecksum { .. } => report.bad_checksums += 1,
        PageProblem::WrongPageNumber { .. } => report.wrong_page_numbers += 1,
        _ => report.malformed += 1,
    }
    report.bad_pages.push(BadPage {
        page: number,
        problem: problem.to_string(),
    });
}
