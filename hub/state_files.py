"""Plaintext state files: exports, imports, snapshots and the rollback diff.

One format serves all of them, as JSON or TOML::

    statehub_export = 1
    rev = 41
    epoch = "3f2a9c0d1e2b4a5f"
    created = "2026-11-21T14:02:03.000000Z"
    name = "before-upgrade"          # snapshots only
    [values]
    "plant.rate" = 30
    "plant.name" = "Maxson"

``values`` maps each key to its value as is; TOML has no null, so a state
holding null values exports only as JSON (the error says so).  A secret's value
is the placeholder ``"<secret>"``, which an import never writes; an export with
``--include-secrets`` adds a ``[sealed]`` table of Fernet tokens (key -> token)
that only a hub holding the same secrets key can import.
"""

from __future__ import annotations

import json
import re
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import msgspec

from statehub.hub.atomic_file import write_atomically
from statehub.hub.errors import InvalidRequest, NotFound
from statehub.hub.mirror import iso_time, parse_iso_time
from statehub.hub.protocol import MAX_TXN_OPS, SECRET_PLACEHOLDER, Item, Op
from statehub.hub.rules import check_key, check_value

FORMAT = 1
SNAPSHOT_KEEP = 20  # unnamed snapshots kept; named ones are kept until deleted by hand
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")

Format = Literal["json", "toml"]


class StateFileError(InvalidRequest):
    """A state file cannot be read or written; the message names the file and line."""


@dataclass(frozen=True)
class StateFile:
    values: dict[str, Any]
    rev: int
    epoch: str
    created: float
    name: str = ""
    sealed: dict[str, str] = field(default_factory=dict)  # secret key -> Fernet token


def state_from_items(items: list[Item], rev: int, epoch: str, name: str = "") -> StateFile:
    """A state of these items; secrets read with ``sealed`` keep their tokens in ``sealed``."""
    values = {item.key: SECRET_PLACEHOLDER if item.secret else item.value for item in items}
    sealed = {item.key: item.value for item in items if item.secret and item.value != SECRET_PLACEHOLDER}
    return StateFile(values, rev, epoch, time.time(), name, sealed)


def render(state: StateFile, fmt: Format) -> bytes:
    header: dict[str, Any] = {
        "statehub_export": FORMAT,
        "rev": state.rev,
        "epoch": state.epoch,
        "created": iso_time(state.created),
    }
    if state.name:
        header["name"] = state.name
    body: dict[str, Any] = {"values": state.values}
    if state.sealed:
        body["sealed"] = state.sealed
    if fmt == "json":
        return json.dumps({**header, **body}, indent=2, ensure_ascii=False).encode() + b"\n"
    nulls = [key for key, value in state.values.items() if _holds_null(value)]
    if nulls:
        raise StateFileError(
            f"TOML cannot hold null, and {len(nulls)} keys hold it (first: {nulls[0]!r}); use --format json"
        )
    import tomli_w

    return tomli_w.dumps({**header, **body}).encode()


def _holds_null(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, list):
        return any(_holds_null(v) for v in value)
    if isinstance(value, dict):
        return any(_holds_null(v) for v in value.values())
    return False


def format_of(path: Path, explicit: str | None = None) -> Format:
    fmt = explicit or path.suffix.lstrip(".").lower()
    if fmt not in ("json", "toml"):
        raise StateFileError(f"cannot tell the format of {path}: name it .json or .toml, or pass --format")
    return fmt  # type: ignore[return-value]


def parse(text: str, fmt: Format, origin: str) -> StateFile:
    """Parse and validate a state file; errors name ``origin`` and the line."""
    data = _decode(text, fmt, origin)
    if isinstance(data, dict) and "values" not in data and "statehub_export" not in data:
        data = {"values": data}  # a plain {"key": value} document, as people write them by hand
    if not isinstance(data, dict) or not isinstance(data.get("values"), dict):
        raise StateFileError(f"{origin}: expected a 'values' table mapping keys to values")
    if data.get("statehub_export", FORMAT) != FORMAT:
        raise StateFileError(f"{origin}: statehub_export = {data['statehub_export']} is not {FORMAT}")
    for key, value in data["values"].items():
        try:
            check_key(key)
            check_value(value)
        except InvalidRequest as exc:
            raise StateFileError(f"{origin}, line {_line_of(text, key)}: {exc}") from None
    created = data.get("created")
    return StateFile(
        values=data["values"],
        rev=int(data.get("rev", 0)),
        epoch=str(data.get("epoch", "")),
        created=parse_iso_time(created) if isinstance(created, str) else 0.0,
        name=str(data.get("name", "")),
        sealed=_sealed_table(data.get("sealed", {}), text, origin),
    )


def _sealed_table(table: Any, text: str, origin: str) -> dict[str, str]:
    if not isinstance(table, dict):
        raise StateFileError(f"{origin}: 'sealed' must be a table mapping secret keys to tokens")
    for key, token in table.items():
        try:
            check_key(key)
        except InvalidRequest as exc:
            raise StateFileError(f"{origin}, line {_line_of(text, key)}: {exc}") from None
        if not isinstance(token, str):
            raise StateFileError(f"{origin}, line {_line_of(text, key)}: the sealed value of {key!r} must be a token string")
    return dict(table)


def _decode(text: str, fmt: Format, origin: str) -> Any:
    try:
        if fmt == "json":
            return json.loads(text)
        return tomllib.loads(text)
    except json.JSONDecodeError as exc:
        raise StateFileError(f"{origin}, line {exc.lineno}, column {exc.colno}: {exc.msg}") from None
    except tomllib.TOMLDecodeError as exc:
        raise StateFileError(f"{origin}: {exc}") from None


