//! One schema rule and the values it allows: checking, typed text input, and how
//! values read in messages. The twin of `hub/schema_types.py`: every text made here
//! is built by the same explicit steps, so both languages say the same words.

use std::cmp::Ordering;

use serde::Serialize;
use serde_json::{Number, Value};

use crate::error::{Error, Result};

/// Values in messages are cut to this many characters.
pub const SHOWN_CHARACTERS: usize = 60;

/// A rule's type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RuleType {
    String,
    Integer,
    Number,
    Boolean,
    Enum,
    List,
    Table,
    Any,
}

impl RuleType {
    pub const ALL: [RuleType; 8] = [
        RuleType::String,
        RuleType::Integer,
        RuleType::Number,
        RuleType::Boolean,
        RuleType::Enum,
        RuleType::List,
        RuleType::Table,
        RuleType::Any,
    ];
    /// What a list's items may be.
    pub const ITEMS: [RuleType; 6] = [
        RuleType::String,
        RuleType::Integer,
        RuleType::Number,
        RuleType::Boolean,
        RuleType::Table,
        RuleType::Any,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RuleType::String => "string",
            RuleType::Integer => "integer",
            RuleType::Number => "number",
            RuleType::Boolean => "boolean",
            RuleType::Enum => "enum",
            RuleType::List => "list",
            RuleType::Table => "table",
            RuleType::Any => "any",
        }
    }

    pub fn from_name(name: &str) -> Option<RuleType> {
        RuleType::ALL.into_iter().find(|kind| kind.as_str() == name)
    }

    /// min/max bound the value of a number and the length of a string or a list.
    pub fn is_bounded(self) -> bool {
        matches!(
            self,
            RuleType::String | RuleType::Integer | RuleType::Number | RuleType::List
        )
    }

    fn holds(self, value: &Value) -> bool {
        match self {
            RuleType::String | RuleType::Enum => value.is_string(),
            RuleType::Integer => value.is_i64() || value.is_u64(),
            RuleType::Number => value.is_number(),
            RuleType::Boolean => value.is_boolean(),
            RuleType::List => value.is_array(),
            RuleType::Table => value.is_object(),
            RuleType::Any => true,
        }
    }
}

/// What the schema says about one key or key pattern.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Rule {
    /// The key or pattern, whole (a fragment's prefix included).
    pub name: String,
    #[serde(rename = "type")]
    pub kind: RuleType,
    /// TOML has no null, so a schema never gives null as a default: None is "no default".
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default: Option<Value>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub description: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub unit: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min: Option<Number>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max: Option<Number>,
    /// Enum only.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<String>,
    /// List only: the type of every item.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub items: Option<RuleType>,
    pub secret: bool,
    /// Empty: any source may write.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub writable_by: Vec<String>,
    /// Seconds after its last write the hub removes the key.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ttl: Option<f64>,
    /// The schema key (or file) that defined the rule.
    pub origin: String,
}

impl Rule {
    /// A rule of type any with nothing else: what a plain defaults file gives each key.
    pub fn any(name: String, origin: String) -> Rule {
        Rule {
            name,
            kind: RuleType::Any,
            default: None,
            description: String::new(),
            unit: String::new(),
            min: None,
            max: None,
            values: Vec::new(),
            items: None,
            secret: false,
            writable_by: Vec::new(),
            ttl: None,
            origin,
        }
    }

    /// What the rule allows, as messages say it: `integer 0..500`, `one of "auto", "off"`.
    pub fn allows(&self) -> String {
        let (low, high) = (self.min.as_ref(), self.max.as_ref());
        match self.kind {
            RuleType::Integer | RuleType::Number => {
                format!("{}{}", self.kind.as_str(), range_text(low, high))
            }
            RuleType::String => format!("string{}", length_text(low, high, "character")),
            RuleType::List => {
                let base = match self.items {
                    Some(items) => format!("list of {}", items.as_str()),
                    None => "list".to_string(),
                };
                base + &length_text(low, high, "item")
            }
            RuleType::Enum => {
                let shown: Vec<String> = self
                    .values
                    .iter()
                    .map(|v| show_value(&Value::String(v.clone())))
                    .collect();
                format!("one of {}", shown.join(", "))
            }
            RuleType::Any => "any value".to_string(),
            other => other.as_str().to_string(),
        }
    }

