"""The GUI's decisions, without a display: table rows, filter, status line, edits, conflicts, history."""

from __future__ import annotations

from typing import Any

import pytest

from statehub import local_when_text
from statehub.gui import model
from statehub.gui.masking import MASK, is_secret
from statehub.gui.model import Choice, Phase, View, Write
from statehub.hub.errors import InvalidRequest
from statehub.hub.mirror import MirrorState
from statehub.hub.protocol import Changed, ConflictDetail, Item, Version

NOW = 1_795_000_000.0


def item(key: str, value: Any, rev: int = 1, source: str = "cli", user: str = "ana") -> Item:
    return Item(key=key, value=value, rev=rev, created_rev=rev, time=NOW - 60, source=source, user=user)


def live_view(*items: Item, rev: int = 10) -> View:
    view = View()
    model.on_synced(view, {i.key: i for i in items}, rev, "e1", "start", True, [], NOW)
    return view


def changed(key: str, rev: int, value: Any = None, op: str = "set") -> Changed:
    return Changed(
        epoch="e1",
        rev=rev,
        index=0,
        count=1,
        key=key,
        op=op,
        value=value,
        time=NOW,
        source="rust",
        user="svc",
    )  # type: ignore[arg-type]


# --- rows, types, filter ---------------------------------------------------------------------


def test_rows_are_sorted_and_show_value_type_revision_writer_and_time() -> None:
    view = live_view(item("plant.rate", 30, 9), item("plant.name", "Maxson", 3), item("pump.on", True, 4))
    rows = model.visible_rows(view)
    assert [row.cells()[:5] for row in rows] == [
        ["plant.name", "Maxson", "string", "3", "cli/ana"],
        ["plant.rate", "30", "int", "9", "cli/ana"],
        ["pump.on", "true", "bool", "4", "cli/ana"],
    ]
    assert rows[0].changed == local_when_text(NOW - 60) and rows[0].changed.count(":") == 2


@pytest.mark.parametrize(
    ("value", "shown", "kind"),
    [
        (30, "30", "int"),
        (30.0, "30.0", "float"),
        ("30", "30", "string"),
        (None, "null", "null"),
        ([1, "a"], '[1, "a"]', "list"),
        ({"min": 1}, '{"min": 1}', "map"),
        ("two\nlines", "two⏎lines", "string"),
    ],
)
def test_values_are_shown_on_one_line_with_their_type(value: Any, shown: str, kind: str) -> None:
    assert (model.format_value(value), model.type_name(value)) == (shown, kind)


def test_long_values_are_cut_with_an_ellipsis() -> None:
    text = model.format_value("x" * 500)
    assert len(text) == model.VALUE_WIDTH and text.endswith("…")


def test_filter_matches_substrings_case_insensitively_or_prefixes_only() -> None:
    view = live_view(item("plant.rate", 1), item("xplant.rate", 2), item("pump.speed", 3))
    assert [r.key for r in model.visible_rows(view, "PLANT.")] == ["plant.rate", "xplant.rate"]
    assert [r.key for r in model.visible_rows(view, "plant.", prefix_only=True)] == ["plant.rate"]
    assert [r.key for r in model.visible_rows(view, "")] == ["plant.rate", "pump.speed", "xplant.rate"]


# --- secrets ------------------------------------------------------------------------------------


def test_secret_values_never_reach_the_table_the_history_or_the_edit_box() -> None:
    secret = item("plant.db.password", "hunter2", 5)
    view = live_view(secret, item("plant.token_count", 3))
    rows = {row.key: row for row in model.visible_rows(view)}
    assert rows["plant.db.password"].value == MASK and rows["plant.token_count"].value == "3"
    versions = [
        Version(rev=5, op="set", value="hunter2", prev_rev=2, prev_value="old", time=NOW, source="cli")
    ]
    assert "hunter2" not in str(model.history_rows("plant.db.password", versions))
    assert "old" not in str(model.history_rows("plant.db.password", versions))
    assert model.edit_text(secret) == ""
    detail = ConflictDetail(
        key="plant.db.password", expected=5, rev=6, exists=True, value="s3cret", time=NOW, source="cli"
    )
    message = model.conflict_message(model.change_write(secret, "mine"), detail)
    assert "s3cret" not in message and "mine" not in message


