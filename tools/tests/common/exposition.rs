//! A strict reader of the Prometheus / OpenMetrics text format, for tests: every line must be
//! a `# HELP`, `# TYPE` or `# UNIT` comment, the closing `# EOF`, or a sample
//! `name{label="value",...} value` of the family the comments before it named. Anything
//! else panics naming the line.

use std::collections::BTreeMap;

/// One sample line.
#[derive(Clone, Debug)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// A metric family: its comments and samples.
#[derive(Clone, Debug, Default)]
pub struct Family {
    pub name: String,
    pub kind: String,
    pub help: String,
    pub samples: Vec<Sample>,
}

impl Family {
    /// The samples named `name`.
    pub fn named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Sample> + 'a {
        self.samples
            .iter()
            .filter(move |sample| sample.name == name)
    }
}

/// The suffixes a sample's name may add to its family's.
const SUFFIXES: [&str; 7] = [
    "", "_total", "_created", "_bucket", "_count", "_sum", "_info",
];
const KINDS: [&str; 8] = [
    "counter",
    "gauge",
    "histogram",
    "gaugehistogram",
    "summary",
    "info",
    "stateset",
    "unknown",
];

/// Parses every line of `text` into families by name.
pub fn parse(text: &str) -> BTreeMap<String, Family> {
    let mut families: BTreeMap<String, Family> = BTreeMap::new();
    let mut current: Option<String> = None;
    let lines: Vec<&str> = text.lines().collect();
    for (index, line) in lines.iter().enumerate() {
        let number = index + 1;
        let fail = |why: &str| -> ! { panic!("line {number} {why}: {line:?}\n{text}") };
        if *line == "# EOF" {
            if number != lines.len() {
                fail("is # EOF before the end");
            }
            continue;
        }
        if let Some(comment) = line.strip_prefix("# ") {
            let mut words = comment.splitn(3, ' ');
            let (keyword, name) = (words.next().unwrap_or_default(), words.next());
            let name = name
                .filter(|name| is_metric_name(name))
                .unwrap_or_else(|| fail("names no metric"));
            let rest = words.next().unwrap_or_default();
            let family = families.entry(name.to_owned()).or_insert_with(|| Family {
                name: name.to_owned(),
                ..Family::default()
            });
            match keyword {
                "HELP" => family.help = rest.to_owned(),
                "TYPE" if KINDS.contains(&rest) => family.kind = rest.to_owned(),
                "UNIT" => {}
                _ => fail("is not a HELP, TYPE or UNIT comment"),
            }
            current = Some(name.to_owned());
            continue;
        }
        let sample = parse_sample(line).unwrap_or_else(|why| fail(&why));
        let family_name = current
            .as_deref()
            .unwrap_or_else(|| fail("is a sample before any family"));
        let belongs = SUFFIXES
            .iter()
            .any(|suffix| sample.name == format!("{family_name}{suffix}"));
        if !belongs {
            fail(&format!("is a sample outside its family {family_name}"));
        }
        families
            .get_mut(family_name)
            .expect("named by a comment")
            .samples
            .push(sample);
    }
    for family in families.values() {
        assert!(
            !family.kind.is_empty(),
            "family {} has no # TYPE",
            family.name
        );
        assert!(
            !family.help.is_empty(),
            "family {} has no # HELP",
            family.name
        );
    }
    families
}

fn is_metric_name(name: &str) -> bool {
    let mut characters = name.chars();
    characters
        .next()
        .is_some_and(|first| first.is_ascii_alphabetic() || first == '_' || first == ':')
        && characters.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// `name{labels} value [timestamp]`.
fn parse_sample(line: &str) -> Result<Sample, String> {
    let name_end = line.find(['{', ' ']).ok_or("has no value")?;
    let name = &line[..name_end];
    if !is_metric_name(name) {
        return Err(format!("has a bad metric name {name:?}"));
    }
    let (labels, rest) = if line[name_end..].starts_with('{') {
        parse_labels(&line[name_end + 1..])?
    } else {
        (BTreeMap::new(), &line[name_end..])
    };
    let mut fields = rest
        .strip_prefix(' ')
        .ok_or("has no space before its value")?
        .split(' ');
    let value = parse_value(fields.next().unwrap_or_default())?;
    if let Some(timestamp) = fields.next() {
        timestamp
            .parse::<f64>()
            .map_err(|_| "has a bad timestamp")?;
    }
    if fields.next().is_some() {
        return Err("has more than a value and a timestamp".into());
    }
    Ok(Sample {
        name: name.to_owned(),
        labels,
        value,
    })
}

/// Labels up to the closing brace; returns them and what follows it.
fn parse_labels(mut text: &str) -> Result<(BTreeMap<String, String>, &str), String> {
    let mut labels = BTreeMap::new();
    loop {
        if let Some(rest) = text.strip_prefix('}') {
            return Ok((labels, rest));
        }
        let equals = text.find('=').ok_or("has a label without =")?;
        let name = &text[..equals];
        let valid = name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            return Err(format!("has a bad label name {name:?}"));
        }
        let mut value = String::new();
        let mut characters = text[equals + 1..]
            .strip_prefix('"')
            .ok_or("has an unquoted label value")?
            .char_indices();
        let end = loop {
            match characters.next().ok_or("has an unclosed label value")? {
                (at, '"') => break at,
                (_, '\\') => match characters.next().ok_or("ends in an escape")?.1 {
                    'n' => value.push('\n'),
                    escaped @ ('\\' | '"') => value.push(escaped),
                    other => return Err(format!("has a bad escape \\{other}")),
                },
                (_, other) => value.push(other),
            }
        };
        if labels.insert(name.to_owned(), value).is_some() {
            return Err(format!("repeats label {name}"));
        }
        text = &text[equals + 1 + 1 + end + 1..];
        text = text.strip_prefix(',').unwrap_or(text);
    }
}

fn parse_value(text: &str) -> Result<f64, String> {
    match text {
        "+Inf" => Ok(f64::INFINITY),
        "-Inf" => Ok(f64::NEG_INFINITY),
        "NaN" => Ok(f64::NAN),
        _ => text
            .parse()
            .map_err(|_| format!("has a bad value {text:?}")),
    }
}