    /// What is wrong with `value`, as the `got ...` part of a message; None when it fits.
    /// With `secret` (or a secret rule) the value itself is never shown, only its kind.
    pub fn problem(&self, value: &Value, secret: bool) -> Option<String> {
        let hide = secret || self.secret;
        let (low, high) = (self.min.as_ref(), self.max.as_ref());
        match self.kind {
            RuleType::Any => None,
            RuleType::String => match value {
                Value::String(text) => length_problem(text.chars().count(), low, high, "character"),
                other => Some(got(other, hide)),
            },
            RuleType::List => match value {
                Value::Array(items) => {
                    if let Some(kind) = self.items {
                        if let Some((index, item)) = items.iter().enumerate().find(|(_, v)| !kind.holds(v)) {
                            return Some(format!("{} at [{index}]", got(item, hide)));
                        }
                    }
                    length_problem(items.len(), low, high, "item")
                }
                other => Some(got(other, hide)),
            },
            kind => {
                let fits = kind.holds(value)
                    && match (kind, value) {
                        (RuleType::Enum, Value::String(text)) => self.values.contains(text),
                        (RuleType::Integer | RuleType::Number, Value::Number(n)) => within(n, low, high),
                        _ => true,
                    };
                (!fits).then(|| got(value, hide))
            }
        }
    }

    /// Err(Invalid) in the shape every front end shows, when `value` does not fit.
    pub fn check_value(&self, key: &str, value: &Value, secret: bool) -> Result<()> {
        match self.problem(value, secret) {
            Some(problem) => Err(Error::Invalid(value_message(key, self, &problem))),
            None => Ok(()),
        }
    }

    /// A value typed by a person, read by this rule's type, then checked against the rule.
    pub fn parse_text(&self, key: &str, text: &str) -> Result<Value> {
        match typed_value(self, text) {
            Some(value) => {
                self.check_value(key, &value, false)?;
                Ok(value)
            }
            None => Err(Error::Invalid(value_message(
                key,
                self,
                &got(&Value::String(text.to_string()), self.secret),
            ))),
        }
    }
}

pub fn value_message(key: &str, rule: &Rule, problem: &str) -> String {
    format!(
        "invalid value for '{key}': expected {} (schema: {}), {problem}",
        rule.allows(),
        rule.name
    )
}

/// A value typed for a key of no type: JSON when it parses as JSON, else the text itself.
pub fn parse_untyped_text(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_string()))
}

fn typed_value(rule: &Rule, text: &str) -> Option<Value> {
    let word = text.trim_matches(|c| matches!(c, ' ' | '\t' | '\r' | '\n' | '\x0b' | '\x0c'));
    match rule.kind {
        RuleType::String => Some(Value::String(text.to_string())),
        RuleType::Any => Some(parse_untyped_text(text)),
        RuleType::Integer => integer(word),
        RuleType::Number => {
            // Digits alone stay an integer (30, not 30.0) when 64 bits hold them.
            if let Some(number) = integer(word) {
                return Some(number);
            }
            if !is_number_text(word) {
                return None;
            }
            // from_f64 refuses infinity: "1e999" is not a number a value can hold.
            Number::from_f64(word.parse().ok()?).map(Value::Number)
        }
        RuleType::Boolean => match word.to_ascii_lowercase().as_str() {
            "true" | "yes" | "on" | "1" => Some(Value::Bool(true)),
            "false" | "no" | "off" | "0" => Some(Value::Bool(false)),
            _ => None,
        },
        RuleType::Enum => rule
            .values
            .iter()
            .any(|v| v == word)
            .then(|| Value::String(word.to_string())),
        RuleType::List | RuleType::Table => Some(parse_untyped_text(word)).filter(|v| rule.kind.holds(v)),
    }
}

/// `[+-]?[0-9]+` within the protocol's 64 bits (-2^63 .. 2^64-1).
fn integer(word: &str) -> Option<Value> {
    if !is_integer_text(word) {
        return None;
    }
    let number: i128 = word.parse().ok()?;
    if let Ok(small) = i64::try_from(number) {
        Some(Value::from(small))
    } else {
        u64::try_from(number).ok().map(Value::from)
    }
}

fn is_integer_text(word: &str) -> bool {
    let digits = word.strip_prefix(['+', '-']).unwrap_or(word);
    !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
}

