"""The front ends' write paths meet the schema in the hub: sync-file saves and the EDS ingester."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from statehub.sync_file.document import END_LINE
from statehub.testing import HubProcess, wait_until

from .eds_support import LONG_SAMPLE, POINT_MAP, run_ingest
from .test_sync_file import Running, save_by_rename, seed, start_sync, values, wait_for_file  # noqa: F401

PLANT_RATE = """\
[schema]
format = 1
[keys."plant.rate"]
type = "integer"
min = 0
max = 500
"""

EDS_NUMBERS = """\
[schema]
format = 1
[keys."eds.*.*"]
type = "number"
"""


def test_a_sync_file_save_the_schema_refuses_is_reported_at_the_values_line_and_column(
    hub: HubProcess,
    start_sync: Callable[..., Running],  # noqa: F811
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A save with a value the schema refuses applies nothing, and the log names file:line:column and the rule."""
    with hub.client() as client:
        client.set("statehub.schema", PLANT_RATE)
    seed(hub, plant__rate=30, plant__name="x")
    sync = start_sync()
    text = wait_for_file(sync.path, lambda t: END_LINE in t)
    line = text.split("\n").index('"plant.rate" = 30') + 1
    save_by_rename(sync.path, text.replace('"plant.rate" = 30', '"plant.rate" = "fast"').replace('"x"', '"y"'))
    expected = (
        f"{sync.path}:{line}:16: the hub refused this save: invalid value for 'plant.rate': "
        'expected integer 0..500 (schema: plant.rate), got "fast"; nothing was applied'
    )
    assert wait_until(lambda: expected in caplog.text, 10), caplog.text
    assert values(hub) == {"plant.rate": 30, "plant.name": "x"}


def test_the_eds_ingester_is_refused_by_the_schema_naming_the_point(hub: HubProcess) -> None:
    """An ingest whose records the schema refuses (here: points must be numbers) commits nothing and says why."""
    with hub.client() as client:
        client.set("statehub.schema", EDS_NUMBERS)
    result = run_ingest(hub.data_dir, str(LONG_SAMPLE), "--points", str(POINT_MAP))
    assert result.returncode == 2, result.stdout + result.stderr
    assert "invalid value for 'eds.maxson." in result.stderr
    assert "expected number (schema: eds.*.*), got {" in result.stderr
    with hub.client() as client:
        assert client.list("eds.maxson.").items == []
