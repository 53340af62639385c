//! The waterfall (docs/protocol.md section 8): environment > stored > defaults.

use std::collections::BTreeMap;
use std::env;
use std::fs;
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::{Map, Value};

use crate::client::{Client, MirrorInfo};
use crate::error::{Error, Result};

/// The environment variable naming the defaults TOML file.
pub const ENV_DEFAULTS: &str = "STATEHUB_DEFAULTS";

/// The layer a value came from, first match wins.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Layer {
    Environment,
    Stored,
    Defaults,
}

/// The environment variable that overrides `key`: `plant.flow-rate` → `STATEHUB_PLANT__FLOW_RATE`.
pub fn env_var_name(key: &str) -> String {
    let name = key
        .to_uppercase()
        .replace('.', "__")
        .replace(['-', '/', '='], "_");
    format!("STATEHUB_{name}")
}

/// An override's text: JSON when it parses, else the text itself as a string.
pub fn parse_env_value(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_string()))
}

/// What every layer holds for one key, and which one wins. In JSON a layer
/// that lacks the key is absent, so a stored `null` stays distinguishable.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Explanation {
    pub key: String,
    /// The winning value; None when no layer has the key.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub layer: Option<Layer>,
    pub env_var: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub environment: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stored: Option<Value>,
    /// Set when the stored value came from the mirror (the hub was down).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stored_mirror_rev: Option<u64>,
    /// Why the stored layer could not be read, when it could not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stored_error: Option<String>,
    /// The stored key's ttl in seconds, when the hub reports one (docs/schema.md, Liveness).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stored_ttl: Option<f64>,
    /// When the stored key goes unless written again, Unix seconds: its last write's time
    /// plus its ttl (the hub counts on its own clock from the write; a restart adds a whole ttl).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stored_expires: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub defaults: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub defaults_file: Option<PathBuf>,
}

/// Resolves keys through the three layers.
#[derive(Debug, Clone, Default)]
pub struct Waterfall {
    defaults: BTreeMap<String, Value>,
    defaults_file: Option<PathBuf>,
}

/// The defaults statehub ships (the Python package's `defaults.toml`), the
/// lowest layer when `$STATEHUB_DEFAULTS` names no file: as the Python client.
pub const SHIPPED_DEFAULTS: &str = include_str!("../../statehub/defaults.toml");

/// What `defaults_file` says for the shipped defaults, which are no file here.
pub const SHIPPED_DEFAULTS_NAME: &str = "statehub's shipped defaults.toml";

impl Waterfall {
    /// Defaults from the file `$STATEHUB_DEFAULTS` names, else statehub's shipped defaults.
    pub fn from_env() -> Result<Waterfall> {
        match env::var_os(ENV_DEFAULTS).filter(|path| !path.is_empty()) {
            Some(path) => Waterfall::with_defaults_file(Path::new(&path)),
            None => Waterfall::shipped(),
        }
    }

    /// The defaults statehub ships ([`SHIPPED_DEFAULTS`]).
    pub fn shipped() -> Result<Waterfall> {
        let mut waterfall = Waterfall::with_defaults_toml(SHIPPED_DEFAULTS)?;
        waterfall.defaults_file = Some(PathBuf::from(SHIPPED_DEFAULTS_NAME));
        Ok(waterfall)
    }

    /// Defaults from a TOML file.
    pub fn with_defaults_file(path: &Path) -> Result<Waterfall> {
        let text = fs::read_to_string(path)
            .map_err(|e| Error::Io(format!("cannot read the defaults {}: {e}", path.display())))?;
        let mut waterfall = Waterfall::with_defaults_toml(&text)
            .map_err(|e| Error::Invalid(format!("defaults {}: {}", path.display(), e.message())))?;
        waterfall.defaults_file = Some(path.to_path_buf());
        Ok(waterfall)
    }

