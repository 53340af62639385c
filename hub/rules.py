"""The input rules shared by the hub and its clients: keys, values, names, writes.

Clients check before sending so a user hears about a bad key even when the hub
is down; the hub checks again because it trusts no client.
"""

from __future__ import annotations

import math
import operator
import re
from itertools import chain, compress, repeat
from typing import Any

from statehub.hub.errors import InvalidRequest
from statehub.hub.protocol import (
    MAX_BATCH_OPS,
    MAX_BATCH_WRITES,
    MAX_KEY_LENGTH,
    MAX_NAME_LENGTH,
    MAX_TTL_SECONDS,
    MAX_TXN_OPS,
    MAX_VALUE_BYTES,
    MAX_VALUE_DEPTH,
    Batch,
    Set,
    SiteOrigin,
    Txn,
    Unset,
)

# The characters of a key segment: NATS KV's token alphabet, so a key can name a
# NATS subject as it is (docs/protocol.md section 4).  No key can start with '@',
# which keeps the change stream's control topics apart from keys.
SEGMENT = re.compile(r"[A-Za-z0-9_/=-]+")
SEGMENT_CHARS_TEXT = "letters, digits, '_', '-', '/' and '='"
_BAD_CHAR = re.compile(r"[^A-Za-z0-9_/=.-]")


def check_key(key: str) -> None:
    """Raise InvalidRequest naming the first problem with ``key``."""
    if not isinstance(key, str):
        raise InvalidRequest(f"invalid key {key!r}: a key is a string")
    if not key:
        raise InvalidRequest("invalid key '': a key cannot be empty")
    if len(key) > MAX_KEY_LENGTH:
        raise InvalidRequest(
            f"invalid key '{key[:40]}...': {len(key)} characters, the limit is {MAX_KEY_LENGTH}"
        )
    bad = _BAD_CHAR.search(key)
    if bad:
        raise InvalidRequest(
            f"invalid key {key!r}: character {bad.group()!r} at position {bad.start()}; "
            f"allowed are {SEGMENT_CHARS_TEXT}, and '.' between segments"
        )
    position = 0
    for segment in key.split("."):
        if not SEGMENT.fullmatch(segment):
            raise InvalidRequest(f"invalid key {key!r}: empty segment at position {position}")
        position += len(segment) + 1


def check_prefix(prefix: str) -> None:
    """A prefix is empty, a key, or a key followed by '.'."""
    if prefix:
        check_key(prefix[:-1] if prefix.endswith(".") else prefix)


def check_value(value: Any) -> None:
    """Raise InvalidRequest unless ``value`` is plain JSON-like data within the limits.

    A valid value is checked a nesting level at a time with C-level passes
    (``map(type, ...)``), so a 4 MiB list of tiny elements costs milliseconds,
    not the second a call per element took.  Only an invalid value is walked
    element by element, and only down the branch that holds the problem (found
    by halving), so the message still names the first problem and its path.
    """
    if type(value) in _SCALAR_TYPES:
        return
    try:
        _walk_small(value, "$", 0, [SMALL_VALUE_ELEMENTS])
        return
    except _TooBig:
        pass
    if not _is_valid_level([value], 0):
        _raise_first_problem(value, "$", 0)


SMALL_VALUE_ELEMENTS = 64  # below this the plain walk is cheaper than the level passes' set-up


class _TooBig(Exception):
    """The value has more elements than the plain walk is worth."""


def _walk_small(value: Any, path: str, depth: int, budget: list[int]) -> None:
    """The element-by-element check, for a small value; raises _TooBig past ``budget`` elements."""
    budget[0] -= 1
    if budget[0] < 0:
        raise _TooBig
    if depth > MAX_VALUE_DEPTH:
        raise InvalidRequest(f"value nested deeper than {MAX_VALUE_DEPTH} levels at {path}")
    kind = type(value)
    if kind in _SCALAR_TYPES:
        return
    if kind is list:
        for i, element in enumerate(value):
            _walk_small(element, f"{path}[{i}]", depth + 1, budget)
        return
    if kind is dict:
        for name, element in value.items():
            if type(name) is not str:
                break
            _walk_small(element, f"{path}.{name}", depth + 1, budget)
        else:
            return
    # floats, subclasses and anything invalid: the full rules decide (and name the problem)
    _raise_first_problem(value, path, depth)


