//! Reading schema texts: one TOML file into rules, then the files together into one
//! rule set. The twin of `hub/schema_load.py`: the same checks in the same order
//! (tables in sorted order), so the first error is the same error in both languages.

use std::collections::BTreeMap;

use serde_json::{Map, Number, Value};
use toml::value::Table;

use super::rule::{compare_numbers, json_string, show_value, Rule, RuleType};
use crate::error::{Error, Result};
use crate::rules::{self, check_key, MAX_KEY_LENGTH};

/// Where the main schema is stored; fragments live at `statehub.schema.PREFIX`.
pub const SCHEMA_KEY: &str = "statehub.schema";
/// The start of every fragment's key.
pub const FRAGMENT_KEY_PREFIX: &str = "statehub.schema.";
/// The schema format this crate reads.
pub const FORMAT: i64 = 1;
const RULE_FIELDS: [&str; 12] = [
    "type",
    "default",
    "description",
    "unit",
    "min",
    "max",
    "values",
    "items",
    "secret",
    "writable_by",
    "readonly_for",
    "ttl",
];
/// The writers field and its synonym (the spelling, which reads backwards).
const WRITER_FIELDS: [&str; 2] = ["writable_by", "readonly_for"];
const SCHEMA_FIELDS: [&str; 3] = ["format", "prefix", "description"];
const MAX_NAME_LENGTH: usize = 64;

/// What the hub does with a key no rule names, per prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Policy {
    Allow,
    Warn,
    Refuse,
}

impl Policy {
    fn from_name(name: &str) -> Option<Policy> {
        match name {
            "allow" => Some(Policy::Allow),
            "warn" => Some(Policy::Warn),
            "refuse" => Some(Policy::Refuse),
            _ => None,
        }
    }
}

/// One schema text, read: the main schema or a fragment owning `prefix`.
#[derive(Debug, Clone, PartialEq)]
pub struct SchemaFile {
    /// `statehub.schema`, or `statehub.schema.PREFIX` for a fragment.
    pub key: String,
    /// What messages call it: the key, or the file it was read from.
    pub origin: String,
    /// "" for the main schema; "pump." for `statehub.schema.pump`.
    pub prefix: String,
    pub text: String,
    /// False: a plain defaults file (no `[schema]` table), every key of type any.
    pub typed: bool,
    pub description: String,
    /// Sorted by name.
    pub rules: Vec<Rule>,
    /// Whole prefixes, sorted.
    pub policies: BTreeMap<String, Policy>,
    /// `[writers]`: whole prefix -> the sources that alone may write under it.
    pub writers: BTreeMap<String, Vec<String>>,
}

fn fail(origin: &str, place: &str, problem: &str) -> Error {
    Error::Invalid(format!("{origin}: {place}: {problem}"))
}

/// Where the fragment owning `prefix` (`pump.`) is stored: `statehub.schema.pump`.
pub fn fragment_key(prefix: &str) -> String {
    format!(
        "{FRAGMENT_KEY_PREFIX}{}",
        prefix.strip_suffix('.').unwrap_or(prefix)
    )
}

pub fn is_schema_key(key: &str) -> bool {
    key == SCHEMA_KEY || key.starts_with(FRAGMENT_KEY_PREFIX)
}

