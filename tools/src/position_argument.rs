//! Log positions on the command line (`--from`, `--to`): the notation the tool prints,
//! `(GENERATION,OFFSET)`, and the shorter `GENERATION,OFFSET`, `GENERATION:OFFSET` and
//! `GENERATION` (its start).

use bluejet_engine::LogPosition;

/// Parses a position argument; the error says what was expected.
pub fn parse(text: &str) -> Result<LogPosition, String> {
    let trimmed = text.trim();
    let inner = trimmed
        .strip_prefix('(')
        .and_then(|rest| rest.strip_suffix(')'))
        .unwrap_or(trimmed);
    let (generation, offset) = match inner.split_once([',', ':']) {
        Some((generation, offset)) => (generation, Some(offset)),
        None => (inner, None),
    };
    let number = |field: &str, what: &str| {
        field.trim().parse::<u32>().map_err(|_| {
            format!(
                "{text:?}: {what} is not a number; a position is GENERATION:OFFSET, e.g. 3:4096, \
                 or (3,4096) as the tool prints it, or 3 for the start of generation 3"
            )
        })
    };
    let generation = number(generation, "the generation")?;
    if generation == 0 {
        return Err(format!("{text:?}: generations are numbered from 1"));
    }
    let offset = offset.map_or(Ok(0), |offset| number(offset, "the offset"))?;
    Ok(LogPosition::new(generation, offset))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_notation_parses() {
        let expected = LogPosition::new(3, 4096);
        for text in ["(3,4096)", "3,4096", "3:4096", " 3 : 4096 "] {
            assert_eq!(parse(text), Ok(expected), "{text}");
        }
        assert_eq!(parse("7"), Ok(LogPosition::new(7, 0)));
        assert_eq!(parse(&expected.to_string()), Ok(expected));
    }

    #[test]
    fn nonsense_is_refused() {
        for text in ["", "x", "3:", "3:x", "0:5", "-1:0", "(3,4", "99999999999:0"] {
            assert!(parse(text).is_err(), "{text}");
        }
    }
}
