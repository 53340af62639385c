"""`ingest-eds` end to end against a real hub: keys, idempotency, replay, bad rows, exit codes."""

from __future__ import annotations

import json
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from statehub.client import Client
from statehub.eds.ingest import Options, ingest, parse_all
from statehub.eds.resolve import utc_text
from statehub.hub.errors import ConflictError
from statehub.subscription import Subscription, Synced, Update
from statehub.testing import HubProcess

from .conftest import cli_env
from .eds_support import (
    CHICAGO,
    EDS_DATA,
    LONG_SAMPLE,
    POINT_MAP,
    ingest_app,
    long_csv,
    run_ingest,
    wide_csv,
    write,
)

INFLUENT = "eds.maxson.M100FI"
EFFLUENT = "eds.maxson.FI8001"


def invoke(data_dir: Path, *args: str, env: dict[str, str] | None = None) -> Any:
    """ingest-eds in this process, through typer's CliRunner."""
    return CliRunner().invoke(ingest_app(), ["ingest-eds", "--data-dir", str(data_dir), *args], env=env)


def values(hub: HubProcess, prefix: str = "eds.") -> dict[str, Any]:
    with hub.client() as client:
        return {item.key: item.value for item in client.list(prefix).items}


def hourly_wide(path: Path, points: list[str], hours: int, start: datetime = datetime(2025, 1, 1)) -> Path:
    rows = [
        (start + timedelta(hours=h), [f"{h + p / 10:.1f}" for p in range(len(points))]) for h in range(hours)
    ]
    return write(path, wide_csv(points, rows))


def test_the_long_sample_becomes_one_key_per_point_holding_its_newest_reading(hub: HubProcess) -> None:
    """The real long export with its real map: one readable key per point, holding the newest reading."""
    result = run_ingest(hub.data_dir, str(LONG_SAMPLE), "--points", str(POINT_MAP))
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(
        "ingested 1 file (latest): 354 rows, 314 readings, 2 committed, 0 skipped"
    )
    assert "40 rows replaced by another row" in result.stdout
    assert result.stderr == "plant maxson (the default eds.plants.UNIT0-NET0): 2 points under eds.maxson.\n"
    stored = values(hub)
    assert sorted(stored) == [EFFLUENT, INFLUENT]
    assert stored[INFLUENT] == {
        "value": 61.76,
        "quality": None,
        "status": None,
        "units": None,
        "time": "2025-05-29T20:15:00Z",
        "local": "2025-05-29T15:15:00-05:00",
        "tz": "America/Chicago",
        "point": "M100FI.UNIT0@NET0",
        "sid": 2308,
        "idcs": "M100FI",
        "desc": "INFLU",
        "file": "live_data.csv",
        "line": 354,
    }


def test_ingesting_the_same_file_again_changes_nothing(hub: HubProcess) -> None:
    """A second ingest of the same file, --latest or --replay, commits nothing."""
    assert invoke(hub.data_dir, str(LONG_SAMPLE), "--points", str(POINT_MAP)).exit_code == 0
    with hub.client() as client:
        rev = client.status().rev
    again = invoke(hub.data_dir, str(LONG_SAMPLE), "--points", str(POINT_MAP), "--json")
    assert again.exit_code == 0, again.output
    summary = json.loads(again.stdout)
    assert (summary["committed"], summary["skipped"], summary["transactions"], summary["rev"]) == (
        0,
        2,
        0,
        None,
    )
    replay = json.loads(
        invoke(hub.data_dir, str(LONG_SAMPLE), "--points", str(POINT_MAP), "--replay", "--json").stdout
    )
    assert (replay["committed"], replay["skipped"]) == (0, 314)
    with hub.client() as client:
        assert client.status().rev == rev


