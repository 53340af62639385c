//! What `statehub-rs` prints. Results go to stdout, one JSON document per line
//! with `--json`; notices and errors go to stderr, prefixed `statehub-rs:`.
//!
//! `get`, `list`, `history` and `watch` print exactly what the Python CLI
//! prints, text and JSON alike (tests/vectors/cli.json holds both to it): JSON
//! is written as Python's `json.dumps` writes it (`", "` and `": "` between
//! items, floats as `repr` writes them: `1e+20`, `1.5e-07`), and times in text
//! as `2026-11-21 14:02:03Z` (UTC).

use std::io::Write;

use serde::Serialize;
use serde_json::{json, Map, Value};
use statehub::protocol::{HubStatus, Version};
use statehub::util::iso_time;
use statehub::{Change, Committed, Error, Event, Explanation, Item, Items, MirrorInfo};

/// JSON as Python's `json.dumps` writes it: `", "` between items, `": "` after keys.
struct Spaced;

impl serde_json::ser::Formatter for Spaced {
    fn begin_array_value<W: ?Sized + Write>(&mut self, writer: &mut W, first: bool) -> std::io::Result<()> {
        if first {
            Ok(())
        } else {
            writer.write_all(b", ")
        }
    }

    fn begin_object_key<W: ?Sized + Write>(&mut self, writer: &mut W, first: bool) -> std::io::Result<()> {
        if first {
            Ok(())
        } else {
            writer.write_all(b", ")
        }
    }

    fn begin_object_value<W: ?Sized + Write>(&mut self, writer: &mut W) -> std::io::Result<()> {
        writer.write_all(b": ")
    }

    /// Floats as Python's `json.dumps` writes them (`1e+20`, `1.5e-07`, `1e+16`), not
    /// as serde_json's shortest form (`1e20`); serde_json writes null for NaN and infinities
    /// before it gets here.
    fn write_f64<W: ?Sized + Write>(&mut self, writer: &mut W, value: f64) -> std::io::Result<()> {
        writer.write_all(statehub::schema::python_float(value).as_bytes())
    }
}

/// `value` as one line of JSON, spaced as the Python CLI prints it.
pub fn json_text<T: Serialize + ?Sized>(value: &T) -> String {
    let mut out = Vec::new();
    let mut serializer = serde_json::Serializer::with_formatter(&mut out, Spaced);
    value
        .serialize(&mut serializer)
        .expect("values serialize to JSON");
    String::from_utf8(out).expect("serde_json writes UTF-8")
}

/// A moment in UTC to the second, `2026-11-21 14:02:03Z`, as the Python CLI shows it.
pub fn when_text(seconds: f64) -> String {
    let iso = iso_time(seconds.floor());
    format!("{} {}Z", &iso[..10], &iso[11..19])
}

/// Who made a change: `source/user`, whichever parts are known, else `?`.
pub fn who_text(source: &str, user: &str) -> String {
    let parts: Vec<&str> = [source, user].into_iter().filter(|p| !p.is_empty()).collect();
    if parts.is_empty() {
        "?".to_string()
    } else {
        parts.join("/")
    }
}

/// One JSON document on its own line, flushed at once (consumers such
/// as `watch | jq` or a test reading a pipe must see each line as it happens).
pub fn print_json<T: Serialize + ?Sized>(value: &T) {
    let line = json_text(value);
    let mut stdout = std::io::stdout().lock();
    // A closed stdout (e.g. `| head`) is not worth a panic: the reader is gone.
    let _ = writeln!(stdout, "{line}").and_then(|()| stdout.flush());
}

/// Messages for the person at the terminal, on stderr.
pub struct Notice;

impl Notice {
    pub fn info(message: &str) {
        eprintln!("statehub-rs: {message}");
    }

    pub fn warn(message: &str) {
        eprintln!("statehub-rs: warning: {message}");
    }
}

pub fn print_error(err: &Error) {
    eprintln!("statehub-rs: error: {err}");
    if let Error::Conflict { conflicts, .. } = err {
        for c in conflicts {
            let now = if c.exists {
                format!("is at revision {} with value {}", c.rev, c.value)
            } else {
                "does not exist".to_string()
            };
            let expected = match c.expected {
                0 => "expected it to be absent".to_string(),
                rev => format!("expected revision {rev}"),
            };
            eprintln!("  {}: {expected}, {now}", c.key);
        }
    }
}

