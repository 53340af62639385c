//! The schema files together: fragments that overlap and patterns that tie are
//! refused. The twin of `hub/schema_merge.py`, in the same order (files by key,
//! patterns sorted), so the error reported is the same in both languages.

use std::collections::BTreeMap;

use super::load::SchemaFile;
use super::rule::{json_string, Rule};
use crate::error::{Error, Result};

/// Sort `files` main first and refuse overlapping fragments.
pub fn check_files(mut files: Vec<SchemaFile>) -> Result<Vec<SchemaFile>> {
    files.sort_by(|a, b| a.key.cmp(&b.key));
    if let Some(pair) = files.windows(2).find(|pair| pair[0].key == pair[1].key) {
        return Err(Error::Invalid(format!(
            "{}: a second text for {}; a schema key holds one",
            pair[1].origin, pair[1].key
        )));
    }
    let fragments: Vec<&SchemaFile> = files.iter().filter(|f| !f.prefix.is_empty()).collect();
    for (index, first) in fragments.iter().enumerate() {
        for second in &fragments[index + 1..] {
            if second.prefix.starts_with(&first.prefix) {
                return Err(Error::Invalid(format!(
                    "{}: prefix {} is inside {}, which {} owns; a prefix belongs to one fragment",
                    second.origin,
                    json_string(&second.prefix),
                    json_string(&first.prefix),
                    first.origin
                )));
            }
        }
    }
    for main in files.iter().filter(|f| f.prefix.is_empty()) {
        for fragment in &fragments {
            check_inside(main, fragment)?;
        }
    }
    Ok(files)
}

fn check_inside(main: &SchemaFile, fragment: &SchemaFile) -> Result<()> {
    let owned: Vec<&str> = fragment.prefix.trim_end_matches('.').split('.').collect();
    for rule in &main.rules {
        let segments: Vec<&str> = rule.name.split('.').collect();
        if segments.len() >= owned.len() && segments[..owned.len()] == owned[..] {
            return Err(Error::Invalid(format!(
                "{}: [keys.{}]: inside {}, which {} owns; move the rule into that fragment",
                main.origin,
                json_string(&rule.name),
                json_string(&fragment.prefix),
                fragment.origin
            )));
        }
    }
    if let Some(prefix) = main.policies.keys().find(|p| p.starts_with(&fragment.prefix)) {
        return Err(Error::Invalid(format!(
            "{}: [unknown] {}: inside {}, which {} owns; set that policy in the fragment",
            main.origin,
            json_string(prefix),
            json_string(&fragment.prefix),
            fragment.origin
        )));
    }
    Ok(())
}

/// Refuse two patterns that match one key with as many literal segments each, unless
/// a more literal rule covers every key both match.
pub fn check_ties(rules: &[Rule]) -> Result<()> {
    let mut by_length: BTreeMap<usize, Vec<Vec<&str>>> = BTreeMap::new();
    let mut origins: BTreeMap<&str, &str> = BTreeMap::new();
    for rule in rules {
        let shape: Vec<&str> = rule.name.split('.').collect();
        by_length.entry(shape.len()).or_default().push(shape);
        origins.insert(&rule.name, &rule.origin);
    }
    for shapes in by_length.values_mut() {
        shapes.sort();
        let patterns: Vec<&Vec<&str>> = shapes.iter().filter(|s| s.contains(&"*")).collect();
        for (index, first) in patterns.iter().enumerate() {
            for second in &patterns[index + 1..] {
                check_pair(first, second, shapes, &origins)?;
            }
        }
    }
    Ok(())
}

fn check_pair(
    first: &[&str],
    second: &[&str],
    shapes: &[Vec<&str>],
    origins: &BTreeMap<&str, &str>,
) -> Result<()> {
    let literals = literal_count(first);
    if literal_count(second) != literals {
        return Ok(());
    }
    let mut both: Vec<&str> = Vec::with_capacity(first.len());
    for (a, b) in first.iter().zip(second) {
        if *a != "*" && *b != "*" && a != b {
            return Ok(()); // no key matches both
        }
        both.push(if *a != "*" { a } else { b });
    }
    let covered = shapes
        .iter()
        .any(|s| literal_count(s) > literals && s.iter().zip(&both).all(|(s, k)| *s == "*" || s == k));
    if covered {
        return Ok(());
    }
    let (one, two, meet) = (first.join("."), second.join("."), both.join("."));
    let plural = if literals == 1 { "" } else { "s" };
    Err(Error::Invalid(format!(
        "patterns '{one}' ({}) and '{two}' ({}) tie: both match '{meet}' with {literals} literal \
         segment{plural} each; add a rule for '{meet}', or make one of them more literal",
        origins[one.as_str()],
        origins[two.as_str()]
    )))
}

fn literal_count(shape: &[&str]) -> usize {
    shape.iter().filter(|s| **s != "*").count()
}
