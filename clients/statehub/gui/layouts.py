"""The window's and the dialogs' layouts: what is where.  Behaviour lives in window.py, decisions in model.py."""

from __future__ import annotations

from typing import Any

import FreeSimpleGUI as sg  # type: ignore[import-untyped]  # it ships no type hints

from statehub import Item, Schema
from statehub.gui import model, typed
from statehub.gui.masking import is_secret
from statehub.gui.model import Choice

SNAPSHOT_TIP = "go back to a snapshot (statehub snapshot create makes them): the changes are shown first"


def main_window(title: str, filter_text: str) -> sg.Window:
    table = sg.Table(
        values=[],
        headings=model.HEADINGS,
        key="-TABLE-",
        auto_size_columns=False,
        col_widths=[26, 30, 6, 6, 14, 32],  # "changed" holds a ttl's countdown too
        justification="left",
        num_rows=16,
        enable_events=True,
        select_mode=sg.TABLE_SELECT_MODE_BROWSE,
        expand_x=True,
        expand_y=True,
    )
    history = sg.Table(
        values=[],
        headings=model.HISTORY_HEADINGS,
        key="-HISTORY-",
        auto_size_columns=False,
        col_widths=[6, 19, 14, 70],
        justification="left",
        num_rows=6,
        expand_x=True,
    )
    layout = [
        [
            sg.Text("Filter"),
            sg.Input(filter_text, key="-FILTER-", size=(30, 1), enable_events=True),
            sg.Checkbox("prefix only", key="-PREFIX-", enable_events=True),
            sg.Text("", key="-COUNT-", size=(22, 1)),
        ],
        [table],
        [
            sg.Button("Add…", key="-ADD-"),
            sg.Button("Edit…", key="-EDIT-"),
            sg.Button("Delete…", key="-DELETE-"),
            sg.Button("Restore snapshot…", key="-RESTORE-", tooltip=SNAPSHOT_TIP),
            sg.Text("", key="-REASON-", size=(60, 1), text_color="#8a4b00"),
        ],
        [sg.Text("History: select a key", key="-HISTORY-TITLE-", size=(90, 1))],
        [history],
        [sg.Text("", key="-NOTICE-", size=(110, 1), text_color="#1f5fa8")],
        [sg.Text("connecting to the hub…", key="-STATUS-", size=(110, 1), font=("Helvetica", 10, "bold"))],
    ]
    return sg.Window(title, layout, resizable=True, finalize=True)


def edit_layout(item: Item | None, key: str, text: str, schema: Schema | None = None) -> list[list[Any]]:
    based = (
        "a new key: saved only if it does not exist yet"
        if item is None
        else (f"based on revision {item.rev}: saved only if nobody changed it since")
    )
    secret = item is not None and is_secret(item.key, item.secret)
    widget = typed.widget_for(schema, key) if schema is not None and item is not None else typed.Widget("text")
    rows = [
        [sg.Text("Key", size=(6, 1)), sg.Input(key, key="-KEY-", size=(50, 1), disabled=item is not None)],
        [sg.Text("Value" + (" (secret: type a new one)" if secret else ""))],
        [value_input(widget, text)],
    ]
    if widget.hint:
        rows.append([sg.Text(widget.hint, key="-RULE-", size=(60, 2), text_color="#555555")])
    if widget.kind == "text":
        rows.append([sg.Checkbox("store as a string (do not read it as JSON)", key="-STRING-", enable_events=True)])
    return rows + [
        [sg.Text(model.type_preview(text, schema=schema, key=key), key="-PREVIEW-", size=(60, 2))],
        [sg.Text(based, text_color="#555555")],
        [sg.Button("Save", key="-SAVE-"), sg.Button("Cancel", key="-CANCEL-")],
    ]


def value_input(widget: typed.Widget, text: str) -> Any:
    """The input that edits a value of the widget's kind, keyed -VALUE-."""
    start = typed.initial_value(widget, text)
    if widget.kind == "checkbox":
        return sg.Checkbox("true", default=bool(start), key="-VALUE-", enable_events=True)
    if widget.kind == "choice":
        return sg.Combo(list(widget.choices), default_value=start, key="-VALUE-", readonly=True, enable_events=True)
    if widget.kind == "spin":
        return sg.Spin(
            list(range(widget.low, widget.high + 1)),
            initial_value=start,
            key="-VALUE-",
            size=(12, 1),
            enable_events=True,
        )
    return sg.Multiline(text, key="-VALUE-", size=(60, 6), enable_events=True, rstrip=False)


def conflict_layout(message: str) -> list[list[Any]]:
    return [
        [sg.Text(message, size=(80, None))],
        [
            sg.Button("Keep mine", key=Choice.KEEP_MINE),
            sg.Button("Take theirs", key=Choice.TAKE_THEIRS),
            sg.Button("Cancel", key=Choice.CANCEL),
        ],
    ]


def picker_layout(heading: str, labels: list[str]) -> list[list[Any]]:
    width = min(max(60, *(len(label) + 2 for label in labels)), 110)
    return [
        [sg.Text(heading)],
        [sg.Listbox(labels, default_values=labels[:1], size=(width, min(max(len(labels), 4), 12)), key="-PICK-")],
        [sg.Button("Show changes…", key="-SHOW-"), sg.Button("Cancel", key="-CANCEL-")],
    ]


def restore_layout(heading: str, lines: list[str]) -> list[list[Any]]:
    width = min(max(60, *(len(line) + 2 for line in lines)), 120)
    note = (
        "Applied as one change (source rollback), and only if none of these keys changes meanwhile; "
        "history keeps every revision."
    )
    return [
        [sg.Text(heading)],
        [
            sg.Multiline(
                "\n".join(lines),
                size=(width, min(max(len(lines) + 1, 4), 20)),
                disabled=True,
                expand_x=True,
                key="-CHANGES-",
            )
        ],
        [sg.Text(note, text_color="#555555")],
        [sg.Button("Restore", key="-APPLY-"), sg.Button("Cancel", key="-CANCEL-")],
    ]