_SCALAR_TYPES = frozenset((type(None), bool, int, str))
_VALUE_TYPES = _SCALAR_TYPES | {float, list, dict}


def _of_type(values: list[Any], kind: type, types: set[type]) -> list[Any]:
    """The elements of ``values`` whose type is exactly ``kind`` (of ``types``, all theirs), at C speed."""
    if len(types) == 1:
        return values
    return list(compress(values, map(operator.is_, map(type, values), repeat(kind))))


def _is_valid_level(values: list[Any], depth: int) -> bool:
    """Whether every one of ``values`` (each at nesting ``depth``) and all they contain is valid.

    Exact types only: a subclass (never decoded from the wire) answers False,
    and the element walk decides.
    """
    while values:
        if depth > MAX_VALUE_DEPTH:
            return False
        types = set(map(type, values))
        if not types <= _VALUE_TYPES:
            return False
        if float in types and not all(map(math.isfinite, _of_type(values, float, types))):
            return False
        children: list[Any] = []
        if list in types:
            children.extend(chain.from_iterable(_of_type(values, list, types)))
        if dict in types:
            maps = _of_type(values, dict, types)
            if not set(map(type, chain.from_iterable(maps))) <= {str}:
                return False
            children.extend(chain.from_iterable(map(dict.values, maps)))
        values, depth = children, depth + 1
    return True


def _raise_first_problem(value: Any, path: str, depth: int) -> None:
    """Raise InvalidRequest for the first problem in ``value``, walking only toward it."""
    if depth > MAX_VALUE_DEPTH:
        raise InvalidRequest(f"value nested deeper than {MAX_VALUE_DEPTH} levels at {path}")
    if value is None or isinstance(value, (bool, int, str)):
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidRequest(f"value {value} at {path} is not a finite number")
        return
    if isinstance(value, list):
        index = _first_invalid(len(value), lambda lo, hi: _is_valid_level(value[lo:hi], depth + 1))
        if index is not None:
            _raise_first_problem(value[index], f"{path}[{index}]", depth + 1)
            _check_each(enumerate(value), path, depth, "[{}]")
        return
    if isinstance(value, dict):
        items = list(value.items())
        index = _first_invalid(len(items), lambda lo, hi: _is_valid_items(items[lo:hi], depth + 1))
        if index is not None:
            name, element = items[index]
            if not isinstance(name, str):
                raise InvalidRequest(f"map key {name!r} at {path} is not a string")
            _raise_first_problem(element, f"{path}.{name}", depth + 1)
            _check_each(items, path, depth, ".{}")
        return
    raise InvalidRequest(
        f"value of type {type(value).__name__} at {path} is not allowed; "
        "use a string, number, boolean, null, list or map"
    )


def _is_valid_items(items: list[tuple[Any, Any]], depth: int) -> bool:
    return all(type(name) is str for name, _ in items) and _is_valid_level([v for _, v in items], depth)


def _first_invalid(count: int, is_valid: Any) -> int | None:
    """The first index in 0..count whose element ``is_valid(lo, hi)`` rejects, by halving; None if none."""
    if is_valid(0, count):
        return None
    lo, hi = 0, count
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if is_valid(lo, mid):
            lo = mid
        else:
            hi = mid
    return lo


def _check_each(elements: Any, path: str, depth: int, step: str) -> None:
    """The element walk, for what the exact-type passes could not accept (subclasses of the allowed types)."""
    for name, element in elements:
        if step == ".{}" and not isinstance(name, str):
            raise InvalidRequest(f"map key {name!r} at {path} is not a string")
        _raise_first_problem(element, path + step.format(name), depth + 1)


def check_name(kind: str, name: str) -> None:
    if not isinstance(name, str):
        raise InvalidRequest(f"{kind} name must be a string")
    if len(name) > MAX_NAME_LENGTH:
        raise InvalidRequest(f"{kind} name is {len(name)} characters, the limit is {MAX_NAME_LENGTH}")


