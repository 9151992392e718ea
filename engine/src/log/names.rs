//! File names of a log stream: `E00.log`, `E0000000001.log`, `E00tmp.log`, `E00.chk`.

use crate::error::LogError;

/// The 3-character base name of a log stream (`E00`, `E01`, ...).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct BaseName([u8; 3]);

/// What a file name in a log directory denotes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFileName {
    /// `E00.log`: the generation being written.
    Current,
    /// `E00tmp.log`: the next generation, prepared ahead.
    Prepared,
    /// `E00.chk`: the checkpoint.
    Checkpoint,
    /// `E0000000001.log`: a closed generation.
    Closed(u32),
}

impl BaseName {
    /// Parses a base name: exactly three ASCII letters or digits.
    ///
    /// ```
    /// use bluejet_engine::BaseName;
    /// assert!(BaseName::new("E01").is_ok());
    /// assert!(BaseName::new("E0").is_err());
    /// ```
    pub fn new(text: &str) -> Result<Self, LogError> {
        let bytes = text.as_bytes();
        let valid = bytes.len() == 3 && bytes.iter().all(u8::is_ascii_alphanumeric);
        if !valid {
            return Err(LogError::InvalidConfig(format!(
                "base name {text:?} must be 3 ASCII letters or digits"
            )));
        }
        Ok(Self([bytes[0], bytes[1], bytes[2]]))
    }

    /// The raw bytes, as stored in generation headers.
    pub fn bytes(self) -> [u8; 3] {
        self.0
    }

    /// The base name as text.
    pub fn as_str(&self) -> &str {
        // The constructor admits ASCII only.
        std::str::from_utf8(&self.0).unwrap_or("???")
    }

    /// `E00.log`.
    pub fn current(self) -> String {
        format!("{}.log", self.as_str())
    }

    /// `E00tmp.log`.
    pub fn prepared(self) -> String {
        format!("{}tmp.log", self.as_str())
    }

    /// `E00.chk`.
    pub fn checkpoint(self) -> String {
        format!("{}.chk", self.as_str())
    }

    /// `E00` + generation in 8 upper-case hex digits + `.log`.
    pub fn closed(self, generation: u32) -> String {
        format!("{}{generation:08X}.log", self.as_str())
    }

    /// Classifies a file name of this stream; `None` for anything else.
    ///
    /// ```
    /// use bluejet_engine::log::{BaseName, LogFileName};
    /// let base = BaseName::new("E00").unwrap();
    /// assert_eq!(base.classify("E000000000A.log"), Some(LogFileName::Closed(10)));
    /// assert_eq!(base.classify("E00.log"), Some(LogFileName::Current));
    /// assert_eq!(base.classify("E01.log"), None);
    /// ```
    pub fn classify(self, name: &str) -> Option<LogFileName> {
        let rest = name.strip_prefix(self.as_str())?;
        match rest {
            ".log" => return Some(LogFileName::Current),
            "tmp.log" => return Some(LogFileName::Prepared),
            ".chk" => return Some(LogFileName::Checkpoint),
            _ => {}
        }
        let digits = rest.strip_suffix(".log")?;
        let hex = digits.len() == 8 && digits.bytes().all(|b| b.is_ascii_hexdigit());
        if !hex {
            return None;
        }
        u32::from_str_radix(digits, 16)
            .ok()
            .map(LogFileName::Closed)
    }
}

impl Default for BaseName {
    fn default() -> Self {
        Self(*b"E00")
    }
}
