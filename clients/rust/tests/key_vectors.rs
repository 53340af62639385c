//! The key vectors (`tests/vectors/keys.json`), shared with the Python client and hub:
//! the same keys pass, the same keys are refused with the same message, and every key's
//! override is read from the same environment variable.

use std::fs;
use std::path::PathBuf;

use serde_json::Value;
use statehub::rules::{check_key, check_prefix};
use statehub::waterfall::env_var_name;

fn table() -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/vectors/keys.json");
    let text = fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).expect("keys.json is JSON")
}

fn rows<'a>(table: &'a Value, name: &str) -> &'a Vec<Value> {
    table[name]
        .as_array()
        .unwrap_or_else(|| panic!("keys.json has no {name} list"))
}

#[test]
fn every_valid_key_passes() {
    let table = table();
    let valid = rows(&table, "valid");
    assert!(valid.len() >= 5);
    for key in valid {
        let key = key.as_str().unwrap();
        assert!(check_key(key).is_ok(), "{key} should be valid");
    }
}

#[test]
fn every_invalid_key_is_refused_with_its_message() {
    let table = table();
    let invalid = rows(&table, "invalid");
    assert!(invalid.len() >= 5);
    for case in invalid {
        let key = case["key"].as_str().unwrap();
        let error = check_key(key).expect_err(key);
        assert_eq!(error.message(), case["message"].as_str().unwrap(), "{key}");
    }
}

#[test]
fn every_prefix_gets_its_verdict() {
    let table = table();
    for case in rows(&table, "prefixes") {
        let prefix = case["prefix"].as_str().unwrap();
        let valid = case["valid"].as_bool().unwrap();
        assert_eq!(check_prefix(prefix).is_ok(), valid, "{prefix:?}");
    }
}

#[test]
fn every_key_has_its_environment_name() {
    let table = table();
    for case in rows(&table, "env") {
        let key = case["key"].as_str().unwrap();
        assert_eq!(env_var_name(key), case["variable"].as_str().unwrap(), "{key}");
    }
}
