"""The synced file's text: render it from the hub's state, parse a person's save of it.

TOML (the default) looks like this; JSON carries the same header as a
``"statehub"`` member, since JSON has no comments::

    # statehub sync-file: the keys under "plant." as TOML, kept equal to the hub's state.
    # revision: 12
    # epoch: 3f2a9c0d1e2b4a5f
    # prefix: "plant."
    # format: 1
    # ... how editing works ...

    "plant.name" = "Maxson"
    "plant.rate" = 30

    # end of file (statehub reads a save only once this last line is there)

Keys are written whole and quoted: in TOML an unquoted ``plant.rate`` would mean
a table ``plant`` holding ``rate``.  The last line marks a TOML save as complete:
an editor that writes in several steps leaves a file without it for a moment,
and that file must not read as "the person deleted every key below".
"""

from __future__ import annotations

import json
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from statehub import InvalidRequest, check_key, check_value
from statehub.sync_file.toml_values import from_toml, toml_string, toml_value

Format = Literal["toml", "json"]
FILE_FORMAT = 1
END_LINE = "# end of file (statehub reads a save only once this last line is there)"

_HEADER_LINE = re.compile(r"#\s*(revision|epoch|prefix|format):\s*(.*?)\s*$")
_TOML_POSITION = re.compile(r"\(at line (\d+), column (\d+)\)")
# A TOML table header, or an unquoted dotted key, at the start of a line: both make nested tables.
_TABLE_HEADER = re.compile(r"\[\[?[^\[\],=]*\]\]?\s*(#.*)?$")
_BARE_DOTTED_KEY = re.compile(r"[A-Za-z0-9_-]+(\s*\.\s*[A-Za-z0-9_-]+)+\s*=")
# An unquoted key that holds '/' or '=' (statehub allows both; bare TOML keys do not), then " = ".
_UNQUOTED_WIDE_KEY = re.compile(r"\s*([A-Za-z0-9_./-]*/[A-Za-z0-9_./=-]*|[A-Za-z0-9_./-]+=[A-Za-z0-9_./=-]+)\s+=\s")


@dataclass(frozen=True)
class Header:
    """What the file says about itself: the state it shows is the hub's at ``rev``."""

    rev: int
    epoch: str
    prefix: str


@dataclass(frozen=True)
class SavedFile:
    header: Header
    values: dict[str, Any]


