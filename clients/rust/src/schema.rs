//! The schema: which keys statehub knows, what each may hold, who may write it and
//! how long it lives (docs/schema.md). The twin of the hub's `statehub.hub.schema`:
//! the same verdicts in the same words, held to `tests/vectors/schema.json`.
//!
//! The hub is the authority; a client validates before sending so a person hears
//! about a bad value at once, even with the hub down.
//!
//! ```
//! use serde_json::json;
//! use statehub::schema::Schema;
//!
//! let schema = Schema::from_toml(
//!     "[schema]\nformat = 1\n[keys.\"plant.*.rate\"]\ntype = \"integer\"\nmin = 0\nmax = 500\n",
//! )
//! .unwrap();
//! assert_eq!(schema.parse_text("plant.north.rate", "30").unwrap(), json!(30));
//! let refused = schema.check_set("plant.north.rate", &json!("fast"), "rust").unwrap_err();
//! assert_eq!(
//!     refused.message(),
//!     "invalid value for 'plant.north.rate': expected integer 0..500 (schema: plant.*.rate), got \"fast\""
//! );
//! ```

mod load;
mod merge;
mod rule;

use std::collections::{BTreeMap, HashMap};

use serde_json::Value;

pub use load::{
    fragment_key, is_schema_key, parse_schema, schema_key_for, Policy, SchemaFile, FORMAT,
    FRAGMENT_KEY_PREFIX, SCHEMA_KEY,
};
pub use merge::{check_files, check_ties};
pub use rule::{
    kind_name, parse_untyped_text, python_float, show_number, show_value, value_message, Rule, RuleType,
};

use crate::error::{Error, Result};
use crate::protocol::OpKind;
use rule::json_string;

/// A typo is offered a suggestion for at most this many edits (see `suggestion`).
const SUGGESTION_EDITS: usize = 2;

/// Patterns of one segment count whose literal segments sit at the same positions.
#[derive(Debug, Clone)]
struct Mask {
    positions: Vec<usize>,
    /// The literal segments, joined by '.', to the rule's index.
    rules: HashMap<String, usize>,
}

/// A compiled schema: immutable; load a new one when a schema key changes.
#[derive(Debug, Clone, Default)]
pub struct Schema {
    files: Vec<SchemaFile>,
    rules: Vec<Rule>,
    exact: HashMap<String, usize>,
    /// By segment count, the most literal mask first.
    patterns: HashMap<usize, Vec<Mask>>,
    policies: BTreeMap<String, Policy>,
    writers: BTreeMap<String, Vec<String>>,
}

impl Schema {
    /// The schema made of `texts` by schema key (`statehub.schema`, `statehub.schema.PREFIX`);
    /// none at all is no schema: every key allowed.
    pub fn load<'a, I>(texts: I) -> Result<Schema>
    where
        I: IntoIterator<Item = (&'a str, &'a str)>,
    {
        let files = texts
            .into_iter()
            .map(|(key, text)| parse_schema(text, key, None))
            .collect::<Result<Vec<_>>>()?;
        Schema::from_files(files)
    }

    /// The main schema alone, from its TOML text (a plain defaults file works too).
    pub fn from_toml(text: &str) -> Result<Schema> {
        Schema::load([(SCHEMA_KEY, text)])
    }

    /// Compile files read with `parse_schema`.
    pub fn from_files(files: Vec<SchemaFile>) -> Result<Schema> {
        let files = check_files(files)?;
        let rules: Vec<Rule> = files.iter().flat_map(|f| f.rules.iter().cloned()).collect();
        check_ties(&rules)?;
        let mut schema = Schema {
            policies: files.iter().flat_map(|f| f.policies.clone()).collect(),
            writers: files.iter().flat_map(|f| f.writers.clone()).collect(),
            files,
            ..Schema::default()
        };
        let mut masks: BTreeMap<(usize, Vec<usize>), HashMap<String, usize>> = BTreeMap::new();
        for (index, rule) in rules.iter().enumerate() {
            let segments: Vec<&str> = rule.name.split('.').collect();
            if !segments.contains(&"*") {
                schema.exact.insert(rule.name.clone(), index);
                continue;
            }
            let positions: Vec<usize> = (0..segments.len()).filter(|i| segments[*i] != "*").collect();
            let literal = literal_key(&segments, &positions);
            masks
                .entry((segments.len(), positions))
                .or_default()
                .insert(literal, index);
        }
        for ((length, positions), table) in masks {
            schema.patterns.entry(length).or_default().push(Mask {
                positions,
                rules: table,
            });
        }
        for masks in schema.patterns.values_mut() {
            masks.sort_by_key(|mask| std::cmp::Reverse(mask.positions.len()));
        }
        schema.rules = rules;
        Ok(schema)
    }

