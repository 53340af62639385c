"""The schema files of the data dir, applied at start: ``schema.toml`` and ``schema.d/NAME.toml``.

A file is applied (an ordinary write with source ``schema``: judged, committed,
published, in history) only when its text differs from what the hub last
applied from that file; ``schema.applied.json`` keeps the SHA-256 of each.  So
an unchanged file never overwrites a schema applied since by `statehub schema
apply` or restored by a rollback.  A file that does not make a valid schema is
not applied: the error is logged and reported in ``status``, and the hub
serves with the schema it has (a half-edited file must not keep a plant's hub
down after a power cut).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import msgspec

from statehub.hub.atomic_file import write_atomically
from statehub.hub.errors import StatehubError
from statehub.hub.protocol import PROTOCOL_VERSION, Set, Unset, WriteRequest
from statehub.hub.records import Applied
from statehub.hub.schema import SCHEMA_KEY, fragment_key, parse_schema
from statehub.hub.store import Store

log = logging.getLogger(__name__)

MAIN_FILE = "schema.toml"
FRAGMENT_FOLDER = "schema.d"
APPLIED_FILE = "schema.applied.json"
FILE_SOURCE = "schema"


@dataclass
class FilesApplied:
    """What applying the data dir's schema files did: commits to publish, errors to report."""

    applied: list[Applied] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def schema_files(data_dir: Path) -> dict[str, Path]:
    """The schema files of ``data_dir`` by the schema key each is applied to."""
    found: dict[str, Path] = {}
    main = data_dir / MAIN_FILE
    if main.is_file():
        found[SCHEMA_KEY] = main
    folder = data_dir / FRAGMENT_FOLDER
    if folder.is_dir():
        for path in sorted(folder.glob("*.toml")):
            found[fragment_key(path.stem + ".")] = path
    return found


def apply_schema_files(data_dir: Path, store: Store) -> FilesApplied:
    """Apply every changed schema file to ``store`` (before the hub serves); never raises for a bad file."""
    done = FilesApplied()
    hashes_path = data_dir / APPLIED_FILE
    hashes = _read_hashes(hashes_path)
    files = schema_files(data_dir)
    for key, path in files.items():
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            done.errors.append(f"{path}: cannot be read: {exc}")
            continue
        digest = _sha256(text)
        if hashes.get(key) == digest:
            continue
        try:
            parse_schema(text, key, origin=str(path))  # names the file in its messages
            _commit(store, Set(v=PROTOCOL_VERSION, key=key, value=text, source=FILE_SOURCE), done)
        except StatehubError as exc:
            done.errors.append(f"{path}: {exc.message}" if str(path) not in exc.message else exc.message)
            continue
        hashes[key] = digest
        log.info("schema file %s applied to %s", path, key)
    for key in sorted(set(hashes) - set(files)):
        _forget_removed(store, key, hashes, done)
    for error in done.errors:
        log.error("schema file not applied, the stored schema stays in force: %s", error)
    write_atomically(hashes_path, msgspec.json.encode(hashes) + b"\n")
    return done


def _forget_removed(store: Store, key: str, hashes: dict[str, str], done: FilesApplied) -> None:
    """A file that is gone unsets its key, unless the stored text changed since the file applied it."""
    digest = hashes.pop(key)
    entry = store.find(key)
    if entry is None or entry.is_secret:
        return
    stored = msgspec.msgpack.decode(entry.blob)
    if not isinstance(stored, str) or _sha256(stored) != digest:
        return
    try:
        _commit(store, Unset(v=PROTOCOL_VERSION, key=key, source=FILE_SOURCE), done)
        log.info("schema file for %s removed: its schema is unset", key)
    except StatehubError as exc:
        done.errors.append(f"removing {key}: {exc.message}")


def _commit(store: Store, write: WriteRequest, done: FilesApplied) -> None:
    done.applied.append(store.commit_one(write))


def _read_hashes(path: Path) -> dict[str, str]:
    try:
        return msgspec.json.decode(path.read_bytes(), type=dict[str, str])
    except FileNotFoundError:
        return {}
    except (OSError, msgspec.MsgspecError) as exc:
        log.warning("%s cannot be read (%s): every schema file is applied again", path, exc)
        return {}


def _sha256(text: str) -> str:
    import hashlib  # here: a hub start with no schema files need not load it (~4 ms)

    return hashlib.sha256(text.encode("utf-8")).hexdigest()
