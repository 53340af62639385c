"""What the schema costs a write: `Schema.check` per op with a 200-rule schema, in-process.

    python scripts/bench_schema.py                 # 200 rules, 200,000 checks per case
    python scripts/bench_schema.py --rules 2000 --json out.json

The schema has, per unit, one exact key, a one-wildcard pattern, another one-wildcard
pattern of the same mask, and a two-wildcard pattern (so lookups have several masks to
try), plus refuse for unknown keys.  Each case is one kind of op the hub judges: an exact
key, a pattern at either depth, an unknown key that is allowed, and the empty schema a data
dir without one has.  The figure is the best of seven timed runs, in microseconds per op;
it is to be read next to the hub's ack latency (docs/performance.md), not as a target.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from statehub.hub.schema import Schema, load_schema  # noqa: E402


def schema_text(rules: int) -> str:
    lines = ["[schema]", "format = 1", "[unknown]", '"" = "refuse"', '"scratch." = "allow"']
    for unit in range(max(rules // 4, 1)):
        lines += [f'[keys."unit{unit}.name"]', 'type = "string"', "max = 64"]
        lines += [f'[keys."unit{unit}.*.rate"]', 'type = "integer"', "min = 0", "max = 500"]
        lines += [f'[keys."unit{unit}.*.mode"]', 'type = "enum"', 'values = ["auto", "manual", "off"]']
        lines += [f'[keys."unit{unit}.*.*.do"]', 'type = "number"', "min = 0.5", "max = 12.5"]
    return "\n".join(lines) + "\n"


def cases(schema: Schema, empty: Schema, last: int) -> dict[str, Callable[[], Any]]:
    name, rate, mode, do = (
        f"unit{last}.name",
        f"unit{last}.north.rate",
        f"unit{last}.north.mode",
        f"unit{last}.a.b.do",
    )
    return {
        "exact key (string)": lambda: schema.check(name, "north", "cli"),
        "pattern unit.*.rate (integer range)": lambda: schema.check(rate, 30, "cli"),
        "pattern unit.*.mode (enum)": lambda: schema.check(mode, "auto", "cli"),
        "pattern unit.*.*.do (number range)": lambda: schema.check(do, 2.5, "cli"),
        "unknown key, allowed": lambda: schema.check("scratch.anything", [1, 2], "cli"),
        "no schema (empty)": lambda: empty.check(rate, 30, "cli"),
    }


def time_per_op(call: Callable[[], Any], count: int) -> float:
    """The best of seven runs of ``count`` calls, in microseconds per call (as timeit reports:
    on a shared machine the slower runs measure the neighbours, not the code)."""
    runs = []
    for _ in range(7):
        start = time.perf_counter()
        for _ in range(count):
            call()
        runs.append((time.perf_counter() - start) / count * 1e6)
    return min(runs)


def run(rules: int, count: int) -> dict[str, Any]:
    text = schema_text(rules)
    start = time.perf_counter()
    schema = load_schema({"statehub.schema": text})
    compile_ms = (time.perf_counter() - start) * 1000
    figures = {
        name: time_per_op(call, count) for name, call in cases(schema, Schema(), rules // 4 - 1).items()
    }
    return {
        "rules": len(schema.rules()),
        "checks_per_case": count,
        "compile_ms": compile_ms,
        "us_per_op": figures,
        "python": platform.python_version(),
        "machine": platform.machine(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rules", type=int, default=200, help="rules in the schema (default 200)")
    parser.add_argument("--count", type=int, default=200_000, help="checks per run of each case")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args()
    result = run(args.rules, args.count)
    print(f"schema of {result['rules']} rules: compiled in {result['compile_ms']:.1f} ms")
    for name, micros in result["us_per_op"].items():
        print(f"  {name:<40} {micros:6.2f} us/op")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
