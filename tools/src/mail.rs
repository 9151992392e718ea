//! A synthetic mail stream for the demo: deterministic RFC 822 messages built from a seed.
//!
//! Everything here is a pure function of its inputs, so a message can be rebuilt exactly
//! from its [`Delivery`] to compare with what the log gives back.

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
        &items[self.below(items.len() as u64) as usize]
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

/// Draws a body size: mostly short mail, some longer, a few large (2 KiB to 60 KiB).
pub fn body_size(rng: &mut Rng) -> usize {
    let class = rng.below(100);
    let (low, high) = match class {
        0..=59 => (2 << 10, 8 << 10),
        60..=89 => (8 << 10, 24 << 10),
        _ => (24 << 10, 60 << 10),
    };
    rng.between(low, high) as usize
}

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

/// The key of a message in table `messages`: `<mailbox>/<uid>`.
pub fn message_key(mailbox: u32, uid: u32) -> String {
    format!("{}/{uid}", mailbox_name(mailbox))
}

/// The key of a message in table `folders`: `<mailbox>/INBOX/<uid>`.
pub fn folder_key(mailbox: u32, uid: u32) -> String {
    format!("{}/INBOX/{uid}", mailbox_name(mailbox))
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

impl Delivery {
    /// The arrival time, seconds since the Unix epoch.
    fn arrival(&self) -> u64 {
        EPOCH_SECONDS + u64::from(self.uid) * 397 + u64::from(self.mailbox) * 61
    }

    /// The full message: headers and a body of words, lines wrapped, CRLF line ends.
    pub fn message(&self) -> Vec<u8> {
        let mut rng = Rng::new(self.seed);
        let first = rng.pick(&FIRST_NAMES);
        let last = rng.pick(&LAST_NAMES);
        let domain = rng.pick(&DOMAINS);
        let subject: Vec<&str> = (0..rng.between(2, 7)).map(|_| *rng.pick(&WORDS)).collect();
        let relay = rng.between(1, 9);
        let address = rng.between(1, 254);
        let size = body_size(&mut rng);
        let when = date(self.arrival());
        let mailbox = mailbox_name(self.mailbox);
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
             Content-Type: text/plain; charset=utf-8\r\n\
             \r\n",
            self.seed,
            capitalised(first),
            capitalised(last),
            capitalised(&subject.join(" ")),
            self.seed,
            self.uid,
        );
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
        text.into_bytes()
    }

    /// The small index entry of table `folders`.
    pub fn index_entry(&self, message_bytes: usize) -> Vec<u8> {
        format!(
            "uid={} size={message_bytes} flags=\\Recent internaldate={} key={}",
            self.uid,
            self.arrival(),
            message_key(self.mailbox, self.uid)
        )
        .into_bytes()
    }
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

    #[test]
    fn messages_are_deterministic_and_look_like_mail() {
        let delivery = Delivery {
            mailbox: 17,
            uid: 4,
            seed: 99,
        };
        let message = delivery.message();
        assert_eq!(message, delivery.message());
        let text = String::from_utf8(message.clone()).unwrap();
        assert!(text.starts_with("Return-Path: <"), "{text}");
        assert!(text.contains("\r\nTo: bob1@example.org\r\n"), "{text}");
        assert!(text.contains("\r\n\r\n"), "{text}");
        assert!(
            (2 << 10..62 << 10).contains(&message.len()),
            "{}",
            message.len()
        );
        assert_eq!(message_key(17, 4), "bob1/4");
        assert_eq!(folder_key(0, 4), "alice/INBOX/4");
    }

    #[test]
    fn dates_are_rfc_2822() {
        assert_eq!(date(EPOCH_SECONDS), "Mon, 02 Mar 2026 08:00:00 +0000");
    }

    #[test]
    fn sizes_stay_in_range() {
        let mut rng = Rng::new(1);
        for _ in 0..1000 {
            assert!((2 << 10..=60 << 10).contains(&body_size(&mut rng)));
        }
    }
}
