//! Paths on the wire: relative to the serving node's instance directory, one checked name
//! per component.
//!
//! A path read from the network is untrusted: every component must be a plain file name (no
//! separator, no `.` or `..`, no NUL, at most 255 bytes of UTF-8), and a path has at most
//! [`MAX_COMPONENTS`] of them, so no request can name anything outside the instance.

use std::path::{Component, Path, PathBuf};

/// The most components a path on the wire may have.
pub const MAX_COMPONENTS: usize = 16;

/// The longest component, in bytes.
pub const MAX_NAME_BYTES: usize = 255;

/// A checked relative path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WirePath(Vec<String>);

impl WirePath {
    /// The instance directory itself.
    pub fn root() -> Self {
        Self(Vec::new())
    }

    /// From components, each checked; `Err` names the first bad one.
    pub fn from_components(components: Vec<String>) -> Result<Self, String> {
        if components.len() > MAX_COMPONENTS {
            return Err(format!("a path of {} components", components.len()));
        }
        for name in &components {
            check_name(name)?;
        }
        Ok(Self(components))
    }

    /// `path` below `root`, as a caller of the remote file system names it; `Err` when it is
    /// outside `root` or not a plain path.
    ///
    /// ```
    /// use bluejet_replication::net::path::WirePath;
    /// use std::path::Path;
    /// let root = Path::new("/peer/b");
    /// let path = WirePath::below(root, Path::new("/peer/b/database/E00.log")).unwrap();
    /// assert_eq!(path.components(), ["database", "E00.log"]);
    /// assert!(WirePath::below(root, Path::new("/peer/b/../a")).is_err());
    /// assert!(WirePath::below(root, Path::new("/elsewhere")).is_err());
    /// ```
    pub fn below(root: &Path, path: &Path) -> Result<Self, String> {
        let relative = path
            .strip_prefix(root)
            .map_err(|_| format!("{} is outside {}", path.display(), root.display()))?;
        let mut components = Vec::new();
        for component in relative.components() {
            match component {
                Component::Normal(name) => components.push(
                    name.to_str()
                        .ok_or_else(|| format!("{} is not UTF-8", path.display()))?
                        .to_owned(),
                ),
                Component::CurDir => {}
                _ => return Err(format!("{} is not a plain path", path.display())),
            }
        }
        Self::from_components(components)
    }

    /// The components.
    pub fn components(&self) -> &[String] {
        &self.0
    }

    /// The path under `root` on the serving node's disk.
    pub fn under(&self, root: &Path) -> PathBuf {
        let mut path = root.to_owned();
        for name in &self.0 {
            path.push(name);
        }
        path
    }
}

impl std::fmt::Display for WirePath {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.0.is_empty() {
            return formatter.write_str(".");
        }
        formatter.write_str(&self.0.join("/"))
    }
}

/// A plain file name, or why not.
fn check_name(name: &str) -> Result<(), String> {
    let bad = name.is_empty()
        || name == "."
        || name == ".."
        || name.len() > MAX_NAME_BYTES
        || name.contains(['/', '\\', '\0']);
    if bad {
        return Err(format!("the name {name:?} is not a plain file name"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_could_leave_the_instance_are_refused() {
        for bad in ["", ".", "..", "a/b", "a\\b", "a\0b"] {
            assert!(
                WirePath::from_components(vec![bad.to_owned()]).is_err(),
                "{bad:?}"
            );
        }
        let long = "x".repeat(MAX_NAME_BYTES + 1);
        assert!(WirePath::from_components(vec![long]).is_err());
        let deep = vec!["d".to_owned(); MAX_COMPONENTS + 1];
        assert!(WirePath::from_components(deep).is_err());
    }

    #[test]
    fn a_path_maps_under_the_serving_root() {
        let path = WirePath::from_components(vec!["logs".into(), "E00.log".into()]).unwrap();
        assert_eq!(
            path.under(Path::new("/srv/a")),
            Path::new("/srv/a/logs/E00.log")
        );
        assert_eq!(path.to_string(), "logs/E00.log");
    }
}
