//! The golden vectors of docs/protocol.md section 10, shared with the Python hub:
//! every vector decodes to its meaning, every request encodes to its exact bytes,
//! and the mirror vector parses to its meaning.

use std::fs;
use std::path::PathBuf;

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{json, Value};
use statehub::mirror;
use statehub::protocol::{decode, encode, Published, Reply, Request};

fn vectors_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/vectors")
}

fn load_vectors() -> Vec<Value> {
    let path = vectors_dir().join("protocol.json");
    let text = fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    match serde_json::from_str(&text).expect("protocol.json is JSON") {
        Value::Array(vectors) => vectors,
        other => panic!("protocol.json is not a list: {other}"),
    }
}

fn unhex(text: &str) -> Vec<u8> {
    assert!(text.len().is_multiple_of(2), "odd hex length");
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).expect("hex"))
        .collect()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Decode into the typed message, then back to JSON: what the crate understood.
fn typed_meaning<T: DeserializeOwned + Serialize>(name: &str, bytes: &[u8]) -> Value {
    let message: T = decode(bytes).unwrap_or_else(|e| panic!("{name}: cannot decode: {e}"));
    serde_json::to_value(&message).unwrap()
}

#[test]
fn every_vector_decodes_to_its_meaning() {
    let vectors = load_vectors();
    assert!(
        vectors.len() >= 25,
        "expected at least 25 vectors, got {}",
        vectors.len()
    );
    for vector in &vectors {
        let name = vector["name"].as_str().unwrap();
        let meaning = &vector["meaning"];
        let bytes = unhex(vector["msgpack"].as_str().unwrap());
        // Untyped: the raw values, where 30 and 30.0 must stay distinct.
        let raw: Value = decode(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(&raw, meaning, "{name}: raw decode");
        // Typed: the crate's own structs, re-serialized with defaults omitted.
        let typed = match vector["kind"].as_str().unwrap() {
            "request" => typed_meaning::<Request>(name, &bytes),
            "reply" => typed_meaning::<Reply>(name, &bytes),
            "published" => typed_meaning::<Published>(name, &bytes),
            other => panic!("{name}: unknown kind {other}"),
        };
        assert_eq!(&typed, meaning, "{name}: typed decode");
    }
}

#[test]
fn every_request_encodes_to_its_exact_bytes() {
    let mut checked = 0;
    for vector in load_vectors().iter().filter(|v| v["kind"] == "request") {
        let name = vector["name"].as_str().unwrap();
        let request: Request = serde_json::from_value(vector["meaning"].clone())
            .unwrap_or_else(|e| panic!("{name}: meaning is not a Request: {e}"));
        let bytes = encode(&request).unwrap();
        assert_eq!(
            hex(&bytes),
            vector["msgpack"].as_str().unwrap(),
            "{name}: encoding"
        );
        checked += 1;
    }
    assert!(checked >= 12, "expected the request vectors, checked {checked}");
}

#[test]
fn floats_and_ints_stay_distinct() {
    let bytes = encode(&json!({"i": 30, "f": 30.0})).unwrap();
    let back: Value = decode(&bytes).unwrap();
    assert!(back["i"].is_u64());
    assert!(back["f"].is_f64());
}

#[test]
fn unknown_published_types_and_fields_are_ignored() {
    let future = json!({"type": "gossip", "epoch": "e", "rev": 1});
    let message: Published = decode(&encode(&future).unwrap()).unwrap();
    assert_eq!(message, Published::Unknown);
    let extra = json!({"type": "heartbeat", "epoch": "e", "rev": 1, "time": 2.5, "load": 0.3});
    let message: Published = decode(&encode(&extra).unwrap()).unwrap();
    assert!(matches!(message, Published::Heartbeat(beat) if beat.rev == 1 && beat.interval == 1.0));
}

#[test]
fn binary_values_are_refused() {
    // A set request whose value is MessagePack bin 8: not a protocol value.
    let mut bytes = unhex("84a474797065a3736574a17601a36b6579a1");
    bytes.extend_from_slice(b"k");
    bytes.extend_from_slice(&unhex("a576616c7565c40101"));
    assert!(decode::<Request>(&bytes).is_err());
}

#[test]
fn the_mirror_vector_parses_to_its_meaning() {
    let dir = vectors_dir();
    let text = fs::read_to_string(dir.join("mirror.txt")).unwrap();
    let expected: Value =
        serde_json::from_str(&fs::read_to_string(dir.join("mirror.json")).unwrap()).unwrap();
    let state = mirror::parse(&text).unwrap();
    let items: Vec<Value> = state
        .items
        .values()
        .map(|item| {
            let mut map = serde_json::Map::new();
            map.insert("type".into(), json!("item"));
            if let Value::Object(fields) = serde_json::to_value(item).unwrap() {
                map.extend(fields);
            }
            Value::Object(map)
        })
        .collect();
    let meaning = json!({
        "epoch": state.epoch,
        "rev": state.rev,
        "written": state.written,
        "items": items,
    });
    assert_eq!(meaning, expected);
}

/// tests/vectors/errors.json: every code maps to the same exit code as in Python.
#[test]
fn every_error_code_exits_as_the_shared_table_says() {
    use statehub::protocol::ErrorReply;
    use statehub::Error;

    let path = vectors_dir().join("errors.json");
    let text = fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let table: Value = serde_json::from_str(&text).expect("errors.json is JSON");
    let rows = table["errors"].as_array().expect("an errors list");
    assert!(rows.len() >= 9);
    for row in rows {
        let code = row["code"].as_str().unwrap();
        let exit = row["exit"].as_i64().unwrap() as i32;
        let variant = row["rust"].as_str().unwrap();
        let error = match row["origin"].as_str().unwrap() {
            "wire" => Error::from(ErrorReply {
                code: code.into(),
                message: "m".into(),
                conflicts: vec![],
            }),
            _ => match code {
                "unavailable" => Error::HubUnavailable("m".into()),
                "mirror" => Error::Mirror("m".into()),
                "unknown_outcome" => Error::OutcomeUnknown("m".into()),
                other => panic!("a client-side code this crate does not know: {other}"),
            },
        };
        assert_eq!(error.variant(), variant, "{code}");
        assert_eq!(error.exit_code(), exit, "{code}");
        if row["origin"] == "client" {
            assert_eq!(error.code(), code);
        }
    }
}
