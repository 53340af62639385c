//! The schema files together: fragments that overlap and patterns that tie are
//! refused. The twin of `hub/schema_merge.py`, in the same order (files by key,
//! patterns sorted), so the error reported is the same in both languages.

use std::collections::{BTreeMap, BTreeSet};

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
    if let Some(prefix) = main.writers.keys().find(|p| p.starts_with(&fragment.prefix)) {
        return Err(Error::Invalid(format!(
            "{}: [writers] {}: inside {}, which {} owns; name its writers in the fragment",
            main.origin,
            json_string(prefix),
            json_string(&fragment.prefix),
            fragment.origin
        )));
    }
    Ok(())
}

type Shape<'a> = Vec<&'a str>;
type Mask = Vec<usize>;
type Tie<'a> = (Shape<'a>, Shape<'a>, Shape<'a>);

/// Refuse two patterns that match one key with as many literal segments each, unless
/// a more literal rule covers every key both match. Only patterns of one length, as
/// many literals and different masks can tie, and only those that agree where both
/// are literal: found through a map, not by comparing every pair. The tie reported is
/// the first in sorted order, as in Python.
pub fn check_ties(rules: &[Rule]) -> Result<()> {
    let mut tables: BTreeMap<usize, BTreeMap<Mask, BTreeSet<Shape>>> = BTreeMap::new();
    let mut origins: BTreeMap<&str, &str> = BTreeMap::new();
    for rule in rules {
        let shape: Shape = rule.name.split('.').collect();
        tables
            .entry(shape.len())
            .or_default()
            .entry(mask(&shape))
            .or_default()
            .insert(shape);
        origins.insert(&rule.name, &rule.origin);
    }
    for (length, masks) in &tables {
        let keys: Vec<&Mask> = masks.keys().collect();
        let mut ties: Vec<Tie> = Vec::new();
        for (index, first) in keys.iter().enumerate() {
            for second in &keys[index + 1..] {
                if first.len() == second.len() && first.len() < *length {
                    ties.extend(pair_ties(&masks[*first], &masks[*second], first, second, masks));
                }
            }
        }
        if let Some((one, two, meet)) = ties.into_iter().min() {
            let literals = mask(&one).len();
            let (one, two, meet) = (one.join("."), two.join("."), meet.join("."));
            let plural = if literals == 1 { "" } else { "s" };
            return Err(Error::Invalid(format!(
                "patterns '{one}' ({}) and '{two}' ({}) tie: both match '{meet}' with {literals} literal \
                 segment{plural} each; add a rule for '{meet}', or make one of them more literal",
                origins[one.as_str()],
                origins[two.as_str()]
            )));
        }
    }
    Ok(())
}

fn pair_ties<'a>(
    shapes: &BTreeSet<Shape<'a>>,
    others: &BTreeSet<Shape<'a>>,
    first: &Mask,
    second: &Mask,
    masks: &BTreeMap<Mask, BTreeSet<Shape<'a>>>,
) -> Vec<Tie<'a>> {
    let common: Vec<usize> = first.iter().copied().filter(|i| second.contains(i)).collect();
    let at_common = |shape: &Shape<'a>| -> Vec<&'a str> { common.iter().map(|i| shape[*i]).collect() };
    let mut by_common: BTreeMap<Vec<&str>, Vec<&Shape>> = BTreeMap::new();
    for shape in shapes {
        by_common.entry(at_common(shape)).or_default().push(shape);
    }
    let mut ties = Vec::new();
    for other in others {
        for shape in by_common.get(&at_common(other)).into_iter().flatten() {
            let meet: Shape = shape
                .iter()
                .zip(other)
                .map(|(a, b)| if *a != "*" { *a } else { *b })
                .collect();
            if !covered(&meet, first.len(), masks) {
                let (low, high) = if *shape <= other {
                    ((*shape).clone(), other.clone())
                } else {
                    (other.clone(), (*shape).clone())
                };
                ties.push((low, high, meet));
            }
        }
    }
    ties
}

/// Whether a rule with more than `literals` literal segments matches every key `meet` matches.
fn covered(meet: &Shape, literals: usize, masks: &BTreeMap<Mask, BTreeSet<Shape>>) -> bool {
    let known = mask(meet);
    masks.iter().any(|(mask, shapes)| {
        mask.len() > literals && mask.iter().all(|i| known.contains(i)) && {
            let wanted: Shape = (0..meet.len())
                .map(|i| if mask.contains(&i) { meet[i] } else { "*" })
                .collect();
            shapes.contains(&wanted)
        }
    })
}

fn mask(shape: &[&str]) -> Mask {
    (0..shape.len()).filter(|i| shape[*i] != "*").collect()
}