    /// Defaults from TOML text, e.g. a file shipped with the application
    /// through `include_str!`.
    pub fn with_defaults_toml(text: &str) -> Result<Waterfall> {
        let table: toml::Value =
            toml::from_str(text).map_err(|e| Error::Invalid(format!("bad TOML: {e}")))?;
        Ok(Waterfall {
            defaults: flatten_toml(&table),
            defaults_file: None,
        })
    }

    /// The default of `key`, if the defaults have it.
    pub fn default_value(&self, key: &str) -> Option<&Value> {
        self.defaults.get(key)
    }

    /// The value of `key`: environment, else stored (hub or mirror), else defaults.
    pub fn resolve(&self, client: &mut Client, key: &str) -> Result<Option<Value>> {
        Ok(self.explain(client, key)?.value)
    }

    /// What every layer holds for `key`, and which wins. A hub that is down
    /// with no usable mirror leaves the stored layer empty (and says why)
    /// rather than failing: the other layers still answer.
    pub fn explain(&self, client: &mut Client, key: &str) -> Result<Explanation> {
        let env_var = env_var_name(key);
        let environment = env::var(&env_var).ok().map(|text| parse_env_value(&text));
        let (item, mirror, stored_error) = match client.get(key) {
            Ok(fetched) => (Some(fetched.data), fetched.mirror, None),
            Err(Error::NotFound(_)) => (None, None, None),
            Err(err @ (Error::HubUnavailable(_) | Error::Mirror(_))) => (None, None, Some(err.to_string())),
            Err(err) => return Err(err),
        };
        let lifetime = item
            .as_ref()
            .and_then(|item| item.ttl.map(|ttl| (ttl, item.time + ttl)));
        let stored = item.map(|item| item.value);
        let mut explanation = self.combine(key, env_var, environment, stored, mirror, stored_error);
        explanation.stored_ttl = lifetime.map(|(ttl, _)| ttl);
        explanation.stored_expires = lifetime.map(|(_, deadline)| deadline);
        Ok(explanation)
    }

    fn combine(
        &self,
        key: &str,
        env_var: String,
        environment: Option<Value>,
        stored: Option<Value>,
        mirror: Option<MirrorInfo>,
        stored_error: Option<String>,
    ) -> Explanation {
        let defaults = self.defaults.get(key).cloned();
        let (layer, value) = [
            (Layer::Environment, &environment),
            (Layer::Stored, &stored),
            (Layer::Defaults, &defaults),
        ]
        .into_iter()
        .find_map(|(layer, value)| value.clone().map(|v| (Some(layer), Some(v))))
        .unwrap_or((None, None));
        Explanation {
            key: key.to_string(),
            value,
            layer,
            env_var,
            environment,
            stored,
            stored_mirror_rev: mirror.map(|m| m.rev),
            stored_error,
            stored_ttl: None,
            stored_expires: None,
            defaults,
            defaults_file: self.defaults_file.clone(),
        }
    }
}

/// Nested tables flatten to dotted keys; anything else is a value.
pub fn flatten_toml(root: &toml::Value) -> BTreeMap<String, Value> {
    let mut flat = BTreeMap::new();
    if let toml::Value::Table(table) = root {
        flatten_into(&mut flat, "", table);
    }
    flat
}

fn flatten_into(flat: &mut BTreeMap<String, Value>, prefix: &str, table: &toml::value::Table) {
    for (name, value) in table {
        let key = if prefix.is_empty() {
            name.clone()
        } else {
            format!("{prefix}.{name}")
        };
        match value {
            toml::Value::Table(inner) => flatten_into(flat, &key, inner),
            other => {
                flat.insert(key, toml_to_json(other));
            }
        }
    }
}