/// Read one schema text stored (or to be stored) at `key`.
pub fn parse_schema(text: &str, key: &str, origin: Option<&str>) -> Result<SchemaFile> {
    let origin = origin.unwrap_or(key);
    let prefix = key_prefix(key, origin)?;
    let document = match text.parse::<toml::Value>() {
        Ok(toml::Value::Table(table)) => table,
        Ok(_) => return Err(Error::Invalid(format!("{origin}: invalid TOML: not a table"))),
        Err(err) => return Err(toml_error(origin, &err)),
    };
    let mut file = SchemaFile {
        key: key.to_string(),
        origin: origin.to_string(),
        prefix: prefix.clone(),
        text: text.to_string(),
        typed: false,
        description: String::new(),
        rules: Vec::new(),
        policies: BTreeMap::new(),
        writers: BTreeMap::new(),
    };
    let Some(header) = document.get("schema") else {
        let mut rules = Vec::new();
        flatten_defaults(&document, "", &file, &mut rules)?;
        rules.sort_by(|a, b| a.name.cmp(&b.name));
        file.rules = rules;
        return Ok(file);
    };
    if let Some(name) = document
        .keys()
        .find(|name| !["schema", "unknown", "writers", "keys"].contains(&name.as_str()))
    {
        return Err(fail(
            origin,
            &format!("top-level entry {}", json_string(name)),
            "unknown; a schema file holds only [schema], [unknown], [writers] and [keys.\"KEY\"] tables",
        ));
    }
    file.typed = true;
    file.description = header_description(header, &prefix, key, origin)?;
    let empty = toml::Value::Table(Table::new());
    file.policies = policies(document.get("unknown").unwrap_or(&empty), &prefix, origin)?;
    file.writers = prefix_writers(document.get("writers").unwrap_or(&empty), &prefix, origin)?;
    let toml::Value::Table(keys) = document.get("keys").unwrap_or(&empty) else {
        return Err(fail(
            origin,
            "[keys]",
            "must be a table of rules, like [keys.\"plant.rate\"]",
        ));
    };
    for (name, fields) in keys {
        file.rules.push(rule(name, fields, &prefix, key, origin)?);
    }
    Ok(file)
}

fn toml_error(origin: &str, err: &toml::de::Error) -> Error {
    let text = err.to_string();
    // toml says "... at line 3 column 5"; the line is what both languages agree on.
    let detail = match text.rfind(" at line ") {
        Some(at) => &text[..at],
        None => &text,
    };
    match err.line_col() {
        Some((line, _)) => Error::Invalid(format!("{origin}: invalid TOML at line {}: {detail}", line + 1)),
        None => Error::Invalid(format!("{origin}: invalid TOML: {detail}")),
    }
}

fn key_prefix(key: &str, origin: &str) -> Result<String> {
    if key == SCHEMA_KEY {
        return Ok(String::new());
    }
    let Some(name) = key.strip_prefix(FRAGMENT_KEY_PREFIX) else {
        return Err(fail(
            origin,
            "key",
            &format!("'{key}' is not a schema key ({SCHEMA_KEY} or {SCHEMA_KEY}.PREFIX)"),
        ));
    };
    check_key(name).map_err(|err| fail(origin, "key", err.message()))?;
    if name == "statehub" || name.starts_with("statehub.") {
        return Err(fail(
            origin,
            "key",
            "a fragment cannot own 'statehub.': that prefix is the hub's",
        ));
    }
    Ok(format!("{name}."))
}

fn header_description(header: &toml::Value, prefix: &str, key: &str, origin: &str) -> Result<String> {
    let toml::Value::Table(header) = header else {
        return Err(fail(
            origin,
            "[schema]",
            "must be a table, like [schema] format = 1",
        ));
    };
    if let Some(name) = header.keys().find(|name| !SCHEMA_FIELDS.contains(&name.as_str())) {
        return Err(fail(
            origin,
            "[schema]",
            &format!(
                "unknown field {}; its fields are {}",
                json_string(name),
                SCHEMA_FIELDS.join(", ")
            ),
        ));
    }
    match header.get("format") {
        None => return Err(fail(origin, "[schema]", &format!("format = {FORMAT} is missing"))),
        Some(toml::Value::Integer(FORMAT)) => {}
        Some(other) => {
            return Err(fail(
                origin,
                "[schema]",
                &format!(
                    "format {} is not supported; this statehub reads format {FORMAT}",
                    show_value(&plain(other))
                ),
            ))
        }
    }
    if let Some(declared) = header.get("prefix") {
        check_declared_prefix(declared, prefix, key, origin)?;
    }
    match header.get("description") {
        None => Ok(String::new()),
        Some(toml::Value::String(text)) => Ok(text.clone()),
        Some(other) => Err(fail(
            origin,
            "[schema]",
            &format!("description must be a string, got {}", show_value(&plain(other))),
        )),
    }
}