    /// No rules, no policies and no writers: every write allowed, as with no schema at all.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty() && self.policies.is_empty() && self.writers.is_empty()
    }

    /// The `[writers]` entry for `key` (the longest prefix that has one) and that prefix.
    pub fn writers_for(&self, key: &str) -> Option<(&str, &[String])> {
        if self.writers.is_empty() {
            return None;
        }
        let mut end = key.len();
        while let Some(dot) = key[..end].rfind('.') {
            if let Some((prefix, writers)) = self.writers.get_key_value(&key[..=dot]) {
                return Some((prefix.as_str(), writers.as_slice()));
            }
            end = dot;
        }
        self.writers
            .get_key_value("")
            .map(|(prefix, writers)| (prefix.as_str(), writers.as_slice()))
    }

    pub fn files(&self) -> &[SchemaFile] {
        &self.files
    }

    /// Every rule whose key or pattern starts with `prefix`, sorted by it.
    pub fn rules(&self, prefix: &str) -> Vec<&Rule> {
        let mut found: Vec<&Rule> = self.rules.iter().filter(|r| r.name.starts_with(prefix)).collect();
        found.sort_by(|a, b| a.name.cmp(&b.name));
        found
    }

    /// The rule that governs `key`: an exact key first, then the most literal pattern.
    pub fn rule_for(&self, key: &str) -> Option<&Rule> {
        if let Some(index) = self.exact.get(key) {
            return Some(&self.rules[*index]);
        }
        let segments: Vec<&str> = key.split('.').collect();
        let masks = self.patterns.get(&segments.len())?;
        masks
            .iter()
            .find_map(|mask| mask.rules.get(&literal_key(&segments, &mask.positions)))
            .map(|index| &self.rules[*index])
    }

    /// The unknown-key policy for `key` and the prefix it comes from (the longest that has one).
    pub fn policy_for(&self, key: &str) -> (String, Policy) {
        let mut end = key.len();
        while let Some(dot) = key[..end].rfind('.') {
            if let Some(policy) = self.policies.get(&key[..=dot]) {
                return (key[..=dot].to_string(), *policy);
            }
            end = dot;
        }
        (
            String::new(),
            self.policies.get("").copied().unwrap_or(Policy::Allow),
        )
    }

    pub fn is_secret(&self, key: &str) -> bool {
        self.rule_for(key).is_some_and(|rule| rule.secret)
    }

    /// Seconds after its last write the hub removes `key`, if the schema gives it a ttl.
    pub fn ttl_of(&self, key: &str) -> Option<f64> {
        self.rule_for(key).and_then(|rule| rule.ttl)
    }

    /// The default of `key` (a pattern's default serves every key it matches).
    pub fn default_of(&self, key: &str) -> Option<&Value> {
        self.rule_for(key).and_then(|rule| rule.default.as_ref())
    }

    /// The default of every exact key that has one.
    pub fn defaults(&self) -> BTreeMap<String, Value> {
        self.exact
            .iter()
            .filter_map(|(name, index)| Some((name.clone(), self.rules[*index].default.clone()?)))
            .collect()
    }

    /// Judge one op of a write: Ok(None) when it may go in, Ok(Some(warning)) when it may
    /// but the schema does not know the key (policy warn), Err(Invalid) when it may not.
    /// `secret` says the value is a secret, so a refusal names its kind, not the value.
    pub fn check(
        &self,
        key: &str,
        value: &Value,
        source: &str,
        op: OpKind,
        secret: bool,
    ) -> Result<Option<String>> {
        if is_schema_key(key) {
            if op == OpKind::Set && secret {
                return Err(Error::Invalid(format!(
                    "'{key}' holds a schema, which every client reads: it cannot be a secret"
                )));
            }
            if op == OpKind::Set && !value.is_string() {
                return Err(Error::Invalid(format!(
                    "invalid value for '{key}': expected the schema's TOML text (a string), got {}",
                    show_value(value)
                )));
            }
            return Ok(None);
        }
        let rule = self.rule_for(key);
        if let Some(refusal) = writer_problem(key, rule, self.writers_for(key), source) {
            return Err(Error::Invalid(refusal));
        }
        let Some(rule) = rule else {
            return match op {
                OpKind::Unset => Ok(None),
                OpKind::Set => self.unknown(key),
            };
        };
        if op == OpKind::Set {
            if let Some(problem) = rule.problem(value, secret) {
                return Err(Error::Invalid(value_message(key, rule, &problem)));
            }
        }
        Ok(None)
    }

    /// `check` for a plain (not secret) `set`: what a client asks before sending one.
    pub fn check_set(&self, key: &str, value: &Value, source: &str) -> Result<Option<String>> {
        self.check(key, value, source, OpKind::Set, false)
    }

    /// A value typed by a person for `key`, read by its rule's type: for a string key "1.10"
    /// stays "1.10", for an integer key "30" becomes 30. Keys without a type read JSON when
    /// it parses, else the text itself.
    pub fn parse_text(&self, key: &str, text: &str) -> Result<Value> {
        if is_schema_key(key) {
            return Ok(Value::String(text.to_string()));
        }
        match self.rule_for(key) {
            Some(rule) => rule.parse_text(key, text),
            None => Ok(parse_untyped_text(text)),
        }
    }

    fn unknown(&self, key: &str) -> Result<Option<String>> {
        let (prefix, policy) = self.policy_for(key);
        if policy == Policy::Allow {
            return Ok(None);
        }
        let message = unknown_message(key, &prefix, policy, &self.suggestion(key));
        match policy {
            Policy::Warn => Ok(Some(message)),
            _ => Err(Error::Invalid(message)),
        }
    }

    /// The known key a few typos away from `key`, compared segment by segment: at most two
    /// edits in all, and no more than one per three characters of a segment.
    fn suggestion(&self, key: &str) -> String {
        let segments: Vec<&str> = key.split('.').collect();
        let mut best: Option<(usize, String)> = None;
        for rule in self
            .rules
            .iter()
            .filter(|r| r.name.split('.').count() == segments.len())
        {
            let candidate: Vec<&str> = segments
                .iter()
                .zip(rule.name.split('.'))
                .map(|(mine, theirs)| if theirs == "*" { *mine } else { theirs })
                .collect();
            let distance = segments_apart(&segments, &candidate);
            let entry = (distance, candidate.join("."));
            if distance <= SUGGESTION_EDITS && best.as_ref().is_none_or(|b| entry < *b) {
                best = Some(entry);
            }
        }
        best.map(|(_, candidate)| candidate).unwrap_or_default()
    }
}

