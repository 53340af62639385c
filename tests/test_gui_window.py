"""The real window under Xvfb: a real hub, the GUI as a process, changes from the CLI, clicks from xdotool.

The GUI writes what it shows to a file (the hidden ``--dump-state`` option)
after each refresh, with the text of an open restore dialog; the tests read
that, click with xdotool (when installed),
and take a screenshot with xwd.  Set STATEHUB_SCREENSHOT to a path to keep the
screenshot (docs/gui.png is made that way).
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import sys
import time
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from statehub.testing import HubProcess, wait_until

from .conftest import cli_env, run_cli

pytest.importorskip("tkinter", reason="Tk is missing for this Python (Debian: apt-get install python3-tk)")
pytest.importorskip("FreeSimpleGUI", reason="FreeSimpleGUI is not installed (pip install FreeSimpleGUI)")

GUI = "from statehub.cli import main; main()"
FIRST_ROW_Y = 65  # window-relative y of the table's first row (Tk's default font under Xvfb)
PICKER_FIRST_ROW_Y = 44  # window-relative y of the snapshot picker's first line
ROW_HEIGHT = 17
# The positions above hold for the fonts they were measured with; pin them (see the file).
FONTS = Path(__file__).parent / "data" / "gui-fonts.conf"


# --- the display -------------------------------------------------------------------------------


@pytest.fixture
def display() -> Iterator[str]:
    """A fresh Xvfb on a free display number, stopped after the test."""
    if shutil.which("Xvfb") is None:
        pytest.skip("Xvfb is not installed (Debian: apt-get install xvfb)")
    for number in range(140, 200):
        if Path(f"/tmp/.X{number}-lock").exists() or Path(f"/tmp/.X11-unix/X{number}").exists():
            continue
        server = subprocess.Popen(
            ["Xvfb", f":{number}", "-screen", "0", "1280x800x24", "-nolisten", "tcp"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        socket = Path(f"/tmp/.X11-unix/X{number}")
        ready = wait_until(lambda s=server, p=socket: p.exists() or s.poll() is not None, 10)
        if ready and server.poll() is None:
            try:
                yield f":{number}"
            finally:
                server.terminate()
                server.wait(10)
            return
        server.kill()
        server.wait(10)
    pytest.skip("no free X display number between :140 and :199")


class Gui:
    """``statehub gui`` as a process on ``display``, dumping its visible state to a file."""

    def __init__(self, data_dir: Path, display: str, dump: Path, timeout: float = 0.5, script: str = GUI) -> None:
        self.display = display
        self.dump = dump
        env = {**cli_env(), "DISPLAY": display, "FONTCONFIG_FILE": str(FONTS)}
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-c",
                script,
                "gui",
                "--data-dir",
                str(data_dir),
                "--timeout",
                str(timeout),
                "--dump-state",
                str(dump),
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )

    def state(self) -> dict[str, Any]:
        try:
            data: dict[str, Any] = json.loads(self.dump.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return {}
        return data

    def wait(self, predicate: Callable[[dict[str, Any]], bool], timeout: float = 10.0) -> dict[str, Any]:
        ok = wait_until(lambda: bool(self.state()) and predicate(self.state()), timeout, 0.02)
        assert ok, f"the GUI never showed that; it shows {json.dumps(self.state(), indent=1)}"
        return self.state()

    def row(self, key: str) -> list[str] | None:
        return next((row for row in self.state().get("rows", []) if row[0] == key), None)

    def close(self) -> str:
        self.process.terminate()
        try:
            _out, err = self.process.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            _out, err = self.process.communicate(timeout=10)
        return err or ""


@pytest.fixture
def open_gui(display: str, tmp_path: Path) -> Iterator[Callable[..., Gui]]:
    opened: list[Gui] = []

    def start(data_dir: Path, **options: Any) -> Gui:
        opened.append(Gui(data_dir, display, tmp_path / "gui-state.json", **options))
        return opened[-1]

    yield start
    for gui in opened:
        gui.close()


# --- X helpers ------------------------------------------------------------------------------------


def xdotool(display: str, *args: str) -> str:
    result = subprocess.run(
        ["xdotool", *args], env={**os.environ, "DISPLAY": display}, capture_output=True, text=True, timeout=10
    )
    return result.stdout.strip()


def find_window(display: str, title: str, timeout: float = 5.0) -> tuple[str, int, int]:
    """The id, width and height of the window whose title starts with ``title``."""
    found: list[str] = []
    assert wait_until(
        lambda: bool(found.extend(xdotool(display, "search", "--name", f"^{title}").split()) or found),
        timeout,
    )
    window = found[0]
    geometry = xdotool(display, "getwindowgeometry", window).split("Geometry:")[1].strip()
    width, height = (int(part) for part in geometry.split("x"))
    return window, width, height


def click(display: str, window: str, x: int, y: int) -> None:
    xdotool(display, "mousemove", "--window", window, str(x), str(y), "click", "1")


def screenshot(display: str, window: str, target: Path) -> bytes:
    """The window as a PNG (xwd captures it; we convert it ourselves, without ImageMagick)."""
    raw = subprocess.run(
        ["xwd", "-silent", "-id", window],
        env={**os.environ, "DISPLAY": display},
        capture_output=True,
        timeout=20,
        check=True,
    ).stdout
    png, colours = xwd_to_png(raw)
    assert colours > 8, "the screenshot is blank"
    target.write_bytes(png)
    return png


def xwd_to_png(data: bytes) -> tuple[bytes, int]:
    """Convert a 24/32-bit ZPixmap XWD dump (what xwd writes on Xvfb) to PNG; also count colours."""
    fields = struct.unpack(">25I", data[:100])  # the XWD header: 25 big-endian 32-bit fields
    header_size, version, pixmap_format, _depth, width, height = fields[:6]
    byte_order, bits_per_pixel, bytes_per_line = fields[7], fields[11], fields[12]
    masks, ncolors = fields[14:17], fields[19]
    assert (version, pixmap_format, bits_per_pixel) == (7, 2, 32), "expected a 32-bit ZPixmap dump"
    shifts = [(mask & -mask).bit_length() - 1 for mask in masks]
    start = header_size + ncolors * 12
    order = "<" if byte_order == 0 else ">"
    rows, seen = [], set()
    for y in range(height):
        line = data[start + y * bytes_per_line : start + y * bytes_per_line + width * 4]
        row = bytearray(b"\x00")  # PNG filter type 0 for this row
        for pixel in struct.unpack(f"{order}{width}I", line):
            rgb = bytes((pixel & mask) >> shift for mask, shift in zip(masks, shifts, strict=True))
            row += rgb
            if len(seen) < 100:
                seen.add(rgb)
        rows.append(bytes(row))

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    png = (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"".join(rows), 9))
        + chunk(b"IEND", b"")
    )
    return png, len(seen)


def seed(hub: HubProcess) -> int:
    with hub.client(source="cli", user="ana") as client:
        client.set("plant.rate", 30)
        client.set("plant.setpoint", 72.5)
        client.set("plant.mode", "auto")
        client.set("pump.1.speed", 1450)
        client.set("pump.1.enabled", True)
        client.set("pump.1.limits", {"min": 300, "max": 1800})
        client.set("service.db.password", "hunter2")
        return int(client.set("site.name", "Maxson North").rev)


# --- the tests ------------------------------------------------------------------------------------


def test_a_change_from_the_cli_appears_and_an_edit_with_a_conflict_asks_the_operator(
    hub: HubProcess, open_gui: Callable[..., Gui], display: str, tmp_path: Path
) -> None:
    """Live rows, masked secrets, history of the selected row, compare-and-set and the conflict dialog."""
    rev = seed(hub)
    gui = open_gui(hub.data_dir)
    state = gui.wait(lambda s: s["status"] == f"connected at revision {rev}" and len(s["rows"]) == 8, 20)
    assert state["edits_enabled"] and gui.row("service.db.password")[1:3] == ["•••••• (secret)", "string"]

    started = time.monotonic()
    assert run_cli(hub.data_dir, "set", "plant.rate", "31").returncode == 0
    gui.wait(lambda s: gui.row("plant.rate")[1:4] == ["31", "int", str(rev + 1)], 5)
    print(f"a CLI change appeared in the GUI {time.monotonic() - started:.2f} s after the command started")

    if shutil.which("xdotool") is None:
        pytest.skip("xdotool is not installed: the clicks are not tested (Debian: apt-get install xdotool)")
    main, _width, _height = find_window(display, "statehub")
    click(display, main, 100, FIRST_ROW_Y)  # plant.mode is first
    gui.wait(lambda s: s["history_title"].startswith("History of plant.mode") and len(s["history"]) == 1)
    click(display, main, 100, FIRST_ROW_Y + 17)  # plant.rate, the second row
    state = gui.wait(
        lambda s: s["history_title"].startswith("History of plant.rate") and len(s["history"]) == 2
    )
    assert [row[2:] for row in state["history"]] == [["cli/root", "30 → 31"], ["cli/ana", "(new) → 30"]]

    click(display, main, *state["buttons"]["-EDIT-"])
    dialog, width, height = find_window(display, "Edit plant.rate")
    assert run_cli(hub.data_dir, "set", "plant.rate", "35").returncode == 0  # someone else, meanwhile
    gui.wait(lambda s: gui.row("plant.rate")[1] == "35")  # the table keeps following while the dialog is open
    click(display, dialog, width // 2, 100)
    xdotool(display, "key", "End", "BackSpace", "BackSpace", "BackSpace")
    xdotool(display, "type", "40")
    click(display, dialog, 47, height - 24)  # Save
    conflict, _width, height = find_window(display, "Changed meanwhile")
    click(display, conflict, 60, height - 24)  # Keep mine
    state = gui.wait(
        lambda s: gui.row("plant.rate")[1] == "40" and s["notice"].startswith("saved plant.rate")
    )
    with hub.client() as client:
        latest = client.history("plant.rate", 1)[0]
    assert (latest.value, latest.source, latest.prev_value) == (40, "gui", 35)

    target = Path(os.environ.get("STATEHUB_SCREENSHOT") or tmp_path / "gui.png")
    if shutil.which("xwd") is None:
        pytest.skip("xwd is not installed: no screenshot (Debian: apt-get install x11-apps)")
    png = screenshot(display, main, target)
    assert png.startswith(b"\x89PNG")


def test_the_first_sync_fills_the_table_even_when_it_beats_the_window_setup(
    hub: HubProcess, open_gui: Callable[..., Gui]
) -> None:
    """The subscription may deliver its first sync before run() goes on: the table must not come up empty."""
    rev = seed(hub)
    slow_start = (  # widen the gap between the thread starting and run() going on
        "import time; from statehub.subscription import SubscriptionThread; start = SubscriptionThread.start\n"
        "SubscriptionThread.start = lambda self: (start(self), time.sleep(1.0))[0]\n" + GUI
    )
    gui = open_gui(hub.data_dir, script=slow_start)
    state = gui.wait(lambda s: s["status"] == f"connected at revision {rev}", 20)
    assert len(state["rows"]) == 8, state


def test_hub_down_shows_the_mirror_read_only_and_recovers_by_itself(
    hub: HubProcess, open_gui: Callable[..., Gui]
) -> None:
    """The status line tells the truth; edits are off with the reason; the window comes back alone."""
    rev = seed(hub)
    gui = open_gui(hub.data_dir)
    gui.wait(lambda s: s["status"] == f"connected at revision {rev}", 20)
    hub.kill()
    state = gui.wait(
        lambda s: s["status"].startswith(f"hub down, showing the mirror from revision {rev}, "), 10
    )
    assert state["status"].endswith(" s old") and not state["edits_enabled"]
    assert state["edit_reason"] == "edits are off while the hub is down: the table is the mirror, read-only"
    assert len(state["rows"]) == 8
    hub.start()
    state = gui.wait(lambda s: s["status"] == f"connected at revision {rev}", 15)
    assert state["edits_enabled"] and state["notice"].startswith(f"reconnected at revision {rev}")
    assert run_cli(hub.data_dir, "set", "plant.rate", "99").returncode == 0
    gui.wait(lambda s: gui.row("plant.rate")[1] == "99")


# --- restoring a snapshot -----------------------------------------------------------------------

SNAPSHOT = "before-change"
RESTORE_LINES = [  # sets in key order, then unsets: what `statehub rollback --dry-run` prints, secrets masked
    'plant.mode: (absent) -> "auto"',
    "plant.rate: 45 -> 30",
    "service.db.password: •••••• (secret) -> •••••• (secret)",
    "plant.flow: 12.5 -> (unset)",
]


def snapshot_then_change(hub: HubProcess) -> tuple[dict[str, Any], str, int]:
    """The seed saved as snapshot SNAPSHOT, then one key set, one added, one deleted, a secret set;
    then a newer snapshot (preselected in the picker, so the test must pick SNAPSHOT).

    Returns the snapshot's values, the newer snapshot's name and the revision now."""
    seed(hub)
    named = run_cli(hub.data_dir, "snapshot", "create", "--name", SNAPSHOT)
    assert named.returncode == 0, named.stderr
    values: dict[str, Any] = json.loads((hub.data_dir / "snapshots" / f"{SNAPSHOT}.json").read_text())["values"]
    with hub.client(source="cli", user="bo") as client:
        client.set("plant.rate", 45)
        client.set("plant.flow", 12.5)
        client.unset("plant.mode")
        rev = int(client.set("service.db.password", "correct horse").rev)
    newer = run_cli(hub.data_dir, "snapshot", "create", "--json")
    assert newer.returncode == 0, newer.stderr
    return values, str(json.loads(newer.stdout)["name"]), rev


def dialog_titled(title: str) -> Callable[[dict[str, Any]], bool]:
    return lambda s: str((s.get("dialog") or {}).get("title", "")).startswith(title)


def open_restore_changes(gui: Gui, display: str, newer: str) -> tuple[str, int, int, dict[str, Any]]:
    """Click Restore snapshot…, pick SNAPSHOT (the second line), Show changes…: the changes dialog."""
    main, _width, _height = find_window(display, "statehub")
    click(display, main, *gui.state()["buttons"]["-RESTORE-"])
    state = gui.wait(dialog_titled("Restore snapshot"))
    assert [line.split()[0] for line in state["dialog"]["lines"]] == [newer, SNAPSHOT]  # newest first
    picker, _width, height = find_window(display, "Restore snapshot")
    click(display, picker, 60, PICKER_FIRST_ROW_Y + ROW_HEIGHT)  # SNAPSHOT
    click(display, picker, 87, height - 24)  # Show changes…
    state = gui.wait(dialog_titled(f"Restore snapshot {SNAPSHOT}"))
    dialog, width, height = find_window(display, f"Restore snapshot {SNAPSHOT}")
    return dialog, width, height, state["dialog"]


def test_restoring_a_snapshot_shows_the_changes_then_applies_them_as_one_rollback(
    hub: HubProcess, open_gui: Callable[..., Gui], display: str, tmp_path: Path
) -> None:
    """Pick a snapshot, see exactly old -> new (secrets masked), Restore: one txn with source rollback."""
    if shutil.which("xdotool") is None:
        pytest.skip("xdotool is not installed: the dialogs cannot be driven (Debian: apt-get install xdotool)")
    values, newer, rev = snapshot_then_change(hub)
    gui = open_gui(hub.data_dir)
    gui.wait(lambda s: s["status"] == f"connected at revision {rev}" and gui.row("plant.rate")[1] == "45", 20)

    dialog, _width, height, shown = open_restore_changes(gui, display, newer)
    assert shown["heading"] == f"Going back to snapshot {SNAPSHOT} (revision 8) changes 4 keys, old -> new:"
    assert shown["lines"] == RESTORE_LINES
    if shutil.which("xwd") is not None:
        target = tmp_path / "restore-changes.png"
        screenshot(display, dialog, target)
        print(f"the changes dialog: {target}")

    click(display, dialog, 57, height - 24)  # Restore
    state = gui.wait(lambda s: s["dialog"] is None and s["notice"].startswith(f"restored snapshot {SNAPSHOT}: "))
    with hub.client() as client:
        now = client.snapshot()
        assert {item.key: item.value for item in now.items} == values
        assert now.rev == rev + 1
        assert state["notice"] == f"restored snapshot {SNAPSHOT}: 4 keys changed at revision {now.rev}"
        latest = {key: client.history(key, 1)[0] for key in ("plant.rate", "plant.mode", "plant.flow")}
    assert {key: (v.rev, v.source) for key, v in latest.items()} == dict.fromkeys(latest, (now.rev, "rollback"))
    assert (latest["plant.rate"].prev_value, latest["plant.rate"].value) == (45, 30)
    assert latest["plant.flow"].op == "unset"

    expected = [
        ["plant.mode", "auto"],
        ["plant.rate", "30"],
        ["plant.setpoint", "72.5"],
        ["pump.1.enabled", "true"],
        ["pump.1.limits", '{"min": 300, "max": 1800}'],
        ["pump.1.speed", "1450"],
        ["service.db.password", "•••••• (secret)"],
        ["site.name", "Maxson North"],
    ]
    state = gui.wait(lambda s: [row[:2] for row in s["rows"]] == expected)
    assert state["status"] == f"connected at revision {now.rev}"
    restored = {row[0]: row for row in state["rows"] if row[0] in ("plant.mode", "plant.rate")}
    assert all(row[3] == str(now.rev) and row[4].startswith("rollback/") for row in restored.values())

    main, _width, _height = find_window(display, "statehub")
    click(display, main, 100, FIRST_ROW_Y + ROW_HEIGHT)  # plant.rate, the second row
    state = gui.wait(lambda s: s["history_title"].startswith("History of plant.rate") and len(s["history"]) == 3)
    assert state["history"][0][0] == str(now.rev) and state["history"][0][2].startswith("rollback/")
    assert state["history"][0][3] == "45 → 30"


def test_cancelling_a_restore_at_the_changes_writes_nothing_and_the_table_keeps_following(
    hub: HubProcess, open_gui: Callable[..., Gui], display: str
) -> None:
    """Cancel on the changes dialog: no revision, no rollback; meanwhile the table still follows the hub."""
    if shutil.which("xdotool") is None:
        pytest.skip("xdotool is not installed: the dialogs cannot be driven (Debian: apt-get install xdotool)")
    _values, newer, rev = snapshot_then_change(hub)
    gui = open_gui(hub.data_dir)
    gui.wait(lambda s: s["status"] == f"connected at revision {rev}" and len(s["rows"]) == 8, 20)

    dialog, _width, height, shown = open_restore_changes(gui, display, newer)
    assert shown["lines"] == RESTORE_LINES
    meanwhile = run_cli(hub.data_dir, "set", "pump.1.speed", "1500")  # someone else, meanwhile
    assert meanwhile.returncode == 0, meanwhile.stderr
    gui.wait(lambda s: gui.row("pump.1.speed")[1] == "1500" and s["status"] == f"connected at revision {rev + 1}")
    with hub.client() as client:
        before = client.snapshot()

    click(display, dialog, 150, height - 24)  # Cancel
    state = gui.wait(lambda s: s["dialog"] is None and s["notice"].startswith("restore of snapshot"))
    assert state["notice"] == f"restore of snapshot {SNAPSHOT} cancelled: nothing was changed"
    with hub.client() as client:
        after = client.snapshot()
        sources = {key: client.history(key, 1)[0].source for key in ("plant.rate", "plant.flow", "plant.mode")}
    assert (after.rev, after.items) == (before.rev, before.items) and after.rev == rev + 1
    assert sources == {"plant.rate": "cli", "plant.flow": "cli", "plant.mode": "cli"}
    rows = {row[0]: row[1] for row in state["rows"]}
    assert (rows["plant.rate"], rows["plant.flow"], "plant.mode" in rows) == ("45", "12.5", False), state
    assert state["status"] == f"connected at revision {rev + 1}"
