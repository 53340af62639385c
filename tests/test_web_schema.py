"""The dashboard and the schema, in a real headless Chromium: rule words, the editor's widget per type, ttl countdown, expiry."""

from __future__ import annotations

import time
from typing import Any

import pytest

pytest.importorskip("starlette", reason="statehub[web] is not installed")
pytest.importorskip("selenium", reason="selenium is not installed")

from statehub.testing import HubProcess, wait_until  # noqa: E402
from tests.schema_support import SMALL, plant_schema  # noqa: E402
from tests.test_web_browser import browser, js, open_detail, open_page, row, web  # noqa: E402, F401
from tests.web_support import WebProcess, chromium_paths, screenshot  # noqa: E402

pytestmark = pytest.mark.skipif(
    chromium_paths() is None, reason="chromium and chromium-driver are not installed (scripts/debian-packages.txt)"
)


def widget(driver: Any) -> str:
    """The kind of widget the open editor shows (text, string, choice, check or number)."""
    return str(js(driver, "return document.getElementById('edit').dataset.widget || ''"))


def shown(driver: Any, element_id: str) -> bool:
    return bool(js(driver, "const e = document.getElementById(arguments[0]); return !e.hidden && e.offsetParent !== null;", element_id))


def error_text(driver: Any) -> str:
    return str(js(driver, "const e = document.getElementById('e-error'); return e.hidden ? '' : e.textContent;"))


def save_and_wait(driver: Any, client: Any, key: str, rev: int) -> Any:
    """Click save; the key's item once the hub holds a revision newer than REV."""
    driver.find_element("id", "e-save").click()
    assert wait_until(lambda: client.get(key).item.rev > rev, 10), (error_text(driver), driver.get_log("browser"))
    return client.get(key).item


def type_into(driver: Any, element_id: str, text: str) -> None:
    element = driver.find_element("id", element_id)
    element.clear()
    element.send_keys(text)


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
    assert wait_until(lambda: widget(browser) == "number", 10)
    assert js(browser, "return document.getElementById('e-number').value") == "120"
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


def test_an_enum_key_is_edited_with_a_drop_down_of_exactly_its_values(browser: Any, hub: HubProcess, web: WebProcess) -> None:  # noqa: F811
    """An editor opened before the schema came switches to a drop-down of the rule's values; saving one stores it."""
    from selenium.webdriver.support.select import Select

    with hub.client(source="cli") as client:
        client.set("plant.mode", "off")  # written before the schema: not one of its values
        open_page(browser, web)
        open_detail(browser, "plant.mode")
        assert widget(browser) == "text"  # no schema yet
        client.set("statehub.schema", plant_schema())
        assert wait_until(lambda: widget(browser) == "choice", 10)
        assert shown(browser, "e-choice") and not shown(browser, "e-value") and not shown(browser, "e-type")
        choice = Select(browser.find_element("id", "e-choice"))
        assert [option.text for option in choice.options] == ["auto", "manual", "maintenance"]
        assert choice.all_selected_options == []  # "off" is no choice: nothing is picked for you
        browser.find_element("id", "e-save").click()
        assert wait_until(lambda: error_text(browser) != "", 10)
        assert error_text(browser) == 'choose a value for \'plant.mode\': one of "auto", "manual", "maintenance" (schema: plant.mode)'
        assert client.get("plant.mode").value == "off"
        choice.select_by_visible_text("maintenance")
        screenshot(browser, "schema-enum")
        item = save_and_wait(browser, client, "plant.mode", client.get("plant.mode").item.rev)
        assert (item.value, item.source) == ("maintenance", "web")
        assert error_text(browser) == ""
        client.set("plant.mode", "manual")
        assert wait_until(lambda: (row(browser, "plant.mode") or {}).get("value") == "manual", 10)
        open_detail(browser, "plant.mode")  # opened again: the current value is the one selected
        assert Select(browser.find_element("id", "e-choice")).first_selected_option.text == "manual"


