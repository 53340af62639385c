"""What a value typed on the command line becomes: the one place ``set`` decides a value's type.

The type comes from the first of these that speaks:

1. ``--type str|int|float|bool|json``, as the user asked;
2. the schema's rule for the key, when one exists (its ``parse_text``);
3. the type the key already has, when the text parses as that type, so that
   ``set k "$(statehub get k)"`` keeps the string "30" a string;
4. JSON when the text parses as JSON (30, true, [1,2]), else the text as a string.

A value that does not print back as it was typed (``1.10`` stored as the number
1.1, a number stored where the key held a string) comes with a note saying so,
and what to type instead.  No typer, no client here: plain functions.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from statehub import MISSING, InvalidRequest, json_text

TYPE_NAMES = ("str", "int", "float", "bool", "json")


@dataclass(frozen=True)
class TypedValue:
    """A value to store, and a note for the user when it is not what the text literally says."""

    value: Any
    note: str = ""


def typed_value(
    text: str,
    *,
    type_name: str | None = None,
    current: Any = MISSING,
    schema_parse: Callable[[str], Any] | None = None,
) -> TypedValue:
    """The value ``text`` stands for (see the module's docstring for the order of the sources).

    ``current`` is the key's stored value (MISSING when it has none);
    ``schema_parse`` the schema's parser for the key, when a rule exists.
    Raises InvalidRequest when ``--type`` was given and the text is not of that type.
    """
    if type_name is not None:
        return TypedValue(parse_as(text, type_name))
    if schema_parse is not None:
        return TypedValue(schema_parse(text))
    if current is not MISSING and current is not None:
        kept = _as_type_of(text, current)
        if kept is not MISSING:
            return _noted(text, kept)
    guessed = guess(text)
    if current is not MISSING and current is not None and type_of(guessed) != type_of(current):
        return TypedValue(
            guessed,
            f"the key held {_a(type_of(current))}; {text!r} is stored as {_a(type_of(guessed))} "
            f"(give --type {type_of(current)} to refuse what is not one)",
        )
    return _noted(text, guessed)


def guess(text: str) -> Any:
    """JSON when ``text`` parses as JSON, else the text itself."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def parse_as(text: str, type_name: str) -> Any:
    """``text`` as ``type_name`` (str, int, float, bool, json); InvalidRequest naming both when it is not one."""
    parsers: dict[str, Callable[[str], Any]] = {
        "str": str,
        "int": _int,
        "float": _float,
        "bool": _bool,
        "json": json.loads,
    }
    parser = parsers.get(type_name)
    if parser is None:
        raise InvalidRequest(f"unknown --type {type_name!r}: give one of {', '.join(TYPE_NAMES)}")
    try:
        return parser(text)
    except ValueError as exc:
        raise InvalidRequest(
            f"{text!r} is not {_a(type_name)}: {exc}" if type_name == "json" else f"{text!r} is not {_a(type_name)}",
            hint="give a value of that type, or another --type",
        ) from None


def type_of(value: Any) -> str:
    """The --type name of a stored value: str, int, float, bool, or json (null, lists and tables)."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "str"
    return "json"


def _as_type_of(text: str, current: Any) -> Any:
    """``text`` as the type ``current`` has, or MISSING when it does not parse as one."""
    try:
        return parse_as(text, type_of(current))
    except InvalidRequest:
        return MISSING


def _noted(text: str, value: Any) -> TypedValue:
    """``value``, with a note when it does not print back as ``text``."""
    if isinstance(value, str) or json_text(value) == text.strip():
        return TypedValue(value)
    return TypedValue(value, f"{text!r} is stored as {json_text(value)} (give --type str to keep the text as typed)")


def _int(text: str) -> int:
    return int(text.strip())


def _float(text: str) -> float:
    value = float(text.strip())
    if not math.isfinite(value):
        raise ValueError("not a finite number")
    return value


def _bool(text: str) -> bool:
    words = {"true": True, "false": False}
    word = text.strip().lower()
    if word not in words:
        raise ValueError("not true or false")
    return words[word]


def _a(type_name: str) -> str:
    return {"int": "an int", "json": "JSON"}.get(type_name, f"a {type_name}")
