"""scripts/bench_web.py runs end to end on a small load and reports every figure (docs/web.md)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import SCRIPTS, cli_env

pytest.importorskip("starlette", reason="statehub[web] is not installed")


@pytest.mark.slow
def test_the_web_bench_reports_fan_out_figures_with_nothing_missed(tmp_path: Path) -> None:
    """A small run: positive latencies, every revision delivered to every client, memory measured."""
    out = tmp_path / "bench.json"
    run = subprocess.run(
        [sys.executable, str(SCRIPTS / "bench_web.py"), "--clients", "3", "--rate", "40", "--seconds", "1.5",
         "--no-browser", "--json", str(out)],
        capture_output=True, text=True, timeout=55, cwd=tmp_path, env=cli_env(),
    )
    assert run.returncode == 0, run.stderr[-3000:]
    results = json.loads(out.read_text())
    fan_out = results["fan_out"]
    assert fan_out["writes"] > 0 and fan_out["sse_deliveries"] == 3 * fan_out["writes"]
    assert fan_out["revisions_missed"] == 0 and fan_out["streams_dropped"] == 0
    assert 0 < fan_out["sse_latency_p50_ms"] <= fan_out["sse_latency_p99_ms"]
    assert fan_out["web_rss_peak_mib"] > 10 and results["baseline"]["ack_p99_ms"] > 0
