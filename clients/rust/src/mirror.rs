//! Reading the plaintext mirror `state.txt` (docs/protocol.md section 7), the
//! fallback for reads while the hub is down. Same rules as `hub/mirror.py::parse`.

use std::collections::BTreeMap;
use std::fs;
use std::io::ErrorKind;
use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use crate::error::{Error, Result};
use crate::protocol::Item;
use crate::util::{now, parse_iso_time};

/// The mirror format this crate reads.
pub const MIRROR_FORMAT: &str = "1";
const REQUIRED_HEADERS: [&str; 5] = ["format", "epoch", "revision", "written", "keys"];

/// What a mirror file says: the state at one revision, and when it was written.
#[derive(Debug, Clone, PartialEq)]
pub struct MirrorState {
    pub epoch: String,
    pub rev: u64,
    /// When the hub wrote the file, Unix seconds.
    pub written: f64,
    pub items: BTreeMap<String, Item>,
}

impl MirrorState {
    /// How old the file is: readers must tell their user the data may be stale.
    pub fn age(&self) -> Duration {
        Duration::from_secs_f64((now() - self.written).max(0.0))
    }
}

/// Read and parse the mirror at `path`.
pub fn read_mirror(path: &Path) -> Result<MirrorState> {
    match fs::read_to_string(path) {
        Ok(text) => parse(&text),
        Err(err) if err.kind() == ErrorKind::NotFound => Err(Error::Mirror(format!(
            "there is no mirror at {}: the hub has never run with this data dir",
            path.display()
        ))),
        Err(err) => Err(Error::Mirror(format!(
            "cannot read the mirror {}: {err}",
            path.display()
        ))),
    }
}

/// Parse mirror text; the error names the line that is wrong.
pub fn parse(text: &str) -> Result<MirrorState> {
    let mut header: BTreeMap<String, String> = BTreeMap::new();
    let mut items = BTreeMap::new();
    for (number, line) in text.lines().enumerate().map(|(i, line)| (i + 1, line)) {
        if line.trim().is_empty() {
            continue;
        }
        if line.starts_with('#') {
            // Header lines count only before the first entry.
            if let (Some((name, value)), true) = (header_line(line), items.is_empty()) {
                header.insert(name, value);
            }
            continue;
        }
        let item = parse_item(line, number)?;
        items.insert(item.key.clone(), item);
    }
    let missing: Vec<&str> = REQUIRED_HEADERS
        .into_iter()
        .filter(|name| !header.contains_key(*name))
        .collect();
    if !missing.is_empty() {
        return Err(mirror_error(format!(
            "mirror header lacks {}",
            missing.join(", ")
        )));
    }
    if header["format"] != MIRROR_FORMAT {
        return Err(mirror_error(format!(
            "mirror format {} is not {MIRROR_FORMAT}",
            header["format"]
        )));
    }
    let keys: usize = header_number(&header, "keys")?;
    if keys != items.len() {
        return Err(mirror_error(format!(
            "mirror says {keys} keys but holds {}: it is incomplete",
            items.len()
        )));
    }
    Ok(MirrorState {
        epoch: header["epoch"].clone(),
        rev: header_number(&header, "revision")?,
        written: parse_iso_time(&header["written"])
            .ok_or_else(|| mirror_error(format!("mirror header has a bad time: {}", header["written"])))?,
        items,
    })
}

fn mirror_error(message: String) -> Error {
    Error::Mirror(message)
}

fn header_number<T: std::str::FromStr>(header: &BTreeMap<String, String>, name: &str) -> Result<T> {
    header[name]
        .parse()
        .map_err(|_| mirror_error(format!("mirror header {name} is not a number: {}", header[name])))
}

/// `# name: value` with a lower-case name, as the hub's `_HEADER` regex.
fn header_line(line: &str) -> Option<(String, String)> {
    let rest = line.strip_prefix('#')?.trim_start();
    let colon = rest.find(':')?;
    let name = &rest[..colon];
    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_lowercase()) {
        return None;
    }
    Some((name.to_string(), rest[colon + 1..].trim().to_string()))
}