fn check_declared_prefix(declared: &toml::Value, prefix: &str, key: &str, origin: &str) -> Result<()> {
    let declared = match declared {
        toml::Value::String(text) if text.ends_with('.') && text != "." => text,
        other => {
            return Err(fail(
                origin,
                "[schema]",
                &format!(
                    "prefix must be a key followed by '.', like \"pump.\", got {}",
                    show_value(&plain(other))
                ),
            ))
        }
    };
    if prefix.is_empty() {
        return Err(fail(
            origin,
            "[schema]",
            &format!(
                "prefix {} makes this a fragment; store it at {}",
                json_string(declared),
                fragment_key(declared)
            ),
        ));
    }
    if declared != prefix {
        return Err(fail(
            origin,
            "[schema]",
            &format!(
                "prefix {} does not match {key}, which owns {}",
                json_string(declared),
                json_string(prefix)
            ),
        ));
    }
    Ok(())
}

/// Where a schema text belongs: a fragment's declared prefix names its key; else the main schema.
pub fn schema_key_for(text: &str) -> String {
    let declared = text
        .parse::<toml::Value>()
        .ok()
        .and_then(|doc| doc.get("schema")?.get("prefix")?.as_str().map(str::to_string));
    match declared {
        Some(prefix) if prefix.ends_with('.') => fragment_key(&prefix),
        _ => SCHEMA_KEY.to_string(),
    }
}

fn policies(table: &toml::Value, prefix: &str, origin: &str) -> Result<BTreeMap<String, Policy>> {
    let toml::Value::Table(table) = table else {
        return Err(fail(
            origin,
            "[unknown]",
            "must be a table of prefix = policy, like \"plant.\" = \"refuse\"",
        ));
    };
    let mut policies = BTreeMap::new();
    for (name, policy) in table {
        let place = format!("[unknown] {}", json_string(name));
        check_table_prefix(name, prefix, origin, &place)?;
        let Some(policy) = policy.as_str().and_then(Policy::from_name) else {
            return Err(fail(
                origin,
                &place,
                &format!(
                    "the policy must be allow, warn or refuse, got {}",
                    show_value(&plain(policy))
                ),
            ));
        };
        policies.insert(format!("{prefix}{name}"), policy);
    }
    Ok(policies)
}

/// `[writers]`: prefix = [sources], who alone may write the keys under a prefix.
fn prefix_writers(table: &toml::Value, prefix: &str, origin: &str) -> Result<BTreeMap<String, Vec<String>>> {
    let toml::Value::Table(table) = table else {
        return Err(fail(
            origin,
            "[writers]",
            "must be a table of prefix = [sources], like \"fleet.\" = [\"fleet\"]",
        ));
    };
    let mut writers = BTreeMap::new();
    for (name, sources) in table {
        let place = format!("[writers] {}", json_string(name));
        check_table_prefix(name, prefix, origin, &place)?;
        let bad = |problem: String| fail(origin, &place, &problem);
        writers.insert(
            format!("{prefix}{name}"),
            source_names(sources, "the writers of a prefix", &bad)?,
        );
    }
    Ok(writers)
}

fn check_table_prefix(name: &str, prefix: &str, origin: &str, place: &str) -> Result<()> {
    if !name.is_empty() && !name.ends_with('.') {
        return Err(fail(
            origin,
            place,
            "a prefix is \"\" (every key) or ends with '.' (a subtree, like \"plant.\")",
        ));
    }
    if !name.is_empty() {
        check_key(&format!("{prefix}{}", &name[..name.len() - 1]))
            .map_err(|err| fail(origin, place, err.message()))?;
    }
    Ok(())
}

/// A TOML file without `[schema]`: every value is a default of a key of type any.
fn flatten_defaults(table: &Table, base: &str, file: &SchemaFile, rules: &mut Vec<Rule>) -> Result<()> {
    for (name, value) in table {
        if let toml::Value::Table(inner) = value {
            flatten_defaults(inner, &format!("{base}{name}."), file, rules)?;
            continue;
        }
        let place = json_string(&format!("{base}{name}"));
        let whole = format!("{}{base}{name}", file.prefix);
        check_key(&whole).map_err(|err| fail(&file.origin, &place, err.message()))?;
        if is_schema_key(&whole) {
            return Err(fail(
                &file.origin,
                &place,
                &format!("keys under {SCHEMA_KEY} hold the schema itself; no default may name them"),
            ));
        }
        let mut rule = Rule::any(whole, file.key.clone());
        rule.default = Some(statehub_value(value, &file.origin, &place)?);
        rules.push(rule);
    }
    Ok(())
}

