//! A synthetic mail workload for the demo: deterministic RFC 822 messages built from a seed,
//! their keys, and the folder index entries that point at them.
//!
//! Everything here is a pure function of its inputs, so a message can be rebuilt exactly
//! from its [`Delivery`] to compare with what the database gives back.

use crate::output::civil_from_days;

/// A small, fast, seedable generator (SplitMix64). Not for anything but test data.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator started at `seed`.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..bound` (`bound` > 0).
    pub fn below(&mut self, bound: u64) -> u64 {
        self.next_u64() % bound
    }

    /// A number in `low..=high`.
    pub fn between(&mut self, low: u64, high: u64) -> u64 {
        low + self.below(high - low + 1)
    }

    /// An element of `items`.
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[usize::try_from(self.below(items.len() as u64)).expect("below items.len()")]
    }
}

const FIRST_NAMES: [&str; 16] = [
    "alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy", "mallory",
    "niaj", "olivia", "peggy", "rupert", "sybil",
];

const LAST_NAMES: [&str; 8] = [
    "smith", "jones", "garcia", "muller", "rossi", "novak", "tanaka", "okafor",
];

const DOMAINS: [&str; 5] = [
    "example.net",
    "example.com",
    "lists.example.org",
    "mail.example.edu",
    "corp.example",
];

const WORDS: [&str; 64] = [
    "the",
    "meeting",
    "schedule",
    "project",
    "report",
    "quarter",
    "budget",
    "review",
    "please",
    "attached",
    "find",
    "update",
    "team",
    "deadline",
    "next",
    "week",
    "thanks",
    "regards",
    "server",
    "storage",
    "migration",
    "backup",
    "invoice",
    "customer",
    "order",
    "shipping",
    "delivery",
    "status",
    "question",
    "about",
    "proposal",
    "draft",
    "agenda",
    "minutes",
    "lunch",
    "friday",
    "monday",
    "call",
    "notes",
    "summary",
    "issue",
    "fixed",
    "release",
    "version",
    "log",
    "database",
    "mailbox",
    "quota",
    "weekend",
    "travel",
    "hotel",
    "flight",
    "conference",
    "slides",
    "feedback",
    "approval",
    "contract",
    "signed",
    "and",
    "of",
    "to",
    "for",
    "with",
    "we",
];

const WEEKDAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// 2026-03-02T08:00:00Z, the first date of the synthetic mail.
const EPOCH_SECONDS: u64 = 1_772_438_400;

/// The name of mailbox number `index`: `alice`, ..., `sybil`, `alice1`, ...
pub fn mailbox_name(index: u32) -> String {
    let name = FIRST_NAMES[index as usize % FIRST_NAMES.len()];
    match index as usize / FIRST_NAMES.len() {
        0 => name.to_string(),
        round => format!("{name}{round}"),
    }
}

/// Draws a body size from 2 KiB to 200 KiB: mostly short mail, some longer, a few large.
pub fn body_size(rng: &mut Rng) -> usize {
    let (low, high) = match rng.below(100) {
        0..=54 => (2 << 10, 8 << 10),
        55..=84 => (8 << 10, 32 << 10),
        85..=96 => (32 << 10, 96 << 10),
        _ => (96 << 10, 200 << 10),
    };
    usize::try_from(rng.between(low, high)).expect("at most 200 KiB")
}

/// The folders a message can be filed in, the first the most likely.
pub const FOLDER_NAMES: [&str; 5] = ["INBOX", "Archive", "Lists", "Work", "Receipts"];

/// One message in eight carries a (barely compressible) attachment.
const ATTACHMENT_ONE_IN: u64 = 8;

/// One message delivered into a mailbox.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Delivery {
    /// The mailbox number.
    pub mailbox: u32,
    /// The message's UID in the mailbox.
    pub uid: u32,
    /// Seed of the message's content.
    pub seed: u64,
}

/// The key of a message in table `messages`: `<mailbox>/<uid>`, the UID zero-padded so that
/// key order is delivery order.
pub fn message_key(mailbox: u32, uid: u32) -> String {
    format!("{}/{uid:08}", mailbox_name(mailbox))
}

/// An RFC 2822 date.
fn date(seconds: u64) -> String {
    let days = seconds / 86_400;
    let (year, month, day) = civil_from_days(days as i64);
    let weekday = WEEKDAYS[((days + 4) % 7) as usize];
    let in_day = seconds % 86_400;
    format!(
        "{weekday}, {day:02} {} {year} {:02}:{:02}:{:02} +0000",
        MONTHS[month as usize - 1],
        in_day / 3600,
        in_day / 60 % 60,
        in_day % 60
    )
}

