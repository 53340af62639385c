//! The schema's shared vectors (`tests/vectors/schema.json`): every case the Python
//! hub is held to, this crate gives the same verdict in the same words.

use std::collections::BTreeMap;
use std::fs;
use std::path::PathBuf;

use serde_json::Value;
use statehub::protocol::OpKind;
use statehub::schema::{show_value, Schema};

fn table() -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/vectors/schema.json");
    let text = fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).expect("schema.json is JSON")
}

/// Schema texts as the vectors keep them: lines, joined with newlines and ended by one.
fn texts(lines_by_key: &Value) -> BTreeMap<String, String> {
    lines_by_key
        .as_object()
        .expect("texts by schema key")
        .iter()
        .map(|(key, lines)| {
            let lines: Vec<&str> = lines
                .as_array()
                .unwrap()
                .iter()
                .map(|l| l.as_str().unwrap())
                .collect();
            let text = if lines.is_empty() {
                String::new()
            } else {
                lines.join("\n") + "\n"
            };
            (key.clone(), text)
        })
        .collect()
}

fn load(lines_by_key: &Value) -> statehub::Result<Schema> {
    let texts = texts(lines_by_key);
    Schema::load(texts.iter().map(|(k, v)| (k.as_str(), v.as_str())))
}

fn schemas(table: &Value) -> BTreeMap<String, Schema> {
    table["schemas"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(name, lines)| {
            let schema = load(lines).unwrap_or_else(|e| panic!("schema {name}: {}", e.message()));
            (name.clone(), schema)
        })
        .collect()
}

fn cases<'a>(table: &'a Value, section: &str) -> &'a Vec<Value> {
    let cases = table[section].as_array().unwrap();
    assert!(!cases.is_empty(), "{section} has no cases");
    cases
}

fn text<'a>(case: &'a Value, field: &str) -> &'a str {
    case[field]
        .as_str()
        .unwrap_or_else(|| panic!("{field} in {case}"))
}

#[test]
fn check_gives_the_shared_verdict() {
    let table = table();
    let schemas = schemas(&table);
    for case in cases(&table, "checks") {
        let schema = &schemas[text(case, "schema")];
        let op = match text(case, "op") {
            "set" => OpKind::Set,
            _ => OpKind::Unset,
        };
        let secret = case["secret"].as_bool().unwrap_or(false);
        let value = case.get("value").cloned().unwrap_or(Value::Null);
        let verdict = schema.check(text(case, "key"), &value, text(case, "source"), op, secret);
        match text(case, "verdict") {
            "ok" => assert_eq!(verdict, Ok(None), "{case}"),
            "warn" => assert_eq!(verdict, Ok(Some(text(case, "message").to_string())), "{case}"),
            _ => {
                let err = verdict.err().unwrap_or_else(|| panic!("{case}: accepted"));
                assert_eq!(err.code(), "invalid", "{case}");
                assert_eq!(err.message(), text(case, "message"), "{case}");
            }
        }
    }
}

#[test]
fn typed_text_reads_as_the_table_says() {
    let table = table();
    let schemas = schemas(&table);
    for case in cases(&table, "parse_text") {
        let schema = &schemas[text(case, "schema")];
        let parsed = schema.parse_text(text(case, "key"), text(case, "text"));
        match case.get("error") {
            Some(error) => assert_eq!(
                parsed.expect_err(&case.to_string()).message(),
                error.as_str().unwrap()
            ),
            // Compared as JSON text: 30 and 30.0 are different answers.
            None => assert_eq!(
                serde_json::to_string(&parsed.unwrap_or_else(|e| panic!("{case}: {}", e.message()))).unwrap(),
                serde_json::to_string(&case["value"]).unwrap(),
                "{case}"
            ),
        }
    }
}

#[test]
fn the_rule_that_governs_a_key_is_the_tables() {
    let table = table();
    let schemas = schemas(&table);
    for case in cases(&table, "rules") {
        let schema = &schemas[text(case, "schema")];
        let key = text(case, "key");
        let rule = schema.rule_for(key);
        assert_eq!(rule.map(|r| r.name.as_str()), case["rule"].as_str(), "{case}");
        assert_eq!(rule.map(|r| r.kind.as_str()), case["type"].as_str(), "{case}");
        assert_eq!(schema.is_secret(key), case["secret"].as_bool().unwrap(), "{case}");
        assert_eq!(schema.ttl_of(key), case["ttl"].as_f64(), "{case}");
        assert_eq!(
            serde_json::to_string(&schema.default_of(key)).unwrap(),
            serde_json::to_string(&case["default"]).unwrap(),
            "{case}"
        );
    }
}

#[test]
fn defaults_are_every_exact_keys_default() {
    let table = table();
    let schemas = schemas(&table);
    for (name, expected) in table["defaults"].as_object().unwrap() {
        let defaults = serde_json::to_value(schemas[name].defaults()).unwrap();
        assert_eq!(
            serde_json::to_string(&defaults).unwrap(),
            serde_json::to_string(expected).unwrap(),
            "{name}"
        );
    }
}

#[test]
fn a_bad_schema_is_refused_with_the_tables_message() {
    let table = table();
    for case in cases(&table, "load_errors") {
        let name = text(case, "name");
        let err = load(&case["texts"])
            .err()
            .unwrap_or_else(|| panic!("{name}: loaded"));
        assert_eq!(err.code(), "invalid", "{name}");
        match case.get("error_prefix") {
            Some(prefix) => assert!(
                err.message()
                    .starts_with(&format!("{}: ", prefix.as_str().unwrap())),
                "{name}: {}",
                err.message()
            ),
            None => assert_eq!(err.message(), text(case, "error"), "{name}"),
        }
    }
}

#[test]
fn values_read_in_messages_as_the_table_says() {
    let table = table();
    for case in cases(&table, "shown") {
        assert_eq!(show_value(&case["value"]), text(case, "text"), "{case}");
    }
}