fn rule(name: &str, fields: &toml::Value, prefix: &str, key: &str, origin: &str) -> Result<Rule> {
    let place = format!("[keys.{}]", json_string(name));
    let whole = format!("{prefix}{name}");
    check_pattern(&whole, origin, &place)?;
    let toml::Value::Table(fields) = fields else {
        return Err(fail(
            origin,
            &place,
            &format!(
                "a rule is a table of fields (type, default, ...), got {}",
                show_value(&plain(fields))
            ),
        ));
    };
    if let Some((field, value)) = fields
        .iter()
        .find(|(field, _)| !RULE_FIELDS.contains(&field.as_str()))
    {
        return Err(fail(origin, &place, &unknown_field(field, value, &whole)));
    }
    let bad = |problem: String| fail(origin, &place, &problem);
    let kind = match fields.get("type") {
        None => RuleType::Any,
        Some(value) => value.as_str().and_then(RuleType::from_name).ok_or_else(|| {
            bad(format!(
                "type must be one of {}; got {}",
                names(&RuleType::ALL),
                show_value(&plain(value))
            ))
        })?,
    };
    let mut rule = Rule::any(whole.clone(), key.to_string());
    rule.kind = kind;
    rule.description = text_field(fields, "description", &bad)?;
    rule.unit = text_field(fields, "unit", &bad)?;
    rule.values = enum_values(fields, kind, &bad)?;
    rule.items = item_type(fields, kind, &bad)?;
    (rule.min, rule.max) = bounds(fields, kind, &bad)?;
    rule.secret = match fields.get("secret") {
        None => false,
        Some(toml::Value::Boolean(secret)) => *secret,
        Some(other) => {
            return Err(bad(format!(
                "secret must be true or false, got {}",
                show_value(&plain(other))
            )))
        }
    };
    rule.writable_by = writers(fields, &bad)?;
    rule.ttl = ttl(fields, &bad)?;
    let Some(default) = fields.get("default") else {
        return Ok(rule);
    };
    if rule.secret {
        return Err(bad(
            "a secret cannot have a default: the schema is stored and shown in plain text".into(),
        ));
    }
    let default = statehub_value(default, origin, &place)?;
    if rule.problem(&default, false).is_some() {
        return Err(bad(format!(
            "default {} does not fit: expected {}",
            show_value(&default),
            rule.allows()
        )));
    }
    rule.default = Some(default);
    Ok(rule)
}