fn literal_key(segments: &[&str], positions: &[usize]) -> String {
    positions
        .iter()
        .map(|i| segments[*i])
        .collect::<Vec<_>>()
        .join(".")
}

fn unknown_message(key: &str, prefix: &str, policy: Policy, suggestion: &str) -> String {
    let under = if prefix.is_empty() {
        String::new()
    } else {
        format!(" under '{prefix}'")
    };
    let maybe = if suggestion.is_empty() {
        String::new()
    } else {
        format!("; did you mean '{suggestion}'?")
    };
    match policy {
        Policy::Warn => {
            format!("unknown key '{key}': not in the schema (accepted: unknown keys{under} only warn){maybe}")
        }
        _ => format!("unknown key '{key}': not in the schema, which refuses unknown keys{under}{maybe}"),
    }
}

/// Why `source` may not write `key`, or None when it may. A rule's writers and its
/// prefix's `[writers]` combine by taking the narrower: a source must be in both.
fn writer_problem(
    key: &str,
    rule: Option<&Rule>,
    by_prefix: Option<(&str, &[String])>,
    source: &str,
) -> Option<String> {
    let by_rule: &[String] = rule.map(|r| r.writable_by.as_slice()).unwrap_or(&[]);
    let (prefix, by_prefix) = by_prefix.unwrap_or(("", &[]));
    let both = !by_rule.is_empty() && !by_prefix.is_empty();
    let allowed: Vec<String> = if both {
        by_rule
            .iter()
            .filter(|name| by_prefix.contains(name))
            .cloned()
            .collect()
    } else if by_rule.is_empty() {
        by_prefix.to_vec()
    } else {
        by_rule.to_vec()
    };
    if (allowed.is_empty() && !both) || allowed.iter().any(|name| name == source) {
        return None;
    }
    let came = if source.is_empty() {
        "a client that gave no source".to_string()
    } else {
        format!("source '{source}'")
    };
    let table = format!("[writers] {}", json_string(prefix));
    let rule_name = rule.map(|r| r.name.as_str()).unwrap_or("");
    if allowed.is_empty() {
        return Some(format!(
            "'{key}' may be written by no source (schema: {rule_name} allows {}, {table} allows {}); this write came from {came}",
            sources(by_rule),
            sources(by_prefix)
        ));
    }
    let mut places = Vec::new();
    if !by_rule.is_empty() {
        places.push(rule_name.to_string());
    }
    if !by_prefix.is_empty() {
        places.push(table);
    }
    Some(format!(
        "'{key}' may be written only by {} (schema: {}); this write came from {came}",
        sources(&allowed),
        places.join(" and ")
    ))
}

fn sources(names: &[String]) -> String {
    let plural = if names.len() > 1 { "s" } else { "" };
    let quoted: Vec<String> = names.iter().map(|name| format!("'{name}'")).collect();
    format!("source{plural} {}", quoted.join(", "))
}