class FileError(InvalidRequest):
    """A save that cannot be used: says where (line and column, 1-based) and what to do."""

    def __init__(self, message: str, line: int = 1, column: int = 1, *, incomplete: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.line = line
        self.column = column
        self.incomplete = incomplete

    def describe(self, path: Path | str) -> str:
        return f"{path}:{self.line}:{self.column}: {self.message}"


def format_for(path: Path, explicit: str | None = None) -> Format:
    """The format asked for, else JSON for a ``.json`` file, else TOML."""
    chosen = explicit or ("json" if path.suffix.lower() == ".json" else "toml")
    if chosen not in ("toml", "json"):
        raise InvalidRequest(f"unknown format {chosen!r}: use toml or json")
    return "json" if chosen == "json" else "toml"


def editing_note(header: Header, note_name: str) -> list[str]:
    """How editing works, in sentences shared by both formats."""
    return [
        'Edit the values and save: each change is sent to the hub (source "file") only if that',
        f"key has not changed since revision {header.rev}. An edit to a key that changed since is refused,",
        f"kept in {note_name} beside this file, and this file is rewritten with the hub's state.",
        "Add a key with a new line, delete one by deleting its line. Your own comments are not kept.",
    ]


def render(fmt: Format, header: Header, values: dict[str, Any], note_name: str) -> bytes:
    """The whole file for the state ``values`` (keys under the prefix) at ``header.rev``."""
    if fmt == "json":
        return _render_json(header, values, note_name)
    return _render_toml(header, values, note_name)


def parse(fmt: Format, text: str, prefix: str) -> SavedFile:
    """Parse a save; raise FileError (with line and column) for anything that cannot be applied."""
    saved = _parse_json(text) if fmt == "json" else _parse_toml(text)
    if saved.header.prefix != prefix:
        raise FileError(
            f"this file was written for the prefix {saved.header.prefix!r}, but this adapter syncs {prefix!r}; "
            "use --prefix with the file's prefix, or move the file away to start a new one"
        )
    for key, value in saved.values.items():
        _check_entry(text, key, value, prefix)
    return saved


# --- TOML ---------------------------------------------------------------------------


def _render_toml(header: Header, values: dict[str, Any], note_name: str) -> bytes:
    shown = toml_string(header.prefix)
    lines = [
        f"# statehub sync-file: the keys under {shown} as TOML, kept equal to the hub's state.",
        f"# revision: {header.rev}",
        f"# epoch: {header.epoch}",
        f"# prefix: {shown}",
        f"# format: {FILE_FORMAT}",
        "#",
        *(f"# {sentence}" for sentence in editing_note(header, note_name)),
        '# Keys are quoted ("plant.rate"). TOML has no null: null is written { "$json" = "null" }.',
        "# Keep the header lines above and the last line of the file.",
        "",
        *(f"{toml_string(key)} = {toml_value(values[key])}" for key in sorted(values)),
        "",
        END_LINE,
    ]
    return ("\n".join(lines) + "\n").encode()


def _parse_toml(text: str) -> SavedFile:
    _check_end_line(text)
    header = _toml_header(text)
    try:
        table = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        line, column = _toml_position(str(exc), text)
        _check_quoted_where_needed(text, line)
        raise FileError(f"this is not valid TOML: {_strip_position(str(exc))}", line, column) from None
    _check_flat(text)
    values = {key: from_toml(value) for key, value in table.items()}
    return SavedFile(header, values)


def _check_end_line(text: str) -> None:
    lines = text.rstrip().split("\n")
    if lines[-1].strip() != END_LINE:
        raise FileError(
            f"the last line {END_LINE!r} is missing, so this save looks incomplete; "
            "if your editor is still writing, wait; if you deleted the line, add it back",
            len(lines),
            1,
            incomplete=True,
        )


def _toml_header(text: str) -> Header:
    found: dict[str, str] = {}
    for line in text.split("\n"):
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            break  # the header is the comment block before the first entry
        match = _HEADER_LINE.match(stripped)
        if match:
            found.setdefault(match.group(1), match.group(2))
    return _header_from(found, _header_line_number(text))


def _header_from(found: dict[str, Any], line: int) -> Header:
    missing = [name for name in ("revision", "epoch", "prefix") if name not in found]
    if missing:
        raise FileError(
            f"the header lacks {', '.join(missing)}: this file was not written by statehub sync-file, "
            "or its header was edited (move the file away to start a new one)",
            line,
        )
    try:
        rev = int(found["revision"])
        prefix = found["prefix"]
        prefix = json.loads(prefix) if isinstance(prefix, str) and prefix.startswith('"') else prefix
        if str(found.get("format", FILE_FORMAT)) != str(FILE_FORMAT):
            raise ValueError(f"format {found['format']} is not {FILE_FORMAT}")
    except ValueError as exc:
        raise FileError(f"the header is damaged ({exc})", line) from None
    if rev < 0 or not isinstance(prefix, str) or not isinstance(found["epoch"], str):
        raise FileError("the header is damaged (revision, epoch or prefix)", line)
    return Header(rev=rev, epoch=found["epoch"], prefix=prefix)


def _header_line_number(text: str) -> int:
    for number, line in enumerate(text.split("\n"), start=1):
        if line.strip().startswith("# revision"):
            return number
    return 1


def _toml_position(message: str, text: str) -> tuple[int, int]:
    match = _TOML_POSITION.search(message)
    if match:
        return int(match.group(1)), int(match.group(2))
    return max(1, text.count("\n")), 1  # "at end of document"


def _strip_position(message: str) -> str:
    return _TOML_POSITION.sub("", message).replace("(at end of document)", "at the end").strip()


def _check_quoted_where_needed(text: str, line: int) -> None:
    """Name the fix when TOML failed on an unquoted key holding '/' or '=' (valid in keys, not in bare TOML)."""
    lines = text.split("\n")
    match = _UNQUOTED_WIDE_KEY.match(lines[line - 1]) if 0 < line <= len(lines) else None
    if match:
        raise FileError(
            f"write the key in quotes: {toml_string(match.group(1))} = ...; "
            "TOML allows '/' and '=' in keys only between quotes",
            line,
        )


def _check_flat(text: str) -> None:
    """Refuse [tables] and unquoted dotted keys: TOML reads both as nested tables, not keys."""
    for number, line in enumerate(text.split("\n"), start=1):
        if _TABLE_HEADER.match(line):
            raise FileError(
                "[table] sections are not used in this file: write each key whole and quoted, "
                'as "plant.rate" = 30',
                number,
            )
        if _BARE_DOTTED_KEY.match(line):
            key = line.split("=", 1)[0].strip()
            raise FileError(
                f"write the key in quotes: {toml_string(key.replace(' ', ''))} = ...; "
                "unquoted, TOML reads it as a nested table",
                number,
            )


# --- JSON -----------------------------------------------------------------------------


def _render_json(header: Header, values: dict[str, Any], note_name: str) -> bytes:
    about = {
        "about": f"The keys under {json.dumps(header.prefix)} as JSON, kept equal to the hub's state "
        'by `statehub sync-file`. Edit "values" only.',
        "editing": " ".join(editing_note(header, note_name)),
        "format": FILE_FORMAT,
        "revision": header.rev,
        "epoch": header.epoch,
        "prefix": header.prefix,
    }
    head = ",\n".join(
        f"    {json.dumps(name)}: {json.dumps(value, ensure_ascii=False)}" for name, value in about.items()
    )
    entries = ",\n".join(
        f"    {json.dumps(key, ensure_ascii=False)}: {json.dumps(values[key], ensure_ascii=False)}"
        for key in sorted(values)
    )
    body = (
        "{\n"
        + f'  "statehub": {{\n{head}\n  }},\n'
        + '  "values": {'
        + (f"\n{entries}\n  " if entries else "")
        + "}\n}\n"
    )
    return body.encode()


class _DuplicateKey(ValueError):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    table: dict[str, Any] = {}
    for name, value in pairs:
        if name in table:
            raise _DuplicateKey(name)
        table[name] = value
    return table


def _parse_json(text: str) -> SavedFile:
    try:
        data = json.loads(text, object_pairs_hook=_no_duplicates)
    except json.JSONDecodeError as exc:
        incomplete = exc.pos >= len(text.rstrip())  # it ended before the document did
        hint = "; if your editor is still writing, wait" if incomplete else ""
        raise FileError(
            f"this is not valid JSON: {exc.msg}{hint}", exc.lineno, exc.colno, incomplete=incomplete
        ) from None
    except _DuplicateKey as exc:
        line, column = _line_of(text, exc.key)
        raise FileError(f"{exc.key!r} appears twice; keep one of them", line, column) from None
    if (
        not isinstance(data, dict)
        or not isinstance(data.get("statehub"), dict)
        or not isinstance(data.get("values"), dict)
    ):
        raise FileError('expected an object with "statehub" (the header) and "values" (key: value)')
    extra = sorted(set(data) - {"statehub", "values"})
    if extra:
        line, column = _line_of(text, extra[0])
        raise FileError(f'{extra[0]!r} is not used here: put keys inside "values"', line, column)
    meta = data["statehub"]
    if isinstance(meta.get("revision"), bool) or not isinstance(meta.get("revision"), int):
        meta = {**meta, "revision": "not a number"}
    found = {name: meta[name] for name in ("revision", "epoch", "prefix", "format") if name in meta}
    return SavedFile(_header_from(found, _line_of(text, "statehub")[0]), data["values"])


# --- both ---------------------------------------------------------------------------


def _check_entry(text: str, key: str, value: Any, prefix: str) -> None:
    try:
        check_key(key)
        if not key.startswith(prefix):
            raise InvalidRequest(f"key {key!r} is outside the synced prefix {prefix!r}")
        check_value(value)
    except InvalidRequest as exc:
        line, column = _line_of(text, key)
        hint = "; write dates and times as strings" if "date" in str(exc) or "time" in str(exc) else ""
        raise FileError(f"{exc}{hint}", line, column) from None


def value_position(text: str, key: str) -> tuple[int, int]:
    """Where the value of ``key`` starts in the text (line, column), for a refusal of that value."""
    number, column = _line_of(text, key)
    line = text.split("\n")[number - 1] if number <= text.count("\n") + 1 else ""
    for separator in ("=", ":"):
        at = line.find(separator, column - 1 + len(key))
        if at >= 0:
            rest = line[at + 1 :]
            return number, at + 2 + len(rest) - len(rest.lstrip())
    return number, column


def _line_of(text: str, key: str) -> tuple[int, int]:
    """Where ``key`` is defined in the text (line, column), or (1, 1) when it cannot be found."""
    quoted = (json.dumps(key, ensure_ascii=False), toml_string(key), f"'{key}'")
    for number, line in enumerate(text.split("\n"), start=1):
        stripped = line.lstrip()
        for form in (*quoted, key):
            if stripped.startswith(form) and stripped[len(form) :].lstrip()[:1] in ("=", ":"):
                return number, len(line) - len(stripped) + 1
    return 1, 1