fn names(kinds: &[RuleType]) -> String {
    kinds
        .iter()
        .map(|kind| kind.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

fn check_pattern(pattern: &str, origin: &str, place: &str) -> Result<()> {
    let invalid = |problem: String| fail(origin, place, &format!("invalid key pattern: {problem}"));
    let length = pattern.chars().count();
    if length > MAX_KEY_LENGTH {
        return Err(invalid(format!(
            "{length} characters, the limit is {MAX_KEY_LENGTH}"
        )));
    }
    for (number, segment) in pattern.split('.').enumerate() {
        let number = number + 1;
        if segment.is_empty() {
            return Err(invalid(format!("segment {number} is empty")));
        }
        let name_like = segment.chars().all(rules::is_segment_char);
        if segment != "*" && !name_like {
            let reason = if segment.contains('*') {
                "'*' stands for a whole segment".to_string()
            } else {
                format!("allowed are {}", rules::SEGMENT_CHARS_TEXT)
            };
            return Err(invalid(format!(
                "segment {number} {}: {reason}",
                json_string(segment)
            )));
        }
    }
    if is_schema_key(pattern) {
        return Err(fail(
            origin,
            place,
            &format!("keys under {SCHEMA_KEY} hold the schema itself; no rule may name them"),
        ));
    }
    Ok(())
}

fn unknown_field(field: &str, value: &toml::Value, whole: &str) -> String {
    if value.is_table() {
        let full = json_string(&format!("{whole}.{field}"));
        return format!(
            "unknown field {} holding a table; to give {full} a rule, quote the whole key: [keys.{full}]",
            json_string(field)
        );
    }
    format!(
        "unknown field {}; a rule's fields are {}",
        json_string(field),
        RULE_FIELDS.join(", ")
    )
}

type Bad<'a> = dyn Fn(String) -> Error + 'a;

fn text_field(fields: &Table, name: &str, bad: &Bad) -> Result<String> {
    match fields.get(name) {
        None => Ok(String::new()),
        Some(toml::Value::String(text)) => Ok(text.clone()),
        Some(other) => Err(bad(format!(
            "{name} must be a string, got {}",
            show_value(&plain(other))
        ))),
    }
}

fn enum_values(fields: &Table, kind: RuleType, bad: &Bad) -> Result<Vec<String>> {
    let values = fields.get("values");
    if kind != RuleType::Enum {
        return match values {
            Some(_) => Err(bad("values is only for type = \"enum\"".into())),
            None => Ok(Vec::new()),
        };
    }
    let Some(values) = values else {
        return Err(bad(
            "an enum needs its values, like values = [\"auto\", \"manual\"]".into(),
        ));
    };
    let strings: Option<Vec<String>> = values
        .as_array()
        .filter(|list| !list.is_empty())
        .and_then(|list| list.iter().map(|v| v.as_str().map(str::to_string)).collect());
    match strings {
        Some(strings) if distinct(&strings) => Ok(strings),
        _ => Err(bad(format!(
            "values must be a non-empty list of distinct strings, got {}",
            show_value(&plain(values))
        ))),
    }
}

fn distinct(strings: &[String]) -> bool {
    let mut seen: Vec<&String> = strings.iter().collect();
    seen.sort();
    seen.dedup();
    seen.len() == strings.len()
}

fn item_type(fields: &Table, kind: RuleType, bad: &Bad) -> Result<Option<RuleType>> {
    let Some(items) = fields.get("items") else {
        return Ok(None);
    };
    if kind != RuleType::List {
        return Err(bad("items is only for type = \"list\"".into()));
    }
    match items.as_str().and_then(RuleType::from_name) {
        Some(RuleType::Any) => Ok(None),
        Some(item) if RuleType::ITEMS.contains(&item) => Ok(Some(item)),
        _ => Err(bad(format!(
            "items must be one of {}; got {}",
            names(&RuleType::ITEMS),
            show_value(&plain(items))
        ))),
    }
}

fn bounds(fields: &Table, kind: RuleType, bad: &Bad) -> Result<(Option<Number>, Option<Number>)> {
    let (low, high) = (fields.get("min"), fields.get("max"));
    if low.is_none() && high.is_none() {
        return Ok((None, None));
    }
    if !kind.is_bounded() {
        return Err(bad(
            "min and max are only for types string, integer, number and list".into(),
        ));
    }
    let bound = |name: &str, value: Option<&toml::Value>| -> Result<Option<Number>> {
        let Some(value) = value else { return Ok(None) };
        let number = match (kind, value) {
            (RuleType::Number, toml::Value::Float(f)) => Number::from_f64(*f),
            (RuleType::Number | RuleType::Integer, toml::Value::Integer(i)) => Some(Number::from(*i)),
            (RuleType::String | RuleType::List, toml::Value::Integer(i)) if *i >= 0 => Some(Number::from(*i)),
            _ => None,
        };
        number.map(Some).ok_or_else(|| {
            let expected = match kind {
                RuleType::Number => "a number",
                RuleType::Integer => "an integer",
                _ => "an integer >= 0 (a length)",
            };
            bad(format!(
                "{name} must be {expected}, got {}",
                show_value(&plain(value))
            ))
        })
    };
    let (low, high) = (bound("min", low)?, bound("max", high)?);
    if let (Some(l), Some(h)) = (&low, &high) {
        if compare_numbers(l, h).is_gt() {
            return Err(bad(format!(
                "min {} is greater than max {}",
                show_value(&Value::Number(l.clone())),
                show_value(&Value::Number(h.clone()))
            )));
        }
    }
    Ok((low, high))
}

fn writers(fields: &Table, bad: &Bad) -> Result<Vec<String>> {
    let given: Vec<&str> = WRITER_FIELDS
        .iter()
        .copied()
        .filter(|field| fields.contains_key(*field))
        .collect();
    match given.as_slice() {
        [] => Ok(Vec::new()),
        [field] => source_names(&fields[*field], field, bad),
        _ => Err(bad(
            "writable_by and readonly_for are one field (readonly_for is its synonym): give one".into(),
        )),
    }
}

fn source_names(writers: &toml::Value, what: &str, bad: &Bad) -> Result<Vec<String>> {
    let names: Option<Vec<String>> = writers
        .as_array()
        .filter(|list| !list.is_empty())
        .and_then(|list| {
            list.iter()
                .map(|v| v.as_str().filter(|s| !s.is_empty()).map(str::to_string))
                .collect()
        });
    let Some(names) = names else {
        return Err(bad(format!(
            "{what} must be a non-empty list of source names, got {}",
            show_value(&plain(writers))
        )));
    };
    if let Some(long) = names.iter().find(|name| name.chars().count() > MAX_NAME_LENGTH) {
        return Err(bad(format!(
            "source name {} is longer than {MAX_NAME_LENGTH}",
            json_string(long)
        )));
    }
    Ok(names)
}

fn ttl(fields: &Table, bad: &Bad) -> Result<Option<f64>> {
    let Some(ttl) = fields.get("ttl") else {
        return Ok(None);
    };
    let seconds = match ttl {
        toml::Value::Integer(i) => Some(*i as f64),
        toml::Value::Float(f) => Some(*f),
        _ => None,
    };
    match seconds {
        Some(seconds) if seconds.is_finite() && seconds > 0.0 => Ok(Some(seconds)),
        _ => Err(bad(format!(
            "ttl must be a number of seconds > 0, got {}",
            show_value(&plain(ttl))
        ))),
    }
}

/// A TOML value as a statehub value: no dates, no NaN or infinity.
fn statehub_value(value: &toml::Value, origin: &str, place: &str) -> Result<Value> {
    Ok(match value {
        toml::Value::Datetime(_) => {
            return Err(fail(
                origin,
                place,
                "a TOML date or time is not a statehub value; write it as a string",
            ))
        }
        toml::Value::Float(f) => match Number::from_f64(*f) {
            Some(number) => Value::Number(number),
            None => return Err(fail(origin, place, "nan and inf are not statehub values")),
        },
        toml::Value::Array(items) => Value::Array(
            items
                .iter()
                .map(|item| statehub_value(item, origin, place))
                .collect::<Result<_>>()?,
        ),
        toml::Value::Table(table) => Value::Object(
            table
                .iter()
                .map(|(name, item)| Ok((name.clone(), statehub_value(item, origin, place)?)))
                .collect::<Result<Map<String, Value>>>()?,
        ),
        other => plain(other),
    })
}

/// A TOML value fit to show in a message (dates as their text).
fn plain(value: &toml::Value) -> Value {
    match value {
        toml::Value::String(s) => Value::String(s.clone()),
        toml::Value::Integer(i) => Value::from(*i),
        // nan and inf as Python spells them: "got nan" in both languages.
        toml::Value::Float(f) => {
            Number::from_f64(*f).map_or_else(|| Value::String(python_nonfinite(*f)), Value::Number)
        }
        toml::Value::Boolean(b) => Value::Bool(*b),
        toml::Value::Datetime(d) => Value::String(d.to_string()),
        toml::Value::Array(items) => Value::Array(items.iter().map(plain).collect()),
        toml::Value::Table(table) => {
            Value::Object(table.iter().map(|(k, v)| (k.clone(), plain(v))).collect())
        }
    }
}

fn python_nonfinite(f: f64) -> String {
    if f.is_nan() {
        "nan".into()
    } else if f > 0.0 {
        "inf".into()
    } else {
        "-inf".into()
    }
}