def test_replay_writes_every_reading_into_the_key_history_in_time_order(
    hub: HubProcess, tmp_path: Path
) -> None:
    """--replay: one revision per timestamp, in time order, every one marked backfill, in one request."""
    points = ["A.UNIT0@NET0", "B.UNIT0@NET0", "C.UNIT0@NET0"]
    export = hourly_wide(tmp_path / "year.csv", points, 48)
    result = run_ingest(hub.data_dir, str(export), "--plant", "Maxson", "--replay", "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert (summary["readings"], summary["committed"], summary["transactions"]) == (144, 144, 48)
    assert (summary["requests"], summary["backfill"]) == (1, True)
    with hub.client() as client:
        history = client.history("eds.maxson.A", limit=100)
    assert [v.value["value"] for v in reversed(history)] == [float(h) for h in range(48)]
    assert len({v.rev for v in history}) == 48  # one revision per timestamp
    assert all(v.backfill for v in history)
    again = json.loads(
        run_ingest(hub.data_dir, str(export), "--plant", "Maxson", "--replay", "--json").stdout
    )
    assert (again["committed"], again["skipped"]) == (0, 144)


def test_a_subscriber_sees_one_change_per_point_per_timestamp(hub: HubProcess, tmp_path: Path) -> None:
    """A replay reaches a subscriber as one update per timestamp, each change flagged backfill."""
    export = hourly_wide(tmp_path / "w.csv", ["A", "B"], 5)
    updates: list[Update] = []
    with Subscription(hub.data_dir, prefix="eds.", timeout=2.0) as subscription:
        deadline = time.monotonic() + 10
        while not subscription.is_live and time.monotonic() < deadline:
            subscription.next_event(0.1)
        assert subscription.is_live
        assert invoke(hub.data_dir, str(export), "--plant", "P", "--replay").exit_code == 0
        while len(updates) < 5 and time.monotonic() < deadline:
            event = subscription.next_event(0.2)
            if isinstance(event, Update):
                updates.append(event)
            assert not isinstance(event, Synced) or event.first
    assert [sorted(c.key for c in u.changes) for u in updates] == [["eds.p.A", "eds.p.B"]] * 5
    assert all(c.backfill for u in updates for c in u.changes)
    assert [u.changes[0].value["time"] for u in updates] == [
        utc_text((datetime(2025, 1, 1) + timedelta(hours=h)).replace(tzinfo=CHICAGO)) for h in range(5)
    ]


def test_bad_rows_are_reported_with_file_and_line_and_good_rows_still_commit(
    hub: HubProcess, tmp_path: Path
) -> None:
    """A bad row is a warning naming file and line; the good rows commit."""
    rows = [
        ("2025-01-10T08:00:00", 2308, "1.5"),
        ("2025-01-10T08:05:00", 2308, "oops"),
        ("2025-01-10T08:10:00", 8528, "2"),
    ]
    export = write(tmp_path / "bad.csv", long_csv(rows))
    result = run_ingest(hub.data_dir, str(export), "--points", str(POINT_MAP), "--json")
    assert result.returncode == 0
    assert result.stderr == f"warning: bad row {export}:3: value 'oops' is not a number\n"
    summary = json.loads(result.stdout)
    assert (summary["committed"], summary["bad_rows"]) == (
        2,
        [{"file": str(export), "line": 3, "reason": "value 'oops' is not a number"}],
    )
    assert values(hub)[INFLUENT]["value"] == 1.5


def test_strict_commits_nothing_when_a_row_is_bad_and_exits_2(hub: HubProcess, tmp_path: Path) -> None:
    """--strict with a bad row commits nothing and exits 2, listing the row."""
    rows = [("2025-01-10T08:00:00", 2308, "1.5"), ("2025-01-10T08:05:00", 2308, "oops")]
    export = write(tmp_path / "bad.csv", long_csv(rows))
    result = run_ingest(hub.data_dir, str(export), "--points", str(POINT_MAP), "--strict")
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f"warning: bad row {export}:3: value 'oops' is not a number",
        f"error: 1 bad row and --strict: nothing was committed (first: {export}:3: value 'oops' is not a number)",
    ]
    assert values(hub) == {}


def test_without_a_running_hub_the_command_exits_5(tmp_path: Path) -> None:
    """No hub: exit 5 with one error line and no traceback."""
    result = run_ingest(tmp_path / "nohub", str(LONG_SAMPLE), "--plant", "Maxson")
    assert result.returncode == 5
    assert result.stderr.startswith("error: ") and "hub" in result.stderr
    assert "Traceback" not in result.stderr


def test_bad_input_exits_2_with_one_error_line(hub: HubProcess, tmp_path: Path) -> None:
    """Each kind of unusable input or option is exit 2 with one error line, and nothing is written."""
    cases = {
        ("--tz", "Mars/Base", str(LONG_SAMPLE), "--plant", "M"): "unknown time zone 'Mars/Base'",
        (str(LONG_SAMPLE),): "no plant for point 2308: give --plant NAME",
        (str(POINT_MAP),): "this is a point map, not readings: pass it with --points",
        ("--format", "xml", str(LONG_SAMPLE)): "unknown --format 'xml'",
        (str(tmp_path / "missing.csv"),): "cannot read the file",
        (): "give export files, or --watch DIR",
    }
    for args, message in cases.items():
        result = invoke(hub.data_dir, *args)
        assert result.exit_code == 2, (args, result.output)
        error_lines = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
        assert len(error_lines) == 1 and message in error_lines[0], (args, result.stderr)
    assert values(hub) == {}


def test_the_time_zone_comes_from_the_waterfall(hub: HubProcess, tmp_path: Path) -> None:
    """--tz, else eds.timezone from the environment, the hub or the defaults, places naive times."""
    export = write(tmp_path / "t.csv", "2025-07-01T12:00:00,5\n")
    with hub.client() as client:
        client.set("eds.timezone", "America/New_York")
    assert invoke(hub.data_dir, str(export), "--point", "P", "--plant", "A").exit_code == 0
    assert values(hub, "eds.a.")["eds.a.P"]["local"] == "2025-07-01T12:00:00-04:00"
    env = {**cli_env(), "STATEHUB_EDS__TIMEZONE": "UTC"}
    assert invoke(hub.data_dir, str(export), "--point", "P", "--plant", "B", env=env).exit_code == 0
    assert values(hub, "eds.b.")["eds.b.P"]["time"] == "2025-07-01T12:00:00Z"
    assert (
        invoke(hub.data_dir, str(export), "--point", "P", "--plant", "C", "--tz", "Europe/Paris").exit_code
        == 0
    )
    assert values(hub, "eds.c.")["eds.c.P"]["local"] == "2025-07-01T12:00:00+02:00"