def check_write(write: Set | Unset | Txn, body_size: int = 0) -> None:
    """Raise InvalidRequest naming the first problem with a write request."""
    check_name("source", write.source)
    check_name("user", write.user)
    check_name("request id", write.request_id)
    _check_origin(write.origin)
    if isinstance(write, Txn):
        ops = write.ops
        if not ops:
            raise InvalidRequest("a txn needs at least one operation")
        if len(ops) > MAX_TXN_OPS:
            raise InvalidRequest(f"a txn of {len(ops)} operations exceeds the limit of {MAX_TXN_OPS}")
        _check_unique([op.key for op in ops])
        checks = [(op.key, op.op == "set", op.value, op.expect, op.ttl) for op in ops]
        for op in ops:
            _check_origin(op.origin)
    else:
        checks = [(write.key, isinstance(write, Set), getattr(write, "value", None), write.expect, getattr(write, "ttl", None))]
    for key, is_set, value, expect, ttl in checks:
        check_key(key)
        if expect is not None and expect < 0:
            raise InvalidRequest(
                f"expected revision {expect} for {key!r} is negative; use 0 for 'must not exist'"
            )
        if ttl is not None:
            check_ttl(key, ttl, is_set)
        if is_set:
            check_value(value)
            if body_size > MAX_VALUE_BYTES:
                _check_value_size(key, value)


def check_ttl(key: str, ttl: Any, is_set: bool = True) -> None:
    """Raise InvalidRequest unless ``ttl`` is a lifetime a set of ``key`` may carry."""
    if not is_set:
        raise InvalidRequest(f"a ttl goes with a set, not with the unset of {key!r}")
    if isinstance(ttl, bool) or not isinstance(ttl, (int, float)) or not math.isfinite(ttl) or ttl <= 0:
        raise InvalidRequest(f"invalid ttl for {key!r}: expected seconds > 0, got {ttl!r}")
    if ttl > MAX_TTL_SECONDS:
        raise InvalidRequest(
            f"invalid ttl for {key!r}: {ttl:g} s is more than the limit of {MAX_TTL_SECONDS} s (a year)"
        )


def _check_origin(origin: SiteOrigin | None) -> None:
    if origin is None:
        return
    check_name("origin site", origin.site)
    check_name("origin source", origin.source)
    check_name("origin user", origin.user)
    if not origin.site:
        raise InvalidRequest("an origin needs the name of the site that made the change")
    if origin.rev < 1:
        raise InvalidRequest(f"origin revision {origin.rev} of site {origin.site!r} must be 1 or more")


def check_batch(batch: Batch, body_size: int = 0) -> None:
    """Raise InvalidRequest naming the first problem with a batch (and which of its writes has it)."""
    check_name("source", batch.source)
    check_name("user", batch.user)
    check_name("request id", batch.request_id)
    if not batch.writes:
        raise InvalidRequest("a batch needs at least one write")
    if len(batch.writes) > MAX_BATCH_WRITES:
        raise InvalidRequest(
            f"a batch of {len(batch.writes)} writes exceeds the limit of {MAX_BATCH_WRITES}; send several batches"
        )
    ops = sum(len(write.ops) for write in batch.writes)
    if ops > MAX_BATCH_OPS:
        raise InvalidRequest(
            f"a batch of {ops} operations in all exceeds the limit of {MAX_BATCH_OPS}; send several batches"
        )
    for index, write in enumerate(batch.writes):
        try:
            check_write(Txn(v=batch.v, ops=write.ops), body_size)
        except InvalidRequest as exc:
            raise InvalidRequest(f"write {index} of the batch: {exc.message}") from None


def _check_unique(keys: list[str]) -> None:
    seen: set[str] = set()
    for key in keys:
        if key in seen:
            raise InvalidRequest(f"key {key!r} appears twice in one txn; merge the operations")
        seen.add(key)


def _check_value_size(key: str, value: Any) -> None:
    import msgspec

    size = len(msgspec.msgpack.encode(value))
    if size > MAX_VALUE_BYTES:
        raise InvalidRequest(f"value of {key!r} is {size} bytes; the limit is {MAX_VALUE_BYTES}")