/// A sortable UTC time for keys: `20260302T080000Z`.
fn key_time(seconds: u64) -> String {
    let (year, month, day) = civil_from_days((seconds / 86_400) as i64);
    let in_day = seconds % 86_400;
    format!(
        "{year:04}{month:02}{day:02}T{:02}{:02}{:02}Z",
        in_day / 3600,
        in_day / 60 % 60,
        in_day % 60
    )
}

impl Delivery {
    /// The arrival time, seconds since the Unix epoch.
    fn arrival(&self) -> u64 {
        EPOCH_SECONDS + u64::from(self.uid) * 397 + u64::from(self.mailbox) * 61
    }

    /// The key in table `messages`.
    pub fn message_key(&self) -> String {
        message_key(self.mailbox, self.uid)
    }

    /// The folder the message is filed in: half in INBOX, the rest spread over the others.
    pub fn folder(&self) -> &'static str {
        // Drawn from its own stream, so the message text does not depend on it.
        let draw = usize::try_from(Rng::new(self.seed ^ 0xf01d_e125).below(10)).expect("below 10");
        FOLDER_NAMES[draw.saturating_sub(4).min(FOLDER_NAMES.len() - 1)]
    }

    /// The key in table `folders`: `<mailbox>/<folder>/<received time>/<uid>`, so that a
    /// folder lists in arrival order.
    pub fn folder_key(&self) -> String {
        format!(
            "{}/{}/{}/{:08}",
            mailbox_name(self.mailbox),
            self.folder(),
            key_time(self.arrival()),
            self.uid
        )
    }

    /// The full message: headers and a body of words, lines wrapped, CRLF line ends; one in
    /// eight also carries a base64 attachment.
    pub fn message(&self) -> Vec<u8> {
        let mut rng = Rng::new(self.seed);
        let first = rng.pick(&FIRST_NAMES);
        let last = rng.pick(&LAST_NAMES);
        let domain = rng.pick(&DOMAINS);
        let subject: Vec<&str> = (0..rng.between(2, 7)).map(|_| *rng.pick(&WORDS)).collect();
        let relay = rng.between(1, 9);
        let address = rng.between(1, 254);
        let size = body_size(&mut rng);
        let attachment = rng.below(ATTACHMENT_ONE_IN) == 0;
        let when = date(self.arrival());
        let mailbox = mailbox_name(self.mailbox);
        let content_type = if attachment {
            "multipart/mixed; boundary=\"=_bluejet\""
        } else {
            "text/plain; charset=utf-8"
        };
        let mut text = format!(
            "Return-Path: <{first}.{last}@{domain}>\r\n\
             Received: from mx{relay}.{domain} (mx{relay}.{domain} [192.0.2.{address}])\r\n\
             \tby mail.example.org with ESMTPS id {:016x}; {when}\r\n\
             From: {} {} <{first}.{last}@{domain}>\r\n\
             To: {mailbox}@example.org\r\n\
             Subject: {}\r\n\
             Date: {when}\r\n\
             Message-ID: <{:016x}.{}@{domain}>\r\n\
             MIME-Version: 1.0\r\n\
             Content-Type: {content_type}\r\n\
             \r\n",
            self.seed,
            capitalised(first),
            capitalised(last),
            capitalised(&subject.join(" ")),
            self.seed,
            self.uid,
        );
        if attachment {
            text.push_str("--=_bluejet\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n");
            append_words(&mut text, &mut rng, size / 2);
            append_attachment(&mut text, &mut rng, size / 2);
        } else {
            append_words(&mut text, &mut rng, size);
        }
        text.into_bytes()
    }

    /// The small summary stored in table `folders`: what a mail client lists, and the key of
    /// the message it describes. Built from the message's own headers.
    pub fn summary(&self, message: &[u8]) -> Vec<u8> {
        let header = |name: &str| header_value(message, name).unwrap_or_default();
        format!(
            "uid={} size={} flags=\\Seen date={} from={} subject={} key={}",
            self.uid,
            message.len(),
            self.arrival(),
            header("From"),
            header("Subject"),
            self.message_key()
        )
        .into_bytes()
    }
}

/// The message key a summary points at.
pub fn summary_key(summary: &[u8]) -> Option<&str> {
    let text = std::str::from_utf8(summary).ok()?;
    text.rsplit_once(" key=").map(|(_, key)| key)
}

