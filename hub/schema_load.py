"""Reading schema texts: one TOML file into rules, then the files together into one rule set.

Every way a schema can be wrong is found here, before any write meets it: a bad
field, a default that breaks its own rule, two fragments that claim one prefix,
two patterns that tie for a key.  Messages name the file, the table and what is
wrong.  Tables are read in sorted order, so the first error reported is the same
in Python and in Rust (whose TOML tables are sorted maps).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from datetime import date, datetime, time
from typing import TYPE_CHECKING, Any, Literal, cast

import msgspec

from statehub.hub.errors import InvalidRequest
from statehub.hub.protocol import MAX_KEY_LENGTH, MAX_NAME_LENGTH
from statehub.hub.rules import SEGMENT, SEGMENT_CHARS_TEXT, check_key
from statehub.hub.schema_types import BOUNDED_TYPES, ITEM_TYPES, TYPES, Rule, Type, show_value

if TYPE_CHECKING:
    import tomllib

Policy = Literal["allow", "warn", "refuse"]
POLICIES: tuple[Policy, ...] = ("allow", "warn", "refuse")

SCHEMA_KEY = "statehub.schema"
FRAGMENT_KEY_PREFIX = SCHEMA_KEY + "."
FORMAT = 1
RULE_FIELDS = (
    "type", "default", "description", "unit", "min", "max",
    "values", "items", "secret", "writable_by", "readonly_for", "ttl",
)  # fmt: skip
# The issue that asked for the writers field called it readonly_for; it reads backwards, so
# writable_by is the name documented first, and readonly_for the synonym with the same meaning.
WRITER_FIELDS = ("writable_by", "readonly_for")
SCHEMA_FIELDS = ("format", "prefix", "description")
LOAD_HINT = "fix the schema text and apply it again; nothing was changed"

_TOML_POSITION = re.compile(r"\s*\(at line (\d+), column \d+\)$")


class SchemaFile(msgspec.Struct, frozen=True, kw_only=True):
    """One schema text, read: the main schema or a fragment owning ``prefix``."""

    key: str  # statehub.schema, or statehub.schema.PREFIX for a fragment
    origin: str  # what messages call it: the key, or the file it was read from
    prefix: str  # "" for the main schema; "pump." for statehub.schema.pump
    text: str
    typed: bool  # False: a plain defaults file (no [schema] table), every key of type any
    description: str = ""
    rules: tuple[Rule, ...] = ()  # sorted by name
    policies: dict[str, Policy] = msgspec.field(default_factory=dict)  # whole prefixes
    writers: dict[str, tuple[str, ...]] = msgspec.field(default_factory=dict)  # whole prefix -> sources


def schema_error(origin: str, where: str, problem: str) -> InvalidRequest:
    return InvalidRequest(f"{origin}: {where}: {problem}", hint=LOAD_HINT)


def fragment_key(prefix: str) -> str:
    """Where the fragment owning ``prefix`` (``pump.``) is stored: ``statehub.schema.pump``."""
    return FRAGMENT_KEY_PREFIX + prefix.removesuffix(".")


def is_schema_key(key: str) -> bool:
    return key == SCHEMA_KEY or key.startswith(FRAGMENT_KEY_PREFIX)


def parse_schema(text: str, key: str = SCHEMA_KEY, origin: str | None = None) -> SchemaFile:
    """Read one schema text stored (or to be stored) at ``key``; raise InvalidRequest naming the problem."""
    import tomllib  # here: a hub with no schema starts without it (~3 ms)

    origin = origin or key
    prefix = _key_prefix(key, origin)
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise _toml_error(origin, exc) from None
    if "schema" not in document:
        rules = _defaults_rules(document, prefix, key, origin)
        return SchemaFile(key=key, origin=origin, prefix=prefix, text=text, typed=False, rules=rules)
    for name in sorted(document):
        if name not in ("schema", "unknown", "writers", "keys"):
            raise schema_error(
                origin,
                f"top-level entry {json.dumps(name)}",
                'unknown; a schema file holds only [schema], [unknown], [writers] and [keys."KEY"] tables',
            )
    description = _header(document["schema"], prefix, key, origin)
    policies = _policies(document.get("unknown", {}), prefix, origin)
    writers = _prefix_writers(document.get("writers", {}), prefix, origin)
    keys = document.get("keys", {})
    if not isinstance(keys, dict):
        raise schema_error(origin, "[keys]", 'must be a table of rules, like [keys."plant.rate"]')
    rules = tuple(_rule(name, keys[name], prefix, key, origin) for name in sorted(keys))
    return SchemaFile(
        key=key,
        origin=origin,
        prefix=prefix,
        text=text,
        typed=True,
        description=description,
        rules=rules,
        policies=policies,
        writers=writers,
    )


def _toml_error(origin: str, exc: tomllib.TOMLDecodeError) -> InvalidRequest:
    detail = str(exc)
    position = _TOML_POSITION.search(detail)
    line = f" at line {position.group(1)}" if position else ""
    detail = detail[: position.start()] if position else detail
    return InvalidRequest(f"{origin}: invalid TOML{line}: {detail}", hint=LOAD_HINT)


def _key_prefix(key: str, origin: str) -> str:
    """The prefix a schema key owns: "" for statehub.schema, "pump." for statehub.schema.pump."""
    if key == SCHEMA_KEY:
        return ""
    if not key.startswith(FRAGMENT_KEY_PREFIX):
        raise schema_error(
            origin, "key", f"'{key}' is not a schema key ({SCHEMA_KEY} or {SCHEMA_KEY}.PREFIX)"
        )
    name = key[len(FRAGMENT_KEY_PREFIX) :]
    try:
        check_key(name)
    except InvalidRequest as exc:
        raise schema_error(origin, "key", exc.message) from None
    if name == "statehub" or name.startswith("statehub."):
        raise schema_error(origin, "key", "a fragment cannot own 'statehub.': that prefix is the hub's")
    return name + "."


def _header(header: Any, prefix: str, key: str, origin: str) -> str:
    if not isinstance(header, dict):
        raise schema_error(origin, "[schema]", "must be a table, like [schema] format = 1")
    for name in sorted(header):
        if name not in SCHEMA_FIELDS:
            raise schema_error(
                origin,
                "[schema]",
                f"unknown field {json.dumps(name)}; its fields are {', '.join(SCHEMA_FIELDS)}",
            )
    if "format" not in header:
        raise schema_error(origin, "[schema]", f"format = {FORMAT} is missing")
    version = header["format"]
    if not isinstance(version, int) or isinstance(version, bool) or version != FORMAT:
        shown = show_value(_plain(version))
        raise schema_error(
            origin, "[schema]", f"format {shown} is not supported; this statehub reads format {FORMAT}"
        )
    declared = header.get("prefix")
    if declared is not None:
        _check_declared_prefix(declared, prefix, key, origin)
    description = header.get("description", "")
    if not isinstance(description, str):
        raise schema_error(
            origin, "[schema]", f"description must be a string, got {show_value(_plain(description))}"
        )
    return description


def _check_declared_prefix(declared: Any, prefix: str, key: str, origin: str) -> None:
    if not isinstance(declared, str) or not declared.endswith(".") or declared == ".":
        shown = show_value(_plain(declared))
        raise schema_error(
            origin, "[schema]", f"prefix must be a key followed by '.', like \"pump.\", got {shown}"
        )
    if not prefix:
        raise schema_error(
            origin,
            "[schema]",
            f"prefix {json.dumps(declared)} makes this a fragment; store it at {fragment_key(declared)}",
        )
    if declared != prefix:
        raise schema_error(
            origin,
            "[schema]",
            f"prefix {json.dumps(declared)} does not match {key}, which owns {json.dumps(prefix)}",
        )


def schema_key_for(text: str) -> str:
    """Where a schema text belongs: a fragment's declared prefix names its key; else the main schema."""
    import tomllib

    try:
        header = tomllib.loads(text).get("schema")
    except tomllib.TOMLDecodeError:
        return SCHEMA_KEY  # parse_schema reports the syntax error with its line
    declared = header.get("prefix") if isinstance(header, dict) else None
    return fragment_key(declared) if isinstance(declared, str) and declared.endswith(".") else SCHEMA_KEY


