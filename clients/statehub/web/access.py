"""Who may use the web API: tokens, roles, and the checks every request passes.

Roles: ``read`` (look, follow) and ``write`` (also change).  A token is shown
once when it is made (``statehub web token create``); the data dir keeps only
its SHA-256, in ``web-tokens.json`` (mode 0600), so reading that file does not
give anyone a token.  Requests carry it as ``Authorization: Bearer TOKEN``; a
browser may also hold it in a SameSite=Strict, HttpOnly cookie, which is
accepted for reads only: every write needs the header, which another site's
page cannot make a browser send (CSRF).

Anonymous requests get the server's ``anonymous`` role: ``write`` on loopback
(like the CLI on the same machine), ``read`` with ``--read-only``, nothing when
a token is required (any non-loopback address without ``--read-only``).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import msgspec

from statehub import InvalidRequest

Role = Literal["read", "write"]
TOKENS_FILE = "web-tokens.json"
COOKIE = "statehub_token"
TOKEN_PREFIX: dict[Role, str] = {"read": "shr_", "write": "shw_"}


class TokenRecord(msgspec.Struct, kw_only=True):
    """One token as the data dir keeps it: never the token itself."""

    name: str
    role: Role
    sha256: str
    created: float


class TokenFile(msgspec.Struct, kw_only=True):
    tokens: list[TokenRecord] = []


@dataclass(frozen=True)
class Caller:
    """Who made a request: the token's name (or None, anonymous) and what they may do."""

    name: str | None
    role: Role | None

    @property
    def may_read(self) -> bool:
        return self.role is not None

    @property
    def may_write(self) -> bool:
        return self.role == "write"


def tokens_path(data_dir: Path) -> Path:
    return data_dir / TOKENS_FILE


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def read_tokens(path: Path) -> list[TokenRecord]:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return []
    try:
        return msgspec.json.decode(data, type=TokenFile).tokens
    except msgspec.DecodeError as exc:
        raise InvalidRequest(
            f"the token file {path} is damaged ({exc}); remove it and create the tokens again"
        ) from None


def _write_tokens(path: Path, tokens: list[TokenRecord]) -> None:
    """Replace the token file atomically, owner-only from the start."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(json.dumps(msgspec.to_builtins(TokenFile(tokens=tokens)), indent=2).encode() + b"\n")
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temp, path)


def create_token(data_dir: Path, name: str, role: Role) -> str:
    """Make a token for ``name`` with ``role``, store its digest, and return it (the only time it is seen)."""
    if not name or len(name) > 64 or not name.isprintable():
        raise InvalidRequest(
            f"invalid token name {name!r}: 1 to 64 printable characters (it is shown as the writer)"
        )
    path = tokens_path(data_dir)
    tokens = read_tokens(path)
    if any(record.name == name for record in tokens):
        raise InvalidRequest(f"a token named {name!r} exists already; revoke it first or choose another name")
    token = TOKEN_PREFIX[role] + secrets.token_urlsafe(32)
    tokens.append(TokenRecord(name=name, role=role, sha256=_digest(token), created=time.time()))
    _write_tokens(path, tokens)
    return token


def revoke_token(data_dir: Path, name: str) -> bool:
    path = tokens_path(data_dir)
    tokens = read_tokens(path)
    kept = [record for record in tokens if record.name != name]
    if len(kept) == len(tokens):
        return False
    _write_tokens(path, kept)
    return True


class TokenBook:
    """The valid tokens, re-read when the file changes (so a revoked token stops working at once)."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._seen: tuple[int, int] | None = None
        self._by_digest: dict[str, TokenRecord] = {}

    def find(self, token: str) -> TokenRecord | None:
        self._reload_if_changed()
        digest = _digest(token)
        for known, record in self._by_digest.items():
            if hmac.compare_digest(known, digest):
                return record
        return None

    def records(self) -> list[TokenRecord]:
        self._reload_if_changed()
        return list(self._by_digest.values())

    def _reload_if_changed(self) -> None:
        try:
            stat = self._path.stat()
            seen: tuple[int, int] | None = (stat.st_mtime_ns, stat.st_size)
        except FileNotFoundError:
            seen = None
        if seen == self._seen:
            return
        self._seen = seen
        self._by_digest = {r.sha256: r for r in read_tokens(self._path)} if seen else {}


def bearer(authorization: str | None) -> str | None:
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    return (token.strip() or None) if scheme.lower() == "bearer" else None


@dataclass(frozen=True)
class Policy:
    """The server's rules: the anonymous role and the tokens."""

    anonymous: Role | None
    book: TokenBook

    def caller(self, authorization: str | None, cookie: str | None, *, is_write: bool) -> Caller | None:
        """Who this is; None for a token that is not valid (401)."""
        token = bearer(authorization)
        if token is None and not is_write:
            token = cookie or None  # a cookie never authorizes a write: CSRF
        if token is None:
            return Caller(None, self.anonymous)
        record = self.book.find(token)
        return Caller(record.name, record.role) if record else None


def is_loopback(host: str) -> bool:
    return host in ("127.0.0.1", "::1", "localhost") or host.startswith("127.")
