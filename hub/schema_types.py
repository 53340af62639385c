"""One schema rule and the values it allows: checking, typed text input, and how values read.

A rule's verdicts are shared word for word with the Rust client (``statehub::schema``)
through ``tests/vectors/schema.json``, so every text this module makes (what a rule
allows, how a value is shown) is built by explicit steps a second language can
repeat exactly, never by a library's repr of a container.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from typing import Any, Literal

import msgspec

from statehub.hub.errors import InvalidRequest

Type = Literal["string", "integer", "number", "boolean", "enum", "list", "table", "any"]
TYPES: tuple[Type, ...] = ("string", "integer", "number", "boolean", "enum", "list", "table", "any")
# What a list's items may be: no nested lists or enums, so a rule stays one line of docs.
ITEM_TYPES = ("string", "integer", "number", "boolean", "table", "any")
# min/max bound the value of a number and the length of a string or a list.
BOUNDED_TYPES = ("string", "integer", "number", "list")

# Values in messages are cut to this many characters: a message names a value, it does not dump it.
SHOWN_CHARACTERS = 60

_INTEGER_TEXT = re.compile(r"[+-]?[0-9]+")
_NUMBER_TEXT = re.compile(r"[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?")
# Only ASCII white space is trimmed, the same in every language (Unicode's lists differ).
_ASCII_SPACE = " \t\r\n\x0b\x0c"
_TRUE_WORDS = ("true", "yes", "on", "1")
_FALSE_WORDS = ("false", "no", "off", "0")
# The protocol's integers are 64-bit: MessagePack holds -2**63 .. 2**64-1.
_INTEGER_RANGE = (-(2**63), 2**64 - 1)


class Rule(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """What the schema says about one key or key pattern.

    ``default`` is None when the rule has none: TOML has no null, so a schema can
    never give null as a default.
    """

    name: str  # the key or pattern, whole (a fragment's prefix included)
    type: Type = "any"
    default: Any = None
    description: str = ""
    unit: str = ""
    min: int | float | None = None
    max: int | float | None = None
    values: tuple[str, ...] = ()  # enum only
    items: Type | None = None  # list only: the type of every item
    secret: bool = False
    writable_by: tuple[str, ...] = ()  # empty: any source may write
    ttl: int | float | None = None  # seconds, as the schema wrote it
    origin: str = ""  # the schema key (or file) that defined the rule

    def allows(self) -> str:
        """What the rule allows, as messages say it: ``integer 0..500``, ``one of "auto", "off"``."""
        if self.type in ("integer", "number"):
            return self.type + _range_text(self.min, self.max)
        if self.type == "string":
            return "string" + _length_text(self.min, self.max, "character")
        if self.type == "list":
            base = "list" if self.items is None else f"list of {self.items}"
            return base + _length_text(self.min, self.max, "item")
        if self.type == "enum":
            return "one of " + ", ".join(show_value(v) for v in self.values)
        if self.type == "any":
            return "any value"
        return self.type

    def problem(self, value: Any, secret: bool = False) -> str | None:
        """What is wrong with ``value`` as the ``got ...`` part of a message; None when it fits.

        With ``secret`` (or a secret rule) the value itself is never shown, only its kind.
        """
        return _PROBLEMS[self.type](self, value, secret or self.secret)

    def check_value(self, key: str, value: Any, secret: bool = False) -> None:
        """Raise InvalidRequest in the shape every front end shows, when ``value`` does not fit."""
        problem = self.problem(value, secret)
        if problem is not None:
            raise InvalidRequest(value_message(key, self, problem))

    def parse_text(self, key: str, text: str) -> Any:
        """A value typed by a person, read by this rule's type, then checked against the rule."""
        value = _typed_value(self, text)
        if value is _UNREADABLE:
            raise InvalidRequest(value_message(key, self, _got(text, self.secret)))
        self.check_value(key, value)
        return value


def _string_problem(rule: Rule, value: Any, hide: bool) -> str | None:
    if not isinstance(value, str):
        return _got(value, hide)
    return _length_problem(len(value), rule.min, rule.max, "character")


def _integer_problem(rule: Rule, value: Any, hide: bool) -> str | None:
    if not _is_type("integer", value) or not _within(value, rule.min, rule.max):
        return _got(value, hide)
    return None


def _number_problem(rule: Rule, value: Any, hide: bool) -> str | None:
    if not _is_type("number", value) or not _within(value, rule.min, rule.max):
        return _got(value, hide)
    return None


def _boolean_problem(rule: Rule, value: Any, hide: bool) -> str | None:
    return None if isinstance(value, bool) else _got(value, hide)


def _enum_problem(rule: Rule, value: Any, hide: bool) -> str | None:
    return None if isinstance(value, str) and value in rule.values else _got(value, hide)


def _list_problem(rule: Rule, value: Any, hide: bool) -> str | None:
    if not isinstance(value, list):
        return _got(value, hide)
    if rule.items is not None:
        for index, item in enumerate(value):
            if not _is_type(rule.items, item):
                return f"{_got(item, hide)} at [{index}]"
    return _length_problem(len(value), rule.min, rule.max, "item")


def _table_problem(rule: Rule, value: Any, hide: bool) -> str | None:
    return None if isinstance(value, dict) else _got(value, hide)


def _any_problem(rule: Rule, value: Any, hide: bool) -> str | None:
    return None