/// An item with every field present (unlike the wire form, which omits empty
/// ones), so scripts can rely on the shape; `ttl` only when the key has one (it came
/// later: a key without one prints as it always did), as the Python CLI prints it.
fn item_fields(item: &Item) -> Map<String, Value> {
    let value = json!({
        "key": item.key,
        "value": item.value,
        "rev": item.rev,
        "created_rev": item.created_rev,
        "time": item.time,
        "source": item.source,
        "user": item.user,
        "secret": item.secret,
        "origin": item.origin,
    });
    match value {
        Value::Object(mut map) => {
            if let Some(ttl) = item.ttl {
                map.insert("ttl".into(), json!(ttl));
            }
            map
        }
        _ => unreachable!("json! of an object literal"),
    }
}

/// Where a read came from, as the Python CLI reports it: `from_mirror`, and
/// `mirror_rev`/`mirror_age` (seconds), null for reads from the hub.
fn add_origin(map: &mut Map<String, Value>, mirror: Option<&MirrorInfo>) {
    map.insert("from_mirror".into(), Value::Bool(mirror.is_some()));
    map.insert("mirror_rev".into(), json!(mirror.map(|m| m.rev)));
    map.insert("mirror_age".into(), json!(mirror.map(|m| m.age.as_secs_f64())));
}

/// `get --json`: the item plus `from_mirror`, `mirror_rev`, `mirror_age`.
pub fn item_json(item: &Item, mirror: Option<&MirrorInfo>) -> Value {
    let mut map = item_fields(item);
    add_origin(&mut map, mirror);
    Value::Object(map)
}

/// A value for people: strings as they are, everything else as JSON.
pub fn text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => json_text(other),
    }
}

/// `list`: `key = value` lines; with `--json` one object
/// `{rev, epoch, from_mirror, mirror_rev, mirror_age, items: [...]}`.
pub fn print_items(items: &Items, mirror: Option<&MirrorInfo>, json: bool) {
    if json {
        let mut map = Map::new();
        map.insert("rev".into(), json!(items.rev));
        map.insert("epoch".into(), json!(items.epoch));
        add_origin(&mut map, mirror);
        let list: Vec<Value> = items
            .items
            .iter()
            .map(|i| Value::Object(item_fields(i)))
            .collect();
        map.insert("items".into(), Value::Array(list));
        print_json(&Value::Object(map));
        return;
    }
    let mut stdout = std::io::stdout().lock();
    for item in &items.items {
        let _ = writeln!(stdout, "{} = {}", item.key, json_text(&item.value));
    }
}

/// `unset` with `--json`: `{rev, epoch, duplicate}`.
pub fn print_committed_json(committed: &Committed) {
    print_json(&json!({
        "rev": committed.rev,
        "epoch": committed.epoch,
        "duplicate": committed.duplicate,
    }));
}

/// `set --json`, as the Python CLI prints it: the commit and the schema's warnings.
pub fn print_set_json(committed: &Committed) {
    print_json(&json!({
        "rev": committed.rev,
        "epoch": committed.epoch,
        "duplicate": committed.duplicate,
        "warnings": committed.warnings,
    }));
}

/// A write's warnings (keys the schema does not know), one `warning:` line each on stderr.
pub fn warn_all(warnings: &[String]) {
    for warning in warnings {
        Notice::warn(warning);
    }
}

/// `history`: `[rev] when  who  old -> new` lines, newest first; with `--json`
/// one array of every field of each version.
pub fn print_history(versions: &[Version], json: bool) {
    if json {
        let rows: Vec<Value> = versions
            .iter()
            .map(|v| {
                json!({
                    "rev": v.rev, "op": v.op, "value": v.value,
                    "prev_rev": v.prev_rev, "prev_value": v.prev_value,
                    "time": v.time, "source": v.source, "user": v.user, "secret": v.secret,
                    "backfill": v.backfill, "origin": v.origin,
                })
            })
            .collect();
        print_json(&rows);
        return;
    }
    for v in versions {
        let before = if v.prev_rev == 0 {
            "(new)".to_string()
        } else {
            json_text(&v.prev_value)
        };
        let after = match v.op {
            statehub::OpKind::Set => json_text(&v.value),
            statehub::OpKind::Unset => "(unset)".to_string(),
        };
        println!(
            "[{}] {}  {:<16} {before} -> {after}",
            v.rev,
            when_text(v.time),
            who_text(&v.source, &v.user)
        );
    }
}