def _policies(table: Any, prefix: str, origin: str) -> dict[str, Policy]:
    if not isinstance(table, dict):
        raise schema_error(
            origin, "[unknown]", 'must be a table of prefix = policy, like "plant." = "refuse"'
        )
    policies: dict[str, Policy] = {}
    for name in sorted(table):
        where = f"[unknown] {json.dumps(name)}"
        _check_table_prefix(name, prefix, origin, where)
        policy = table[name]
        if policy not in POLICIES:
            shown = show_value(_plain(policy))
            raise schema_error(origin, where, f"the policy must be allow, warn or refuse, got {shown}")
        policies[prefix + name] = cast(Policy, policy)
    return policies


def _prefix_writers(table: Any, prefix: str, origin: str) -> dict[str, tuple[str, ...]]:
    """[writers]: prefix = [sources], who alone may write the keys under a prefix (a fleet's, an ingester's)."""
    if not isinstance(table, dict):
        raise schema_error(origin, "[writers]", 'must be a table of prefix = [sources], like "fleet." = ["fleet"]')
    writers: dict[str, tuple[str, ...]] = {}
    for name in sorted(table):
        where = f"[writers] {json.dumps(name)}"
        _check_table_prefix(name, prefix, origin, where)
        writers[prefix + name] = _source_names(table[name], "the writers of a prefix", origin, where)
    return writers