fn toml_to_json(value: &toml::Value) -> Value {
    match value {
        toml::Value::String(s) => Value::String(s.clone()),
        toml::Value::Integer(i) => Value::from(*i),
        toml::Value::Float(f) => Value::from(*f),
        toml::Value::Boolean(b) => Value::Bool(*b),
        // The protocol has no time type; keep the TOML text.
        toml::Value::Datetime(d) => Value::String(d.to_string()),
        toml::Value::Array(items) => Value::Array(items.iter().map(toml_to_json).collect()),
        toml::Value::Table(table) => Value::Object(
            table
                .iter()
                .map(|(k, v)| (k.clone(), toml_to_json(v)))
                .collect::<Map<String, Value>>(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn env_names_follow_the_protocol() {
        assert_eq!(env_var_name("plant.flow-rate"), "STATEHUB_PLANT__FLOW_RATE");
        assert_eq!(env_var_name("pump.1.speed"), "STATEHUB_PUMP__1__SPEED");
        assert_eq!(env_var_name("a_b"), "STATEHUB_A_B");
        assert_eq!(
            env_var_name("eds.stiles.FI-405/415"),
            "STATEHUB_EDS__STILES__FI_405_415"
        );
        assert_eq!(env_var_name("a.b=c"), "STATEHUB_A__B_C");
    }

    #[test]
    fn env_values_are_json_else_text() {
        assert_eq!(parse_env_value("30"), json!(30));
        assert_eq!(parse_env_value("30.0"), json!(30.0));
        assert_eq!(parse_env_value("true"), json!(true));
        assert_eq!(parse_env_value("[1, \"a\"]"), json!([1, "a"]));
        assert_eq!(parse_env_value("\"quoted\""), json!("quoted"));
        assert_eq!(parse_env_value("Maxson North"), json!("Maxson North"));
        assert_eq!(parse_env_value(""), json!(""));
    }

    #[test]
    fn toml_tables_flatten_to_dotted_keys() {
        let waterfall = Waterfall::with_defaults_toml(
            "top = 1\n[plant]\nname = \"Maxson\"\nrate = 30.5\n[plant.limits]\nhigh = 12\ntags = [\"a\", \"b\"]\n",
        )
        .unwrap();
        assert_eq!(waterfall.default_value("top"), Some(&json!(1)));
        assert_eq!(waterfall.default_value("plant.name"), Some(&json!("Maxson")));
        assert_eq!(waterfall.default_value("plant.rate"), Some(&json!(30.5)));
        assert_eq!(waterfall.default_value("plant.limits.high"), Some(&json!(12)));
        assert_eq!(
            waterfall.default_value("plant.limits.tags"),
            Some(&json!(["a", "b"]))
        );
        assert_eq!(waterfall.default_value("plant.limits"), None);
    }

    #[test]
    fn first_layer_wins_and_all_are_reported() {
        let waterfall = Waterfall::with_defaults_toml("[a]\nb = 1\n").unwrap();
        let all = waterfall.combine(
            "a.b",
            "STATEHUB_A__B".into(),
            Some(json!(3)),
            Some(json!(2)),
            None,
            None,
        );
        assert_eq!((all.layer, all.value), (Some(Layer::Environment), Some(json!(3))));
        assert_eq!(all.defaults, Some(json!(1)));
        let stored = waterfall.combine("a.b", "STATEHUB_A__B".into(), None, Some(json!(2)), None, None);
        assert_eq!(
            (stored.layer, stored.value),
            (Some(Layer::Stored), Some(json!(2)))
        );
        let defaults = waterfall.combine("a.b", "STATEHUB_A__B".into(), None, None, None, None);
        assert_eq!(
            (defaults.layer, defaults.value),
            (Some(Layer::Defaults), Some(json!(1)))
        );
        let none = waterfall.combine("x", "STATEHUB_X".into(), None, None, None, None);
        assert_eq!((none.layer, none.value), (None, None));
    }

    #[test]
    fn a_stored_null_is_a_value() {
        let waterfall = Waterfall::with_defaults_toml("k = 1\n").unwrap();
        let explained = waterfall.combine("k", "STATEHUB_K".into(), None, Some(Value::Null), None, None);
        assert_eq!(explained.layer, Some(Layer::Stored));
        assert_eq!(explained.value, Some(Value::Null));
    }
}