/// `watch`: one line a change, `[rev] key = value  (who, when)`; with `--json`
/// one object a change, every field present (`ttl` only when the set has one, as `get`).
pub fn print_change(change: &Change, json: bool) {
    if json {
        let mut fields = json!({
            "event": "changed",
            "origin": change.origin,
            "epoch": change.epoch,
            "rev": change.rev,
            "index": change.index,
            "count": change.count,
            "key": change.key,
            "op": change.op,
            "value": change.value,
            "time": change.time,
            "source": change.source,
            "user": change.user,
            "value_omitted": change.value_omitted,
            "prev_rev": change.prev_rev,
            "backfill": change.backfill,
        });
        if let (Some(ttl), Value::Object(map)) = (change.ttl, &mut fields) {
            map.insert("ttl".into(), json!(ttl));
        }
        print_json(&fields);
        return;
    }
    let what = match change.op {
        statehub::OpKind::Set => format!("{} = {}", change.key, json_text(&change.value)),
        statehub::OpKind::Unset => format!("unset {}", change.key),
    };
    let line = format!(
        "[{}] {what}  ({}, {})",
        change.rev,
        who_text(&change.source, &change.user),
        when_text(change.time)
    );
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(stdout, "{line}").and_then(|()| stdout.flush());
}

/// `watch --json`'s notices, one object a line among the changes, as the Python CLI
/// prints them: `synced` (a snapshot loaded), `caught_up` (history replayed) and
/// `hub_down`; a script reading the stream sees the same lines from either CLI.
pub fn print_notice(event: &Event) {
    let fields = match event {
        Event::Synced {
            epoch,
            rev,
            resync,
            reason,
            cause,
            keys,
        } => json!({
            "event": "synced", "rev": rev, "epoch": epoch, "reason": reason,
            "cause": cause.as_str(), "resync": resync, "keys": keys,
        }),
        Event::CaughtUp {
            epoch,
            rev,
            replayed,
            reason,
            cause,
        } => json!({
            "event": "caught_up", "rev": rev, "epoch": epoch, "replayed": replayed,
            "reason": reason, "cause": cause.as_str(),
        }),
        Event::HubDown { reason, mirror_rev } => {
            json!({"event": "hub_down", "reason": reason, "mirror_rev": mirror_rev})
        }
        Event::Change(change) => return print_change(change, true),
    };
    print_json(&fields);
}

pub fn print_explanation(e: &Explanation) {
    let shown = |value: &Option<Value>| value.as_ref().map_or("-".to_string(), Value::to_string);
    match (&e.value, e.layer) {
        (Some(value), Some(layer)) => println!("{} = {value}  (from {})", e.key, layer_name(layer)),
        _ => println!("{} is in no layer", e.key),
    }
    println!("  environment {}: {}", e.env_var, shown(&e.environment));
    let stored_note = match (&e.stored_mirror_rev, &e.stored_error) {
        (Some(rev), _) => format!("  (from the mirror at revision {rev})"),
        (_, Some(error)) => format!("  ({error})"),
        _ => String::new(),
    };
    let expiry = e
        .stored_expires
        .map(|deadline| format!("  ({})", expiry_text(deadline - statehub::util::now())))
        .unwrap_or_default();
    println!("  stored: {}{stored_note}{expiry}", shown(&e.stored));
    let file = e
        .defaults_file
        .as_ref()
        .map_or("no defaults file".to_string(), |p| p.display().to_string());
    println!("  defaults ({file}): {}", shown(&e.defaults));
}

/// When a stored key with a ttl goes unless written again, as the Python CLI's `explain` says it.
fn expiry_text(left: f64) -> String {
    if left <= 0.0 {
        "past its ttl: the hub removes it now".to_string()
    } else {
        format!("expires in {} unless written again", age_text(left))
    }
}

/// How long, in the unit a person would use: `4 s`, `5 min`, `2.0 h`, `2.3 days` (Python's `age_text`).
fn age_text(seconds: f64) -> String {
    let seconds = seconds.max(0.0);
    if seconds < 120.0 {
        format!("{seconds:.0} s")
    } else if seconds < 7200.0 {
        format!("{:.0} min", seconds / 60.0)
    } else if seconds < 172_800.0 {
        format!("{:.1} h", seconds / 3600.0)
    } else {
        format!("{:.1} days", seconds / 86400.0)
    }
}

fn layer_name(layer: statehub::Layer) -> &'static str {
    match layer {
        statehub::Layer::Environment => "environment",
        statehub::Layer::Stored => "stored",
        statehub::Layer::Defaults => "defaults",
    }
}

pub fn print_status(s: &HubStatus) {
    println!(
        "statehub {} (protocol {}), pid {}, up {:.1} s",
        s.version, s.protocol, s.pid, s.uptime
    );
    println!("revision {} (epoch {}), {} keys", s.rev, s.epoch, s.keys);
    println!("writes {}, commits {}", s.writes, s.commits);
    println!("data dir {}", s.data_dir);
    println!("store {}", s.store);
    println!("mirror {}", s.mirror);
    for (name, endpoint) in &s.endpoints {
        println!("{name} {}", text(endpoint));
    }
}
