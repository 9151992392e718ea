//! File names read from files, checked before any is used.
//!
//! A backup manifest lists the files of its backup by name, and a replica's identity gives
//! the base name every generation name is built from. Such a file can be damaged or forged
//! and resealed, so a name read from it is accepted only if its format allows it: one plain
//! name (no separator, no `.` or `..`, not absolute, no NUL), and then exactly the names the
//! format can hold (`bluejet.db`, or the name of the generation it is listed for,
//! `E00` + 8 upper-case hex digits + `.log`). The check happens when the file is decoded,
//! and again where a name becomes a path to write ([`path_in`]), so no name read from disk
//! can make BlueJet write outside the directory it means.

use bluejet_engine::BaseName;
use bluejet_engine::DATABASE_FILE_NAME;
use std::path::{Component, Path, PathBuf};

/// A file name read from a file (or about to be written) that its format does not allow.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{holder}: file name {name:?} refused: {reason}")]
pub struct BadFileName {
    /// The file that holds the name; at a write site, the directory it was to be written
    /// into.
    pub holder: PathBuf,
    /// The name as found.
    pub name: String,
    /// Why it is refused.
    pub reason: String,
}

impl BadFileName {
    fn new(holder: &Path, name: &str, reason: impl Into<String>) -> Self {
        Self {
            holder: holder.to_owned(),
            name: name.to_owned(),
            reason: reason.into(),
        }
    }
}

/// Why `name` is not one plain file name, or `None` if it is.
fn plain_name_problem(name: &str) -> Option<&'static str> {
    if name.is_empty() {
        return Some("empty");
    }
    if name.contains('\0') {
        return Some("contains a NUL byte");
    }
    let path = Path::new(name);
    if path.is_absolute() {
        return Some("an absolute path");
    }
    if path.components().any(|c| c == Component::ParentDir) {
        return Some("climbs out of its directory (..)");
    }
    if name.contains('/') || name.contains('\\') {
        return Some("contains a path separator");
    }
    if name == "." {
        return Some("names the directory itself (.)");
    }
    None
}

/// `name`, read from `holder`, is one plain file name.
pub fn check_plain(holder: &Path, name: &str) -> Result<(), BadFileName> {
    match plain_name_problem(name) {
        Some(reason) => Err(BadFileName::new(holder, name, reason)),
        None => Ok(()),
    }
}

/// `name`, read from `holder`, is the database file's name (`bluejet.db`).
pub fn check_database_name(holder: &Path, name: &str) -> Result<(), BadFileName> {
    check_plain(holder, name)?;
    if name != DATABASE_FILE_NAME {
        return Err(BadFileName::new(
            holder,
            name,
            format!("the database file is named {DATABASE_FILE_NAME}"),
        ));
    }
    Ok(())
}

/// `name`, read from `holder`, is the name of closed generation `generation` of the
/// stream `base` (`E0000000007.log`).
pub fn check_generation_name(
    holder: &Path,
    name: &str,
    base: BaseName,
    generation: u32,
) -> Result<(), BadFileName> {
    check_plain(holder, name)?;
    let expected = base.closed(generation);
    if name != expected {
        return Err(BadFileName::new(
            holder,
            name,
            format!("generation {generation} is named {expected}"),
        ));
    }
    Ok(())
}

/// The base name (`E00`) read from `holder`: three ASCII letters or digits.
pub fn check_base_name(holder: &Path, text: &str) -> Result<BaseName, BadFileName> {
    BaseName::new(text)
        .map_err(|_| BadFileName::new(holder, text, "a base name is 3 ASCII letters or digits"))
}

/// The path of `name` inside `directory`, refused unless it is one plain name that stays
/// in `directory`: the guard where a name becomes a file to write.
pub fn path_in(directory: &Path, name: &str) -> Result<PathBuf, BadFileName> {
    check_plain(directory, name)?;
    let path = directory.join(name);
    if path.parent() != Some(directory) {
        return Err(BadFileName::new(
            directory,
            name,
            "would be written outside the directory",
        ));
    }
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_names_pass() {
        let holder = Path::new("/backup/backup.json");
        for name in ["bluejet.db", "E0000000007.log", "a..b", "..."] {
            assert_eq!(check_plain(holder, name), Ok(()), "{name}");
        }
        for (name, reason) in [
            ("", "empty"),
            ("a\0b", "NUL"),
            ("/etc/passwd", "absolute"),
            ("../../escape/E000000003B.log", ".."),
            ("..", ".."),
            ("sub/E0000000001.log", "separator"),
            ("sub\\x", "separator"),
            (".", "directory itself"),
        ] {
            let error = check_plain(holder, name).unwrap_err();
            assert!(error.reason.contains(reason), "{name:?}: {error}");
            assert_eq!(error.holder, holder);
            assert_eq!(error.name, name);
        }
    }

    #[test]
    fn a_generation_must_carry_its_own_name() {
        let holder = Path::new("backup.json");
        let base = BaseName::default();
        assert_eq!(
            check_generation_name(holder, "E000000003B.log", base, 0x3b),
            Ok(())
        );
        for name in ["E000000003b.log", "E000000003C.log", "E01000003B.log"] {
            assert!(check_generation_name(holder, name, base, 0x3b).is_err());
        }
        assert!(check_database_name(holder, "bluejet.db").is_ok());
        assert!(check_database_name(holder, "other.db").is_err());
        assert!(check_base_name(holder, "../").is_err());
        assert!(check_base_name(holder, "E00").is_ok());
    }

    #[test]
    fn a_path_to_write_stays_in_its_directory() {
        let directory = Path::new("/restore/target");
        assert_eq!(
            path_in(directory, "bluejet.db").unwrap(),
            directory.join("bluejet.db")
        );
        for name in ["/abs.log", "../x.log", "a/b.log", ""] {
            let error = path_in(directory, name).unwrap_err();
            assert_eq!(error.holder, directory, "{name}");
        }
    }
}
