//! Configuration errors: the file, the line and column, and a plain sentence.

use std::fmt;
use std::path::{Path, PathBuf};

/// A configuration file that cannot be used, and where the problem is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The file.
    pub file: PathBuf,
    /// 1-based line; 0 when the problem is not at one place (e.g. the file cannot be read).
    pub line: usize,
    /// 1-based column.
    pub column: usize,
    /// What is wrong, as a sentence.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}", self.file.display(), self.message)
        } else {
            write!(
                f,
                "{}:{}:{}: {}",
                self.file.display(),
                self.line,
                self.column,
                self.message
            )
        }
    }
}

impl std::error::Error for ConfigError {}

/// Turns byte offsets into line/column positions of one source text.
pub(crate) struct Source<'a> {
    pub file: &'a Path,
    pub text: &'a str,
}

impl Source<'_> {
    pub(crate) fn error_at(&self, offset: usize, message: impl Into<String>) -> ConfigError {
        let (line, column) = self.position(offset);
        ConfigError {
            file: self.file.to_path_buf(),
            line,
            column,
            message: message.into(),
        }
    }

    pub(crate) fn error(&self, message: impl Into<String>) -> ConfigError {
        ConfigError {
            file: self.file.to_path_buf(),
            line: 0,
            column: 0,
            message: message.into(),
        }
    }

    /// The byte offset of a 1-based line and column.
    pub(crate) fn offset_of(&self, line: usize, column: usize) -> Option<usize> {
        let line_start = if line == 1 {
            0
        } else {
            self.text.match_indices('\n').nth(line - 2)?.0 + 1
        };
        let in_line = self.text[line_start..]
            .char_indices()
            .nth(column - 1)
            .map_or(self.text.len() - line_start, |(i, _)| i);
        Some(line_start + in_line)
    }

    fn position(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        let before = self.text.get(..offset).unwrap_or(self.text);
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let column = before[line_start..].chars().count() + 1;
        (line, column)
    }
}
