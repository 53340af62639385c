"""`ingest-eds --watch DIR`: each dropped file ingested exactly once, done/ and failed/, restarts."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from statehub.client import Client
from statehub.eds.ingest import Options, Summary, ingest, parse_all
from statehub.eds.point_map import read_point_map
from statehub.eds.watch import STATE_FILE, Outcome, Watcher, WatchLocked
from statehub.testing import HubProcess, wait_until

from .conftest import cli_env
from .eds_support import CHICAGO, ENTRY, LONG_SAMPLE, POINT_MAP, long_csv, write


@pytest.fixture
def drop(tmp_path: Path) -> Path:
    folder = tmp_path / "drop"
    folder.mkdir()
    return folder


@pytest.fixture
def client(hub: HubProcess) -> Iterator[Client]:
    with Client(hub.data_dir, timeout=2.0, source="eds", fallback=False) as c:
        yield c


def ingester(client: Client, *, strict: bool = False) -> object:
    """The real per-file ingest the command runs: parse, then commit against the hub."""
    options = Options(zone=CHICAGO, point_map=read_point_map(POINT_MAP), strict=strict)

    def ingest_file(path: Path) -> Summary:
        return ingest(client, parse_all([path], options), options)

    return ingest_file


def settle(watcher: Watcher, polls: int = 2) -> list[Outcome]:
    """A file is taken once it looks the same on two polls."""
    outcomes: list[Outcome] = []
    for _ in range(polls):
        outcomes += watcher.poll()
    return outcomes


def hub_rev(client: Client) -> int:
    return client.status().rev


def test_a_dropped_export_is_ingested_and_moved_to_done(client: Client, drop: Path) -> None:
    shutil.copy(LONG_SAMPLE, drop / "live.csv")
    watcher = Watcher(drop, ingester(client))  # type: ignore[arg-type]
    assert watcher.poll() == []  # first sighting: not yet known to be complete
    [outcome] = watcher.poll()
    assert (outcome.status, outcome.moved_to, outcome.summary and outcome.summary.committed) == (
        "done",
        drop / "done" / "live.csv",
        2,
    )
    assert not (drop / "live.csv").exists()
    assert len(json.loads((drop / STATE_FILE).read_text())["ingested"]) == 1
    assert len(client.list("eds.maxson.").items) == 2


def test_an_unreadable_export_goes_to_failed_with_a_reason_file(client: Client, drop: Path) -> None:
    write(drop / "notes.csv", "hello,world,again\n")
    [outcome] = settle(Watcher(drop, ingester(client)))  # type: ignore[arg-type]
    assert (outcome.status, outcome.moved_to) == ("failed", drop / "failed" / "notes.csv")
    reason = (drop / "failed" / "notes.csv.reason.txt").read_text()
    assert f"{drop / 'notes.csv'}:1: cannot tell the format from 'hello,world,again'" in reason
    assert not (drop / STATE_FILE).exists()  # failures are not remembered: fixed files may be dropped again


def test_bad_rows_go_to_done_with_a_report_and_under_strict_to_failed(client: Client, drop: Path) -> None:
    rows = [("2025-01-10T08:00:00", 2308, "1.5"), ("2025-01-10T08:05:00", 2308, "oops")]
    write(drop / "a.csv", long_csv(rows))
    [done] = settle(Watcher(drop, ingester(client)))  # type: ignore[arg-type]
    assert done.status == "done"
    assert "a.csv:3: value 'oops' is not a number" in (drop / "done" / "a.csv.bad-rows.txt").read_text()
    write(drop / "b.csv", long_csv([*rows, ("2025-01-10T08:10:00", 2308, "1.6")]))  # new content
    [failed] = settle(Watcher(drop, ingester(client, strict=True)))  # type: ignore[arg-type]
    assert failed.status == "failed"
    reason = (drop / "failed" / "b.csv.reason.txt").read_text()
    assert "1 bad row and --strict: nothing was committed" in reason and "b.csv:3: value 'oops'" in reason


def test_a_restart_never_ingests_the_same_file_twice(client: Client, drop: Path) -> None:
    shutil.copy(LONG_SAMPLE, drop / "live.csv")
    settle(Watcher(drop, ingester(client)))  # type: ignore[arg-type]
    rev = hub_rev(client)
    # As if the watcher died after recording the file but before moving it, or the file came again:
    shutil.copy(LONG_SAMPLE, drop / "live.csv")
    [outcome] = settle(Watcher(drop, ingester(client)))  # type: ignore[arg-type]  # a new process
    assert (outcome.status, outcome.moved_to) == ("already", drop / "done" / "live.csv.1")
    assert hub_rev(client) == rev


def test_a_file_ingested_before_its_record_was_written_commits_nothing_again(
    client: Client, drop: Path
) -> None:
    """A crash between the ingest and the state record: the re-ingest changes nothing."""
    shutil.copy(LONG_SAMPLE, drop / "live.csv")
    ingester(client)(drop / "live.csv")  # type: ignore[operator]
    rev = hub_rev(client)
    [outcome] = settle(Watcher(drop, ingester(client)))  # type: ignore[arg-type]
    assert outcome.status == "done" and outcome.summary is not None and outcome.summary.committed == 0
    assert hub_rev(client) == rev


def test_when_the_hub_is_down_files_wait_in_the_folder(tmp_path: Path, drop: Path) -> None:
    hub = HubProcess(tmp_path / "data")
    shutil.copy(LONG_SAMPLE, drop / "live.csv")
    with Client(hub.data_dir, timeout=0.3, fallback=False) as client:
        watcher = Watcher(drop, ingester(client))  # type: ignore[arg-type]
        assert settle(watcher) == []
        assert (drop / "live.csv").exists() and not (drop / "failed").exists()
        with hub:
            [outcome] = settle(watcher)
            assert outcome.status == "done"


def test_partial_hidden_and_growing_files_are_not_taken(client: Client, drop: Path) -> None:
    write(drop / "export.csv.part", "timestamp,sid")
    write(drop / ".hidden.csv", "timestamp,sid")
    growing = drop / "growing.csv"
    write(growing, long_csv([("2025-01-10T08:00:00", 2308, "1")]))
    watcher = Watcher(drop, ingester(client))  # type: ignore[arg-type]
    assert watcher.poll() == []
    with open(growing, "a") as handle:
        handle.write("2025-01-10T08:05:00,2308,P,S,1,2\n")
    assert watcher.poll() == []  # changed since the last look
    assert [o.name for o in watcher.poll()] == ["growing.csv"]
    assert sorted(p.name for p in drop.iterdir() if p.is_file()) == [
        ".hidden.csv",
        STATE_FILE,
        "export.csv.part",
    ]


def test_a_damaged_state_file_is_kept_aside_and_the_watch_goes_on(client: Client, drop: Path) -> None:
    write(drop / STATE_FILE, "{not json")
    shutil.copy(LONG_SAMPLE, drop / "live.csv")
    [outcome] = settle(Watcher(drop, ingester(client)))  # type: ignore[arg-type]
    assert outcome.status == "done"
    assert (drop / (STATE_FILE + ".damaged")).read_text() == "{not json"


def test_only_one_watcher_serves_a_folder(client: Client, drop: Path) -> None:
    write(drop / "proof.csv", "garbage\n")  # its outcome proves the first watcher runs, lock held
    running = threading.Event()
    stop = threading.Event()
    watcher = Watcher(drop, ingester(client))  # type: ignore[arg-type]
    first = threading.Thread(target=watcher.run, args=(stop, 0.02, 500, lambda _outcome: running.set()))
    first.start()
    try:
        assert running.wait(10)
        with pytest.raises(WatchLocked, match="already watching"):
            Watcher(drop, ingester(client)).run(threading.Event(), 0.01, max_polls=1)  # type: ignore[arg-type]
    finally:
        stop.set()
        first.join(10)
    assert not first.is_alive()


def watch_process(data_dir: Path, drop: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", ENTRY, "ingest-eds", "--data-dir", str(data_dir), "--watch", str(drop)]
        + ["--interval", "0.05", "--json", "--points", str(POINT_MAP)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=cli_env(),
    )


def test_the_watch_command_survives_a_restart_and_stops_on_sigterm(hub: HubProcess, drop: Path) -> None:
    process = watch_process(hub.data_dir, drop)
    try:
        shutil.copy(LONG_SAMPLE, drop / "one.csv")
        write(drop / "two.csv", "garbage\n")
        assert wait_until(
            lambda: (drop / "done" / "one.csv").exists() and (drop / "failed" / "two.csv").exists(), 20
        )
    finally:
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=20)
    assert process.returncode == 0, err
    outcomes = {o["file"]: o for o in map(json.loads, out.splitlines())}
    assert (outcomes["one.csv"]["status"], outcomes["one.csv"]["summary"]["committed"]) == ("done", 2)
    assert (
        outcomes["two.csv"]["status"] == "failed"
        and "cannot tell the format" in outcomes["two.csv"]["reason"]
    )
    assert "two.csv failed" not in err  # each outcome is said once, by the command, not again by a log line

    restarted = watch_process(hub.data_dir, drop)
    try:
        shutil.copy(LONG_SAMPLE, drop / "one-again.csv")
        assert wait_until(lambda: (drop / "done" / "one-again.csv").exists(), 20)
    finally:
        restarted.send_signal(signal.SIGTERM)
        out, err = restarted.communicate(timeout=20)
    assert restarted.returncode == 0, err
    assert [json.loads(line)["status"] for line in out.splitlines()] == ["already"]
    assert "ingested before" not in err
