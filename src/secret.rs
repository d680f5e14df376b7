//! Secrets (passwords, tokens) and the text that stands in for them wherever a value is
//! shown. A module of its own so that every layer (config, the wire client, the exporters)
//! can use it without importing another layer.

use std::fmt;

/// What replaces a secret value wherever a config, a request or a key is shown.
pub const REDACTED: &str = "***redacted***";

/// A secret string (password, token). `Debug` shows it redacted; there is no `Display`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }
    /// The secret itself, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_value() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s:?}"), REDACTED);
        assert_eq!(format!("{:?}", Some(&s)), format!("Some({REDACTED})"));
        assert_eq!(s.expose(), "hunter2");
    }
}
