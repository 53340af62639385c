"""CURVE key files, shared by the hub (its key pair, the allow-list) and the clients (theirs).

A key pair is two files in an owner-only (0700) folder: ``NAME.key`` holds the
public key and ``NAME.key_secret`` the secret key, each as 40 characters of
Z85 (ZeroMQ's text encoding) and a newline, both 0600.  The hub keeps its pair
in ``<data dir>/curve/`` and the public keys of the clients it admits in
``<data dir>/curve/clients/NAME.key``, one file per client.  Nothing here ever
logs or prints a secret key.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import zmq

from statehub.hub.atomic_file import write_atomically
from statehub.hub.errors import InvalidRequest
from statehub.hub.paths import Layout

KEY_LENGTH = 40  # Z85 text of a 32-byte Curve25519 key
PUBLIC_SUFFIX = ".key"
SECRET_SUFFIX = ".key_secret"
SERVER_STEM = "server"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}")
_Z85 = re.compile(r"[0-9A-Za-z.\-:+=^!/*?&<>()\[\]{}@%$#]{40}")


@dataclass(frozen=True)
class KeyPair:
    """A CURVE key pair as Z85 bytes; ``repr`` never shows the secret."""

    public: bytes
    secret: bytes = field(repr=False)


@dataclass(frozen=True)
class AllowedKey:
    name: str
    public: str


def curve_available() -> bool:
    """Whether this libzmq was built with CURVE (libsodium or tweetnacl)."""
    return bool(zmq.has("curve"))


def require_curve() -> None:
    if not curve_available():
        raise InvalidRequest(
            f"this libzmq ({zmq.zmq_version()}) was built without CURVE, so it cannot encrypt or "
            "authenticate network connections; install a pyzmq wheel (they include it)"
        )


def curve_dir(layout: Layout) -> Path:
    return layout.data_dir / "curve"


def allow_list_dir(layout: Layout) -> Path:
    return curve_dir(layout) / "clients"


def check_public_key(text: str) -> bytes:
    """The Z85 public key in ``text`` (surrounding whitespace ignored), or a clear error."""
    key = text.strip()
    if not _Z85.fullmatch(key):
        shown = key if len(key) <= 60 else key[:57] + "..."
        raise InvalidRequest(
            f"invalid public key {shown!r}: a CURVE public key is {KEY_LENGTH} characters of Z85, "
            f"got {len(key)}; print yours with `statehub keys init` (client) or "
            "`statehub keys show-server` (hub)"
        )
    return key.encode("ascii")


def check_key_name(name: str) -> str:
    if not _NAME.fullmatch(name):
        raise InvalidRequest(
            f"invalid key name {name!r}: use 1 to 64 letters, digits, '.', '_', '-' or '@', "
            "starting with a letter or digit (for example ana-laptop)"
        )
    return name


def read_public_key(path: Path) -> bytes:
    try:
        return check_public_key(path.read_text(encoding="ascii", errors="replace"))
    except InvalidRequest as exc:
        raise InvalidRequest(f"{path}: {exc.message}") from None


def load_keypair(folder: Path, stem: str) -> KeyPair | None:
    """The pair ``folder/stem.key`` + ``stem.key_secret``; None when neither file exists."""
    public_path, secret_path = folder / (stem + PUBLIC_SUFFIX), folder / (stem + SECRET_SUFFIX)
    if not public_path.exists() and not secret_path.exists():
        return None
    try:
        public = read_public_key(public_path)
        secret = secret_path.read_bytes().strip()
    except OSError as exc:
        raise InvalidRequest(f"cannot read the key pair {folder / stem}: {exc.strerror or exc}") from exc
    if len(secret) != KEY_LENGTH or zmq.curve_public(secret) != public:
        # Say which file, never what is in it: it is a secret.
        raise InvalidRequest(
            f"{secret_path} is not the secret key of {public_path}; restore both files or remove both"
        )
    return KeyPair(public, secret)


def create_keypair(folder: Path, stem: str) -> KeyPair:
    """Make a new pair in ``folder`` (0700), secret first so a half-made pair has no public half."""
    require_curve()
    public, secret = zmq.curve_keypair()
    _make_private_dir(folder)
    write_atomically(folder / (stem + SECRET_SUFFIX), secret + b"\n", mode=0o600)
    write_atomically(folder / (stem + PUBLIC_SUFFIX), public + b"\n", mode=0o600)
    return KeyPair(public, secret)


def load_or_create_keypair(folder: Path, stem: str) -> tuple[KeyPair, bool]:
    """The pair in ``folder``, made on first use; the flag says whether it was just made."""
    existing = load_keypair(folder, stem)
    if existing is not None:
        return existing, False
    return create_keypair(folder, stem), True


def server_keypair(layout: Layout) -> tuple[KeyPair, bool]:
    """The hub's own pair, made on first use (hub start with --listen, or `keys show-server`)."""
    return load_or_create_keypair(curve_dir(layout), SERVER_STEM)


def _make_private_dir(folder: Path) -> None:
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    if os.name == "posix" and folder.stat().st_mode & 0o077:
        folder.chmod(0o700)  # made earlier with a looser umask: key folders are owner-only


class AllowList:
    """The client public keys a hub admits: one ``NAME.key`` file each in one folder.

    Read afresh on every lookup, so ``statehub keys add/remove`` takes effect on
    the next connection without restarting the hub.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def entries(self) -> list[AllowedKey]:
        """Every readable entry, sorted by name (unreadable files are skipped: see ``problems``)."""
        found = []
        for path in self._files():
            try:
                found.append(AllowedKey(path.stem, read_public_key(path).decode()))
            except (InvalidRequest, OSError):
                continue
        return found

    def problems(self) -> list[str]:
        """One line per file in the folder that is not a usable entry."""
        lines = []
        for path in self._files():
            try:
                read_public_key(path)
            except InvalidRequest as exc:
                lines.append(exc.message)
            except OSError as exc:
                lines.append(f"{path}: {exc.strerror or exc}")
        return lines

    def name_of(self, public: bytes) -> str | None:
        """The name under which ``public`` (Z85) is allowed, or None."""
        for entry in self.entries():
            if entry.public.encode() == public:
                return entry.name
        return None

    def add(self, name: str, public: bytes) -> None:
        check_key_name(name)
        check_public_key(public.decode("ascii", "replace"))
        taken = self.name_of(public)
        if taken is not None and taken != name:
            raise InvalidRequest(
                f"this key is already allowed as {taken!r}; remove that entry first to rename it"
            )
        if (self.folder / (name + PUBLIC_SUFFIX)).exists():
            raise InvalidRequest(f"a key named {name!r} is already allowed; remove it first to replace it")
        _make_private_dir(self.folder)
        write_atomically(self.folder / (name + PUBLIC_SUFFIX), public + b"\n", mode=0o600)

    def remove(self, name: str) -> bool:
        """Remove ``name``; False when there was no such entry."""
        path = self.folder / (check_key_name(name) + PUBLIC_SUFFIX)
        try:
            path.unlink()
        except FileNotFoundError:
            return False
        return True

    def _files(self) -> list[Path]:
        if not self.folder.is_dir():
            return []
        return sorted(p for p in self.folder.glob("*" + PUBLIC_SUFFIX) if not p.name.startswith("."))
