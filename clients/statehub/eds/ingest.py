"""Ingesting exports into the hub: parse, name, read what the hub holds, plan, commit in batches.

The writes of a plan go to the hub as ``batch`` requests (docs/protocol.md,
"Writes"): each write keeps its own revision, so a replayed year is one
revision per reading time, but a thousand of them cost one round trip and one
fsync.  Every batch carries compare-and-set conditions (the revision each key
had when it was read, or got from the previous batch), so two ingesters working
on the same points never interleave their readings: the one that loses re-reads
the hub and plans again, and the idempotency rule then skips what the other
committed.  A batch is all or nothing, which is what makes one condition per key
and batch enough.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from statehub import MAX_BATCH_WRITES, ConflictError, HubUnavailable, InvalidRequest, Op, OutcomeUnknown
from statehub.eds.formats import parse_file
from statehub.eds.keys import plant_prefix
from statehub.eds.plan import Mode, Plan, Stored, Write, make_plan
from statehub.eds.plants import read_plants
from statehub.eds.point_map import PointMap
from statehub.eds.records import BadRow, EdsInputError, ParseResult
from statehub.eds.resolve import Named, Point, instant_texts, name_readings, point_names, record, suffixes

if TYPE_CHECKING:
    from statehub import Client

log = logging.getLogger(__name__)

CONFLICT_ATTEMPTS = 3  # each attempt re-reads the hub; a third loss in a row is reported, not retried forever
# Ops per batch request: big enough that round trips and fsyncs stop mattering (a
# year of hourly data for 3 points is 27 requests), small enough that the hub
# answers other clients within a fraction of their timeout meanwhile.
BATCH_OPS = 1000

# Called after each batch with (readings just committed, readings this plan holds in all).
Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class Options:
    zone: ZoneInfo
    mode: Mode = "latest"
    fmt: str = "auto"
    points: list[str] = field(default_factory=list)  # --point
    point_map: PointMap | None = None
    plant: str | None = None  # --plant: wins over every other rule
    strict: bool = False


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
    kept_good: int = 0
    bad_rows: list[BadRow] = field(default_factory=list)
    transactions: int = 0  # revisions written (one per instant in --replay)
    requests: int = 0  # batch requests sent
    rev: int | None = None
    seconds: float = 0.0
    plants: list[dict[str, Any]] = field(default_factory=list)

    @property
    def backfill(self) -> bool:
        return self.mode == "replay"

    def as_dict(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "backfill": self.backfill,
            "files": self.files,
            "formats": self.formats,
            "plants": self.plants,
            "rows": self.rows,
            "readings": self.readings,
            "committed": self.committed,
            "skipped": self.skipped,
            "not_latest": self.not_latest,
            "replaced": self.replaced,
            "kept_good": self.kept_good,
            "bad_rows": [bad.as_dict() for bad in self.bad_rows],
            "transactions": self.transactions,
            "requests": self.requests,
            "rev": self.rev,
            "seconds": round(self.seconds, 3),
            "readings_per_second": round(self.committed / self.seconds) if self.seconds else None,
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
            parts.append(f"{self.replaced} rows replaced by another row")
        if self.kept_good:
            parts.append(f"{self.kept_good} bad readings kept from replacing good ones")
        parts.append(f"{len(self.bad_rows)} bad rows")
        where = f", last revision {self.rev}" if self.rev is not None else ""
        speed = f", {self.committed / self.seconds:,.0f} readings/s" if self.committed >= 1000 else ""
        what = f"{self.mode}, backfill" if self.backfill else self.mode
        return (
            f"ingested {_count(len(self.files), 'file')} ({what}): "
            + ", ".join(parts)
            + f"; {_count(self.transactions, 'revision')} in {_count(self.requests, 'request')}{where}"
            + f", {self.seconds:.2f} s{speed}"
        )


def _count(n: int, thing: str) -> str:
    return f"{n} {thing}{'' if n == 1 else 's'}"


@dataclass
class _Tally:
    committed: int = 0
    transactions: int = 0
    requests: int = 0
    rev: int | None = None


def parse_all(
    paths: Iterable[str | Path], options: Options, on_rows: Callable[[int], None] | None = None
) -> list[ParseResult]:
    """Parse every file; raises EdsInputError for the first file that cannot be read at all."""
    return [parse_file(path, options.fmt, options.zone, options.points, on_rows) for path in paths]


def name_all(client: Client, results: Sequence[ParseResult], options: Options) -> Named:
    """Every reading under its key; the plant settings the points need are read from the hub now.

    The results' readings are emptied once named (a million readings are some
    40 MB; there is no need to hold them twice).
    """
    names = point_names((result.readings for result in results), options.point_map, options.plant)
    plants = read_plants(client, options.plant, suffixes(names.values()))
    named = name_readings((result.readings for result in results), names, plants, options.zone)
    for result in results:
        result.readings.clear()
    return named


def ingest(
    client: Client, results: Sequence[ParseResult], options: Options, progress: Progress | None = None
) -> Summary:
    """Commit the parsed files' readings (and empty them: see ``name_all``); BadRowsRefused under --strict."""
    started = time.monotonic()
    named = name_all(client, results, options)
    bad = [row for result in results for row in result.bad_rows] + named.bad_rows
    if options.strict and bad:
        raise BadRowsRefused(bad)
    tally = _Tally()
    plan = _commit_with_retries(client, named, options.mode, tally, progress)
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
        kept_good=plan.kept_good,
        bad_rows=bad,
        transactions=tally.transactions,
        requests=tally.requests,
        rev=tally.rev,
        seconds=time.monotonic() - started,
        plants=named.plants(),
    )


