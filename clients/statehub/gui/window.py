"""The statehub window's event loop; its layouts are in layouts.py, its decisions in model.py.

Threads: ``Client.subscribe(callback=...)`` runs the subscription in its own
thread (it owns its sockets), which hands each event, whole, to the window with
``write_event_value``; the window's thread owns the Tk widgets and the Client
for writes and history.  Nothing else is shared.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import FreeSimpleGUI as sg  # type: ignore[import-untyped]  # it ships no type hints

from statehub import (
    Client,
    ConflictDetail,
    ConflictError,
    Event,
    InvalidRequest,
    Item,
    OutcomeUnknown,
    StatehubError,
    Update,
)
from statehub.gui import layouts, model, typed
from statehub.gui.model import Choice, Phase, View, Write
from statehub.hub.atomic_file import write_atomically

if TYPE_CHECKING:
    from statehub.hub.state_files import StateFile  # imported when a restore starts

HUB_EVENT = "-HUB-"
TICK_MS = 250  # the status line's age counter and row highlights are refreshed this often
MIN_REFRESH = 0.1  # a burst of changes redraws the table at most this often
HIGHLIGHT = "#fff1a8"
HISTORY_LIMIT = 50


def run(client: Client, *, filter_text: str = "", dump_state: Path | None = None) -> None:
    """Open the window on the hub ``client`` talks to, and run until it is closed.

    ``client`` writes (its source should be ``gui``) and reads history, in this
    thread; the window follows the same hub, remote or local.  The caller closes it.
    """
    sg.theme("LightGrey1")
    title = f"statehub — {'remote hub' if client.is_remote else client.data_dir}"
    try:
        window = layouts.main_window(title, filter_text)
    except Exception as exc:  # Tk raises TclError without a display
        raise RuntimeError(str(exc)) from exc
    app = App(window, client, dump_state)
    thread = client.subscribe(callback=app.forward)
    try:
        app.loop()
    finally:
        app.closing = True
        thread.stop()
        window.close()


class App:
    """The window's state and event handlers.  Runs in the window's thread only."""

    def __init__(self, window: sg.Window, client: Client, dump_state: Path | None) -> None:
        self.window = window
        self.client = client
        self.dump_state = dump_state
        self.view = View()
        self.closing = False
        self.rows: list[model.Row] = []
        self.colored: list[int] = []
        self.selected: str | None = None
        self.history_for: str | None = None  # the key whose history is shown
        self.history_stale = False
        self.history_title = "History: select a key"
        self.history: list[list[str]] = []
        self.message = ""  # the last outcome of an edit, shown in the notice line
        self.last_draw = 0.0
        self.owed = False  # a redraw was put off (coalescing a burst): wake up soon for it
        self.shown: dict[str, Any] = {}
        self.dialog: dict[str, Any] | None = None  # the restore dialog open now, for --dump-state

    # --- the subscription thread's side ------------------------------------------

    def forward(self, event: Event) -> None:
        """Called in the subscription thread: post the event (it carries all the window needs)."""
        if not self.closing:
            self.window.write_event_value(HUB_EVENT, event)

    # --- the loop ----------------------------------------------------------------------

    def loop(self) -> None:
        self.draw(force=True)
        while True:
            wait = int(MIN_REFRESH * 1000) if self.owed else TICK_MS
            event, values = self.window.read(timeout=wait)
            if event == sg.WIN_CLOSED:
                return
            if event == HUB_EVENT:
                self.on_hub(values[HUB_EVENT])
            elif event == "-TABLE-":
                self.on_select(values["-TABLE-"])
            elif event == "-ADD-":
                self.edit(None)
            elif event == "-EDIT-" and self.selected in self.view.items:
                self.edit(self.view.items[self.selected])
            elif event == "-DELETE-" and self.selected in self.view.items:
                self.delete(self.view.items[self.selected])
            elif event == "-RESTORE-":
                self.restore_snapshot()
            self.draw(force=event in ("-FILTER-", "-PREFIX-"))

    def on_hub(self, event: Event) -> None:
        model.on_event(self.view, event, time.time())
        if not isinstance(event, Update) or any(change.key == self.selected for change in event.changes):
            self.history_stale = True

    def on_select(self, indexes: list[int]) -> None:
        key = self.rows[indexes[0]].key if indexes and indexes[0] < len(self.rows) else None
        if key != self.selected:
            self.selected = key
            self.history_stale = True

    # --- drawing -------------------------------------------------------------------------

    def draw(self, force: bool = False) -> None:
        """Bring the window up to date; the table is redrawn at most every MIN_REFRESH in a burst."""
        filter_text = str(self.window["-FILTER-"].get())
        prefix_only = bool(self.window["-PREFIX-"].get())
        rows = model.visible_rows(self.view, filter_text, prefix_only, time.time())
        colored = model.highlighted(rows, self.view, time.time())
        self.owed = False
        if rows != self.rows or colored != self.colored:
            now = time.monotonic()
            if force or now - self.last_draw >= MIN_REFRESH:
                self._draw_table(rows, colored)
                self.last_draw = now
            else:
                self.owed = True
        if self.history_stale:
            self._load_history()
        self._draw_texts(len(self.rows))

    def _draw_table(self, rows: list[model.Row], colored: list[int]) -> None:
        table = self.window["-TABLE-"]
        tree = table.Widget
        top = tree.yview()[0]  # keep the scroll position: a live change must not jump the view
        keys = [row.key for row in rows]
        selected = [keys.index(self.selected)] if self.selected in keys else None
        table.update(values=[row.cells() for row in rows], row_colors=[(i, HIGHLIGHT) for i in colored])
        if selected:
            table.update(select_rows=selected)
        tree.yview_moveto(top)
        self.rows, self.colored = rows, colored

    def _draw_texts(self, count: int) -> None:
        now = time.time()
        reason = model.edit_block_reason(self.view)
        texts = {
            "-STATUS-": model.status_line(self.view, now, self._hub_announced()),
            "-NOTICE-": model.notice_text(self.view, now) or self.message,
            "-REASON-": reason or ("" if self.selected else "select a key to edit or delete it"),
            "-COUNT-": f"{count} of {len(self.view.items)} keys",
            "-HISTORY-TITLE-": self.history_title,
        }
        for key, text in texts.items():
            if self.shown.get(key) != text:
                self.window[key].update(text)
                self.shown[key] = text
        selected = self.selected in self.view.items
        buttons = {
            "-ADD-": not reason,
            "-EDIT-": not reason and selected,
            "-DELETE-": not reason and selected,
            # Snapshots are files in the hub's data dir: a remote hub's are on its own machine.
            "-RESTORE-": not reason and not self.client.is_remote,
        }
        for key, enabled in buttons.items():
            if self.shown.get(key) != enabled:
                self.window[key].update(disabled=not enabled)
                self.shown[key] = enabled
        if self.dump_state is not None:
            self._dump(texts, not reason)

    def _hub_announced(self) -> bool:
        """While down: has a live hub process announced itself again?  (A file, not the hub.)"""
        return self.view.phase is Phase.DOWN and self.client.is_hub_announced()

    def _load_history(self) -> None:
        self.history_stale = False
        key = self.selected
        if key is None:
            self.history_title, self.history = "History: select a key", []
        elif self.view.phase is not Phase.LIVE:
            self.history_title, self.history = f"History of {key}: needs the hub, which is down", []
        else:
            try:
                versions = self.client.history(key, HISTORY_LIMIT)
            except StatehubError as exc:
                self.history_title, self.history = f"History of {key}: {exc.message}", []
            else:
                self.history_title = f"History of {key} (newest first, up to {HISTORY_LIMIT})"
                self.history = model.history_rows(key, versions)
        self.history_for = key
        self.window["-HISTORY-"].update(values=self.history)

    def _dump(self, texts: dict[str, str], edits_enabled: bool) -> None:
        """Tests: the visible state as JSON, written whole each time (--dump-state)."""
        assert self.dump_state is not None
        state = {
            "phase": self.view.phase.value,
            "status": texts["-STATUS-"],
            "notice": texts["-NOTICE-"],
            "edit_reason": model.edit_block_reason(self.view),
            "edits_enabled": edits_enabled,
            "rows": [row.cells() for row in self.rows],
            "history_title": self.history_title,
            "history": self.history,
            "dialog": self.dialog,
            "buttons": {key: self._centre(key) for key in ("-ADD-", "-EDIT-", "-DELETE-", "-RESTORE-")},
        }
        data = json.dumps(state, ensure_ascii=False, indent=1).encode()
        if self.shown.get("-DUMP-") != data:
            write_atomically(self.dump_state, data, mode=0o644)
            self.shown["-DUMP-"] = data

    def _centre(self, key: str) -> list[int]:
        """Where a button's centre is in the window (tests click there: font metrics vary by machine)."""
        widget = self.window[key].Widget
        root = self.window.TKroot
        x = widget.winfo_rootx() - root.winfo_rootx() + widget.winfo_width() // 2
        y = widget.winfo_rooty() - root.winfo_rooty() + widget.winfo_height() // 2
        return [int(x), int(y)]

    # --- edits -------------------------------------------------------------------------

    def edit(self, item: Item | None) -> None:
        """Add (item None) or change a key; a conflict asks the operator what to do."""
        text = model.edit_text(item) if item is not None else ""
        key = item.key if item is not None else str(self.window["-FILTER-"].get()).strip()
        for _ in range(100):  # each turn needs the operator: bounded only as a guard
            answer = self.edit_dialog(item, key, text)
            if answer is None:
                return
            write, text = answer
            key = write.key
            if self.send(write):
                return  # saved, or the operator chose; else reopen the dialog with their text

    def delete(self, item: Item) -> None:
        answer = sg.popup_ok_cancel(f"Delete {item.key} (at revision {item.rev})?", title="Delete key")
        if answer == "OK":
            self.send(model.delete_write(item))

    def restore_snapshot(self) -> None:
        """Pick a snapshot, show every change it would make (a dry run), apply it only on Restore.

        The restore is one txn with source ``rollback``, each op conditioned on the
        revision shown: a key changed meanwhile makes the hub refuse it whole.
        """
        from statehub.hub.state_files import changes_to, list_snapshots

        snapshots = list_snapshots(self.client.data_dir)
        if not snapshots:
            sg.popup_ok("There are no snapshots yet.\nMake one with: statehub snapshot create", title="Restore snapshot")
            return
        picked = self.pick_snapshot(snapshots)
        if picked is None:
            return
        name, state = picked
        try:
            current = self.client.snapshot().items
            ops = changes_to(current, state.values, replace=True)
        except StatehubError as exc:
            sg.popup_error(f"{exc.message}\n\nNothing was changed.", title="Restore snapshot")
            return
        if not ops:
            self.message = f"nothing to restore: the state already matches snapshot {name}"
            return
        if not self.confirm_restore(name, state.rev, model.restore_lines(ops, current)):
            self.message = f"restore of snapshot {name} cancelled: nothing was changed"
            return
        with self.client.with_source("rollback") as rollback:
            try:
                committed = rollback.txn(ops)
            except StatehubError as exc:
                sg.popup_error(f"{exc.message}\n\nNothing was changed.", title="Restore snapshot")
                return
        rev = getattr(committed, "rev", "?")
        self.message = f"restored snapshot {name}: {len(ops)} keys changed at revision {rev}"

    def pick_snapshot(self, snapshots: list[tuple[str, StateFile]]) -> tuple[str, StateFile] | None:
        """The snapshot the operator picked (the newest is preselected); None when cancelled."""
        labels = {
            model.snapshot_label(name, state.rev, len(state.values), state.created): (name, state)
            for name, state in reversed(snapshots)
        }
        heading = "Go back to which snapshot? (newest first)"
        dialog = sg.Window("Restore snapshot", layouts.picker_layout(heading, list(labels)), modal=True, finalize=True)
        self.dialog = {"title": "Restore snapshot", "heading": heading, "lines": list(labels)}
        try:
            for _ in range(100_000):  # one turn per operator action or tick: a guard, not a limit
                event, values = self.read_dialog(dialog)
                if event in (sg.WIN_CLOSED, "-CANCEL-"):
                    return None
                if event == "-SHOW-" and values["-PICK-"]:
                    return labels[values["-PICK-"][0]]
            return None
        finally:
            self.dialog = None
            dialog.close()

    def confirm_restore(self, name: str, rev: int, lines: list[str]) -> bool:
        """Show the dry run, old -> new; True when the operator chose Restore."""
        title = f"Restore snapshot {name}: the changes"
        heading = f"Going back to snapshot {name} (revision {rev}) changes {len(lines)} keys, old -> new:"
        dialog = sg.Window(title, layouts.restore_layout(heading, lines), modal=True, finalize=True)
        self.dialog = {"title": title, "heading": heading, "lines": lines}
        try:
            event, _values = self.read_dialog(dialog)
        finally:
            self.dialog = None
            dialog.close()
        return bool(event == "-APPLY-")

    def send(self, write: Write) -> bool:
        """Send ``write``, walking the operator through conflicts.  False: reopen the edit dialog."""
        for _ in range(100):
            detail = self._write(write)
            if detail is None:
                return True
            resolution = model.resolve(
                self.conflict_dialog(model.conflict_message(write, detail)), write, detail
            )
            if resolution.message:
                self.message = resolution.message
            if resolution.write is None:
                return not resolution.reopen
            write = resolution.write
        return True

    def edit_dialog(self, item: Item | None, key: str, text: str) -> tuple[Write, str] | None:
        """Ask for a key (when adding) and a value: the write and the text typed; None when cancelled."""
        title = "Add a key" if item is None else f"Edit {item.key}"
        schema = self.view.schema
        widget = typed.widget_for(schema, key) if item is not None else typed.Widget("text")
        dialog = sg.Window(title, layouts.edit_layout(item, key, text, schema), modal=True, finalize=True)
        try:
            for _ in range(100_000):  # one turn per operator action or tick: a guard, not a limit
                event, values = self.read_dialog(dialog)
                if event in (sg.WIN_CLOSED, "-CANCEL-"):
                    return None
                value_text = typed.widget_text(widget, values["-VALUE-"]).removesuffix("\n")  # Tk adds one
                as_string = bool(values.get("-STRING-", False))
                typed_key = str(values["-KEY-"]).strip()
                if event != "-SAVE-":
                    dialog["-PREVIEW-"].update(model.type_preview(value_text, as_string, schema, typed_key))
                    continue
                try:
                    if item is None:
                        return model.new_write(typed_key, value_text, as_string, schema), value_text
                    return model.change_write(item, value_text, as_string, schema), value_text
                except InvalidRequest as exc:
                    dialog["-PREVIEW-"].update(f"not saved: {exc}")
            return None
        finally:
            dialog.close()

    def conflict_dialog(self, message: str) -> Choice:
        dialog = sg.Window("Changed meanwhile", layouts.conflict_layout(message), modal=True, finalize=True)
        try:
            event, _values = self.read_dialog(dialog)
        finally:
            dialog.close()
        return event if isinstance(event, Choice) else Choice.CANCEL

    def read_dialog(self, dialog: sg.Window) -> tuple[Any, Any]:
        """The dialog's next event; meanwhile the main window keeps following the hub."""
        while True:
            window, event, values = sg.read_all_windows(timeout=TICK_MS)
            if window is dialog:
                return event, values
            if window is self.window and event == HUB_EVENT:
                self.on_hub(values[HUB_EVENT])
            self.draw()

    def _write(self, write: Write) -> ConflictDetail | None:
        """One attempt; returns the conflict if the key moved, else None (done or reported)."""
        try:
            if write.op == "set":
                committed = self.client.set(write.key, write.value, expect=write.expect)
            else:
                committed = self.client.unset(write.key, expect=write.expect)
        except ConflictError as exc:
            if exc.conflicts:
                return exc.conflicts[0]
            sg.popup_error(exc.message, title="Not saved")
            return None
        except OutcomeUnknown as exc:  # it reached the hub: it may be applied
            sg.popup_error(f"{exc.message}\n\n{exc.hint}", title="Saved or not?")
            return None
        except StatehubError as exc:
            sg.popup_error(f"{getattr(exc, 'message', exc)}\n\nNothing was written.", title="Not saved")
            return None
        what = "deleted" if write.op == "unset" else "saved"
        self.message = f"{what} {write.key} at revision {committed.rev}"
        return None