/// One entry: `KEY = VALUE  # META`, VALUE being compact JSON read by a streaming decoder.
fn parse_item(line: &str, number: usize) -> Result<Item> {
    let bad = |what: String| mirror_error(format!("mirror line {number}: {what}"));
    let (key, rest) = line
        .split_once(" = ")
        .ok_or_else(|| bad("expected 'key = value'".into()))?;
    let mut values = serde_json::Deserializer::from_str(rest).into_iter::<Value>();
    let value = match values.next() {
        Some(Ok(value)) => value,
        Some(Err(err)) => return Err(bad(format!("bad value: {err}"))),
        None => return Err(bad("bad value: nothing after ' = '".into())),
    };
    let meta = parse_meta(rest[values.byte_offset()..].trim_start_matches([' ', '#']));
    let field = |name: &str| {
        meta.get(name)
            .cloned()
            .ok_or_else(|| bad(format!("bad metadata: no {name}")))
    };
    let number_field = |name: &str| {
        field(name)?
            .parse::<u64>()
            .map_err(|_| bad(format!("bad metadata: {name} is not a number")))
    };
    let time = field("time")?;
    Ok(Item {
        key: key.to_string(),
        value,
        rev: number_field("rev")?,
        created_rev: number_field("created")?,
        time: parse_iso_time(&time).ok_or_else(|| bad(format!("bad metadata: time {time}")))?,
        source: meta.get("source").cloned().unwrap_or_default(),
        user: meta.get("user").cloned().unwrap_or_default(),
        secret: meta.get("secret").is_some_and(|flag| flag == "yes"),
        origin: None,
        ttl: None, // the mirror does not show a key's ttl
    })
}

/// `name=value` pairs separated by spaces; a value is JSON-quoted when it needs to be.
fn parse_meta(text: &str) -> BTreeMap<String, String> {
    let mut meta = BTreeMap::new();
    let mut rest = text.trim_start();
    while let Some(eq) = rest.find('=') {
        let name = rest[..eq].trim();
        let after = &rest[eq + 1..];
        let (value, consumed) = if after.starts_with('"') {
            quoted_value(after)
        } else {
            let end = after.find(char::is_whitespace).unwrap_or(after.len());
            (after[..end].to_string(), end)
        };
        if !name.is_empty() {
            meta.insert(name.to_string(), value);
        }
        rest = after[consumed..].trim_start();
    }
    meta
}

/// A JSON string at the start of `text`: its value and how many bytes it took.
fn quoted_value(text: &str) -> (String, usize) {
    let mut strings = serde_json::Deserializer::from_str(text).into_iter::<String>();
    match strings.next() {
        Some(Ok(value)) => (value, strings.byte_offset()),
        // Unterminated or bad escape: take the rest of the word as it stands.
        _ => {
            let end = text.find(char::is_whitespace).unwrap_or(text.len());
            (text[..end].to_string(), end)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: &str = "# format: 1\n# epoch: e\n# revision: 5\n# written: 2026-11-18T11:09:40.250000Z\n";

    #[test]
    fn refuses_a_mirror_with_missing_entries() {
        let text = format!("{HEADER}# keys: 2\na.b = 1  # rev=1 created=1 time=2026-11-18T11:09:40Z\n");
        let err = parse(&text).unwrap_err();
        assert!(err.message().contains("incomplete"), "{err}");
    }

    #[test]
    fn refuses_a_mirror_without_header() {
        let err = parse("a.b = 1  # rev=1 created=1 time=2026-11-18T11:09:40Z\n").unwrap_err();
        assert!(err.message().contains("lacks format"), "{err}");
    }

    #[test]
    fn value_may_contain_hash_and_equals() {
        let text = format!(
            "{HEADER}# keys: 1\na.b = \"x = 1 # y\"  # rev=2 created=1 time=2026-11-18T11:09:40Z source=\"a b\" user=\"\"\n"
        );
        let state = parse(&text).unwrap();
        let item = &state.items["a.b"];
        assert_eq!(item.value, Value::from("x = 1 # y"));
        assert_eq!((item.rev, item.created_rev), (2, 1));
        assert_eq!(item.source, "a b");
        assert_eq!(item.user, "");
        assert_eq!(state.rev, 5);
    }
}
