"""The real window under Xvfb with a schema: a ttl counts down in the table; the edit dialog uses the type's widget."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from statehub.testing import HubProcess

from .schema_support import plant_schema
from .test_gui_window import (  # noqa: F401  (fixtures)
    FIRST_ROW_Y,
    ROW_HEIGHT,
    Gui,
    click,
    display,
    find_window,
    open_gui,
    screenshot,
)


def test_the_window_shows_expiry_and_edits_an_enum_with_a_drop_down(
    hub: HubProcess,
    open_gui: Callable[..., Gui],  # noqa: F811
    display: str,  # noqa: F811
    tmp_path: Path,
) -> None:
    """A heartbeat row says when it expires; editing plant.mode opens a dialog whose value is a drop-down."""
    with hub.client(source="pumpd") as client:
        client.set("statehub.schema", plant_schema())
        client.set("service.pumpd.heartbeat", time.time())
    with hub.client(source="cli") as client:
        client.set("plant.mode", "auto")
        client.set("plant.north.rate", 120)
        rev = client.set("plant.dosing.enabled", True).rev
    gui = open_gui(hub.data_dir)
    gui.wait(lambda s: s["status"] == f"connected at revision {rev}" and len(s["rows"]) == 5, 20)
    heartbeat = gui.row("service.pumpd.heartbeat")
    assert heartbeat is not None and ", expires in " in heartbeat[5]
    assert ", expires" not in (gui.row("plant.mode") or [""] * 6)[5]
    if shutil.which("xdotool") is None or shutil.which("xwd") is None:
        pytest.skip("xdotool and xwd are needed for the dialog (Debian: apt-get install xdotool x11-apps)")
    main, _width, _height = find_window(display, "statehub")
    click(display, main, 100, FIRST_ROW_Y + ROW_HEIGHT)  # plant.mode, after plant.dosing.enabled
    state = gui.wait(lambda s: s["history_title"].startswith("History of plant.mode"))
    folder = Path(os.environ.get("STATEHUB_SCREENSHOT_DIR") or tmp_path)
    assert screenshot(display, main, folder / "gui-schema.png").startswith(b"\x89PNG")
    click(display, main, *state["buttons"]["-EDIT-"])
    dialog, _width, _height = find_window(display, "Edit plant.mode")
    assert screenshot(display, dialog, folder / "gui-schema-dialog.png").startswith(b"\x89PNG")
