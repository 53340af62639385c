"""The HTTP API's endpoints (docs/http.md): keys, compare-and-set writes, history, txn, status.

Reads ask the hub (or its mirror, through the client library, when it is down)
and say where the answer came from; writes go to the hub with source ``web``
and the caller's token name as user.  Errors keep the hub's codes and messages.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Literal

import msgspec
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from statehub import (
    MAX_HISTORY_LIMIT,
    MAX_MESSAGE_BYTES,
    Committed,
    ConflictDetail,
    ConflictError,
    InvalidRequest,
    Op,
    Version,
    check_key,
    check_prefix,
)
from statehub.web.access import Caller
from statehub.web.errors import Refused, error_body
from statehub.web.server_state import ServerState
from statehub.web.sse import item_json, status_json

log = logging.getLogger(__name__)


class PutBody(msgspec.Struct, forbid_unknown_fields=True):
    """``PUT /api/keys/{key}``: the new value, any JSON."""

    value: Any


class TxnOp(msgspec.Struct, forbid_unknown_fields=True):
    op: Literal["set", "unset"]
    key: str
    value: Any = None
    expect: int | None = None


class TxnBody(msgspec.Struct, forbid_unknown_fields=True):
    ops: list[TxnOp]


# --- reads -----------------------------------------------------------------------------


async def list_keys(request: Request) -> Response:
    state: ServerState = request.app.state.web
    caller = state.admit(request, write=False)
    prefix = request.query_params.get("prefix", "")
    check_prefix(prefix)
    listing = await state.hub.run(caller.name, lambda client: client.list(prefix))
    body = {
        "epoch": listing.origin.epoch,
        "rev": listing.origin.rev,
        "origin": _origin(listing.origin),
        "items": [item_json(item) for item in listing.items],
    }
    return _json(body, etag=listing.origin.rev)


async def get_key(request: Request) -> Response:
    state: ServerState = request.app.state.web
    caller = state.admit(request, write=False)
    key = _key(request)
    reading = await state.hub.run(caller.name, lambda client: client.get(key))
    return _json({**item_json(reading.item), "origin": _origin(reading.origin)}, etag=reading.item.rev)


async def key_history(request: Request) -> Response:
    state: ServerState = request.app.state.web
    caller = state.admit(request, write=False)
    key = _key(request)
    limit = _int_query(request, "limit", 100, 1, MAX_HISTORY_LIMIT)
    versions = await state.hub.run(caller.name, lambda client: client.history(key, limit))
    return _json({"key": key, "versions": [_version_json(version) for version in versions]})


async def status(request: Request) -> Response:
    state: ServerState = request.app.state.web
    state.admit(request, write=False)
    feed = state.feed
    return _json(
        {
            **status_json(feed.status, state.options.heartbeat),
            "streams": feed.listeners,
            "resyncs": feed.resyncs,
            "dropped_streams": feed.dropped_listeners,
            "keys": len(feed.items),
        }
    )


async def schema(request: Request) -> Response:
    """The hub's schema as the page uses it: each rule's pattern, type, words, choices and ttl."""
    state: ServerState = request.app.state.web
    caller = state.admit(request, write=False)
    compiled = await state.hub.run(caller.name, lambda client: client.schema())
    rules = [
        {
            **msgspec.to_builtins(rule),
            "allows": rule.allows(),
        }
        for rule in compiled.rules()
    ]
    return _json({"rules": rules, "unknown": compiled.policies, "writers": compiled.writers})


async def whoami(request: Request) -> Response:
    state: ServerState = request.app.state.web
    caller = state.admit(request, write=False, allow_anonymous_none=True)
    return _json({"name": caller.name, "role": caller.role, "read_only": not state.may_anyone_write()})


# --- writes ----------------------------------------------------------------------------


async def put_key(request: Request) -> Response:
    state: ServerState = request.app.state.web
    caller = state.admit(request, write=True)
    key = _key(request)
    state.refuse_secret_write([key])
    body = await _body(request, PutBody)
    expect = _precondition(request)
    started = time.perf_counter()
    try:
        committed = await state.hub.run(
            caller.name, lambda client: client.set(key, body.value, expect=expect)
        )
    except ConflictError as conflict:
        return _conflict(conflict, 412)
    _log_write("set", [key], committed, caller, started)
    return _json(_committed(committed), etag=committed.rev)


async def delete_key(request: Request) -> Response:
    state: ServerState = request.app.state.web
    caller = state.admit(request, write=True)
    key = _key(request)
    state.refuse_secret_write([key])
    expect = _precondition(request)
    started = time.perf_counter()
    try:
        committed = await state.hub.run(caller.name, lambda client: client.unset(key, expect=expect))
    except ConflictError as conflict:
        return _conflict(conflict, 412)
    _log_write("unset", [key], committed, caller, started)
    return _json(_committed(committed))


async def txn(request: Request) -> Response:
    state: ServerState = request.app.state.web
    caller = state.admit(request, write=True)
    body = await _body(request, TxnBody)
    keys = [op.key for op in body.ops]
    state.refuse_secret_write(keys)
    ops = [Op(op=op.op, key=op.key, value=op.value, expect=op.expect) for op in body.ops]
    started = time.perf_counter()
    try:
        committed = await state.hub.run(caller.name, lambda client: client.txn(ops))
    except ConflictError as conflict:
        return _conflict(conflict, 409)
    _log_write("txn", keys, committed, caller, started)
    return _json(_committed(committed))


# --- helpers -----------------------------------------------------------------------------


def _key(request: Request) -> str:
    key: str = request.path_params["key"]
    check_key(key)
    return key


def _int_query(request: Request, name: str, default: int, low: int, high: int) -> int:
    text = request.query_params.get(name)
    if text is None:
        return default
    if not text.isdigit() or not low <= int(text) <= high:
        raise InvalidRequest(f"invalid {name} {text!r}: a whole number from {low} to {high}")
    return int(text)


def _precondition(request: Request) -> int | None:
    """``If-Match: "7"`` expects revision 7; ``If-None-Match: *`` expects the key to be absent."""
    match = request.headers.get("if-match")
    if match is not None:
        text = match.strip().removeprefix("W/").strip('"')
        if not text.isdigit():
            raise InvalidRequest(
                f'invalid If-Match {match!r}: the revision the key must be at, e.g. If-Match: "7"'
            )
        return int(text)
    if request.headers.get("if-none-match", "").strip() == "*":
        return 0
    return None


async def _body(request: Request, shape: type[msgspec.Struct]) -> Any:
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != "application/json":
        raise Refused(
            415,
            "unsupported_media_type",
            f"send the body as JSON with Content-Type: application/json (got {kind or 'none'!r})",
        )
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_MESSAGE_BYTES:
            raise Refused(
                413,
                "too_large",
                f"a request body over {MAX_MESSAGE_BYTES} bytes is refused; the hub's limit is the same",
            )
        chunks.append(chunk)
    try:
        return msgspec.json.decode(b"".join(chunks), type=shape)
    except msgspec.ValidationError as exc:
        raise InvalidRequest(f"invalid request body: {exc}") from None
    except msgspec.DecodeError as exc:
        raise InvalidRequest(f"the request body is not JSON: {exc}") from None


def _conflict(conflict: ConflictError, status_code: int) -> Response:
    """The refusal with what each key holds now, so the caller can show it and decide."""
    body = error_body(conflict)
    body["error"]["hint"] = (
        "show the current value to the person, then retry with If-Match set to its revision"
    )
    body["conflicts"] = [_conflict_json(detail) for detail in conflict.conflicts]
    if len(conflict.conflicts) == 1:
        body["current"] = body["conflicts"][0]["current"]
    return JSONResponse(body, status_code, headers={"Cache-Control": "no-store"})


def _conflict_json(detail: ConflictDetail) -> dict[str, Any]:
    current = (
        {
            "key": detail.key,
            "value": detail.value,
            "rev": detail.rev,
            "time": detail.time,
            "source": detail.source,
            "user": detail.user,
        }
        if detail.exists
        else None
    )
    return {"key": detail.key, "expected": detail.expected, "current": current}


def _version_json(version: Version) -> dict[str, Any]:
    return {
        "rev": version.rev,
        "op": version.op,
        "value": version.value,
        "prev_rev": version.prev_rev,
        "prev_value": version.prev_value,
        "time": version.time,
        "source": version.source,
        "user": version.user,
        "secret": version.secret,
    }


def _committed(committed: Committed) -> dict[str, Any]:
    return {"epoch": committed.epoch, "rev": committed.rev, "duplicate": committed.duplicate}


def _origin(origin: Any) -> dict[str, Any]:
    return {"from_mirror": origin.from_mirror, "rev": origin.rev, "age": origin.age}


def _json(body: Any, *, etag: int | None = None) -> Response:
    headers = {"Cache-Control": "no-store"}
    if etag is not None:
        headers["ETag"] = f'"{etag}"'
    return Response(msgspec.json.encode(body), headers=headers, media_type="application/json")


def _log_write(op: str, keys: list[str], committed: Committed, caller: Caller, started: float) -> None:
    shown = keys[0] if len(keys) == 1 else f"{len(keys)} keys"
    log.info(
        "%s %s rev=%d user=%s %.1f ms",
        op,
        shown,
        committed.rev,
        caller.name or "-",
        (time.perf_counter() - started) * 1000,
    )