def _check_table_prefix(name: str, prefix: str, origin: str, where: str) -> None:
    if name and not name.endswith("."):
        raise schema_error(
            origin, where, 'a prefix is "" (every key) or ends with \'.\' (a subtree, like "plant.")'
        )
    if name:
        try:
            check_key(prefix + name[:-1])
        except InvalidRequest as exc:
            raise schema_error(origin, where, exc.message) from None


def _defaults_rules(document: Mapping[str, Any], prefix: str, key: str, origin: str) -> tuple[Rule, ...]:
    """A TOML file without [schema]: every value is a default of a key of type any (nested tables flatten)."""
    rules: list[Rule] = []
    _flatten_defaults(document, "", prefix, key, origin, rules)
    return tuple(sorted(rules, key=lambda rule: rule.name))


def _flatten_defaults(
    table: Mapping[str, Any], base: str, prefix: str, key: str, origin: str, rules: list[Rule]
) -> None:
    for name in sorted(table):  # depth first in sorted order: the first error is Rust's first error too
        value = table[name]
        if isinstance(value, dict):
            _flatten_defaults(value, f"{base}{name}.", prefix, key, origin, rules)
            continue
        where = json.dumps(base + name)
        whole = prefix + base + name
        try:
            check_key(whole)
        except InvalidRequest as exc:
            raise schema_error(origin, where, exc.message) from None
        if is_schema_key(whole):
            raise schema_error(
                origin, where, f"keys under {SCHEMA_KEY} hold the schema itself; no default may name them"
            )
        rules.append(Rule(name=whole, default=_value(value, origin, where), origin=key))