fn segments_apart(mine: &[&str], theirs: &[&str]) -> usize {
    let mut total = 0;
    for (a, b) in mine.iter().zip(theirs) {
        if a == b {
            continue;
        }
        let distance = edit_distance(a, b, SUGGESTION_EDITS);
        total += distance;
        if total > SUGGESTION_EDITS || 3 * distance > a.chars().count() {
            return SUGGESTION_EDITS + 1;
        }
    }
    total
}

/// Optimal string alignment distance (an adjacent swap is one edit), or `limit + 1`
/// once it exceeds `limit`.
pub fn edit_distance(first: &str, second: &str, limit: usize) -> usize {
    let (a, b): (Vec<char>, Vec<char>) = (first.chars().collect(), second.chars().collect());
    let mut before: Vec<usize> = Vec::new();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for i in 1..=a.len() {
        let mut current = vec![0; b.len() + 1];
        current[0] = i;
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            current[j] = (previous[j] + 1)
                .min(current[j - 1] + 1)
                .min(previous[j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                current[j] = current[j].min(before[j - 2] + 1);
            }
        }
        if current.iter().min().is_some_and(|m| *m > limit) {
            return limit + 1;
        }
        before = std::mem::replace(&mut previous, current);
    }
    previous[b.len()].min(limit + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_texts_for_one_schema_key_are_refused() {
        let header = "[schema]\nformat = 1\n";
        let one = parse_schema(header, SCHEMA_KEY, Some("schema.toml")).unwrap();
        let two = parse_schema(header, SCHEMA_KEY, None).unwrap();
        let err = Schema::from_files(vec![one, two]).unwrap_err();
        assert!(
            err.message().contains("a second text for statehub.schema"),
            "{}",
            err.message()
        );
    }

    /// The rules that win for `key` by the written precedence, found by looking at every rule.
    fn reference_winners<'a>(names: &'a [String], key: &'a str) -> Vec<&'a str> {
        let segments: Vec<&str> = key.split('.').collect();
        let matching: Vec<&str> = names
            .iter()
            .map(String::as_str)
            .filter(|name| {
                let parts: Vec<&str> = name.split('.').collect();
                parts.len() == segments.len() && parts.iter().zip(&segments).all(|(p, s)| *p == "*" || p == s)
            })
            .collect();
        if matching.contains(&key) {
            return vec![key];
        }
        let literals = |name: &str| name.split('.').filter(|s| *s != "*").count();
        let best = matching.iter().map(|n| literals(n)).max();
        matching
            .into_iter()
            .filter(|n| Some(literals(n)) == best)
            .collect()
    }

    #[test]
    fn the_matcher_agrees_with_looking_at_every_rule() {
        let mut state: u64 = 0x9e3779b97f4a7c15;
        let mut next = |bound: u64| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state % bound
        };
        let keys: Vec<String> = (1..=3)
            .flat_map(|n| {
                (0..3u32.pow(n)).map(move |i| {
                    (0..n)
                        .map(|d| ["a", "b", "c"][(i / 3u32.pow(d) % 3) as usize])
                        .collect::<Vec<_>>()
                        .join(".")
                })
            })
            .collect();
        let (mut loaded, mut refused) = (0, 0);
        for _ in 0..400 {
            let mut names: Vec<String> = (0..1 + next(6))
                .map(|_| {
                    (0..1 + next(3))
                        .map(|_| ["a", "b", "*"][next(3) as usize])
                        .collect::<Vec<_>>()
                        .join(".")
                })
                .collect();
            names.sort();
            names.dedup();
            let body: String = names
                .iter()
                .map(|n| format!("[keys.\"{n}\"]\ntype = \"any\"\n"))
                .collect();
            let ambiguous = keys.iter().any(|k| reference_winners(&names, k).len() > 1);
            match Schema::from_toml(&format!("[schema]\nformat = 1\n{body}")) {
                Ok(schema) => {
                    loaded += 1;
                    assert!(!ambiguous, "{names:?} loaded with a tie");
                    for key in &keys {
                        let winner: Vec<&str> = schema
                            .rule_for(key)
                            .map(|r| r.name.as_str())
                            .into_iter()
                            .collect();
                        assert_eq!(winner, reference_winners(&names, key), "{names:?} {key}");
                    }
                }
                Err(err) => {
                    refused += 1;
                    assert!(
                        ambiguous && err.message().contains("tie: both match"),
                        "{names:?}: {}",
                        err.message()
                    );
                }
            }
        }
        assert!(loaded > 100 && refused > 10, "{loaded} loaded, {refused} refused");
    }

    #[test]
    fn edit_distances() {
        assert_eq!(edit_distance("rtae", "rate", 2), 1);
        assert_eq!(edit_distance("rate", "name", 2), 2);
        assert_eq!(edit_distance("sped", "speed", 2), 1);
        assert_eq!(edit_distance("abc", "xyz", 2), 3);
        assert_eq!(edit_distance("", "ab", 2), 2);
    }
}
