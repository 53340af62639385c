"""Ingesting exports into the hub: parse, name, read what the hub holds, plan, commit.

Every write carries compare-and-set conditions (the revision each key had when
it was read), so two ingesters working on the same points never interleave
their readings: the one that loses re-reads the hub and plans again, and the
idempotency rule then skips what the other committed.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from statehub import ConflictError, HubUnavailable, InvalidRequest, Op, OutcomeUnknown
from statehub.eds.formats import parse_file
from statehub.eds.plan import Mode, Plan, Stored, make_plan
from statehub.eds.point_map import PointMap
from statehub.eds.records import BadRow, ParseResult
from statehub.eds.resolve import Entry, Naming, resolve

if TYPE_CHECKING:
    from statehub import Client

log = logging.getLogger(__name__)

CONFLICT_ATTEMPTS = 3  # each attempt re-reads the hub; a third loss in a row is reported, not retried forever

# Called after each transaction with (writes just committed, writes this plan holds in all).
Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class Options:
    zone: ZoneInfo
    mode: Mode = "latest"
    fmt: str = "auto"
    points: list[str] = field(default_factory=list)  # --point
    point_map: PointMap | None = None
    plant: str | None = None
    default_plant: str | None = None
    strict: bool = False

    @property
    def naming(self) -> Naming:
        return Naming(self.zone, self.point_map, self.plant, self.default_plant)


class BadRowsRefused(InvalidRequest):
    """--strict and the input had bad rows: nothing was committed (bad input, exit 2)."""

    def __init__(self, bad_rows: list[BadRow]) -> None:
        self.bad_rows = bad_rows
        count = f"{len(bad_rows)} bad row{'s' if len(bad_rows) != 1 else ''}"
        super().__init__(f"{count} and --strict: nothing was committed (first: {bad_rows[0]})")


@dataclass
class Summary:
    """What one ingest did."""

    mode: str
    files: list[str]
    formats: list[str]
    rows: int = 0
    readings: int = 0
    committed: int = 0
    skipped: int = 0
    not_latest: int = 0
    replaced: int = 0
    bad_rows: list[BadRow] = field(default_factory=list)
    transactions: int = 0
    rev: int | None = None
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "files": self.files,
            "formats": self.formats,
            "rows": self.rows,
            "readings": self.readings,
            "committed": self.committed,
            "skipped": self.skipped,
            "not_latest": self.not_latest,
            "replaced": self.replaced,
            "bad_rows": [bad.as_dict() for bad in self.bad_rows],
            "transactions": self.transactions,
            "rev": self.rev,
            "seconds": round(self.seconds, 3),
        }

    def text(self) -> str:
        parts = [
            f"{self.rows} rows",
            f"{self.readings} readings",
            f"{self.committed} committed",
            f"{self.skipped} skipped (not newer than the hub's)",
        ]
        if self.not_latest:
            parts.append(f"{self.not_latest} older than the newest (--latest)")
        if self.replaced:
            parts.append(f"{self.replaced} rows replaced by a later row")
        parts.append(f"{len(self.bad_rows)} bad rows")
        where = f", revision {self.rev}" if self.rev is not None else ""
        return (
            f"ingested {len(self.files)} file{'s' if len(self.files) != 1 else ''} ({self.mode}): "
            + ", ".join(parts)
            + f"; {self.transactions} transactions{where}, {self.seconds:.2f} s"
        )


@dataclass
class _Tally:
    committed: int = 0
    transactions: int = 0
    rev: int | None = None


def parse_all(paths: Iterable[str | Path], options: Options) -> list[ParseResult]:
    """Parse every file; raises EdsInputError for the first file that cannot be read at all."""
    return [parse_file(path, options.fmt, options.zone, options.points) for path in paths]


def ingest(
    client: Client, results: Sequence[ParseResult], options: Options, progress: Progress | None = None
) -> Summary:
    """Commit the parsed files' readings; raises BadRowsRefused under --strict."""
    started = time.monotonic()
    bad = [row for result in results for row in result.bad_rows]
    entries, unkeyable = resolve((r for result in results for r in result.readings), options.naming)
    bad.extend(unkeyable)
    if options.strict and bad:
        raise BadRowsRefused(bad)
    tally = _Tally()
    plan = _commit_with_retries(client, entries, options.mode, tally, progress)
    return Summary(
        mode=options.mode,
        files=[result.file for result in results],
        formats=[result.format for result in results],
        rows=sum(result.rows for result in results),
        readings=plan.readings,
        committed=tally.committed,
        skipped=plan.readings - plan.not_latest - tally.committed,
        not_latest=plan.not_latest,
        replaced=plan.replaced,
        bad_rows=bad,
        transactions=tally.transactions,
        rev=tally.rev,
        seconds=time.monotonic() - started,
    )


def _commit_with_retries(
    client: Client, entries: list[Entry], mode: Mode, tally: _Tally, progress: Progress | None
) -> Plan:
    for attempt in range(1, CONFLICT_ATTEMPTS + 1):
        stored = read_stored(client, entries)
        plan = make_plan(entries, stored, mode)
        try:
            _commit(client, plan, stored, tally, progress)
            return plan
        except ConflictError as exc:
            if attempt == CONFLICT_ATTEMPTS:
                raise
            log.info(
                "another writer changed %s during the ingest; reading the hub again",
                exc.conflicts[0].key if exc.conflicts else "a key",
            )
        except (HubUnavailable, OutcomeUnknown) as exc:
            raise type(exc)(
                f"{exc.message}; {tally.committed} readings were committed before that: "
                "run the same ingest again to continue (committed readings are skipped)",
                hint=exc.hint,
            ) from exc
    raise AssertionError("unreachable")


def read_stored(client: Client, entries: Iterable[Entry]) -> dict[str, Stored]:
    """What the hub holds under every plant the entries touch (one list request per plant)."""
    prefixes = sorted({entry.key.rsplit(".", 1)[0] + "." for entry in entries})
    stored: dict[str, Stored] = {}
    for prefix in prefixes:
        listing = client.list(prefix)
        if listing.origin.from_mirror:  # planning from a stale mirror could commit older readings
            raise HubUnavailable(
                "the hub is not answering (only its mirror is readable); nothing was written"
            )
        stored.update({item.key: Stored(item.value, item.rev) for item in listing.items})
    return stored


def _commit(
    client: Client, plan: Plan, stored: dict[str, Stored], tally: _Tally, progress: Progress | None
) -> None:
    revs = {key: held.rev for key, held in stored.items()}
    for batch in plan.batches:
        ops = [Op(op="set", key=e.key, value=e.record, expect=revs.get(e.key, 0)) for e in batch]
        committed = client.txn(ops)
        for entry in batch:
            revs[entry.key] = committed.rev
        tally.committed += len(batch)
        tally.transactions += 1
        tally.rev = committed.rev
        if progress is not None:
            progress(len(batch), plan.writes)