def _rule(name: str, fields: Any, prefix: str, key: str, origin: str) -> Rule:
    where = f"[keys.{json.dumps(name)}]"
    whole = prefix + name
    _check_pattern(whole, origin, where)
    if not isinstance(fields, dict):
        shown = show_value(_plain(fields))
        raise schema_error(origin, where, f"a rule is a table of fields (type, default, ...), got {shown}")
    for field in sorted(fields):
        if field not in RULE_FIELDS:
            raise schema_error(origin, where, _unknown_field(field, fields[field], whole))
    kind = fields.get("type", "any")
    if kind not in TYPES:
        raise schema_error(
            origin, where, f"type must be one of {', '.join(TYPES)}; got {show_value(_plain(kind))}"
        )
    kind = cast(Type, kind)
    description = _text_field(fields, "description", origin, where)
    unit = _text_field(fields, "unit", origin, where)
    values = _enum_values(fields, kind, origin, where)
    items = _item_type(fields, kind, origin, where)
    low, high = _bounds(fields, kind, origin, where)
    secret = fields.get("secret", False)
    if not isinstance(secret, bool):
        raise schema_error(origin, where, f"secret must be true or false, got {show_value(_plain(secret))}")
    writers = _writers(fields, origin, where)
    ttl = _ttl(fields, origin, where)
    rule = Rule(
        name=whole,
        type=kind,
        description=description,
        unit=unit,
        min=low,
        max=high,
        values=values,
        items=items,
        secret=secret,
        writable_by=writers,
        ttl=ttl,
        origin=key,
    )
    if "default" not in fields:
        return rule
    if secret:
        raise schema_error(
            origin, where, "a secret cannot have a default: the schema is stored and shown in plain text"
        )
    default = _value(fields["default"], origin, where)
    problem = rule.problem(default)
    if problem is not None:
        raise schema_error(
            origin, where, f"default {show_value(default)} does not fit: expected {rule.allows()}"
        )
    return msgspec.structs.replace(rule, default=default)


def _check_pattern(pattern: str, origin: str, where: str) -> None:
    def fail(problem: str) -> InvalidRequest:
        return schema_error(origin, where, f"invalid key pattern: {problem}")

    if len(pattern) > MAX_KEY_LENGTH:
        raise fail(f"{len(pattern)} characters, the limit is {MAX_KEY_LENGTH}")
    for number, segment in enumerate(pattern.split("."), start=1):
        if not segment:
            raise fail(f"segment {number} is empty")
        if segment != "*" and not SEGMENT.fullmatch(segment):
            reason = (
                "'*' stands for a whole segment"
                if "*" in segment
                else f"allowed are {SEGMENT_CHARS_TEXT}"
            )
            raise fail(f"segment {number} {json.dumps(segment)}: {reason}")
    if is_schema_key(pattern):
        raise schema_error(
            origin, where, f"keys under {SCHEMA_KEY} hold the schema itself; no rule may name them"
        )


def _unknown_field(field: str, value: Any, whole: str) -> str:
    if isinstance(value, dict):
        return (
            f"unknown field {json.dumps(field)} holding a table; to give {json.dumps(whole + '.' + field)} "
            f"a rule, quote the whole key: [keys.{json.dumps(whole + '.' + field)}]"
        )
    return f"unknown field {json.dumps(field)}; a rule's fields are {', '.join(RULE_FIELDS)}"


def _text_field(fields: Mapping[str, Any], name: str, origin: str, where: str) -> str:
    value = fields.get(name, "")
    if not isinstance(value, str):
        raise schema_error(origin, where, f"{name} must be a string, got {show_value(_plain(value))}")
    return value


def _enum_values(fields: Mapping[str, Any], kind: str, origin: str, where: str) -> tuple[str, ...]:
    values = fields.get("values")
    if kind != "enum":
        if values is not None:
            raise schema_error(origin, where, 'values is only for type = "enum"')
        return ()
    if values is None:
        raise schema_error(origin, where, 'an enum needs its values, like values = ["auto", "manual"]')
    good = isinstance(values, list) and values and all(isinstance(v, str) for v in values)
    if not good or len(set(values)) != len(values):
        raise schema_error(
            origin,
            where,
            f"values must be a non-empty list of distinct strings, got {show_value(_plain(values))}",
        )
    return tuple(values)