def _line_of(text: str, key: str) -> int:
    for number, line in enumerate(text.split("\n"), start=1):
        if f'"{key}"' in line or line.lstrip().startswith(f"{key} ="):
            return number
    return 0


def read(path: Path, fmt: str | None = None) -> StateFile:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise StateFileError(f"cannot read {path}: {exc.strerror}") from None
    return parse(text, format_of(path, fmt), str(path))


# --- changes between states ----------------------------------------------------------


def changes_to(
    current: list[Item],
    target: dict[str, Any],
    *,
    replace: bool,
    prefix: str = "",
    sealed: dict[str, str] | None = None,
) -> list[Op]:
    """The ops turning ``current`` into ``target``, each conditioned on the revision seen now.

    With ``replace``, keys under ``prefix`` that ``target`` lacks are unset.  A
    secret's placeholder is never written (see ``placeholders_skipped``); tokens
    in ``sealed`` are written as secrets.
    """
    now = {item.key: item for item in current}
    sealed = sealed or {}
    ops = [
        Op(op="set", key=key, value=value, expect=now[key].rev if key in now else 0)
        for key, value in sorted(target.items())
        if key not in sealed
        and value != SECRET_PLACEHOLDER
        and (key not in now or not _same(now[key].value, value))
    ]
    ops += [
        Op(op="set", key=key, value=token, expect=now[key].rev if key in now else 0, secret="sealed")
        for key, token in sorted(sealed.items())
    ]
    if replace:
        ops += [
            Op(op="unset", key=key, expect=item.rev)
            for key, item in sorted(now.items())
            if key not in target and key.startswith(prefix)
        ]
    if len(ops) > MAX_TXN_OPS:
        raise StateFileError(
            f"{len(ops)} keys would change, more than one txn may hold ({MAX_TXN_OPS}); "
            "apply it in parts with --prefix"
        )
    return ops


def placeholders_skipped(current: list[Item], target: dict[str, Any], sealed: dict[str, str]) -> list[str]:
    """Keys whose target is a secret's placeholder but which are no secret here: they stay as they are."""
    secrets = {item.key for item in current if item.secret}
    return sorted(
        key
        for key, value in target.items()
        if value == SECRET_PLACEHOLDER and key not in secrets and key not in sealed
    )


def _same(a: Any, b: Any) -> bool:
    # 1 == 1.0 == True in Python, but they are different values on the wire.
    return bool(msgspec.msgpack.encode(a) == msgspec.msgpack.encode(b))


def describe(ops: list[Op], current: list[Item]) -> list[str]:
    """One line per change, old -> new, for --dry-run."""
    now = {item.key: item.value for item in current}
    lines = []
    for op in ops:
        before = json.dumps(now[op.key], ensure_ascii=False) if op.key in now else "(absent)"
        after = json.dumps(op.value, ensure_ascii=False) if op.op == "set" else "(unset)"
        after = "(sealed secret)" if op.secret == "sealed" else after
        lines.append(f"{op.key}: {before} -> {after}")
    return lines


# --- snapshots on disk ------------------------------------------------------------------


def snapshot_dir(data_dir: Path) -> Path:
    return data_dir / "snapshots"


def check_snapshot_name(name: str) -> None:
    if not _NAME.fullmatch(name) or name.startswith("auto-"):
        raise StateFileError(
            f"invalid snapshot name {name!r}: use up to 64 letters, digits, '_', '-' and '.', "
            "not starting with 'auto-'"
        )


def save_snapshot(data_dir: Path, state: StateFile, keep: int = SNAPSHOT_KEEP) -> Path:
    """Write a snapshot file; keep the newest ``keep`` unnamed ones and every named one."""
    folder = snapshot_dir(data_dir)
    folder.mkdir(mode=0o700, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(state.created))
    millis = int(state.created * 1000) % 1000  # two snapshots in one second must not share a name
    name = state.name or f"auto-{stamp}{millis:03d}-r{state.rev}"
    path = folder / f"{name}.json"
    write_atomically(path, render(state, "json"))
    autos = sorted(folder.glob("auto-*.json"), key=lambda p: p.stat().st_mtime)
    for old in autos[:-keep] if keep > 0 else autos:
        old.unlink(missing_ok=True)
    return path


def list_snapshots(data_dir: Path) -> list[tuple[str, StateFile]]:
    """(name, state) for every readable snapshot, oldest first."""
    found = []
    for path in snapshot_dir(data_dir).glob("*.json"):
        try:
            found.append((path.stem, read(path)))
        except StateFileError:
            continue
    return sorted(found, key=lambda pair: (pair[1].created, pair[0]))


def newest_snapshot_hint(data_dir: Path) -> str:
    """The command that restores the newest snapshot, for error messages."""
    snapshots = sorted(snapshot_dir(data_dir).glob("*.json"), key=lambda p: p.stat().st_mtime)
    if not snapshots:
        return "there is no snapshot in this data dir: move the damaged store aside to start empty"
    return f"restore the newest snapshot with: statehub restore {snapshots[-1].stem} --data-dir {data_dir}"


def find_snapshot(data_dir: Path, name: str) -> Path:
    path = Path(name)
    if path.suffix == ".json" and path.exists():
        return path
    candidate = snapshot_dir(data_dir) / f"{name}.json"
    if not candidate.exists():
        known = ", ".join(n for n, _ in list_snapshots(data_dir)[-5:]) or "none yet"
        raise NotFound(f"no snapshot named {name!r} (newest: {known})", hint="see `statehub snapshot list`")
    return candidate
