"""The schema files together: fragments that overlap and patterns that tie are refused.

Each file is read on its own by ``schema_load``; this module judges them as one
schema, in a fixed order (files by key, patterns sorted), so the error reported is
the same in Python and Rust.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping

from statehub.hub.errors import InvalidRequest
from statehub.hub.schema_load import LOAD_HINT, SchemaFile
from statehub.hub.schema_types import Rule


def check_files(files: Iterable[SchemaFile]) -> list[SchemaFile]:
    """Sort ``files`` main first and refuse overlapping fragments; return them in that order."""
    ordered = sorted(files, key=lambda f: f.key)
    for first, second in zip(ordered, ordered[1:], strict=False):
        if first.key == second.key:
            raise InvalidRequest(
                f"{second.origin}: a second text for {second.key}; a schema key holds one", hint=LOAD_HINT
            )
    fragments = [f for f in ordered if f.prefix]
    for index, first in enumerate(fragments):
        for second in fragments[index + 1 :]:
            if second.prefix.startswith(first.prefix):
                raise InvalidRequest(
                    f"{second.origin}: prefix {json.dumps(second.prefix)} is inside {json.dumps(first.prefix)}, "
                    f"which {first.origin} owns; a prefix belongs to one fragment",
                    hint=LOAD_HINT,
                )
    for main in (f for f in ordered if not f.prefix):
        for fragment in fragments:
            _check_inside(main, fragment)
    return ordered


def _check_inside(main: SchemaFile, fragment: SchemaFile) -> None:
    owned = fragment.prefix.split(".")[:-1]
    for rule in main.rules:
        if rule.name.split(".")[: len(owned)] == owned:
            raise InvalidRequest(
                f"{main.origin}: [keys.{json.dumps(rule.name)}]: inside {json.dumps(fragment.prefix)}, "
                f"which {fragment.origin} owns; move the rule into that fragment",
                hint=LOAD_HINT,
            )
    for prefix in main.policies:
        if prefix.startswith(fragment.prefix):
            raise InvalidRequest(
                f"{main.origin}: [unknown] {json.dumps(prefix)}: inside {json.dumps(fragment.prefix)}, "
                f"which {fragment.origin} owns; set that policy in the fragment",
                hint=LOAD_HINT,
            )


def check_ties(rules: Iterable[Rule]) -> None:
    """Refuse two patterns that match one key with as many literal segments each, unless a
    more literal rule (an exact key, or a pattern with more literal segments) covers every
    key both match."""
    by_length: dict[int, list[tuple[str, ...]]] = {}
    origins: dict[str, str] = {}
    for rule in rules:
        by_length.setdefault(rule.name.count(".") + 1, []).append(tuple(rule.name.split(".")))
        origins[rule.name] = rule.origin
    for length in sorted(by_length):
        shapes = sorted(by_length[length])
        patterns = [s for s in shapes if "*" in s]
        for index, first in enumerate(patterns):
            for second in patterns[index + 1 :]:
                _check_pair(first, second, shapes, origins)


def _check_pair(
    first: tuple[str, ...], second: tuple[str, ...], shapes: list[tuple[str, ...]], origins: Mapping[str, str]
) -> None:
    literals = _literal_count(first)
    if _literal_count(second) != literals:
        return
    both: list[str] = []
    for a, b in zip(first, second, strict=True):
        if a != "*" and b != "*" and a != b:
            return  # no key matches both
        both.append(a if a != "*" else b)
    if any(_literal_count(s) > literals and _covers(s, both) for s in shapes):
        return
    one, two, meet = ".".join(first), ".".join(second), ".".join(both)
    raise InvalidRequest(
        f"patterns '{one}' ({origins[one]}) and '{two}' ({origins[two]}) tie: both match '{meet}' "
        f"with {literals} literal segment{'' if literals == 1 else 's'} each; "
        f"add a rule for '{meet}', or make one of them more literal",
        hint=LOAD_HINT,
    )


def _literal_count(shape: tuple[str, ...]) -> int:
    return sum(1 for segment in shape if segment != "*")


def _covers(shape: tuple[str, ...], keys: list[str]) -> bool:
    """Whether ``shape`` matches every key the pattern ``keys`` matches."""
    return all(s == "*" or s == k for s, k in zip(shape, keys, strict=True))