def _item_type(fields: Mapping[str, Any], kind: str, origin: str, where: str) -> Type | None:
    items = fields.get("items")
    if items is None:
        return None
    if kind != "list":
        raise schema_error(origin, where, 'items is only for type = "list"')
    if items not in ITEM_TYPES:
        raise schema_error(
            origin, where, f"items must be one of {', '.join(ITEM_TYPES)}; got {show_value(_plain(items))}"
        )
    return None if items == "any" else cast(Type, items)


def _bounds(fields: Mapping[str, Any], kind: str, origin: str, where: str) -> tuple[Any, Any]:
    low, high = fields.get("min"), fields.get("max")
    if low is None and high is None:
        return None, None
    if kind not in BOUNDED_TYPES:
        raise schema_error(origin, where, "min and max are only for types string, integer, number and list")
    for name, bound in (("min", low), ("max", high)):
        if bound is None:
            continue
        if kind == "number":
            if not isinstance(bound, (int, float)) or isinstance(bound, bool) or not math.isfinite(bound):
                raise schema_error(origin, where, f"{name} must be a number, got {show_value(_plain(bound))}")
        elif kind == "integer":
            if not isinstance(bound, int) or isinstance(bound, bool):
                raise schema_error(
                    origin, where, f"{name} must be an integer, got {show_value(_plain(bound))}"
                )
        elif not isinstance(bound, int) or isinstance(bound, bool) or bound < 0:
            shown = show_value(_plain(bound))
            raise schema_error(origin, where, f"{name} must be an integer >= 0 (a length), got {shown}")
    if low is not None and high is not None and low > high:
        raise schema_error(origin, where, f"min {show_value(low)} is greater than max {show_value(high)}")
    return low, high


def _writers(fields: Mapping[str, Any], origin: str, where: str) -> tuple[str, ...]:
    given = [field for field in WRITER_FIELDS if field in fields]
    if not given:
        return ()
    if len(given) > 1:
        raise schema_error(
            origin, where, "writable_by and readonly_for are one field (readonly_for is its synonym): give one"
        )
    return _source_names(fields[given[0]], given[0], origin, where)


def _source_names(writers: Any, what: str, origin: str, where: str) -> tuple[str, ...]:
    good = isinstance(writers, list) and writers and all(isinstance(w, str) and w for w in writers)
    if not good:
        raise schema_error(
            origin,
            where,
            f"{what} must be a non-empty list of source names, got {show_value(_plain(writers))}",
        )
    for writer in writers:
        if len(writer) > MAX_NAME_LENGTH:
            raise schema_error(
                origin, where, f"source name {json.dumps(writer)} is longer than {MAX_NAME_LENGTH}"
            )
    return tuple(writers)


def _ttl(fields: Mapping[str, Any], origin: str, where: str) -> int | float | None:
    ttl = fields.get("ttl")
    if ttl is None:
        return None
    if not isinstance(ttl, (int, float)) or isinstance(ttl, bool) or not math.isfinite(ttl) or ttl <= 0:
        raise schema_error(
            origin, where, f"ttl must be a number of seconds > 0, got {show_value(_plain(ttl))}"
        )
    return ttl


def _value(value: Any, origin: str, where: str) -> Any:
    """A TOML value as a statehub value: tables with sorted keys; no dates, no NaN or infinity."""
    if isinstance(value, (datetime, date, time)):
        raise schema_error(origin, where, "a TOML date or time is not a statehub value; write it as a string")
    if isinstance(value, float) and not math.isfinite(value):
        raise schema_error(origin, where, "nan and inf are not statehub values")
    if isinstance(value, list):
        return [_value(item, origin, where) for item in value]
    if isinstance(value, dict):
        return {name: _value(value[name], origin, where) for name in sorted(value)}
    return value


def _plain(value: Any) -> Any:
    """A TOML value fit to show in a message (dates as their text, nan and inf as words)."""
    if isinstance(value, (datetime, date, time)):
        return value.isoformat()
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, list):
        return [_plain(item) for item in value]
    if isinstance(value, dict):
        return {name: _plain(value[name]) for name in sorted(value)}
    return value