/// `[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?`
fn is_number_text(word: &str) -> bool {
    let body = word.strip_prefix(['+', '-']).unwrap_or(word);
    let (mantissa, exponent) = match body.find(['e', 'E']) {
        Some(at) => (&body[..at], Some(&body[at + 1..])),
        None => (body, None),
    };
    let (whole, fraction) = match mantissa.split_once('.') {
        Some((whole, fraction)) => (whole, Some(fraction)),
        None => (mantissa, None),
    };
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    let mantissa_ok = match fraction {
        None => !whole.is_empty() && digits(whole),
        Some(fraction) => digits(whole) && digits(fraction) && (!whole.is_empty() || !fraction.is_empty()),
    };
    mantissa_ok && exponent.is_none_or(is_integer_text)
}

/// Compare two JSON numbers: exactly as integers when both are, else as floats.
pub fn compare_numbers(a: &Number, b: &Number) -> Ordering {
    match (as_integer(a), as_integer(b)) {
        (Some(x), Some(y)) => x.cmp(&y),
        _ => {
            let (x, y) = (a.as_f64().unwrap_or(f64::NAN), b.as_f64().unwrap_or(f64::NAN));
            x.partial_cmp(&y).unwrap_or(Ordering::Equal)
        }
    }
}

fn as_integer(n: &Number) -> Option<i128> {
    n.as_i64().map(i128::from).or_else(|| n.as_u64().map(i128::from))
}

fn within(value: &Number, low: Option<&Number>, high: Option<&Number>) -> bool {
    low.is_none_or(|low| compare_numbers(value, low) != Ordering::Less)
        && high.is_none_or(|high| compare_numbers(value, high) != Ordering::Greater)
}

fn range_text(low: Option<&Number>, high: Option<&Number>) -> String {
    match (low, high) {
        (Some(low), Some(high)) => format!(" {}..{}", show_number(low), show_number(high)),
        (Some(low), None) => format!(" >= {}", show_number(low)),
        (None, Some(high)) => format!(" <= {}", show_number(high)),
        (None, None) => String::new(),
    }
}

fn length_text(low: Option<&Number>, high: Option<&Number>, unit: &str) -> String {
    match (low, high) {
        (Some(low), Some(high)) => format!(" with {}..{} {unit}s", show_number(low), show_number(high)),
        (Some(low), None) => format!(" with at least {}", count(low, unit)),
        (None, Some(high)) => format!(" with at most {}", count(high, unit)),
        (None, None) => String::new(),
    }
}

fn length_problem(length: usize, low: Option<&Number>, high: Option<&Number>, unit: &str) -> Option<String> {
    let length = Number::from(length as u64);
    (!within(&length, low, high)).then(|| format!("got {}", count(&length, unit)))
}

fn count(number: &Number, unit: &str) -> String {
    let plural = if number.as_u64() == Some(1) { "" } else { "s" };
    format!("{} {unit}{plural}", show_number(number))
}

fn got(value: &Value, hide: bool) -> String {
    if hide {
        format!("got {}", kind_name(value))
    } else {
        format!("got {}", show_value(value))
    }
}

/// A value's kind with its article, for messages that must not show a secret.
pub fn kind_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(n) if n.is_f64() => "a number",
        Value::Number(_) => "an integer",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a table",
    }
}

/// `value` as JSON with `, ` and `: ` separators, cut to `limit` characters with `...`.
pub fn show_value_within(value: &Value, limit: usize) -> String {
    let mut text = String::new();
    render(value, &mut text, limit as i64 + 1);
    if text.chars().count() <= limit {
        return text;
    }
    let mut cut: String = text.chars().take(limit.saturating_sub(3)).collect();
    cut.push_str("...");
    cut
}

pub fn show_value(value: &Value) -> String {
    show_value_within(value, SHOWN_CHARACTERS)
}