def test_a_key_is_secret_by_its_last_segment_or_when_marked() -> None:
    assert is_secret("a.PASSWORD") and is_secret("api.token") and not is_secret("password.rotation")
    assert is_secret("plant.rate", marked_secret=True)


# --- events ---------------------------------------------------------------------------------------


def test_updates_change_rows_in_place_and_highlight_them_briefly() -> None:
    view = live_view(item("a", 1, 3), item("b", 2, 4))
    model.on_update(view, 11, [changed("a", 11, 5), changed("b", 11, op="unset")], NOW)
    rows = model.visible_rows(view)
    assert [(r.key, r.value, r.rev, r.who) for r in rows] == [("a", "5", "11", "rust/svc")]
    assert view.items["a"].created_rev == 3 and view.rev == 11
    assert model.highlighted(rows, view, NOW + 1) == [0]
    assert model.highlighted(rows, view, NOW + model.HIGHLIGHT_SECONDS + 0.1) == []


def test_a_resync_replaces_the_table_at_once_and_shows_a_brief_notice() -> None:
    view = live_view(item("a", 1))
    model.on_synced(
        view,
        {"b": item("b", 2)},
        20,
        "e1",
        "gap: expected revision 11, got 13 part 1/1",
        False,
        ["a", "b"],
        NOW,
    )
    assert list(view.items) == ["b"] and model.status_line(view, NOW) == "connected at revision 20"
    assert model.notice_text(view, NOW + 1) == (
        "resynced at revision 20 (gap: expected revision 11, got 13 part 1/1); 2 keys changed meanwhile"
    )
    assert model.notice_text(view, NOW + model.NOTICE_SECONDS + 1) == ""


def test_hub_down_shows_the_mirror_read_only_and_says_how_old_it_is() -> None:
    view = live_view(item("a", 1))
    mirror = MirrorState(epoch="e1", rev=8, written=NOW - 42, items={"m": item("m", 7)})
    model.on_down(view, "no heartbeat for 3.1 s", mirror, NOW)
    assert view.phase is Phase.DOWN and list(view.items) == ["m"]
    assert model.status_line(view, NOW) == "hub down, showing the mirror from revision 8, 42 s old"
    assert model.status_line(view, NOW + 600) == "hub down, showing the mirror from revision 8, 11 min old"
    assert model.status_line(view, NOW, hub_announced=True) == (
        "reconnecting… (showing the mirror from revision 8, 42 s old)"
    )
    assert (
        model.edit_block_reason(view)
        == "edits are off while the hub is down: the table is the mirror, read-only"
    )


def test_hub_down_without_a_mirror_keeps_what_it_had_and_says_so() -> None:
    view = live_view(item("a", 1), rev=12)
    model.on_down(view, "no welcome", None, NOW)
    assert list(view.items) == ["a"]
    assert model.status_line(view, NOW) == (
        "hub down and the mirror cannot be read: showing what this window last received (revision 12)"
    )


def test_recovery_turns_edits_back_on_and_says_it_reconnected() -> None:
    view = live_view(item("a", 1))
    model.on_down(view, "gone", None, NOW)
    model.on_synced(view, {"a": item("a", 2, 15)}, 15, "e1", "the hub is back", False, ["a"], NOW)
    assert model.edit_block_reason(view) == "" and model.status_line(view, NOW) == "connected at revision 15"
    assert model.notice_text(view, NOW).startswith("reconnected at revision 15 (the hub is back)")


def test_before_any_event_the_window_says_it_is_connecting_and_edits_wait() -> None:
    view = View()
    assert model.status_line(view, NOW) == "connecting to the hub…"
    assert model.edit_block_reason(view) == "edits wait for the connection to the hub"


# --- edits ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "as_string", "value"),
    [
        ("30", False, 30),
        ("30", True, "30"),
        ("true", False, True),
        ('{"a": [1]}', False, {"a": [1]}),
        ("hello world", False, "hello world"),
        ("null", False, None),
    ],
)
def test_typed_text_is_json_where_it_parses(text: str, as_string: bool, value: Any) -> None:
    assert model.parse_edit(text, as_string) == value
    assert model.type_preview(text, as_string) == f"stored as {model.type_name(value)}"