# One judge per type, picked by a dict lookup: check() runs on every op of every write.
_PROBLEMS: dict[str, Callable[[Rule, Any, bool], str | None]] = {
    "string": _string_problem,
    "integer": _integer_problem,
    "number": _number_problem,
    "boolean": _boolean_problem,
    "enum": _enum_problem,
    "list": _list_problem,
    "table": _table_problem,
    "any": _any_problem,
}


def value_message(key: str, rule: Rule, problem: str) -> str:
    return f"invalid value for '{key}': expected {rule.allows()} (schema: {rule.name}), {problem}"


def parse_untyped_text(text: str) -> Any:
    """A value typed for a key of no type: JSON when it parses as JSON, else the text itself."""
    try:
        return msgspec.json.decode(text)
    except msgspec.DecodeError:
        return text


class _Unreadable:
    """Marks text a rule's type cannot read (None is a value: JSON null)."""


_UNREADABLE: Any = _Unreadable()


def _typed_value(rule: Rule, text: str) -> Any:
    kind = rule.type
    if kind == "string":
        return text  # verbatim: "1.10" stays "1.10", spaces and quotes included
    if kind == "any":
        return parse_untyped_text(text)
    word = text.strip(_ASCII_SPACE)
    if kind == "integer":
        return _integer(word)
    if kind == "number":
        # Digits alone stay an integer (30, not 30.0) when 64 bits hold them.
        number = _integer(word)
        if number is not _UNREADABLE or not _NUMBER_TEXT.fullmatch(word):
            return number
        number = float(word)
        return number if math.isfinite(number) else _UNREADABLE
    if kind == "boolean":
        lowered = word.lower()
        if lowered in _TRUE_WORDS:
            return True
        return False if lowered in _FALSE_WORDS else _UNREADABLE
    if kind == "enum":
        return word if word in rule.values else _UNREADABLE
    value = parse_untyped_text(word)  # list and table: JSON text
    return value if _is_type(kind, value) else _UNREADABLE


def _integer(word: str) -> Any:
    if not _INTEGER_TEXT.fullmatch(word):
        return _UNREADABLE
    number = int(word)
    low, high = _INTEGER_RANGE
    return number if low <= number <= high else _UNREADABLE


def _is_type(kind: str, value: Any) -> bool:
    if type(value) is int:  # the common case first; bool is a subclass of int, not int itself
        return kind in ("integer", "number", "any")
    if kind == "string":
        return isinstance(value, str)
    if kind == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind == "boolean":
        return isinstance(value, bool)
    if kind == "list":
        return isinstance(value, list)
    if kind == "table":
        return isinstance(value, dict)
    return True  # any


def _within(value: float, low: float | None, high: float | None) -> bool:
    return (low is None or value >= low) and (high is None or value <= high)


def _range_text(low: float | None, high: float | None) -> str:
    if low is not None and high is not None:
        return f" {show_number(low)}..{show_number(high)}"
    if low is not None:
        return f" >= {show_number(low)}"
    return "" if high is None else f" <= {show_number(high)}"


def _length_text(low: float | None, high: float | None, unit: str) -> str:
    if low is not None and high is not None:
        return f" with {show_number(low)}..{show_number(high)} {unit}s"
    if low is not None:
        return f" with at least {_count(low, unit)}"
    return "" if high is None else f" with at most {_count(high, unit)}"


def _length_problem(length: int, low: float | None, high: float | None, unit: str) -> str | None:
    return None if _within(length, low, high) else f"got {_count(length, unit)}"


def _count(number: float, unit: str) -> str:
    return f"{show_number(number)} {unit}{'' if number == 1 else 's'}"


def _got(value: Any, hide: bool) -> str:
    return f"got {kind_name(value)}" if hide else f"got {show_value(value)}"


def kind_name(value: Any) -> str:
    """A value's kind with its article, for messages that must not show a secret."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    return "a list" if isinstance(value, list) else "a table"


def show_value(value: Any, limit: int = SHOWN_CHARACTERS) -> str:
    """``value`` as JSON with ``, `` and ``: `` separators, cut to ``limit`` characters with ``...``."""
    parts: list[str] = []
    _render(value, parts, limit + 1)
    text = "".join(parts)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _render(value: Any, parts: list[str], budget: int) -> int:
    """Append ``value``'s text to ``parts``; stop early once ``budget`` characters are spent."""
    if isinstance(value, list | dict):
        pairs = value.items() if isinstance(value, dict) else ((None, v) for v in value)
        opening, closing = ("{", "}") if isinstance(value, dict) else ("[", "]")
        parts.append(opening)
        budget -= 1
        for index, (name, item) in enumerate(pairs):
            if budget <= 0:
                return budget
            if index:
                parts.append(", ")
                budget -= 2
            if name is not None:
                label = json.dumps(name, ensure_ascii=False) + ": "
                parts.append(label)
                budget -= len(label)
            budget = _render(item, parts, budget)
        parts.append(closing)
        return budget - 1
    # A long string is cut before it is escaped: a message never pays for a megabyte value.
    text = _scalar_text(value[: max(budget, 0)] if isinstance(value, str) else value)
    parts.append(text)
    return budget - len(text)


def _scalar_text(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return show_number(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    return json.dumps(str(value), ensure_ascii=False)  # not a protocol value; still say what it was


def show_number(number: float) -> str:
    """Integers as digits; floats as Python's repr (shortest round trip; exponent below 1e-4, from 1e16).

    The Rust twin rebuilds exactly this text from its own shortest digits.
    """
    if isinstance(number, bool) or not isinstance(number, float):
        return str(number)
    if math.isnan(number) or math.isinf(number):
        return "null"  # no schema or protocol value is ever NaN or infinite; JSON's word for it
    return repr(number)
