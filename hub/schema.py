"""The schema: which keys statehub knows, what each may hold, who may write it, how long it lives.

Pure: no sockets, no SQLite.  A ``Schema`` is compiled once from the schema texts
(the main one at ``statehub.schema``, fragments at ``statehub.schema.PREFIX``; see
docs/schema.md) and then answers per op in a dict lookup or a few:

    schema = load_schema({"statehub.schema": text})
    warning = schema.check("plant.rate", 30, source="cli")   # None, a warning, or InvalidRequest
    schema.parse_text("plant.version", "1.10")                 # "1.10" for a string key

Exact keys are one dict lookup.  Patterns are grouped by segment count and by
which segments are literal (their "mask"); each group is a dict from the literal
segments to the rule, tried from the most literal mask down, so a write costs one
lookup per distinct mask of its length, never a scan of every rule.  The Rust
client (``statehub::schema``) gives the same verdicts in the same words, held to
``tests/vectors/schema.json``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Hashable, Iterable, Mapping
from operator import itemgetter
from typing import Any, Literal, Protocol

import msgspec

from statehub.hub.errors import InvalidRequest
from statehub.hub.protocol import SECRET_PLACEHOLDER
from statehub.hub.schema_docs import render_docs
from statehub.hub.schema_load import (
    FRAGMENT_KEY_PREFIX,
    SCHEMA_KEY,
    Policy,
    SchemaFile,
    fragment_key,
    is_schema_key,
    parse_schema,
    schema_key_for,
)
from statehub.hub.schema_merge import check_files, check_ties
from statehub.hub.schema_types import Rule, parse_untyped_text, show_value, value_message

__all__ = [
    "FRAGMENT_KEY_PREFIX",
    "SCHEMA_KEY",
    "Policy",
    "Rule",
    "Schema",
    "SchemaFile",
    "StoredItem",
    "Violation",
    "fragment_key",
    "is_schema_key",
    "load_schema",
    "parse_schema",
    "schema_key_for",
]

Op = Literal["set", "unset"]
UNKNOWN_KEY_HINT = "add a rule for the key to the schema (`statehub schema apply`), or correct the key"
_Getter = Callable[[list[str]], Hashable]
# A suggestion is offered for a typo of at most this many edits (see _suggestion).
_SUGGESTION_EDITS = 2


class Violation(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """One stored value the schema disagrees with (``statehub schema check``)."""

    key: str
    severity: Literal["error", "warning"]
    message: str
    rule: str = ""  # the rule's key or pattern; "" for an unknown key


class StoredItem(Protocol):
    """What ``check_items`` reads of a stored item (``statehub.hub.protocol.Item`` fits)."""

    @property
    def key(self) -> str: ...
    @property
    def value(self) -> Any: ...
    @property
    def source(self) -> str: ...
    @property
    def secret(self) -> bool: ...


def load_schema(texts: Mapping[str, str]) -> Schema:
    """The schema made of ``texts`` by schema key; an empty mapping is no schema (every key allowed)."""
    return Schema(parse_schema(text, key) for key, text in texts.items())


class Schema:
    """A compiled schema: immutable, so the hub swaps in a new one when a schema key commits."""

    def __init__(self, files: Iterable[SchemaFile] = ()) -> None:
        self._files = tuple(check_files(files))
        rules = [rule for file in self._files for rule in file.rules]
        check_ties(rules)
        self._exact = {rule.name: rule for rule in rules if "*" not in rule.name}
        self._patterns = _pattern_index([rule for rule in rules if "*" in rule.name])
        self._by_length: dict[int, list[Rule]] = {}
        for rule in rules:
            self._by_length.setdefault(rule.name.count(".") + 1, []).append(rule)
        self._policies: dict[str, Policy] = {p: v for file in self._files for p, v in file.policies.items()}
        self._writers = {p: w for file in self._files for p, w in file.writers.items()}
        self._description = next((f.description for f in self._files if not f.prefix), "")
        # No rule, no refuse or warn and no writers anywhere: no op can be judged anything but fine.
        self._allows_everything = not rules and set(self._policies.values()) <= {"allow"} and not self._writers

    # --- what the schema holds ---------------------------------------------------

    @property
    def is_empty(self) -> bool:
        """No rules, no policies and no writers: every write is allowed, as with no schema at all."""
        return not self._exact and not self._patterns and not self._policies and not self._writers

    @property
    def texts(self) -> dict[str, str]:
        """The schema texts by schema key, as stored."""
        return {file.key: file.text for file in self._files}

    @property
    def files(self) -> tuple[SchemaFile, ...]:
        return self._files

    @property
    def policies(self) -> dict[str, Policy]:
        """The unknown-key policy of each prefix that has one; every other key is ``allow``."""
        return dict(self._policies)

    @property
    def writers(self) -> dict[str, tuple[str, ...]]:
        """The sources that alone may write under each prefix of a ``[writers]`` table."""
        return dict(self._writers)

    def rules(self, prefix: str = "") -> list[Rule]:
        """Every rule whose key or pattern starts with ``prefix``, sorted by it."""
        every = (rule for file in self._files for rule in file.rules)
        return sorted((rule for rule in every if rule.name.startswith(prefix)), key=lambda rule: rule.name)

    def with_text(self, key: str, text: str | None) -> Schema:
        """This schema with the text at schema key ``key`` replaced (None: removed); InvalidRequest if bad."""
        files = {file.key: file for file in self._files}
        if text is None:
            files.pop(key, None)
        else:
            files[key] = parse_schema(text, key)
        return Schema(files.values())

    # --- per key -----------------------------------------------------------------

    def rule_for(self, key: str) -> Rule | None:
        """The rule that governs ``key``: an exact key first, then the most literal pattern."""
        rule = self._exact.get(key)
        if rule is not None:
            return rule
        masks = self._patterns.get(key.count(".") + 1)
        if masks is None:
            return None
        segments = key.split(".")
        for getter, table in masks:
            rule = table.get(getter(segments))
            if rule is not None:
                return rule
        return None

    def policy_for(self, key: str) -> tuple[str, Policy]:
        """The unknown-key policy for ``key`` and the prefix it comes from (the longest that has one)."""
        policies = self._policies
        end = len(key)
        while (end := key.rfind(".", 0, end)) >= 0:
            policy = policies.get(key[: end + 1])
            if policy is not None:
                return key[: end + 1], policy
        return "", policies.get("", "allow")

    def writers_for(self, key: str) -> tuple[str, tuple[str, ...]] | None:
        """The ``[writers]`` entry for ``key`` (the longest prefix that has one) and that prefix; None: none."""
        writers = self._writers
        if not writers:
            return None
        end = len(key)
        while (end := key.rfind(".", 0, end)) >= 0:
            found = writers.get(key[: end + 1])
            if found is not None:
                return key[: end + 1], found
        found = writers.get("")
        return None if found is None else ("", found)

    def is_secret(self, key: str) -> bool:
        rule = self.rule_for(key)
        return rule is not None and rule.secret

    def ttl_of(self, key: str) -> float | None:
        rule = self.rule_for(key)
        return None if rule is None else rule.ttl

    def default_of(self, key: str) -> Any:
        """The schema's default for ``key`` (a pattern's default serves every key it matches); None: none."""
        rule = self.rule_for(key)
        return None if rule is None else rule.default

    def defaults(self) -> dict[str, Any]:
        """The default of every exact key that has one (a pattern's keys cannot be listed)."""
        return {name: rule.default for name, rule in sorted(self._exact.items()) if rule.default is not None}

    # --- verdicts ------------------------------------------------------------------

    def check(
        self, key: str, value: Any, source: str = "", op: Op = "set", *, secret: bool = False
    ) -> str | None:
        """Judge one op of a write: None when it may go in, a warning when it may but the
        schema does not know the key (policy warn), InvalidRequest when it may not.

        ``secret`` says the value is a secret, so a refusal names its kind, not the value.
        Unsetting an unknown key is always allowed: removing strays is what a schema wants.
        """
        if key.startswith(SCHEMA_KEY) and is_schema_key(key):
            if op == "set" and secret:
                raise InvalidRequest(
                    f"'{key}' holds a schema, which every client reads: it cannot be a secret"
                )
            if op == "set" and not isinstance(value, str):
                raise InvalidRequest(
                    f"invalid value for '{key}': expected the schema's TOML text (a string), got {show_value(value)}"
                )
            return None  # its content is judged by compiling it: with_text()
        if self._allows_everything:
            return None
        rule = self.rule_for(key)
        if self._writers or (rule is not None and rule.writable_by):
            refusal = _writer_problem(key, rule, self.writers_for(key), source)
            if refusal is not None:
                raise InvalidRequest(refusal)
        if rule is None:
            return None if op == "unset" else self._unknown(key)
        if op == "set":
            problem = rule.problem(value, secret)
            if problem is not None:
                raise InvalidRequest(value_message(key, rule, problem))
        return None

    def parse_text(self, key: str, text: str) -> Any:
        """A value typed by a person for ``key``, read by its rule's type: for a string key "1.10"
        stays "1.10", for an integer key "30" becomes 30; text the type cannot read, or a value
        the rule does not allow, raises InvalidRequest naming what is allowed.  Keys without a
        type read JSON when it parses, else the text itself.  (Who may write, and unknown keys,
        are judged by ``check`` when the value is written.)"""
        if is_schema_key(key):
            return text
        rule = self.rule_for(key)
        return parse_untyped_text(text) if rule is None else rule.parse_text(key, text)

    def check_items(self, items: Iterable[StoredItem]) -> list[Violation]:
        """Every stored value the schema disagrees with, sorted by key (``statehub schema check``).

        A secret whose value is the placeholder is judged by everything but its value.
        """
        found: list[Violation] = []
        for item in sorted(items, key=lambda item: item.key):
            if not is_schema_key(item.key):
                found.extend(self._item_violations(item))
        return found

    def render_docs(self) -> str:
        """A markdown reference of every known key (``statehub schema docs``)."""
        return render_docs(self._description, self.rules(), self._policies)

    # --- the parts of a verdict ------------------------------------------------------

    def _unknown(self, key: str) -> str | None:
        prefix, policy = self.policy_for(key)
        if policy == "allow":
            return None
        message = _unknown_message(key, prefix, policy, self._suggestion(key))
        if policy == "warn":
            return message
        raise InvalidRequest(message, hint=UNKNOWN_KEY_HINT)

    def _suggestion(self, key: str) -> str:
        """The known key a few typos away from ``key`` (``plant.rtae`` -> ``plant.rate``), or "".

        Keys are compared segment by segment: at most two edits in all, and no more than one
        edit per three characters of a segment, so ``plant.rate`` is not offered ``plant.name``.
        """
        segments = key.split(".")
        best: tuple[int, str] | None = None
        for rule in self._by_length.get(len(segments), []):
            candidate = [
                mine if theirs == "*" else theirs
                for mine, theirs in zip(segments, rule.name.split("."), strict=True)
            ]
            distance = _segments_apart(segments, candidate)
            if distance <= _SUGGESTION_EDITS and (best is None or (distance, ".".join(candidate)) < best):
                best = (distance, ".".join(candidate))
        return "" if best is None else best[1]

    def _item_violations(self, item: StoredItem) -> list[Violation]:
        key = item.key
        rule = self.rule_for(key)
        found: list[Violation] = []
        writer = _writer_problem(key, rule, self.writers_for(key), item.source, stored=True)
        if writer is not None:
            found.append(Violation(key=key, severity="error", rule=rule.name if rule else "", message=writer))
        if rule is None:
            prefix, policy = self.policy_for(key)
            if policy == "allow":
                return found
            message = _unknown_message(key, prefix, policy, self._suggestion(key))
            found.append(Violation(key=key, severity="warning" if policy == "warn" else "error", message=message))
            return found
        hidden = item.secret and item.value == SECRET_PLACEHOLDER
        problem = None if hidden else rule.problem(item.value, item.secret)
        if problem is not None:
            found.append(
                Violation(
                    key=key, severity="error", rule=rule.name, message=value_message(key, rule, problem)
                )
            )
        if rule.secret and not item.secret:
            message = (
                f"'{key}' is stored in plain text, but the schema says it is a secret (schema: {rule.name}); "
                "write it again to encrypt it"
            )
            found.append(Violation(key=key, severity="warning", rule=rule.name, message=message))
        return found


def _pattern_index(patterns: list[Rule]) -> dict[int, list[tuple[_Getter, dict[Hashable, Rule]]]]:
    """By segment count, one table per mask (the positions of the literal segments), most literal first."""
    masks: dict[tuple[int, tuple[int, ...]], dict[Hashable, Rule]] = {}
    for rule in patterns:
        segments = rule.name.split(".")
        positions = tuple(i for i, segment in enumerate(segments) if segment != "*")
        masks.setdefault((len(segments), positions), {})[_getter(positions)(segments)] = rule
    index: dict[int, list[tuple[_Getter, dict[Hashable, Rule]]]] = {}
    for (length, positions), table in sorted(masks.items(), key=lambda mask: -len(mask[0][1])):
        index.setdefault(length, []).append((_getter(positions), table))
    return index


def _getter(positions: tuple[int, ...]) -> _Getter:
    """The literal segments of a key at ``positions``, as a dict key (a str for one position)."""
    if not positions:
        return lambda segments: ()
    return itemgetter(*positions)


def _unknown_message(key: str, prefix: str, policy: Policy, suggestion: str) -> str:
    under = f" under '{prefix}'" if prefix else ""
    maybe = f"; did you mean '{suggestion}'?" if suggestion else ""
    if policy == "warn":
        return f"unknown key '{key}': not in the schema (accepted: unknown keys{under} only warn){maybe}"
    return f"unknown key '{key}': not in the schema, which refuses unknown keys{under}{maybe}"


def _writer_problem(
    key: str, rule: Rule | None, prefix_writers: tuple[str, tuple[str, ...]] | None, source: str, stored: bool = False
) -> str | None:
    """Why ``source`` may not write ``key``, or None when it may.

    A rule's writers and its prefix's ``[writers]`` combine by taking the narrower:
    a source must be in both.
    """
    by_rule = rule.writable_by if rule is not None else ()
    prefix, by_prefix = prefix_writers if prefix_writers is not None else ("", ())
    if by_rule and by_prefix:
        allowed = tuple(name for name in by_rule if name in by_prefix)
    else:
        allowed = by_rule or by_prefix
    if not allowed and not (by_rule and by_prefix):
        return None
    if source in allowed:
        return None
    came = f"source '{source}'" if source else "a client that gave no source"
    verb = "was written by" if stored else "this write came from"
    table = f"[writers] {json.dumps(prefix)}"
    if not allowed:
        assert rule is not None
        return (
            f"'{key}' may be written by no source (schema: {rule.name} allows {_sources(by_rule)}, "
            f"{table} allows {_sources(by_prefix)}); {verb} {came}"
        )
    where = " and ".join(([rule.name] if by_rule and rule is not None else []) + ([table] if by_prefix else []))
    return f"'{key}' may be written only by {_sources(allowed)} (schema: {where}); {verb} {came}"


def _sources(names: tuple[str, ...]) -> str:
    return f"source{'s' if len(names) > 1 else ''} " + ", ".join(f"'{name}'" for name in names)


def _segments_apart(mine: list[str], theirs: list[str]) -> int:
    """Edits between two keys of as many segments, or more than _SUGGESTION_EDITS when too far apart."""
    total = 0
    for a, b in zip(mine, theirs, strict=True):
        if a == b:
            continue
        distance = edit_distance(a, b, _SUGGESTION_EDITS)
        total += distance
        if total > _SUGGESTION_EDITS or 3 * distance > len(a):
            return _SUGGESTION_EDITS + 1
    return total


def edit_distance(first: str, second: str, limit: int) -> int:
    """Optimal string alignment distance (an adjacent swap is one edit), or ``limit + 1`` once it exceeds ``limit``."""
    previous2: list[int] = []
    previous = list(range(len(second) + 1))
    for i in range(1, len(first) + 1):
        current = [i] + [0] * len(second)
        for j in range(1, len(second) + 1):
            cost = 0 if first[i - 1] == second[j - 1] else 1
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + cost)
            if i > 1 and j > 1 and first[i - 1] == second[j - 2] and first[i - 2] == second[j - 1]:
                current[j] = min(current[j], previous2[j - 2] + 1)
        if min(current) > limit:
            return limit + 1
        previous2, previous = previous, current
    return min(previous[-1], limit + 1)
