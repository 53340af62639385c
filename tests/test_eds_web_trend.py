"""An EDS point's trend in the dashboard: reading records chart by reading time, live readings extend it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

pytest.importorskip("starlette", reason="statehub[web] is not installed")
pytest.importorskip("selenium", reason="selenium is not installed")

from statehub.hub.protocol import Op  # noqa: E402
from statehub.testing import HubProcess, wait_until  # noqa: E402
from tests.test_web_browser import browser, js, open_detail, open_page, pytestmark, web  # noqa: E402, F401
from tests.web_support import WebProcess, screenshot  # noqa: E402

KEY = "eds.stiles.FI-405/415"
START = datetime(2025, 6, 1, 5, tzinfo=UTC)


def record(hour: int, value: float) -> dict[str, Any]:
    moment = START + timedelta(hours=hour)
    return {"value": value, "quality": "G", "status": "good", "units": "MGD", "time": moment.isoformat().replace("+00:00", "Z")}


def points(driver: Any) -> str:
    return str(js(driver, "return document.getElementById('chart').dataset.points"))


def test_a_replayed_point_charts_its_readings_and_grows_with_live_ones(
    browser: Any,  # noqa: F811
    hub: HubProcess,
    web: WebProcess,  # noqa: F811
) -> None:
    """48 replayed hourly records of eds.stiles.FI-405/415 draw 48 points; a live reading adds the 49th."""
    with hub.client(source="eds") as client:
        client.batch([[Op(op="set", key=KEY, value=record(h, 12 + h / 10))] for h in range(48)], backfill=True)
        open_page(browser, web, "?prefix=eds.")
        open_detail(browser, KEY)
        assert wait_until(lambda: points(browser) == "48", 10), points(browser)
        screenshot(browser, "eds-trend")
        client.set(KEY, record(48, 17.5))
        assert wait_until(lambda: points(browser) == "49", 10), points(browser)