def test_a_boolean_key_is_edited_with_a_checkbox_and_saved_as_a_json_boolean(
    browser: Any, hub: HubProcess, web: WebProcess  # noqa: F811
) -> None:
    """Unticking the checkbox stores false, ticking it stores true: JSON booleans, not the strings."""
    with hub.client(source="cli") as client:
        client.set("statehub.schema", plant_schema())
        client.set("plant.dosing.enabled", True)
        open_page(browser, web)
        open_detail(browser, "plant.dosing.enabled")
        assert wait_until(lambda: widget(browser) == "check", 10)
        assert js(browser, "return document.getElementById('e-check').checked") is True
        assert js(browser, "return document.getElementById('e-check-text').textContent") == "true"
        browser.find_element("id", "e-check").click()
        assert js(browser, "return document.getElementById('e-check-text').textContent") == "false"
        item = save_and_wait(browser, client, "plant.dosing.enabled", client.get("plant.dosing.enabled").item.rev)
        assert item.value is False
        browser.find_element("id", "e-check").click()
        item = save_and_wait(browser, client, "plant.dosing.enabled", item.rev)
        assert item.value is True


def test_a_ranged_integer_key_saves_a_number_and_refuses_what_is_out_of_range(
    browser: Any, hub: HubProcess, web: WebProcess  # noqa: F811
) -> None:
    """The number input carries the rule's range and step: 30 is stored as 30; 600 and 30.5 are refused, nothing stored."""
    with hub.client(source="cli") as client:
        client.set("statehub.schema", plant_schema())
        client.set("plant.north.rate", 120)
        open_page(browser, web)
        open_detail(browser, "plant.north.rate")
        assert wait_until(lambda: widget(browser) == "number", 10)
        limits = js(browser, "const e = document.getElementById('e-number'); return [e.min, e.max, e.step, e.value];")
        assert limits == ["0", "500", "1", "120"]
        assert js(browser, "return document.getElementById('e-range').textContent") == "0..500 m3/h"
        type_into(browser, "e-number", "30")
        item = save_and_wait(browser, client, "plant.north.rate", client.get("plant.north.rate").item.rev)
        assert item.value == 30 and isinstance(item.value, int)
        for typed in ("30.5", "600"):
            type_into(browser, "e-number", typed)
            browser.find_element("id", "e-save").click()
            assert wait_until(lambda: error_text(browser) != "", 10)
            assert error_text(browser) == (
                f"invalid value for 'plant.north.rate': expected integer 0..500 (schema: plant.*.rate), got {typed}; nothing was sent"
            )
        screenshot(browser, "schema-number")
        assert client.get("plant.north.rate").item.rev == item.rev
        # A number key takes decimals, within its own rule's range (the exact key's, not the pattern's).
        client.set("plant.north.do", 2)
        open_detail(browser, "plant.north.do")
        assert wait_until(lambda: js(browser, "return document.getElementById('e-number').step") == "any", 10)
        assert js(browser, "return document.getElementById('e-range').textContent") == "0.5..8 mg/L"
        before = client.get("plant.north.do").item.rev
        type_into(browser, "e-number", "2.5\n")  # Enter in the number input saves, as the button does
        assert wait_until(lambda: client.get("plant.north.do").item.rev > before, 10), error_text(browser)
        assert client.get("plant.north.do").value == 2.5


def test_a_string_key_keeps_numeric_looking_text_a_string_and_shows_the_hubs_refusal(
    browser: Any, hub: HubProcess, web: WebProcess  # noqa: F811
) -> None:
    """Text typed for a string key stays a string ("1.10"); a value the hub refuses shows its message, nothing stored."""
    with hub.client(source="cli") as client:
        client.set("statehub.schema", plant_schema())
        client.set("plant.version", "1.9")
        client.set("plant.name", "Maxson")
        open_page(browser, web)
        open_detail(browser, "plant.version")
        assert wait_until(lambda: widget(browser) == "string", 10)
        assert shown(browser, "e-value") and not shown(browser, "e-type")
        type_into(browser, "e-value", "1.10")
        item = save_and_wait(browser, client, "plant.version", client.get("plant.version").item.rev)
        assert item.value == "1.10"
        open_detail(browser, "plant.name")
        assert wait_until(lambda: widget(browser) == "string", 10)
        before = client.get("plant.name").item.rev
        browser.find_element("id", "e-value").clear()
        browser.find_element("id", "e-save").click()
        assert wait_until(lambda: error_text(browser) != "", 10)
        assert error_text(browser) == (  # the hub's words: the page has no check of its own for text
            "invalid value for 'plant.name': expected string with 1..64 characters (schema: plant.name), got 0 characters"
        )
        assert client.get("plant.name").item.rev == before


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
