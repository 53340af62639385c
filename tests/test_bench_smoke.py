"""The benchmark's smoke variant runs end to end and reports every section (docs/performance.md)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import SCRIPTS, cli_env

SECTIONS = ("ack", "notify", "throughput", "cli", "footprint")


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_quick_benchmark_reports_every_section_with_positive_figures(tmp_path: Path) -> None:
    """`bench_suite.py --quick` writes JSON with positive figures in every section, and a markdown table."""
    result_json, table = tmp_path / "bench.json", tmp_path / "bench.md"
    run = subprocess.run(
        [
            sys.executable,
            str(SCRIPTS / "bench_suite.py"),
            "--quick",
            "--json",
            str(result_json),
            "--markdown",
            str(table),
        ],
        capture_output=True,
        text=True,
        timeout=100,
        cwd=tmp_path,
        env=cli_env(),
    )
    assert run.returncode == 0, run.stderr[-3000:]
    results = json.loads(result_json.read_text())
    assert set(results["sections"]) == set(SECTIONS)
    for section, figures in results["sections"].items():
        assert figures, section
        for figure in figures:
            summary = figure["values"]["statehub"]
            assert summary["median"] > 0, (section, figure["id"])
            assert all(value > 0 for value in summary["runs"]), (section, figure["id"])
    ids = {figure["id"] for figures in results["sections"].values() for figure in figures}
    assert {"ack_p50_us", "ack_p99_us", "notify_1_p50_us", "cli_ratio", "rss_idle_mb", "start_keys_s"} <= ids
    text = table.read_text()
    assert "| figure | statehub | target | met |" in text
    assert "write ack p50" in text and "hub RSS idle" in text
    assert "[bench" in run.stderr  # progress lines
