"""The waterfall: environment variable > stored value > defaults (the schema's, then the shipped file's).

The environment name of a key is ``STATEHUB_`` + the key upper-cased, with
``.`` written as ``__`` and each of ``-``, ``/`` and ``=`` as ``_`` (names a
shell can set): ``plant.flow-rate`` is read from ``STATEHUB_PLANT__FLOW_RATE``,
``eds.stiles.FI-405/415`` from ``STATEHUB_EDS__STILES__FI_405_415``.  Its text is parsed as JSON when it parses, else
taken as a string, exactly like a value typed to ``statehub set``; a key with a
type in the hub's schema reads it by that type (``1.10`` stays a string for a
string key).  The defaults layer is the schema's default for the key (a
pattern's serves every key it matches), else the defaults file's: a plain
defaults file is a schema without types (docs/schema.md).
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

import msgspec

from statehub.hub.errors import HubUnavailable, NotFound
from statehub.hub.protocol import SECRET_PLACEHOLDER

if TYPE_CHECKING:
    from statehub.hub.schema import Rule, Schema
    from statehub.readings import Reading



class KeyReader(Protocol):
    """What the waterfall needs of a Client (a Protocol, so that the client module can import this one)."""

    defaults_path: str | Path | None

    def get(self, key: str, *, reveal: bool = False) -> Reading: ...

    def schema(self) -> Schema: ...


ENV_DEFAULTS = "STATEHUB_DEFAULTS"
ENV_PREFIX = "STATEHUB_"

Layer = Literal["environment", "stored", "defaults"]


class _Missing:
    """Marks a layer that has no value for a key (a stored null is a value)."""

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()


@dataclass(frozen=True)
class Explanation:
    """Where a key's value comes from, and what every layer holds."""

    key: str
    layer: Layer | None  # the winning layer; None when no layer has the key
    value: Any  # the winning value, or MISSING
    env_var: str
    env_value: Any  # MISSING when the variable is not set
    stored: Reading | None  # None when the store has no such key (or cannot be read)
    stored_note: str  # why the store was not consulted, or where it was read from
    default: Any  # MISSING when the defaults have no such key
    defaults_path: str  # where the default came from: "schema: RULE", or the defaults file
    rule: Rule | None = None  # the schema's rule for the key: its description, unit and what it allows


_ENV_UNDERSCORED = str.maketrans({"-": "_", "/": "_", "=": "_"})


def env_name(key: str) -> str:
    """The environment variable that overrides ``key`` (several keys may share one: see above)."""
    return ENV_PREFIX + key.upper().replace(".", "__").translate(_ENV_UNDERSCORED)


def parse_text_value(text: str) -> Any:
    """A value typed by a person: JSON when it parses as JSON, else the text itself."""
    try:
        return msgspec.json.decode(text)
    except msgspec.DecodeError:
        return text


def defaults_file(explicit: str | Path | None = None) -> Path:
    if explicit:
        return Path(explicit)
    from_env = os.environ.get(ENV_DEFAULTS)
    if from_env:
        return Path(from_env)
    return Path(str(resources.files("statehub").joinpath("defaults.toml")))


def load_defaults(path: Path) -> dict[str, Any]:
    """The defaults file as flat dotted keys; a missing file is no defaults."""
    try:
        with open(path, "rb") as handle:
            return flatten(tomllib.load(handle))
    except FileNotFoundError:
        return {}
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"defaults file {path} is not valid TOML: {exc}") from exc


def flatten(table: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for name, value in table.items():
        key = f"{prefix}{name}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, key + "."))
        else:
            flat[key] = value
    return flat


def explain(client: KeyReader, key: str, *, reveal: bool = False) -> Explanation:
    """Every layer's value for ``key`` and which one wins.

    For a secret, the environment's value is masked too unless ``reveal`` (which
    also fetches the stored secret's plaintext from the hub).
    """
    variable = env_name(key)
    schema = _schema(client)
    rule = schema.rule_for(key)
    raw = os.environ.get(variable)
    env_value = MISSING if raw is None else _typed(schema, key, raw)
    stored, note = _stored(client, key, reveal)
    if stored is not None and stored.item.secret and not reveal and env_value is not MISSING:
        env_value = SECRET_PLACEHOLDER
    path = defaults_file(client.defaults_path)
    if rule is not None and rule.default is not None:
        default, where = rule.default, f"schema: {rule.name}"
    else:
        default, where = load_defaults(path).get(key, MISSING), str(path)
    layers: list[tuple[Layer, Any]] = [
        ("environment", env_value),
        ("stored", stored.value if stored is not None else MISSING),
        ("defaults", default),
    ]
    layer, value = next(((name, v) for name, v in layers if v is not MISSING), (None, MISSING))
    return Explanation(
        key=key,
        layer=layer,
        value=value,
        env_var=variable,
        env_value=env_value,
        stored=stored,
        stored_note=note,
        default=default,
        defaults_path=where,
        rule=rule,
    )


def _schema(client: KeyReader) -> Schema:
    """The hub's schema (from the mirror when the hub is down); none when neither can be read."""
    from statehub.hub.schema import Schema

    try:
        return client.schema()
    except HubUnavailable:
        return Schema()


def _typed(schema: Schema, key: str, text: str) -> Any:
    """An environment variable's text read by the key's type; text the type cannot read is taken as typed
    text always was (the program reading it then meets the same value the hub would refuse)."""
    from statehub.hub.errors import InvalidRequest

    try:
        return schema.parse_text(key, text)
    except InvalidRequest:
        return parse_text_value(text)


def _stored(client: KeyReader, key: str, reveal: bool) -> tuple[Reading | None, str]:
    try:
        reading = client.get(key, reveal=reveal)
    except NotFound:
        return None, "not stored"
    except HubUnavailable as exc:
        return None, f"unknown: {exc.message}"
    return reading, reading.origin.describe()
