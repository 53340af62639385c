"""The backfill flag in the Rust client: `statehub-rs watch` prints it, `react --skip-backfill` passes over it."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from statehub.hub.protocol import Op
from statehub.testing import HubProcess, wait_until

from .test_rust import changes_of, rust_bin, start_watch  # noqa: F401  (rust_bin is a fixture)


def replayed(hub: HubProcess, key: str, values: list[float]) -> None:
    """A backfilled batch, one revision per value, as `ingest-eds --replay` sends it."""
    with hub.client(source="eds") as client:
        client.batch([[Op(op="set", key=key, value={"value": v})] for v in values], backfill=True)


def test_rust_watch_prints_which_changes_are_backfill(rust_bin: Path, hub: HubProcess) -> None:  # noqa: F811
    """Every change of a replayed batch reaches statehub-rs watch with "backfill": true; a live one with false."""
    watch = start_watch(rust_bin, hub, "eds.", "--count", "5")  # the marker, 3 replayed, 1 live
    replayed(hub, "eds.stiles.FI-405/415", [1.0, 2.0, 3.0])
    with hub.client() as client:
        client.set("eds.stiles.FI-405/415", {"value": 4.0})
    out, err = watch.communicate(timeout=30)
    changes = changes_of(out)  # start_watch read the marker
    assert [(c["value"]["value"], c["backfill"]) for c in changes] == [(1.0, True), (2.0, True), (3.0, True), (4.0, False)], err
    assert [c["key"] for c in changes] == ["eds.stiles.FI-405/415"] * 4


def test_react_skip_backfill_runs_only_for_live_changes_and_says_what_it_skipped(
    rust_bin: Path,  # noqa: F811
    hub: HubProcess,
    tmp_path: Path,
) -> None:
    """With --skip-backfill, a replayed year does not run the command; the next live change does, and the
    skipped revisions are reported in one line."""
    log = tmp_path / "react.log"
    react = subprocess.Popen(
        [str(rust_bin), "--data-dir", str(hub.data_dir), "react", "eds.", "--skip-backfill", "--exec", f"cat >> {log}; echo >> {log}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert react.stderr is not None
    try:
        assert "following from revision" in react.stderr.readline()
        replayed(hub, "eds.maxson.M100FI", [float(n) for n in range(20)])
        with hub.client() as client:
            client.set("eds.maxson.M100FI", {"value": 99.0})
        assert wait_until(lambda: log.exists() and log.read_text().strip() != "", timeout=15)
        assert react.stderr.readline().strip().endswith("skipped 20 backfilled changes (revisions 1..20)")
    finally:
        react.terminate()
        react.communicate(timeout=10)
    ran = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    assert [(c["value"]["value"], c["backfill"]) for c in ran] == [(99.0, False)]