def _commit_with_retries(
    client: Client, named: Named, mode: Mode, tally: _Tally, progress: Progress | None
) -> Plan:
    for attempt in range(1, CONFLICT_ATTEMPTS + 1):
        stored = read_stored(client, named)
        plan = make_plan(named.readings, stored, mode)
        try:
            _commit(client, plan, named.points, stored, tally, progress)
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


def read_stored(client: Client, named: Named) -> dict[str, Stored]:
    """What the hub holds under every plant the points go to (one list request per plant).

    Raises EdsInputError when a key holds another point's readings: writing
    there would mix two points' histories.
    """
    stored: dict[str, Stored] = {}
    for prefix in sorted({plant_prefix(point.placement.plant) for point in named.points.values()}):
        listing = client.list(prefix)
        if listing.origin.from_mirror:  # planning from a stale mirror could commit older readings
            raise HubUnavailable("the hub is not answering (only its mirror is readable); nothing was written")
        stored.update({item.key: Stored(item.value, item.rev) for item in listing.items})
    for key, point in named.points.items():
        held = stored.get(key)
        other = held.value.get("point") if held is not None and isinstance(held.value, dict) else None
        if other is not None and other != point.name:
            raise EdsInputError(
                "the hub",
                None,
                f"{key} holds the readings of point {other}, not {point.name}: "
                "give --plant, or set eds.plants.<UNIT-NET> so the two points go to different keys",
            )
    return stored


def _commit(
    client: Client,
    plan: Plan,
    points: dict[str, Point],
    stored: dict[str, Stored],
    tally: _Tally,
    progress: Progress | None,
) -> None:
    revs = {key: held.rev for key, held in stored.items()}
    total = plan.count
    batch: list[Write] = []
    ops = 0
    for write in plan.writes():
        batch.append(write)
        ops += len(write)
        if ops >= BATCH_OPS or len(batch) >= MAX_BATCH_WRITES:
            _send(client, batch, points, revs, plan.mode == "replay", tally)
            if progress is not None:
                progress(ops, total)
            batch, ops = [], 0
    if batch:
        _send(client, batch, points, revs, plan.mode == "replay", tally)
        if progress is not None:
            progress(ops, total)


def _send(
    client: Client, batch: list[Write], points: dict[str, Point], revs: dict[str, int], backfill: bool, tally: _Tally
) -> None:
    """One batch: each key's first write expects the revision last seen; the batch being all or
    nothing, its later writes of that key are safe without a condition of their own."""
    seen: set[str] = set()
    writes: list[list[Op]] = []
    for write in batch:
        first_key, first = write[0]
        times = instant_texts(first.time, points[first_key].zone)  # one instant per write (--latest: one each)
        ops = []
        for key, reading in write:
            expect = None if key in seen else revs.get(key, 0)
            seen.add(key)
            same = reading.time == first.time
            ops.append(Op(op="set", key=key, value=record(reading, points[key], times if same else None), expect=expect))
        writes.append(ops)
    committed = client.batch(writes, backfill=backfill)
    for write, rev in zip(batch, committed.revs, strict=True):
        for key, _reading in write:
            revs[key] = rev
        tally.committed += len(write)
    tally.transactions += len(batch)
    tally.requests += 1
    tally.rev = committed.revs[-1]
