"""The schema in the GUI: typed input, the widget for each type, and keys about to expire.

Pure functions, testable without a display.  The window keeps the hub's schema
(compiled from the ``statehub.schema*`` keys it follows like any other) and
asks here which widget edits a key (a checkbox for a boolean, a spin box with
the range for an integer, a drop-down for an enum, text otherwise), how the
typed text reads (``Schema.parse_text``: the same verdicts as the CLI and the
hub), and what to say of a key with a ttl.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from statehub import InvalidRequest, Item, Schema, is_schema_key, json_text, load_schema

# A key whose ttl has this share or less left is "about to expire" (highlighted in its cell).
SOON_SHARE = 0.25
Kind = Literal["text", "checkbox", "spin", "choice"]
# A spin box lists its values: an integer rule with a wider range (or none) is typed as text.
MAX_SPIN_VALUES = 10_001


@dataclass(frozen=True)
class Widget:
    """How the edit dialog edits a key: ``kind``, and the choices or the range it offers."""

    kind: Kind
    choices: tuple[str, ...] = ()
    low: int = 0
    high: int = 0
    hint: str = ""  # what the schema allows, its unit and description, under the input


def schema_from(items: Mapping[str, Item], previous: Schema) -> Schema:
    """The schema the items' schema keys make; ``previous`` when they do not compile (the hub refused such a text)."""
    texts = {key: item.value for key, item in items.items() if is_schema_key(key) and isinstance(item.value, str)}
    if texts == previous.texts:
        return previous
    try:
        return load_schema(texts)
    except InvalidRequest:
        return previous


def widget_for(schema: Schema, key: str) -> Widget:
    """The widget that edits ``key``: by its rule's type, text when it has none (or no schema)."""
    rule = schema.rule_for(key)
    if rule is None:
        return Widget("text")
    hint = rule.allows() + (f", {rule.unit}" if rule.unit else "") + (f": {rule.description}" if rule.description else "")
    if rule.type == "boolean":
        return Widget("checkbox", hint=hint)
    if rule.type == "enum":
        return Widget("choice", choices=rule.values, hint=hint)
    if rule.type == "integer" and rule.min is not None and rule.max is not None:
        low, high = int(rule.min), int(rule.max)
        if high - low < MAX_SPIN_VALUES:
            return Widget("spin", low=low, high=high, hint=hint)
    return Widget("text", hint=hint)


def widget_text(widget: Widget, raw: Any) -> str:
    """What the widget holds, as the text typed input reads (a checkbox gives true or false)."""
    if widget.kind == "checkbox":
        return "true" if raw else "false"
    return str(raw)


def initial_value(widget: Widget, text: str) -> Any:
    """The widget's starting state from the text the dialog starts with."""
    if widget.kind == "checkbox":
        return text.strip().lower() in ("true", "yes", "on", "1")
    if widget.kind == "choice":
        return text if text in widget.choices else (widget.choices[0] if widget.choices else "")
    return text


def parse_typed(schema: Schema, key: str, text: str) -> Any:
    """The value typed for ``key``, read by its type (InvalidRequest in the schema's words when it cannot be)."""
    return schema.parse_text(key, text)


def preview(schema: Schema, key: str, text: str) -> str:
    """What the text will be stored as, for the dialog: the value, or why it cannot be."""
    try:
        value = parse_typed(schema, key, text)
    except InvalidRequest as exc:
        return f"cannot be stored: {exc}"
    rule = schema.rule_for(key)
    where = f" (schema: {rule.name})" if rule is not None else ""
    return f"stored as {json_text(value)}{where}"


def ttl_of(schema: Schema, item: Item) -> float | None:
    """The key's lifetime: the item's own ttl (its write's, else its rule's, as the hub says), else the schema's.

    The schema is the fallback for an item that does not carry one: from the
    mirror, or from a hub older than the ttl field.
    """
    ttl = item.ttl if item.ttl is not None else schema.ttl_of(item.key)
    return None if ttl is None else float(ttl)


def expiry_text(schema: Schema, item: Item, now: float) -> str:
    """``expires in 12 s``, ``expiring`` (past its ttl: the hub removes it at once), or "" without a ttl.

    Counted from the key's last write (wall clock), as the hub counts from it; a hub that
    restarted gives keys one more whole ttl, so this is the earliest the key can go.
    """
    ttl = ttl_of(schema, item)
    if ttl is None:
        return ""
    left = item.time + ttl - now
    if left <= 0:
        return "expiring"
    return f"expires in {left:.0f} s" if left >= 1 else "expires in <1 s"


def is_expiring_soon(schema: Schema, item: Item, now: float) -> bool:
    """The key has SOON_SHARE of its ttl or less left: shown highlighted."""
    ttl = ttl_of(schema, item)
    return ttl is not None and item.time + ttl - now <= SOON_SHARE * ttl
