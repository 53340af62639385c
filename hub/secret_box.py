"""Secrets at rest: Fernet encryption under a key file only the hub's user can read.

A secret's stored value is a MessagePack extension (type 1) whose data is a
Fernet token of the value's plain MessagePack encoding.  The stored bytes
therefore say by themselves whether they are a secret, in the kv table and in
both value columns of history alike, and no client can forge one: the input
rules refuse extension values.

The key file holds one Fernet key per line, newest first.  Rotation writes the
new key in front of the old one, re-encrypts in one transaction, then drops the
old key, so a crash at any point leaves every value decryptable.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import msgspec

from statehub.hub.atomic_file import write_atomically
from statehub.hub.errors import StorageError

if TYPE_CHECKING:
    from cryptography.fernet import Fernet

SECRET_EXT = 1
_EXT_FORMATS = (0xC7, 0xC8, 0xC9)  # ext 8/16/32: tokens are never fixext-sized


class SecretKeyError(StorageError):
    """The secrets key file is missing, unreadable, malformed or the wrong one."""


def is_sealed(stored: bytes | None) -> bool:
    """True when stored MessagePack bytes are an encrypted secret."""
    if not stored or stored[0] not in _EXT_FORMATS:
        return False
    type_at = 1 + (1, 2, 4)[_EXT_FORMATS.index(stored[0])]
    return len(stored) > type_at and stored[type_at] == SECRET_EXT


def fingerprint(key: bytes) -> str:
    """A short name for a key, safe to store and log: it reveals nothing of the key."""
    import hashlib

    return hashlib.sha256(key).hexdigest()[:16]


class SecretBox:
    """Seals and opens secret values.  The key file is read (or created) on first need."""

    def __init__(self, key_file: Path) -> None:
        self.key_file = key_file
        self._keys: list[bytes] | None = None

    # --- sealing --------------------------------------------------------------

    def seal(self, plain: bytes, *, may_create: bool) -> bytes:
        """Stored bytes for a secret whose plain MessagePack encoding is ``plain``."""
        from cryptography.fernet import Fernet

        keys = self._load(may_create=may_create)
        token = Fernet(keys[0]).encrypt(plain)
        return msgspec.msgpack.encode(msgspec.msgpack.Ext(SECRET_EXT, token))

    def open(self, stored: bytes, key: str) -> bytes:
        """The plain MessagePack encoding of a secret's stored bytes (``key`` names it in errors)."""
        return self._decrypt(token_of(stored), key)

    def reseal_token(self, token: str, key: str) -> bytes:
        """Stored bytes for a token from a sealed export, checked and re-encrypted under the current key."""
        try:
            raw = token.encode("ascii")
        except UnicodeEncodeError:
            raise SecretKeyError(f"the sealed value of {key!r} is not a Fernet token") from None
        return self.seal(self._decrypt(raw, key), may_create=False)

    def _decrypt(self, token: bytes, key: str) -> bytes:
        from cryptography.fernet import InvalidToken, MultiFernet

        keys = self._load(may_create=False)
        try:
            return MultiFernet(_fernets(keys)).decrypt(token)
        except InvalidToken:
            raise SecretKeyError(
                f"the secret {key!r} cannot be decrypted with the key in {self.key_file}: "
                "it was sealed under another key (a replaced key file, or an export from another hub); "
                "restore the matching key file (see docs/security.md)"
            ) from None

    # --- rotation ---------------------------------------------------------------

    def begin_rotation(self, *, may_create: bool) -> None:
        """Put a new key in front of the current ones (both decrypt until ``end_rotation``)."""
        from cryptography.fernet import Fernet

        keys = self._load(may_create=may_create)
        self._save([Fernet.generate_key(), *keys])

    def reencrypt(self, stored: bytes) -> bytes:
        """The same secret sealed under the newest key."""
        from cryptography.fernet import MultiFernet

        token = MultiFernet(_fernets(self._load(may_create=False))).rotate(token_of(stored))
        return msgspec.msgpack.encode(msgspec.msgpack.Ext(SECRET_EXT, token))

    def end_rotation(self) -> None:
        """Drop every key but the newest: older tokens stop decrypting."""
        self._save(self._load(may_create=False)[:1])

    @property
    def current_fingerprint(self) -> str:
        return fingerprint(self._load(may_create=False)[0])

    def fingerprints(self) -> list[str]:
        """Fingerprints of every key in the file, newest first."""
        return [fingerprint(key) for key in self._load(may_create=False)]

    # --- the key file -----------------------------------------------------------

    def _load(self, *, may_create: bool) -> list[bytes]:
        if self._keys is not None:
            return self._keys
        try:
            text = self.key_file.read_bytes()
        except FileNotFoundError:
            if not may_create:
                raise SecretKeyError(
                    f"the secrets key file {self.key_file} is missing, so secrets cannot be decrypted; "
                    "restore it from your backup (see docs/security.md)"
                ) from None
            return self._create()
        except OSError as exc:
            raise SecretKeyError(f"cannot read the secrets key file {self.key_file}: {exc.strerror}") from None
        self._keys = _parse_keys(text, self.key_file)
        return self._keys

    def _create(self) -> list[bytes]:
        from cryptography.fernet import Fernet

        self._save([Fernet.generate_key()])
        assert self._keys is not None
        return self._keys

    def _save(self, keys: list[bytes]) -> None:
        folder = self.key_file.parent
        try:
            folder.mkdir(mode=0o700, parents=True, exist_ok=True)
            if os.name == "posix":
                os.chmod(folder, 0o700)
            write_atomically(self.key_file, b"".join(key + b"\n" for key in keys), mode=0o600)
        except OSError as exc:
            # A write that needs a key it cannot save must be refused, not end the hub's loop.
            raise SecretKeyError(
                f"cannot write the secrets key file {self.key_file}: {exc.strerror or exc}; "
                f"make {folder} a folder this user can write"
            ) from exc
        self._keys = keys


def token_of(stored: bytes) -> bytes:
    """The Fernet token inside a secret's stored bytes."""
    ext = msgspec.msgpack.decode(stored)
    assert isinstance(ext, msgspec.msgpack.Ext) and ext.code == SECRET_EXT
    return ext.data if isinstance(ext.data, bytes) else bytes(ext.data)


def _fernets(keys: list[bytes]) -> list[Fernet]:
    from cryptography.fernet import Fernet

    return [Fernet(key) for key in keys]


def _parse_keys(text: bytes, path: Path) -> list[bytes]:
    from cryptography.fernet import Fernet

    keys = [line.strip() for line in text.splitlines() if line.strip()]
    if not keys:
        raise SecretKeyError(f"the secrets key file {path} is empty; restore it from your backup")
    for number, key in enumerate(keys, start=1):
        try:
            Fernet(key)
        except ValueError:
            raise SecretKeyError(
                f"the secrets key file {path}, line {number}, is not a Fernet key; restore it from your backup"
            ) from None
    return keys
