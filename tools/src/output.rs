//! Formatting shared by the commands: times, sizes, byte strings, signatures and JSON.

use bluejet_engine::log::StreamSignature;
use serde::Serialize;
use serde_json::Value;

/// Like `println!`, but a closed stdout (`bluejet ... | head`) ends the process quietly
/// instead of panicking.
#[macro_export]
macro_rules! out {
    ($($argument:tt)*) => {
        $crate::output::write_line(&format!($($argument)*))
    };
}

/// Writes one line on stdout; exits quietly (code 3) if stdout is closed.
pub fn write_line(line: &str) {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    if let Err(error) = writeln!(stdout, "{line}") {
        if error.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(i32::from(crate::exit::FAILURE));
        }
        eprintln!("bluejet: stdout: {error}");
        std::process::exit(i32::from(crate::exit::FAILURE));
    }
}

/// The layout version every `--json` document carries as `schema_version`: raised when a
/// field changes meaning or goes away (new fields do not raise it). A document that has a
/// version of its own (a format the replication crate owns) keeps it.
pub const SCHEMA_VERSION: u32 = 1;

/// Prints one JSON document on stdout, pretty: `document` serialised, with `schema_version`
/// and (for a live inspection) `live` added at its top level.
pub fn print_json(document: &impl Serialize) {
    write_line(&json_text(document, true));
}

/// Prints one JSON document on one line (JSON Lines, for output that streams).
pub fn print_json_line(document: &impl Serialize) {
    write_line(&json_text(document, false));
}

/// `document` as one line of JSON text, with `schema_version` (and `live`) added as
/// [`print_json`] adds them: for a document written in pieces.
pub fn json_line(document: &impl Serialize) -> String {
    json_text(document, false)
}

/// `document` as the text of a tool's JSON document: the one way every command's JSON is
/// made, so that none lacks `schema_version`.
fn json_text(document: &impl Serialize, pretty: bool) -> String {
    let mut document = match serde_json::to_value(document) {
        Ok(document) => document,
        Err(error) => {
            // Only a map with non-string keys fails, which no report of the tool has.
            eprintln!("bluejet: JSON output: {error}");
            std::process::exit(i32::from(crate::exit::FAILURE));
        }
    };
    if let Value::Object(map) = &mut document {
        map.entry("schema_version").or_insert(SCHEMA_VERSION.into());
    }
    crate::live::mark(&mut document);
    let text = match pretty {
        true => serde_json::to_string_pretty(&document),
        false => serde_json::to_string(&document),
    };
    // Serialising a `Value` cannot fail.
    text.unwrap_or_default()
}

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian calendar.
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    // Howard Hinnant's algorithm.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = u32::try_from(doy - (153 * mp + 2) / 5 + 1).expect("a day of the month, 1 to 31");
    let month = u32::try_from(if mp < 10 { mp + 3 } else { mp - 9 }).expect("a month, 1 to 12");
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// µs since the Unix epoch as an ISO 8601 UTC time, e.g. `2026-05-01T12:00:00.000001Z`;
/// `-` for 0 (a field that is not set).
pub fn time(micros: u64) -> String {
    if micros == 0 {
        return "-".into();
    }
    let seconds = micros / 1_000_000;
    let fraction = micros % 1_000_000;
    let (year, month, day) = civil_from_days((seconds / 86_400) as i64);
    let in_day = seconds % 86_400;
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{fraction:06}Z",
        in_day / 3600,
        in_day / 60 % 60,
        in_day % 60
    )
}

/// A byte count for people: `512 B`, `3.5 KiB`, `20.1 MiB`.
pub fn bytes(count: u64) -> String {
    const KIB: f64 = 1024.0;
    let value = count as f64;
    if value < KIB {
        format!("{count} B")
    } else if value < KIB * KIB {
        format!("{:.1} KiB", value / KIB)
    } else if value < KIB * KIB * KIB {
        format!("{:.1} MiB", value / KIB / KIB)
    } else {
        format!("{:.2} GiB", value / KIB / KIB / KIB)
    }
}

/// A byte string as text: printable ASCII as is, anything else escaped, cut to `limit`
/// characters with `...` after.
pub fn byte_string(raw: &[u8], limit: usize) -> String {
    let mut text = String::new();
    for &byte in raw {
        if text.len() >= limit {
            text.push_str("...");
            break;
        }
        match byte {
            b'\\' => text.push_str("\\\\"),
            0x20..=0x7e => text.push(byte as char),
            _ => text.push_str(&format!("\\x{byte:02x}")),
        }
    }
    text
}

/// A stream signature as `id@creation-time`.
pub fn signature(signature: &StreamSignature) -> String {
    format!("{signature} ({})", time(signature.created_micros))
}

/// A stream signature in JSON: the id in hex and the creation time both as µs and as text.
#[derive(Serialize)]
pub struct SignatureJson {
    id: String,
    created_micros: u64,
    created: String,
}

/// A stream signature as its JSON object.
pub fn signature_json(signature: &StreamSignature) -> SignatureJson {
    SignatureJson {
        id: signature.id.iter().map(|b| format!("{b:02x}")).collect(),
        created_micros: signature.created_micros,
        created: time(signature.created_micros),
    }
}

/// `n thing` or `n things`.
pub fn plural(count: u64, singular: &str) -> String {
    if count == 1 {
        format!("{count} {singular}")
    } else {
        format!("{count} {singular}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_utc() {
        assert_eq!(time(1), "1970-01-01T00:00:00.000001Z");
        assert_eq!(time(951_782_400_000_000), "2000-02-29T00:00:00.000000Z");
        assert_eq!(time(1_700_000_000_123_456), "2023-11-14T22:13:20.123456Z");
        assert_eq!(time(0), "-");
    }

    #[test]
    fn byte_strings_are_escaped_and_cut() {
        assert_eq!(byte_string(b"ab\x00\\", 10), "ab\\x00\\\\");
        assert_eq!(byte_string(b"abcdef", 3), "abc...");
    }

    #[test]
    fn sizes() {
        assert_eq!(bytes(10), "10 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(bytes(3 << 20), "3.0 MiB");
    }
}
