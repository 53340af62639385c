"""The dashboard and the schema, in a real headless Chromium: rule words, editor types, ttl countdown, expiry."""

from __future__ import annotations

import time
from typing import Any

import pytest

pytest.importorskip("starlette", reason="statehub[web] is not installed")
pytest.importorskip("selenium", reason="selenium is not installed")

from statehub.testing import HubProcess, wait_until  # noqa: E402
from tests.schema_support import SMALL, plant_schema  # noqa: E402
from tests.test_web_browser import browser, js, open_page, row, web  # noqa: E402, F401
from tests.web_support import WebProcess, chromium_paths, screenshot  # noqa: E402

pytestmark = pytest.mark.skipif(
    chromium_paths() is None, reason="chromium and chromium-driver are not installed (scripts/debian-packages.txt)"
)


def row_classes(driver: Any, key: str) -> str:
    return str(js(driver, "const tr = document.querySelector(`#keys tr[data-key=\"${arguments[0]}\"]`); return tr ? tr.className : '';", key))


def test_the_page_shows_the_rule_picks_the_type_and_counts_down_a_ttl(
    browser: Any, hub: HubProcess, web: WebProcess  # noqa: F811
) -> None:
    """A key with a schema ttl says when it expires; selecting a key shows its rule and edits it as its type."""
    with hub.client(source="pumpd") as client:
        client.set("statehub.schema", plant_schema())
        client.set("service.pumpd.heartbeat", time.time())
    with hub.client(source="eds") as client:
        client.set("eds.maxson.FI101", {"value": 61.8, "units": "MGD", "quality": "G"})
    with hub.client(source="cli") as client:
        client.set("plant.north.rate", 120)
        client.set("plant.mode", "auto")
        client.set("plant.version", "1.10")
    open_page(browser, web)
    assert wait_until(lambda: "expires in" in ((row(browser, "service.pumpd.heartbeat") or {}).get("when", "")), 10)
    assert "expires in" in (row(browser, "eds.maxson.FI101") or {}).get("when", "")
    assert "expires" not in (row(browser, "plant.mode") or {}).get("when", "")
    browser.find_element("css selector", '#keys tr[data-key="plant.north.rate"]').click()
    assert wait_until(lambda: js(browser, "return document.getElementById('e-rule').textContent") != "", 10)
    assert js(browser, "return document.getElementById('e-rule').textContent") == (
        "schema: integer 0..500, m3/h (Flow setpoint of one train.)"
    )
    assert js(browser, "return document.getElementById('e-type').value") == "number"
    screenshot(browser, "schema")


def test_a_key_the_hub_expires_is_shown_expired_then_removed(browser: Any, hub: HubProcess, web: WebProcess) -> None:  # noqa: F811
    """The hub's unset by ttl marks the row expired (struck through) for a few seconds, then it goes."""
    with hub.client(source="pumpd") as client:
        client.set("statehub.schema", SMALL)  # service.*.heartbeat lives 1.5 s
        open_page(browser, web)
        client.set("service.pumpd.heartbeat", time.time())
    assert wait_until(lambda: "expired" in row_classes(browser, "service.pumpd.heartbeat"), 20)
    assert "not written within its ttl" in (row(browser, "service.pumpd.heartbeat") or {}).get("when", "")
    assert wait_until(lambda: row(browser, "service.pumpd.heartbeat") is None, 20)


def test_a_key_set_with_its_own_ttl_counts_down_without_a_schema_rule(
    browser: Any, hub: HubProcess, web: WebProcess  # noqa: F811
) -> None:
    """set --ttl 30 with no schema: the row counts down from the write's ttl, loaded with the page or arriving live."""
    with hub.client(source="pumpd") as client:
        client.set("svc.pumpd.alive", True, ttl=30)
        client.set("svc.pumpd.mode", "auto")
        open_page(browser, web)
        assert wait_until(lambda: row(browser, "svc.pumpd.mode") is not None, 10)
        client.set("svc.other.alive", True, ttl=120)
    assert wait_until(lambda: "expires in" in ((row(browser, "svc.other.alive") or {}).get("when", "")), 10)
    loaded = (row(browser, "svc.pumpd.alive") or {}).get("when", "")
    assert "expires in" in loaded and int(loaded.rsplit("expires in ", 1)[1].split()[0]) <= 30
    assert "expires" not in (row(browser, "svc.pumpd.mode") or {}).get("when", "")
    assert "expiring" not in row_classes(browser, "svc.other.alive")  # far from its last quarter
    screenshot(browser, "ttl-own")
