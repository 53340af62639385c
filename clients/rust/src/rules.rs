//! Key and prefix rules (docs/protocol.md section 4), checked locally where the
//! hub would not see the input: a subscriber filters by prefix on its own side.

use crate::error::{Error, Result};

/// The longest key, in characters.
pub const MAX_KEY_LENGTH: usize = 256;

/// What a key segment may hold, for messages (NATS KV's token alphabet).
pub const SEGMENT_CHARS_TEXT: &str = "letters, digits, '_', '-', '/' and '='";

/// Whether `c` may appear in a key segment: `A-Z a-z 0-9 _ - / =`.
pub fn is_segment_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '/' | '=')
}

/// A key is 1..256 characters: segments of `A-Z a-z 0-9 _ - / =` joined by `.`.
pub fn check_key(key: &str) -> Result<()> {
    if key.is_empty() {
        return Err(Error::Invalid("invalid key '': a key cannot be empty".into()));
    }
    let length = key.chars().count();
    if length > MAX_KEY_LENGTH {
        let start: String = key.chars().take(40).collect();
        return Err(Error::Invalid(format!(
            "invalid key '{start}...': {length} characters, the limit is {MAX_KEY_LENGTH}"
        )));
    }
    let allowed = |c: char| is_segment_char(c) || c == '.';
    if let Some((position, bad)) = key.chars().enumerate().find(|(_, c)| !allowed(*c)) {
        return Err(Error::Invalid(format!(
            "invalid key '{key}': character '{bad}' at position {position}; \
             allowed are {SEGMENT_CHARS_TEXT}, and '.' between segments"
        )));
    }
    let mut position = 0;
    for segment in key.split('.') {
        if segment.is_empty() {
            return Err(Error::Invalid(format!(
                "invalid key '{key}': empty segment at position {position}"
            )));
        }
        position += segment.len() + 1;
    }
    Ok(())
}

/// A prefix is empty, a key, or a key followed by `.`.
pub fn check_prefix(prefix: &str) -> Result<()> {
    if prefix.is_empty() {
        return Ok(());
    }
    check_key(prefix.strip_suffix('.').unwrap_or(prefix))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys() {
        assert!(check_key("plant.flow-rate").is_ok());
        assert!(check_key("pump.1.speed_max").is_ok());
        assert!(check_key("eds.stiles.FI-405/415").is_ok());
        assert!(check_key("a.b=c").is_ok());
        let err = check_key("plant..rate").unwrap_err();
        assert_eq!(
            err.message(),
            "invalid key 'plant..rate': empty segment at position 6"
        );
        assert!(check_key("").is_err());
        assert!(check_key(".a").is_err());
        assert!(check_key("a.").is_err());
        assert!(check_key("a b")
            .unwrap_err()
            .message()
            .contains("character ' ' at position 1"));
        assert!(check_key(&"k".repeat(257)).is_err());
        assert!(check_key(&"k".repeat(256)).is_ok());
    }

    #[test]
    fn prefixes() {
        assert!(check_prefix("").is_ok());
        assert!(check_prefix("plant.").is_ok());
        assert!(check_prefix("plant").is_ok());
        assert!(check_prefix("plant..").is_err());
        assert!(check_prefix("@hb").is_err());
    }
}
