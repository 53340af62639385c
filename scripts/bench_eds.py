"""Time `ingest-eds --replay` of a year of hourly data for three points against a real hub.

    python scripts/bench_eds.py                  # 8760 hours x 3 points, a fresh hub in a temp dir
    python scripts/bench_eds.py --hours 2000 --json out.json

The export is a wide CSV (BOM, CRLF) with the wall-clock times a Chicago
historian writes: no 02:xx on the spring-forward day, 01:xx twice in the fall.
The command runs as a real process, exactly as a user runs it; the figures are
its wall time (start-up included) and the ingest's own time from its summary.
Then the same file is ingested again, which must commit nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from statehub.testing import HubProcess  # noqa: E402

POINTS = ["M100FI.UNIT0@NET0", "FI8001.UNIT0@NET0", "FI-405/415.UNIT1@NET1"]
CHICAGO = ZoneInfo("America/Chicago")


def write_year(path: Path, hours: int) -> int:
    start = datetime(2025, 1, 1, 6, tzinfo=UTC)  # local midnight, Jan 1
    lines = [
        ",," + ",".join(f"\\{p}\\" for p in POINTS),
        "Date,," + ",".join(f"VALUE(\\{p}\\)" for p in POINTS),
    ]
    for hour in range(hours):
        local = (start + timedelta(hours=hour)).astimezone(CHICAGO).replace(tzinfo=None)
        values = ",".join(f"{50 + 10 * ((hour * (i + 3)) % 17) / 17:.3f}" for i in range(len(POINTS)))
        lines.append(f"{local.month}/{local.day}/{local.year},{local.isoformat()},{values}")
    path.write_bytes(("\ufeff" + "\r\n".join(lines) + "\r\n").encode())
    return hours * len(POINTS)


def ingest(data_dir: Path, export: Path, *extra: str) -> tuple[dict[str, Any], float]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STATEHUB_")}
    command = [sys.executable, "-m", "statehub.cli", "ingest-eds", "--data-dir", str(data_dir), str(export)]
    started = time.perf_counter()
    done = subprocess.run(
        [*command, "--json", *extra],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"ingest failed ({done.returncode}):\n{done.stderr}")
    return json.loads(done.stdout), wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hours", type=int, default=8760)
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="statehub-bench-eds-") as temp:
        folder = Path(temp)
        export = folder / "year.csv"
        readings = write_year(export, args.hours)
        size = export.stat().st_size
        with HubProcess(folder / "data", heartbeat=1.0) as hub:
            first, first_wall = ingest(hub.data_dir, export, "--replay")
            again, again_wall = ingest(hub.data_dir, export, "--replay")
            latest, latest_wall = ingest(hub.data_dir, export)
            with hub.client() as client:
                history = client.history("eds.maxson.M100FI", limit=10000)
    replay: dict[str, Any] = {
        "committed": first["committed"],
        "transactions": first["transactions"],
        "ingest_seconds": first["seconds"],
        "wall_seconds": round(first_wall, 3),
        "readings_per_second": round(first["committed"] / first["seconds"]),
        "readings_per_second_wall": round(first["committed"] / first_wall),
    }
    results = {
        "machine": f"{platform.machine()} {platform.system()}, Python {platform.python_version()}, {os.cpu_count()} CPUs",
        "export": {"hours": args.hours, "points": len(POINTS), "readings": readings, "bytes": size},
        "replay": replay,
        "replay_again": {
            "committed": again["committed"],
            "skipped": again["skipped"],
            "wall_seconds": round(again_wall, 3),
        },
        "latest_again": {
            "committed": latest["committed"],
            "skipped": latest["skipped"],
            "wall_seconds": round(latest_wall, 3),
        },
        "history_versions_of_one_point": len(history),
    }
    print(results["machine"])
    print(f"export: {args.hours} hours x {len(POINTS)} points = {readings} readings, {size} bytes (wide CSV)")
    print(
        f"--replay: {replay['committed']} readings in {replay['transactions']} transactions, "
        f"{replay['ingest_seconds']:.2f} s ingest ({replay['readings_per_second']}/s), "
        f"{replay['wall_seconds']:.2f} s wall with process start ({replay['readings_per_second_wall']}/s)"
    )
    print(
        f"--replay again: {again['committed']} committed, {again['skipped']} skipped, {again_wall:.2f} s wall"
    )
    print(
        f"--latest again: {latest['committed']} committed, {latest['skipped']} skipped, {latest_wall:.2f} s wall"
    )
    print(f"history of one point: {len(history)} versions")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
