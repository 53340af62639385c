"""The schema files together: fragments that overlap and patterns that tie are refused.

Each file is read on its own by ``schema_load``; this module judges them as one
schema, in a fixed order (files by key, patterns sorted), so the error reported is
the same in Python and Rust.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterable, Iterator, Mapping

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
    for prefix in main.writers:
        if prefix.startswith(fragment.prefix):
            raise InvalidRequest(
                f"{main.origin}: [writers] {json.dumps(prefix)}: inside {json.dumps(fragment.prefix)}, "
                f"which {fragment.origin} owns; name its writers in the fragment",
                hint=LOAD_HINT,
            )


Shape = tuple[str, ...]  # a key or pattern, split into segments
Mask = tuple[int, ...]  # the positions of a shape's literal segments


def check_ties(rules: Iterable[Rule]) -> None:
    """Refuse two patterns that match one key with as many literal segments each, unless a
    more literal rule (an exact key, or a pattern with more literal segments) covers every
    key both match.

    Only patterns of one length, as many literals and different masks can tie (one mask with
    different literals never matches one key twice), and of those only the ones that agree
    where both are literal: they are found through a dict, so a schema of thousands of rules
    compiles in milliseconds.  The tie reported is the first in sorted order.
    """
    tables: dict[int, dict[Mask, set[Shape]]] = {}
    origins: dict[str, str] = {}
    for rule in rules:
        shape = tuple(rule.name.split("."))
        tables.setdefault(len(shape), {}).setdefault(_mask(shape), set()).add(shape)
        origins[rule.name] = rule.origin
    for length in sorted(tables):
        masks = tables[length]
        ties = [
            tie
            for first, second in itertools.combinations(sorted(masks), 2)
            if len(first) == len(second) < length
            for tie in _ties(masks[first], masks[second], first, second, masks)
        ]
        if ties:
            raise _tie_error(*min(ties), origins)


def _ties(
    shapes: set[Shape], others: set[Shape], mask: Mask, other_mask: Mask, masks: Mapping[Mask, set[Shape]]
) -> Iterator[tuple[Shape, Shape, Shape]]:
    """Each pair of one shape from each set that matches a key in common and that no more literal rule covers."""
    common = sorted(set(mask) & set(other_mask))
    by_common: dict[Shape, list[Shape]] = {}
    for shape in shapes:
        by_common.setdefault(tuple(shape[i] for i in common), []).append(shape)
    for other in others:
        for shape in by_common.get(tuple(other[i] for i in common), []):
            meet = tuple(a if a != "*" else b for a, b in zip(shape, other, strict=True))
            if not _covered(meet, len(mask), masks):
                yield (min(shape, other), max(shape, other), meet)


def _covered(meet: Shape, literals: int, masks: Mapping[Mask, set[Shape]]) -> bool:
    """Whether a rule with more than ``literals`` literal segments matches every key ``meet`` matches."""
    known = set(_mask(meet))
    for mask, shapes in masks.items():
        if len(mask) > literals and known.issuperset(mask):
            wanted = tuple(meet[i] if i in mask else "*" for i in range(len(meet)))
            if wanted in shapes:
                return True
    return False


def _mask(shape: Shape) -> Mask:
    return tuple(i for i, segment in enumerate(shape) if segment != "*")


def _tie_error(first: Shape, second: Shape, meet: Shape, origins: Mapping[str, str]) -> InvalidRequest:
    one, two, both = ".".join(first), ".".join(second), ".".join(meet)
    literals = len(_mask(first))
    return InvalidRequest(
        f"patterns '{one}' ({origins[one]}) and '{two}' ({origins[two]}) tie: both match '{both}' "
        f"with {literals} literal segment{'' if literals == 1 else 's'} each; "
        f"add a rule for '{both}', or make one of them more literal",
        hint=LOAD_HINT,
    )
