//! Key and prefix rules (docs/protocol.md section 4), checked locally where the
//! hub would not see the input: a subscriber filters by prefix on its own side.
//! A write's ttl is checked here too, before sending, in the hub's words.

use crate::error::{Error, Result};
use crate::protocol::{OpKind, MAX_TTL_SECONDS};
use crate::schema::python_float;

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

/// A write's `ttl` (seconds) for `key`: only on a set, finite, > 0 and at most
/// [`MAX_TTL_SECONDS`]. The key is checked first, as the hub does, so a bad key is
/// refused for the key. The messages are the hub's (hub/rules.py `check_ttl`), word for word.
pub fn check_ttl(key: &str, ttl: f64, op: OpKind) -> Result<()> {
    check_key(key)?;
    if op == OpKind::Unset {
        return Err(Error::Invalid(format!(
            "a ttl goes with a set, not with the unset of '{key}'"
        )));
    }
    if !ttl.is_finite() || ttl <= 0.0 {
        return Err(Error::Invalid(format!(
            "invalid ttl for '{key}': expected seconds > 0, got {}",
            python_repr(ttl)
        )));
    }
    if ttl > MAX_TTL_SECONDS {
        return Err(Error::Invalid(format!(
            "invalid ttl for '{key}': {} s is more than the limit of {MAX_TTL_SECONDS} s (a year)",
            python_general(ttl)
        )));
    }
    Ok(())
}

/// Python's `repr(float)`: `nan`, `inf` and `-inf` included.
fn python_repr(x: f64) -> String {
    if x.is_nan() {
        "nan".into()
    } else if x.is_infinite() {
        if x > 0.0 { "inf" } else { "-inf" }.into()
    } else {
        python_float(x)
    }
}

/// Python's `format(x, "g")` of a finite float: six significant digits, trailing
/// zeros dropped, an exponent (`1e+09`) below 1e-4 and from 1e6.
pub fn python_general(x: f64) -> String {
    let scientific = format!("{x:.5e}");
    let (mantissa, exponent) = scientific.split_once('e').unwrap_or((&scientific, "0"));
    let exponent: i32 = exponent.parse().unwrap_or(0);
    let trimmed = |text: &str| -> String {
        if text.contains('.') {
            text.trim_end_matches('0').trim_end_matches('.').to_string()
        } else {
            text.to_string()
        }
    };
    if (-4..6).contains(&exponent) {
        let decimals = usize::try_from(5 - exponent).unwrap_or(0);
        trimmed(&format!("{x:.decimals$}"))
    } else {
        let sign = if exponent < 0 { '-' } else { '+' };
        format!("{}e{sign}{:02}", trimmed(mantissa), exponent.abs())
    }
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
    fn ttls_are_refused_in_the_hubs_words() {
        assert!(check_ttl("svc.beat", 30.0, OpKind::Set).is_ok());
        assert!(check_ttl("svc.beat", MAX_TTL_SECONDS, OpKind::Set).is_ok());
        let refusal = |ttl: f64| {
            check_ttl("svc.beat", ttl, OpKind::Set)
                .unwrap_err()
                .message()
                .to_string()
        };
        assert_eq!(
            refusal(0.0),
            "invalid ttl for 'svc.beat': expected seconds > 0, got 0.0"
        );
        assert_eq!(
            refusal(-1.5),
            "invalid ttl for 'svc.beat': expected seconds > 0, got -1.5"
        );
        assert_eq!(
            refusal(f64::NAN),
            "invalid ttl for 'svc.beat': expected seconds > 0, got nan"
        );
        assert_eq!(
            refusal(f64::NEG_INFINITY),
            "invalid ttl for 'svc.beat': expected seconds > 0, got -inf"
        );
        assert_eq!(
            refusal(31_622_401.0),
            "invalid ttl for 'svc.beat': 3.16224e+07 s is more than the limit of 31622400 s (a year)"
        );
        assert_eq!(
            refusal(1e9),
            "invalid ttl for 'svc.beat': 1e+09 s is more than the limit of 31622400 s (a year)"
        );
        assert_eq!(
            check_ttl("svc.beat", 5.0, OpKind::Unset).unwrap_err().message(),
            "a ttl goes with a set, not with the unset of 'svc.beat'"
        );
        assert_eq!(
            check_ttl("svc..beat", 5.0, OpKind::Set).unwrap_err().message(),
            "invalid key 'svc..beat': empty segment at position 4"
        );
    }

    #[test]
    fn general_format_reads_like_pythons() {
        for (x, text) in [
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (1.5, "1.5"),
            (30.0, "30"),
            (123456.0, "123456"),
            (999999.5, "1e+06"),
            (1234567.0, "1.23457e+06"),
            (31_622_401.0, "3.16224e+07"),
            (-2.5e10, "-2.5e+10"),
        ] {
            assert_eq!(python_general(x), text, "{x}");
        }
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
