"""The input rules shared by the hub and its clients: keys, values, names, writes.

Clients check before sending so a user hears about a bad key even when the hub
is down; the hub checks again because it trusts no client.
"""

from __future__ import annotations

import math
import re
from typing import Any

from statehub.hub.errors import InvalidRequest
from statehub.hub.protocol import (
    MAX_BATCH_OPS,
    MAX_BATCH_WRITES,
    MAX_KEY_LENGTH,
    MAX_NAME_LENGTH,
    MAX_TXN_OPS,
    MAX_VALUE_BYTES,
    MAX_VALUE_DEPTH,
    Batch,
    Set,
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
    """Raise InvalidRequest unless ``value`` is plain JSON-like data within the limits."""
    _check_value(value, "$", 0)


def _check_value(value: Any, path: str, depth: int) -> None:
    if depth > MAX_VALUE_DEPTH:
        raise InvalidRequest(f"value nested deeper than {MAX_VALUE_DEPTH} levels at {path}")
    if value is None or isinstance(value, (bool, int, str)):
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidRequest(f"value {value} at {path} is not a finite number")
        return
    if isinstance(value, list):
        for i, element in enumerate(value):
            _check_value(element, f"{path}[{i}]", depth + 1)
        return
    if isinstance(value, dict):
        for name, element in value.items():
            if not isinstance(name, str):
                raise InvalidRequest(f"map key {name!r} at {path} is not a string")
            _check_value(element, f"{path}.{name}", depth + 1)
        return
    raise InvalidRequest(
        f"value of type {type(value).__name__} at {path} is not allowed; "
        "use a string, number, boolean, null, list or map"
    )


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
    if isinstance(write, Txn):
        ops = write.ops
        if not ops:
            raise InvalidRequest("a txn needs at least one operation")
        if len(ops) > MAX_TXN_OPS:
            raise InvalidRequest(f"a txn of {len(ops)} operations exceeds the limit of {MAX_TXN_OPS}")
        _check_unique([op.key for op in ops])
        checks = [(op.key, op.op == "set", op.value, op.expect) for op in ops]
    else:
        checks = [(write.key, isinstance(write, Set), getattr(write, "value", None), write.expect)]
    for key, is_set, value, expect in checks:
        check_key(key)
        if expect is not None and expect < 0:
            raise InvalidRequest(f"expected revision {expect} for {key!r} is negative; use 0 for 'must not exist'")
        if is_set:
            check_value(value)
            if body_size > MAX_VALUE_BYTES:
                _check_value_size(key, value)


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