def test_two_column_and_trend_json_resolve_names_and_units_through_the_points_export(hub: HubProcess) -> None:
    """Names given on the command line and SID/IESS in trend JSON find units and descriptions in the map."""
    export_map = str(EDS_DATA / "points_export.txt")
    two = invoke(hub.data_dir, str(EDS_DATA / "two_column.csv"), "--point", "M310LI", "--points", export_map)
    assert two.exit_code == 0, two.output
    trend = invoke(hub.data_dir, str(EDS_DATA / "tabular_trend.json"), "--points", export_map, "--replay")
    assert trend.exit_code == 0, trend.output
    stored = values(hub)
    well = stored["eds.maxson.M310LI"]
    assert (well["units"], well["desc"], well["quality"], well["status"], well["value"]) == (
        "FT",
        "WET WELL 'A' LEVEL",
        "U",
        "uncertain",
        3.4,
    )
    influent = stored[INFLUENT]
    assert (influent["value"], influent["quality"], influent["status"], influent["units"]) == (None, "B", "bad", "MGD")


def test_more_points_than_one_transaction_holds_are_split_at_1000_ops(
    hub: HubProcess, tmp_path: Path
) -> None:
    """1200 points of one instant are two writes of at most 1000 ops."""
    export = hourly_wide(tmp_path / "many.csv", [f"P{i}" for i in range(1200)], 1)
    summary = json.loads(invoke(hub.data_dir, str(export), "--plant", "X", "--json").stdout)
    assert (summary["committed"], summary["transactions"]) == (1200, 2)


def test_statehub_global_options_reach_the_command(hub: HubProcess) -> None:
    """Wired into statehub's own app, --data-dir before the command name is honoured."""
    result = CliRunner().invoke(
        ingest_app(),
        ["--data-dir", str(hub.data_dir), "ingest-eds", str(LONG_SAMPLE), "--points", str(POINT_MAP)],
        env=cli_env(),
    )
    assert result.exit_code == 0, result.output
    assert sorted(values(hub)) == [EFFLUENT, INFLUENT]


class RacingClient(Client):
    """A real client whose first write loses a race: another writer commits a newer reading first."""

    def __init__(self, *args: Any, rival: dict[str, Any], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.rival = rival
        self.conflicts = 0

    def batch(self, writes: Any, **kwargs: Any) -> Any:
        if self.rival:
            with Client(self.data_dir, timeout=2.0) as other:
                other.set(*self.rival.popitem())
        try:
            return super().batch(writes, **kwargs)
        except ConflictError:
            self.conflicts += 1
            raise


def test_a_concurrent_writer_wins_and_the_ingest_replans_without_going_back_in_time(
    hub: HubProcess, tmp_path: Path
) -> None:
    """A writer that commits a newer reading mid-ingest makes the batch conflict; the re-plan skips the rest."""
    export = hourly_wide(tmp_path / "w.csv", ["A"], 3)
    newer = {"value": 99.0, "quality": "G", "time": "2030-01-01T00:00:00Z"}
    options = Options(zone=CHICAGO, plant="P", mode="replay")
    racing = RacingClient(hub.data_dir, timeout=2.0, fallback=False, rival={"eds.p.A": newer})
    with racing:
        summary = ingest(racing, parse_all([export], options), options)
    assert racing.conflicts == 1
    assert (summary.committed, summary.skipped) == (0, 3)
    assert values(hub)["eds.p.A"] == newer


@pytest.mark.parametrize("flag", ["--latest", "--replay"])
def test_the_summary_counts_add_up(hub: HubProcess, flag: str) -> None:
    """rows = readings + replaced + bad rows; readings = committed + skipped + not_latest."""
    summary = json.loads(
        invoke(hub.data_dir, str(LONG_SAMPLE), "--points", str(POINT_MAP), flag, "--json").stdout
    )
    assert summary["readings"] == summary["committed"] + summary["skipped"] + summary["not_latest"]
    assert summary["rows"] == summary["readings"] + summary["replaced"] + len(summary["bad_rows"])


def test_progress_is_drawn_only_for_long_ingests(capsys: pytest.CaptureFixture[str]) -> None:
    """Readings, rate and ETA go to stderr for long ingests only, and never when disabled (a pipe, --json)."""
    from statehub.eds.progress import MIN_READINGS, IngestProgress

    with IngestProgress(enabled=True) as small:
        small(10, 10)
    assert capsys.readouterr().err == ""
    with IngestProgress(enabled=True) as large:
        for _ in range(3):
            large(1000, MIN_READINGS + 1000)
    drawn = capsys.readouterr().err
    assert "committing" in drawn and "3,000/3,000 readings" in drawn
    with IngestProgress(enabled=False) as off:
        off.reading(1, 10**9)
        off.rows(10**6)
        off(5000, 5000)
    assert capsys.readouterr().err == ""