/// The value of header `name` (the first line only), if the message has it.
fn header_value<'a>(message: &'a [u8], name: &str) -> Option<&'a str> {
    let end = message
        .windows(4)
        .position(|window| window == b"\r\n\r\n")
        .unwrap_or(message.len());
    let headers = std::str::from_utf8(&message[..end]).ok()?;
    headers.split("\r\n").find_map(|line| {
        line.strip_prefix(name)
            .and_then(|rest| rest.strip_prefix(": "))
    })
}

/// Appends about `size` bytes of wrapped text and a final full stop.
fn append_words(text: &mut String, rng: &mut Rng, size: usize) {
    let end = text.len() + size;
    let mut line = 0;
    while text.len() < end {
        let word = rng.pick(&WORDS);
        if line + word.len() + 1 > 72 {
            text.push_str(if rng.below(8) == 0 {
                ".\r\n\r\n"
            } else {
                "\r\n"
            });
            line = 0;
        } else if line > 0 {
            text.push(' ');
            line += 1;
        }
        text.push_str(word);
        line += word.len();
    }
    text.push_str(".\r\n");
}

/// Appends a MIME part of about `size` bytes of base64 (random bytes, as a compressed file
/// would be) and the closing boundary.
fn append_attachment(text: &mut String, rng: &mut Rng, size: usize) {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    text.push_str(
        "--=_bluejet\r\nContent-Type: application/octet-stream; name=\"report.zip\"\r\n\
         Content-Transfer-Encoding: base64\r\n\r\n",
    );
    let end = text.len() + size;
    let mut column = 0;
    while text.len() < end {
        // Ten characters of six bits from each draw; lines of 76, as RFC 2045 asks.
        let bits = rng.next_u64();
        for chunk in 0..10 {
            text.push(ALPHABET[((bits >> (chunk * 6)) & 63) as usize] as char);
            column += 1;
            if column == 76 {
                text.push_str("\r\n");
                column = 0;
            }
        }
    }
    text.push_str("\r\n--=_bluejet--\r\n");
}

fn capitalised(word: &str) -> String {
    let mut characters = word.chars();
    match characters.next() {
        Some(first) => first.to_uppercase().chain(characters).collect(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delivery(mailbox: u32, uid: u32, seed: u64) -> Delivery {
        Delivery { mailbox, uid, seed }
    }

    #[test]
    fn messages_are_deterministic_and_look_like_mail() {
        let delivery = delivery(17, 4, 99);
        let message = delivery.message();
        assert_eq!(message, delivery.message());
        let text = String::from_utf8(message.clone()).unwrap();
        assert!(text.starts_with("Return-Path: <"), "{text}");
        assert!(text.contains("\r\nTo: bob1@example.org\r\n"), "{text}");
        assert!(text.contains("\r\n\r\n"), "{text}");
        assert!(
            (2 << 10..202 << 10).contains(&message.len()),
            "{}",
            message.len()
        );
        assert_eq!(message_key(17, 4), "bob1/00000004");
    }

    #[test]
    fn folder_keys_sort_by_folder_then_arrival() {
        let first = delivery(0, 4, 1);
        let key = first.folder_key();
        assert!(key.starts_with("alice/"), "{key}");
        assert!(key.ends_with("/20260302T082628Z/00000004"), "{key}");
        let folders: std::collections::BTreeSet<&str> =
            (0..200).map(|seed| delivery(0, 1, seed).folder()).collect();
        assert_eq!(folders.len(), FOLDER_NAMES.len());
    }

    #[test]
    fn summaries_describe_their_message() {
        let delivery = delivery(2, 9, 5);
        let message = delivery.message();
        let summary = String::from_utf8(delivery.summary(&message)).unwrap();
        assert!(summary.starts_with("uid=9 size="), "{summary}");
        assert!(summary.contains(" from="), "{summary}");
        assert!(!summary.contains(" from= "), "{summary}");
        assert_eq!(summary_key(summary.as_bytes()), Some("carol/00000009"));
    }

    #[test]
    fn some_messages_carry_attachments() {
        let with = (0..64)
            .map(|seed| delivery(1, 1, seed).message())
            .filter(|message| message.windows(6).any(|window| window == b"base64"))
            .count();
        assert!((2..32).contains(&with), "{with}");
    }

    #[test]
    fn dates_are_rfc_2822() {
        assert_eq!(date(EPOCH_SECONDS), "Mon, 02 Mar 2026 08:00:00 +0000");
        assert_eq!(key_time(EPOCH_SECONDS), "20260302T080000Z");
    }

    #[test]
    fn sizes_stay_in_range() {
        let mut rng = Rng::new(1);
        for _ in 0..1000 {
            assert!((2 << 10..=200 << 10).contains(&body_size(&mut rng)));
        }
    }
}
