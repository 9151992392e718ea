//! `bluejet dump DB TABLE`: every entry of a table, in key order.
//!
//! Entries are read and printed one at a time (with `--json` too), so a table larger than
//! memory still dumps.

use crate::exit::{ToolError, Verdict};
use crate::image::{self, Entries};
use crate::output;
use bluejet_engine::DbError;
use serde::Serialize;
use std::path::Path;

/// What to dump and how.
#[derive(Clone, Debug)]
pub struct DumpOptions {
    /// Hex instead of escaped text.
    pub hex: bool,
    /// Stop after this many entries.
    pub limit: Option<u64>,
    /// Show at most this many bytes of each value.
    pub value_bytes: Option<usize>,
    /// One JSON document.
    pub json: bool,
}

/// Dumps `table` of the database at `path`.
pub fn run(path: &Path, table: &str, options: &DumpOptions) -> Result<Verdict, ToolError> {
    let image = image::open(path)?;
    let meta = match image.table(table) {
        Ok(meta) => meta,
        Err(DbError::TableNotFound(_)) => {
            return Err(ToolError::Usage(format!(
                "{}: no table named {table:?} (tables: {})",
                image.path.display(),
                image::table_names(&image).join(", ")
            )))
        }
        Err(error) => return Err(error.into()),
    };
    let mut printer = Printer::new(options);
    printer.start(&image.path, table, meta.count);
    for entry in Entries::new(&image, meta.root)? {
        if options.limit.is_some_and(|limit| printer.shown >= limit) {
            break;
        }
        let (key, value) = entry?;
        printer.entry(&key, &value);
    }
    printer.finish(meta.count);
    Ok(Verdict::Clean)
}

/// Prints entries as text lines or as the parts of one JSON document.
struct Printer<'a> {
    options: &'a DumpOptions,
    shown: u64,
}

impl<'a> Printer<'a> {
    fn new(options: &'a DumpOptions) -> Self {
        Self { options, shown: 0 }
    }

    /// Bytes as the chosen encoding; the flag says whether they were cut.
    fn encode(&self, bytes: &[u8], limit: Option<usize>) -> (String, bool) {
        let shown = &bytes[..limit.unwrap_or(usize::MAX).min(bytes.len())];
        let cut = shown.len() < bytes.len();
        let text = if self.options.hex {
            shown.iter().map(|byte| format!("{byte:02x}")).collect()
        } else {
            output::byte_string(shown, usize::MAX)
        };
        (text, cut)
    }

    fn start(&self, file: &Path, table: &str, count: u64) {
        if self.options.json {
            // The document is written in pieces; every piece is valid JSON text in order.
            let head = output::json_line(&DumpHead {
                kind: "dump",
                path: file.display().to_string(),
                table,
                table_entries: count,
                encoding: if self.options.hex { "hex" } else { "escaped" },
            });
            // The head is an object: it ends with `}`, reopened here for the entries.
            let open = head.strip_suffix('}').unwrap_or(&head);
            crate::out!("{open},\"entries\":[");
        } else {
            crate::out!("table {table} in {}: {}", file.display(), entries(count));
        }
    }

    fn entry(&mut self, key: &[u8], value: &[u8]) {
        let (key_text, _) = self.encode(key, None);
        let (value_text, cut) = self.encode(value, self.options.value_bytes);
        if self.options.json {
            let separator = if self.shown == 0 { "" } else { "," };
            let entry = DumpEntry {
                key: &key_text,
                value: &value_text,
                value_bytes: value.len(),
                value_cut: cut,
            };
            // Serialising a struct of strings and numbers cannot fail.
            let entry = serde_json::to_string(&entry).unwrap_or_default();
            crate::out!("{separator}{entry}");
        } else {
            let more = if cut { "..." } else { "" };
            crate::out!("{key_text} ({} bytes): {value_text}{more}", value.len());
        }
        self.shown += 1;
    }

    fn finish(&self, count: u64) {
        if self.options.json {
            crate::out!(
                "],\"shown\":{},\"complete\":{}}}",
                self.shown,
                self.shown == count
            );
        } else if self.shown < count {
            crate::out!("{} of {} shown", self.shown, entries(count));
        }
    }
}

/// The start of `dump --json`: what is dumped, before the entries array.
#[derive(Serialize)]
struct DumpHead<'a> {
    kind: &'static str,
    path: String,
    table: &'a str,
    table_entries: u64,
    /// How keys and values are written: `hex` or `escaped`.
    encoding: &'static str,
}

/// One entry of `dump --json`; `value_cut` when `--value-bytes` cut the value.
#[derive(Serialize)]
struct DumpEntry<'a> {
    key: &'a str,
    value: &'a str,
    value_bytes: usize,
    value_cut: bool,
}

/// `1 entry`, `2 entries`.
fn entries(count: u64) -> String {
    if count == 1 {
        "1 entry".into()
    } else {
        format!("{count} entries")
    }
}
