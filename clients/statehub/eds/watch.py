"""The drop folder: ingest each export put into a folder exactly once, across restarts.

    DIR/export.csv          dropped here (write elsewhere and rename in, or just copy:
                            a file is taken only once it looks the same on two polls)
    DIR/done/export.csv     ingested; beside it export.csv.bad-rows.txt if some rows were bad
    DIR/failed/export.csv   not ingested; beside it export.csv.reason.txt saying why
    DIR/.statehub-eds-watch.json   the SHA-256 of every file ingested, so a restart
                            (or the same file dropped again) never ingests it twice

Order of work per file: ingest, record its digest (atomic rewrite), move it.  A
crash after the ingest but before the record re-ingests the file on restart,
which commits nothing (readings not newer than the hub's are skipped); a crash
after the record but before the move just moves it.  Only successes are
recorded: a failed file dropped again (after fixing the cause) is tried again.

When the hub is unavailable the file stays where it is and is tried again on
the next poll; that is an outage, not a bad file.  Hidden files and names
ending in .tmp, .part, .partial or .crdownload are never taken.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from statehub import ConflictError, HubUnavailable, OutcomeUnknown, StatehubError, StorageError
from statehub.eds.ingest import BadRowsRefused, Summary
from statehub.hub.atomic_file import write_atomically

log = logging.getLogger(__name__)

STATE_FILE = ".statehub-eds-watch.json"
LOCK_FILE = ".statehub-eds-watch.lock"
DONE, FAILED = "done", "failed"
IGNORED_SUFFIXES = (".tmp", ".part", ".partial", ".crdownload")
KEEP_RECORDS = 10_000  # a forgotten old file dropped again is re-ingested, which commits nothing
MAX_NAME_SUFFIX = 1000

IngestFile = Callable[[Path], Summary]


@dataclass(frozen=True)
class Outcome:
    """What happened to one dropped file."""

    name: str
    status: Literal["done", "failed", "already"]  # already: ingested before; moved without ingesting
    moved_to: Path
    summary: Summary | None = None
    reason: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "file": self.name,
            "status": self.status,
            "moved_to": str(self.moved_to),
            "reason": self.reason,
            "summary": self.summary.as_dict() if self.summary else None,
        }


class WatchLocked(StatehubError):
    """Another watcher already serves this folder."""


class Watcher:
    def __init__(self, folder: Path, ingest_file: IngestFile) -> None:
        self.folder = folder
        self.ingest_file = ingest_file
        self.state = _State(folder / STATE_FILE)
        self._sizes: dict[str, tuple[int, int]] = {}  # name -> (size, mtime) at the previous poll
        self._hub_down = False

    def poll(self) -> list[Outcome]:
        """Take every file that has settled since the last poll; returns what happened to each."""
        outcomes: list[Outcome] = []
        for path in self._settled_files():
            try:
                outcome = self._take(path)
            except FileNotFoundError:  # taken away by someone else meanwhile: nothing to do
                log.info("%s disappeared before it was ingested", path.name)
                continue
            if outcome is None:  # the hub is unavailable: the rest would fail the same way
                break
            outcomes.append(outcome)
        return outcomes

    def run(
        self,
        stop: threading.Event,
        interval: float = 1.0,
        max_polls: int | None = None,
        on_outcome: Callable[[Outcome], None] | None = None,
    ) -> None:
        """Poll until ``stop`` is set (or ``max_polls`` polls), waiting ``interval`` between polls."""
        with _folder_lock(self.folder):
            polls = 0
            while not stop.is_set() and (max_polls is None or polls < max_polls):
                for outcome in self.poll():
                    if on_outcome is not None:
                        on_outcome(outcome)
                polls += 1
                stop.wait(interval)

    def _settled_files(self) -> list[Path]:
        now: dict[str, tuple[int, int]] = {}
        paths: dict[str, Path] = {}
        for path in self.folder.iterdir():
            if path.name.startswith(".") or path.name.endswith(IGNORED_SUFFIXES) or not path.is_file():
                continue
            try:
                info = path.stat()
            except FileNotFoundError:
                continue
            now[path.name] = (info.st_size, info.st_mtime_ns)
            paths[path.name] = path
        settled = [name for name, look in now.items() if self._sizes.get(name) == look]
        self._sizes = now
        return sorted((paths[name] for name in settled), key=lambda p: (now[p.name][1], p.name))

    def _take(self, path: Path) -> Outcome | None:
        digest = _sha256(path)
        if self.state.has(digest):
            # Debug: the outcome goes to on_outcome, which the command prints; a log line would say it twice.
            log.debug("%s was ingested before (same content); moving it to %s/", path.name, DONE)
            return Outcome(path.name, "already", self._move(path, DONE))
        try:
            summary = self.ingest_file(path)
        except (HubUnavailable, OutcomeUnknown, StorageError, ConflictError) as exc:  # passing trouble: try again later
            if not self._hub_down:
                log.warning("cannot ingest %s now: %s; trying again on the next poll", path.name, exc)
            self._hub_down = True
            self._sizes.pop(path.name, None)  # it must settle again, which also paces the retries
            return None
        except StatehubError as exc:  # bad input (EdsInputError, BadRowsRefused) or a refusal
            return self._fail(path, exc)
        except Exception as exc:  # a bug must not stop the folder: the file goes to failed/ with the error
            log.exception("unexpected error while ingesting %s", path.name)
            return self._fail(path, exc)
        self._hub_down = False
        self.state.add(digest, path.name, summary)
        moved = self._move(path, DONE)
        if summary.bad_rows:
            lines = [f"{len(summary.bad_rows)} rows of {path.name} were not ingested:"]
            lines += [str(bad) for bad in summary.bad_rows]
            _write_note(moved.with_name(moved.name + ".bad-rows.txt"), lines)
        return Outcome(path.name, "done", moved, summary=summary)

    def _fail(self, path: Path, exc: Exception) -> Outcome:
        reason = getattr(exc, "message", None) or f"{type(exc).__name__}: {exc}"
        moved = self._move(path, FAILED)
        lines = [f"statehub ingest-eds did not ingest {path.name} ({_now()}):", reason]
        if isinstance(exc, BadRowsRefused):
            lines += ["", "bad rows:", *(str(bad) for bad in exc.bad_rows)]
        _write_note(moved.with_name(moved.name + ".reason.txt"), lines)
        log.debug("%s failed: %s (moved to %s/)", path.name, reason, FAILED)  # reported by on_outcome
        return Outcome(path.name, "failed", moved, reason=reason)

    def _move(self, path: Path, where: str) -> Path:
        folder = self.folder / where
        folder.mkdir(exist_ok=True)
        target = folder / path.name
        for n in range(1, MAX_NAME_SUFFIX + 1):
            if not target.exists():
                break
            target = folder / f"{path.name}.{n}"
        else:
            target = folder / f"{path.name}.{time.time_ns()}"
        os.replace(path, target)
        return target


class _State:
    """The digests of ingested files, kept in the watched folder."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.records: list[dict[str, Any]] = self._load()
        self._digests = {record["sha256"] for record in self.records}

    def has(self, digest: str) -> bool:
        return digest in self._digests

    def add(self, digest: str, name: str, summary: Summary) -> None:
        self.records.append({"sha256": digest, "name": name, "time": _now(), "committed": summary.committed})
        self.records = self.records[-KEEP_RECORDS:]
        self._digests = {record["sha256"] for record in self.records}
        data = json.dumps({"format": 1, "ingested": self.records}, indent=1).encode()
        write_atomically(self.path, data, mode=0o644)

    def _load(self) -> list[dict[str, Any]]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            records = data["ingested"]
            if not all(isinstance(r, dict) and isinstance(r.get("sha256"), str) for r in records):
                raise ValueError("a record has no sha256")
            return list(records)
        except FileNotFoundError:
            return []
        except (OSError, ValueError, KeyError, TypeError) as exc:
            # Starting afresh is safe: re-ingesting a file commits nothing already in the hub.
            damaged = self.path.with_name(self.path.name + ".damaged")
            log.warning(
                "the watch state %s is unreadable (%s); kept as %s, starting afresh",
                self.path,
                exc,
                damaged.name,
            )
            os.replace(self.path, damaged)
            return []


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _write_note(path: Path, lines: list[str]) -> None:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


@contextlib.contextmanager
def _folder_lock(folder: Path) -> Iterator[None]:
    """One watcher per folder: two would race for the same files."""
    with open(folder / LOCK_FILE, "a+b") as handle:
        try:
            if sys.platform == "win32":
                import msvcrt

                msvcrt.locking(handle.fileno(), msvcrt.LK_NBLCK, 1)
            else:
                import fcntl

                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise WatchLocked(f"another ingest-eds --watch is already watching {folder}") from None
        yield