/// Append `value`'s text to `out`; stop early once `budget` characters are spent.
fn render(value: &Value, out: &mut String, mut budget: i64) -> i64 {
    match value {
        Value::Array(items) => {
            push(out, "[", &mut budget);
            for (index, item) in items.iter().enumerate() {
                if budget <= 0 {
                    return budget;
                }
                if index > 0 {
                    push(out, ", ", &mut budget);
                }
                budget = render(item, out, budget);
            }
            push(out, "]", &mut budget);
            budget
        }
        Value::Object(map) => {
            push(out, "{", &mut budget);
            for (index, (name, item)) in map.iter().enumerate() {
                if budget <= 0 {
                    return budget;
                }
                if index > 0 {
                    push(out, ", ", &mut budget);
                }
                push(out, &(json_string(name) + ": "), &mut budget);
                budget = render(item, out, budget);
            }
            push(out, "}", &mut budget);
            budget
        }
        Value::String(text) => {
            // A long string is cut before it is escaped: a message never pays for a megabyte value.
            let head: String = text.chars().take(budget.max(0) as usize).collect();
            push(out, &json_string(&head), &mut budget);
            budget
        }
        Value::Number(n) => {
            push(out, &show_number(n), &mut budget);
            budget
        }
        Value::Bool(b) => {
            push(out, if *b { "true" } else { "false" }, &mut budget);
            budget
        }
        Value::Null => {
            push(out, "null", &mut budget);
            budget
        }
    }
}

fn push(out: &mut String, text: &str, budget: &mut i64) {
    out.push_str(text);
    *budget -= text.chars().count() as i64;
}

pub fn json_string(text: &str) -> String {
    serde_json::to_string(text).unwrap_or_default()
}

/// Integers as digits; floats as Python's repr (shortest round trip, exponent below
/// 1e-4 and from 1e16), so messages match the Python hub's word for word.
pub fn show_number(number: &Number) -> String {
    match number.as_f64() {
        Some(x) if number.is_f64() => python_float(x),
        _ => number.to_string(),
    }
}

/// Python's `repr(float)`, rebuilt from Rust's shortest digits (`{:e}`).
pub fn python_float(x: f64) -> String {
    if !x.is_finite() {
        return "null".into();
    }
    let scientific = format!("{x:e}");
    let (mantissa, exponent) = scientific.split_once('e').unwrap_or((&scientific, "0"));
    let exponent: i32 = exponent.parse().unwrap_or(0);
    let (sign, mantissa) = match mantissa.strip_prefix('-') {
        Some(rest) => ("-", rest),
        None => ("", mantissa),
    };
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    if (-4..16).contains(&exponent) {
        if exponent >= 0 {
            let whole = exponent as usize + 1;
            if digits.len() <= whole {
                format!("{sign}{digits}{}.0", "0".repeat(whole - digits.len()))
            } else {
                format!("{sign}{}.{}", &digits[..whole], &digits[whole..])
            }
        } else {
            format!("{sign}0.{}{digits}", "0".repeat((-exponent - 1) as usize))
        }
    } else {
        let head = if digits.len() > 1 {
            format!("{}.{}", &digits[..1], &digits[1..])
        } else {
            digits.clone()
        };
        let exponent_sign = if exponent < 0 { '-' } else { '+' };
        format!("{sign}{head}e{exponent_sign}{:02}", exponent.abs())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn floats_read_as_python_writes_them() {
        let cases = [
            (0.1, "0.1"),
            (1e20, "1e+20"),
            (1e-7, "1e-07"),
            (1.5, "1.5"),
            (100.0, "100.0"),
            (1e16, "1e+16"),
            (1e15, "1000000000000000.0"),
            (123456.789, "123456.789"),
            (-0.0, "-0.0"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (-2.5e-300, "-2.5e-300"),
            (1.7976931348623157e308, "1.7976931348623157e+308"),
        ];
        for (x, text) in cases {
            assert_eq!(python_float(x), text, "{x}");
        }
    }

    #[test]
    fn long_values_are_cut() {
        let long = json!(["x".repeat(100)]);
        let shown = show_value(&long);
        assert_eq!(shown.chars().count(), SHOWN_CHARACTERS);
        assert!(shown.starts_with("[\"xxx") && shown.ends_with("..."));
        assert_eq!(
            show_value(&json!({"a": [1, 2.0, null]})),
            "{\"a\": [1, 2.0, null]}"
        );
    }

    #[test]
    fn number_texts() {
        for good in ["1", "+1", "-1.5", ".5", "5.", "1e3", "1.5E-3"] {
            assert!(is_number_text(good), "{good}");
        }
        for bad in ["", ".", "e3", "1e", "1.5.5", "0x10", "1_000", "inf", "nan", "- 1"] {
            assert!(!is_number_text(bad), "{bad}");
        }
    }
}
