"""Time `ingest-eds --replay` of a year of EDS data against a real hub, in every export format.

    python scripts/bench_eds.py                          # both sizes, wide CSV (the issue's bar)
    python scripts/bench_eds.py --size hourly --format all
    python scripts/bench_eds.py --size five-minute --json out.json

Sizes: ``hourly`` is 3 points x 1 year hourly (26,280 readings); ``five-minute``
is 10 points x 1 year at 5 minutes (1,051,200 readings).  The exports carry
the wall-clock times a Chicago historian writes (no 02:xx on the
spring-forward day, 01:xx twice in the fall) and name their points by IESS
(``.UNIT1@NET1``, Stiles' points), so the command runs with no flags except
what a format needs (a point map for the long format, ``--point`` for
two-column files).  The command runs as a real process, exactly as a user runs
it, against a fresh hub whose --history-keep holds every revision; the figures
are its wall time (start-up included), readings per second of that, the
ingest's own time, and its peak memory.  Then the same files are ingested again,
which must commit nothing.  The writers of the exports are shared with
tests/test_eds_yearlong.py.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from statehub.testing import HubProcess  # noqa: E402

CHICAGO = ZoneInfo("America/Chicago")
START = datetime(2025, 1, 1, 6, tzinfo=UTC)  # local midnight, Jan 1
FORMATS = ("wide", "long", "two-column", "json")
SIZES = {"hourly": (3, 8760, 3600), "five-minute": (10, 105_120, 300)}  # points, steps, seconds per step
TAGS = ["FI-405/415", "LI-410", "FI-301", "AIT-320/DO", "PI-115", "FI-120", "LI-125", "TI-130", "FI-135", "FI-140"]


@dataclass
class Export:
    """Files of one format holding one dataset, and the arguments the ingest needs for them."""

    files: list[Path]
    readings: int  # what the files hold; the long format's hourly files lose the repeated hour
    args: list[list[str]] = field(default_factory=list)  # one argument list per command to run


def points(count: int) -> list[str]:
    return [f"{TAGS[n]}.UNIT1@NET1" for n in range(count)]


def instants(steps: int, step: int) -> Iterator[datetime]:
    for n in range(steps):
        yield START + timedelta(seconds=n * step)


def value(n: int, point: int) -> str:
    """A reading that varies by point and time, written as an export writes it."""
    return f"{50 + ((n * (point + 3)) % 17) / 1.7:.3f}"


def quality(n: int, point: int) -> str:
    """Mostly good, with the other letters now and then (trend JSON carries them)."""
    return "GGGGGGGGGGGGGGUSQB"[(n + point) % 18]


def naive_local(moment: datetime) -> datetime:
    return moment.astimezone(CHICAGO).replace(tzinfo=None)


def write_export(folder: Path, fmt: str, count: int, steps: int, step: int) -> Export:
    """Write one dataset in ``fmt`` under ``folder``."""
    names = points(count)
    folder.mkdir(parents=True, exist_ok=True)
    if fmt == "wide":
        return _wide(folder / "year-wide.csv", names, steps, step)
    if fmt == "long":
        return _long(folder, names, steps, step)
    if fmt == "two-column":
        return _two_column(folder, names, steps, step)
    if fmt == "json":
        return _trend_json(folder / "year-trend.json", names, steps, step)
    raise ValueError(f"unknown format {fmt!r}")


def _wide(path: Path, names: list[str], steps: int, step: int) -> Export:
    lines = [",," + ",".join(f"\\{p}\\" for p in names), "Date,," + ",".join(f"VALUE(\\{p}\\)" for p in names)]
    for n, moment in enumerate(instants(steps, step)):
        local = naive_local(moment)
        cells = ",".join(value(n, i) for i in range(len(names)))
        lines.append(f"{local.month}/{local.day}/{local.year},{local.isoformat()},{cells}")
    path.write_bytes(("\ufeff" + "\r\n".join(lines) + "\r\n").encode())
    return Export([path], steps * len(names), [[str(path)]])


def _long(folder: Path, names: list[str], steps: int, step: int) -> Export:
    sids = {name: 5000 + i for i, name in enumerate(names)}
    point_map = folder / "points.csv"
    point_map.write_text(
        "zd,idcs,iess,sid,shortdesc,un\n"
        + "".join(f"WWTF,{name.split('.')[0]},{name},{sid},P{sid},MGD\n" for name, sid in sids.items())
    )
    path = folder / "year-long.csv"
    lines = ["timestamp,sid,shortdesc,rjn_siteid,rjn_entityid,value"]
    repeated = 0
    seen: set[datetime] = set()
    for n, moment in enumerate(instants(steps, step)):
        local = naive_local(moment)
        repeated += local in seen  # an hourly long export cannot tell the repeated 01:00 from a correction
        seen.add(local)
        lines += [f"{local.isoformat()},{sid},P{sid},SITE,1,{value(n, i)}" for i, sid in enumerate(sids.values())]
    path.write_text("\n".join(lines) + "\n")
    return Export([path], (steps - repeated) * len(names), [[str(path), "--points", str(point_map)]])


def _two_column(folder: Path, names: list[str], steps: int, step: int) -> Export:
    export = Export([], steps * len(names))
    for i, name in enumerate(names):
        path = folder / f"year-{i}.csv"
        rows = [f"{naive_local(moment).isoformat()},{value(n, i)}" for n, moment in enumerate(instants(steps, step))]
        path.write_bytes(("\ufeff" + "\n".join(rows) + "\n").encode())
        export.files.append(path)
        export.args.append([str(path), "--point", name])
    return export


def _trend_json(path: Path, names: list[str], steps: int, step: int, chunk: int = 2000) -> Export:
    stamps = [int(moment.timestamp()) for moment in instants(steps, step)]
    chunks = []
    for first in range(0, steps, chunk):
        status = "LAST" if first + chunk >= steps else "PARTIAL"
        items = [
            [[stamps[n], float(value(n, i)), quality(n, i)] for n in range(first, min(first + chunk, steps))]
            for i in range(len(names))
        ]
        chunks.append({"status": status, "items": items})
    request = {
        "period": {"from": stamps[0], "till": stamps[-1] + step},
        "step": step,
        "items": [{"pointId": {"iess": name}, "shadePriority": "DEFAULT", "function": "AVG"} for name in names],
    }
    path.write_text(json.dumps({"request": request, "response": chunks}, separators=(",", ":")))
    return Export([path], steps * len(names), [[str(path)]])


# --- running it --------------------------------------------------------------------------------


def ingest(data_dir: Path, args: list[str], *extra: str) -> tuple[dict[str, Any], float]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STATEHUB_")}
    command = [sys.executable, "-m", "statehub.cli", "ingest-eds", "--data-dir", str(data_dir), *args, "--json", *extra]
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=3600)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"ingest failed ({done.returncode}):\n{done.stderr}")
    return json.loads(done.stdout), wall


def run_all(data_dir: Path, export: Export, *extra: str) -> tuple[dict[str, int | float], float]:
    """Every command the export needs, one after the other: the summed counts and wall time."""
    totals: dict[str, int | float] = {"committed": 0, "skipped": 0, "transactions": 0, "requests": 0, "seconds": 0.0}
    wall = 0.0
    for args in export.args:
        summary, seconds = ingest(data_dir, args, *extra)
        for name in totals:
            totals[name] += summary[name]
        wall += seconds
    return totals, wall


def bench(size: str, fmt: str, temp: Path, steps: int | None = None) -> dict[str, Any]:
    count, full, step = SIZES[size]
    steps = steps or full
    made = time.perf_counter()
    export = write_export(temp / f"{size}-{fmt}", fmt, count, steps, step)
    made = time.perf_counter() - made
    megabytes = sum(path.stat().st_size for path in export.files) / 1e6
    with HubProcess(temp / f"data-{size}-{fmt}", heartbeat=1.0, args=["--history-keep", str(2 * steps)]) as hub:
        first, wall = run_all(hub.data_dir, export, "--replay")
        peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        again, again_wall = run_all(hub.data_dir, export, "--replay")
    return {
        "size": size,
        "format": fmt,
        "points": count,
        "steps": steps,
        "readings": export.readings,
        "megabytes": round(megabytes, 1),
        "generated_seconds": round(made, 1),
        "committed": first["committed"],
        "revisions": first["transactions"],
        "requests": first["requests"],
        "wall_seconds": round(wall, 2),
        "readings_per_second": round(first["committed"] / wall),
        "ingest_seconds": round(float(first["seconds"]), 2),
        "peak_mb_so_far": round(peak),
        "again_committed": again["committed"],
        "again_wall_seconds": round(again_wall, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", choices=[*SIZES, "both"], default="both")
    parser.add_argument("--format", choices=[*FORMATS, "all"], default="wide")
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    parser.add_argument("--steps", type=int, help="fewer time steps than a year (a quick check of the script)")
    args = parser.parse_args()
    sizes = list(SIZES) if args.size == "both" else [args.size]
    formats = list(FORMATS) if args.format == "all" else [args.format]
    print(f"{platform.machine()} {platform.system()}, Python {platform.python_version()}, {os.cpu_count()} CPUs")
    results = []
    with tempfile.TemporaryDirectory(prefix="statehub-bench-eds-") as temp:
        for size in sizes:
            for fmt in formats:
                result = bench(size, fmt, Path(temp), args.steps)
                results.append(result)
                print(
                    f"{size:<11} {fmt:<10} {result['readings']:>9,} readings ({result['megabytes']} MB): "
                    f"--replay {result['wall_seconds']:.2f} s wall, {result['readings_per_second']:,}/s, "
                    f"{result['revisions']:,} revisions in {result['requests']:,} requests, "
                    f"ingest {result['ingest_seconds']:.2f} s, peak {result['peak_mb_so_far']} MB; "
                    f"again: {result['again_committed']} committed in {result['again_wall_seconds']:.2f} s"
                )
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