def test_edits_carry_the_revision_shown_and_adds_must_not_exist() -> None:
    shown = item("plant.rate", 30, 9)
    assert model.change_write(shown, "31") == Write("set", "plant.rate", 9, 31)
    assert model.delete_write(shown) == Write("unset", "plant.rate", 9)
    assert model.new_write(" plant.new ", "[1]") == Write("set", "plant.new", 0, [1])


def test_a_bad_key_or_value_is_refused_with_the_rule() -> None:
    with pytest.raises(InvalidRequest, match="invalid key 'plant..x': empty segment at position 6"):
        model.new_write("plant..x", "1")
    assert (
        model.type_preview("[" * 40 + "]" * 40)
        == "cannot be stored: value nested deeper than 32 levels at $[0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0]"
    )
    assert model.type_preview("NaN") == "stored as string"  # not JSON, so it is text


# --- conflicts ----------------------------------------------------------------------------------------

THEIRS = ConflictDetail(
    key="plant.rate", expected=9, rev=12, exists=True, value=31, time=NOW, source="cli", user="bob"
)
GONE = ConflictDetail(key="plant.rate", expected=9, exists=False)


def test_the_conflict_dialog_shows_their_value_who_and_when() -> None:
    message = model.conflict_message(Write("set", "plant.rate", 9, 40), THEIRS)
    assert message.startswith("plant.rate changed while you were editing: you started from revision 9; ")
    assert f"it is now at revision 12: 31  (int), set by cli/bob at {local_when_text(NOW)}." in message
    assert message.endswith("You wanted to set it to 40.")


def test_keep_mine_retries_against_the_revision_now_seen() -> None:
    mine = Write("set", "plant.rate", 9, 40)
    assert model.resolve(Choice.KEEP_MINE, mine, THEIRS).write == Write("set", "plant.rate", 12, 40)
    assert model.resolve(Choice.KEEP_MINE, mine, GONE).write == Write("set", "plant.rate", 0, 40)
    delete = Write("unset", "plant.rate", 9)
    assert model.resolve(Choice.KEEP_MINE, delete, THEIRS).write == Write("unset", "plant.rate", 12)
    assert model.resolve(Choice.KEEP_MINE, delete, GONE) == model.Resolution(
        None, False, "plant.rate was already deleted"
    )


def test_take_theirs_writes_nothing_and_cancel_goes_back_to_the_edit() -> None:
    mine = Write("set", "plant.rate", 9, 40)
    assert model.resolve(Choice.TAKE_THEIRS, mine, THEIRS) == model.Resolution(
        None, False, "kept their value of plant.rate"
    )
    assert model.resolve(Choice.CANCEL, mine, THEIRS) == model.Resolution(None, True, "")


# --- history ------------------------------------------------------------------------------------------


def test_history_rows_show_who_when_and_old_to_new() -> None:
    versions = [
        Version(rev=7, op="unset", prev_rev=5, prev_value=31, time=NOW, source="gui", user="ana"),
        Version(rev=5, op="set", value=31, prev_rev=2, prev_value=30, time=NOW - 5, source="file"),
        Version(rev=2, op="set", value=30, time=NOW - 9, source="cli", user="bob"),
    ]
    rows = model.history_rows("plant.rate", versions)
    assert [[r[0], r[2], r[3]] for r in rows] == [
        ["7", "gui/ana", "31 → (deleted)"],
        ["5", "file", "30 → 31"],
        ["2", "cli/bob", "(new) → 30"],
    ]
    assert rows[0][1] == local_when_text(NOW)


def test_age_text_grows_in_sensible_units() -> None:
    """The mirror's age reads in the unit a person would use (the status line and the CLI share it)."""
    from statehub import age_text

    assert [age_text(s) for s in (3, 119, 300, 7300, 200000)] == [
        "3 s",
        "119 s",
        "5 min",
        "2.0 h",
        "2.3 days",
    ]
