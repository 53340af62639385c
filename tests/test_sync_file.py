"""The file-watcher adapter: a real hub, a real file, and edits made the ways editors make them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import tomllib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from statehub.hub.protocol import ConflictDetail, Item, Op
from statehub.sync_file.adapter import FileSync, Options
from statehub.sync_file.document import END_LINE, FileError, Header, format_for, parse, render
from statehub.sync_file.note import render_section
from statehub.sync_file.plan import ABSENT, Plan, plan_save, refuse_conflicts, same_value
from statehub.sync_file.toml_values import from_toml, toml_value
from statehub.sync_file.watch import FileWatcher
from statehub.testing import HubProcess, wait_until

from .conftest import cli_env

SETTLE = 0.15


# --- running the adapter -----------------------------------------------------------------


class Running:
    """A FileSync in a thread of this test; ``stop()`` ends it and closes its client."""

    def __init__(self, adapter: FileSync) -> None:
        self.adapter = adapter
        self.path = adapter.path
        self._stop = threading.Event()
        self._thread = threading.Thread(target=adapter.run, args=(self._stop,), daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)
        assert not self._thread.is_alive()
        self.adapter.client.close()

    def quiet(self) -> bool:
        """True when the adapter, looking at the file long enough to notice a change, neither saved nor wrote.

        Counted from the end of the rewrite the file shows: the file is renamed
        into place (and the folder fsynced) before the adapter counts the rewrite,
        and a test that saw the file may get here in between.  "Long enough" is
        the adapter's own progress, not a sleep: it must have looked at the file
        later than a change seen now would have settled (settle plus two polls),
        however slowly a busy machine runs its thread.
        """
        counters = self.adapter.counters
        assert wait_until(lambda: counters.last_rev == file_rev(self.path), 30)
        before = (counters.saves, counters.rewrites, self.path.read_bytes())
        settled = time.monotonic() + self.adapter.options.settle + 2 * self.adapter.options.interval
        assert wait_until(lambda: counters.last_look > settled, 30), "the adapter stopped looking at the file"
        return before == (counters.saves, counters.rewrites, self.path.read_bytes())


@pytest.fixture
def start_sync(hub: HubProcess, tmp_path: Path) -> Iterator[Callable[..., Running]]:
    running: list[Running] = []

    def start(name: str = "plant.toml", prefix: str = "plant.", **options: Any) -> Running:
        options.setdefault("interval", 0.05)
        options.setdefault("settle", SETTLE)
        path = tmp_path / name
        adapter = FileSync(hub.client(source="file", timeout=1.0), Options(path, prefix, format_for(path), **options))
        running.append(Running(adapter))
        return running[-1]

    yield start
    for sync in running:
        sync.stop()


def file_values(path: Path) -> dict[str, Any]:
    return {key: from_toml(value) for key, value in tomllib.loads(path.read_text()).items()}


def file_rev(path: Path) -> int:
    return int(
        next(line for line in path.read_text().split("\n") if line.startswith("# revision:")).split(":")[1]
    )


def wait_for_file(path: Path, predicate: Callable[[str], bool], timeout: float = 10.0) -> str:
    assert wait_until(lambda: path.exists() and predicate(path.read_text()), timeout), (
        path.read_text() if path.exists() else "no file"
    )
    return path.read_text()


def values(hub: HubProcess, prefix: str = "plant.") -> dict[str, Any]:
    with hub.client() as client:
        return {item.key: item.value for item in client.list(prefix).items}


def seed(hub: HubProcess, **pairs: Any) -> int:
    with hub.client(source="cli", user="ana") as client:
        rev = 0
        for key, value in pairs.items():
            rev = client.set(key.replace("__", "."), value).rev
        return rev


# --- how editors save ----------------------------------------------------------------------


def save_by_rename(path: Path, text: str) -> None:
    """vim (default), VS Code, most IDEs: write a temp file, rename it over the original."""
    temp = path.with_name(f".{path.name}.swp")
    temp.write_text(text)
    os.replace(temp, path)


def save_by_truncate(path: Path, text: str) -> None:
    """nano, vim with backupcopy=yes: truncate the file in place, then write it."""
    with open(path, "r+") as handle:
        handle.truncate(0)
        handle.flush()
        handle.write(text)


def save_in_steps(path: Path, text: str, pieces: int = 4, pause: float = 0.03) -> None:
    """Editors on slow disks, or sync tools: truncate, then the content in several writes."""
    size = len(text) // pieces + 1
    with open(path, "w") as handle:
        for start in range(0, len(text), size):
            handle.write(text[start : start + size])
            handle.flush()
            time.sleep(pause)


EDITORS = {"rename": save_by_rename, "truncate": save_by_truncate, "steps": save_in_steps}


# --- the file follows the hub ---------------------------------------------------------------


def test_the_file_shows_the_keys_under_the_prefix_with_a_header(
    hub: HubProcess, start_sync: Callable[..., Running]
) -> None:
    """TOML by default, keys quoted and sorted, null escaped, the revision and an editing note on top."""
    rev = seed(hub, plant__rate=30, plant__name="Maxson", plant__tags=[1, None], other__x=1)
    sync = start_sync()
    text = wait_for_file(sync.path, lambda t: END_LINE in t)
    assert file_values(sync.path) == {"plant.name": "Maxson", "plant.rate": 30, "plant.tags": [1, None]}
    assert '"plant.tags" = { "$json" = "[1,null]" }' in text
    assert f"# revision: {rev}\n" in text and '# prefix: "plant."' in text
    assert "only if that\n# key has not changed since revision" in text
    assert text.rstrip().endswith(END_LINE)


def test_a_change_in_the_hub_is_written_to_the_file(
    hub: HubProcess, start_sync: Callable[..., Running]
) -> None:
    """The adapter rewrites the file from the change stream, and only for its prefix."""
    seed(hub, plant__rate=30)
    sync = start_sync()
    wait_for_file(sync.path, lambda t: '"plant.rate" = 30' in t)
    rev = seed(hub, plant__rate=31)
    wait_for_file(sync.path, lambda t: '"plant.rate" = 31' in t)
    assert file_rev(sync.path) == rev
    assert wait_until(sync.quiet, timeout=30)  # let a rewrite under way finish first
    writes = sync.adapter.counters.rewrites
    seed(hub, other__x=5)  # outside the prefix: no rewrite
    marker = seed(hub, plant__marker=1)  # inside it, and after: the one rewrite since
    assert wait_until(lambda: sync.adapter.counters.last_rev == marker, 30)
    assert sync.adapter.counters.rewrites == writes + 1


# --- a person's saves reach the hub ------------------------------------------------------------


@pytest.mark.parametrize("editor", sorted(EDITORS))
def test_each_editor_style_applies_the_save_once_with_source_file(
    hub: HubProcess, start_sync: Callable[..., Running], editor: str
) -> None:
    """Rename, truncate-and-write and stepwise writes all apply; the rewrite does not loop back."""
    seed(hub, plant__rate=30, plant__name="Maxson")
    sync = start_sync()
    text = wait_for_file(sync.path, lambda t: END_LINE in t)
    EDITORS[editor](sync.path, text.replace('"plant.rate" = 30', '"plant.rate" = 31.5'))
    assert wait_until(lambda: values(hub).get("plant.rate") == 31.5, 10)
    with hub.client() as client:
        latest = client.history("plant.rate", 1)[0]
        assert (latest.source, latest.prev_value) == ("file", 30)
    wait_for_file(sync.path, lambda t: file_rev(sync.path) == latest.rev)
    assert sync.quiet(), "the adapter's own rewrite must not read back as a save"
    with hub.client() as client:
        assert client.status().rev == latest.rev


def test_adding_and_deleting_lines_sets_and_unsets_keys(
    hub: HubProcess, start_sync: Callable[..., Running]
) -> None:
    """A new line creates the key (only if it does not exist); a deleted line unsets it."""
    seed(hub, plant__rate=30, plant__name="Maxson")
    sync = start_sync()
    text = wait_for_file(sync.path, lambda t: END_LINE in t)
    text = text.replace('"plant.name" = "Maxson"\n', "").replace(
        END_LINE, f'"plant.new" = {{ a = 1 }}\n{END_LINE}'
    )
    save_by_rename(sync.path, text)
    assert wait_until(lambda: values(hub) == {"plant.rate": 30, "plant.new": {"a": 1}}, 10), values(hub)


def test_a_save_written_slowly_is_not_read_until_it_is_whole(
    hub: HubProcess, start_sync: Callable[..., Running], caplog: pytest.LogCaptureFixture
) -> None:
    """A half-written file (pauses longer than the settle time) never reads as deleted keys."""
    seed(hub, plant__a=1, plant__b=2, plant__z=26)
    sync = start_sync()
    text = wait_for_file(sync.path, lambda t: END_LINE in t).replace('"plant.a" = 1', '"plant.a" = 100')
    cut = text.index('"plant.b"')
    with open(sync.path, "w") as handle:
        handle.write(text[:cut])
        handle.flush()
        assert wait_until(lambda: "save looks incomplete" in caplog.text, 30)  # it read the settled half
        assert values(hub) == {"plant.a": 1, "plant.b": 2, "plant.z": 26}
        handle.write(text[cut:])
    assert wait_until(lambda: values(hub) == {"plant.a": 100, "plant.b": 2, "plant.z": 26}, 10), values(hub)


def test_a_rapid_series_of_saves_ends_at_the_last_one(
    hub: HubProcess, start_sync: Callable[..., Running]
) -> None:
    """Ten saves 30 ms apart: the last one wins, nothing is refused, and writes stay few."""
    seed(hub, plant__rate=0)
    sync = start_sync()
    text = wait_for_file(sync.path, lambda t: END_LINE in t)
    for i in range(1, 11):
        save_by_rename(sync.path, text.replace('"plant.rate" = 0', f'"plant.rate" = {i}'))
        time.sleep(0.03)
    assert wait_until(lambda: values(hub)["plant.rate"] == 10, 10)
    with hub.client() as client:
        last = client.status().rev
    wait_for_file(sync.path, lambda t: file_rev(sync.path) == last)
    assert sync.quiet()
    assert sync.adapter.counters.refused == 0
    with hub.client() as client:
        assert len(client.history("plant.rate")) <= 4  # debounced: not one write per save


# --- conflicts -----------------------------------------------------------------------------------


def test_a_stale_buffer_is_refused_for_keys_that_moved_and_kept_in_the_note(
    hub: HubProcess, start_sync: Callable[..., Running], caplog: pytest.LogCaptureFixture
) -> None:
    """Edits to keys changed since the file's revision are refused; the rest apply; nothing is lost."""
    seed(hub, plant__rate=30, plant__name="Maxson", plant__mode="auto")
    sync = start_sync()
    old_buffer = wait_for_file(sync.path, lambda t: END_LINE in t)
    moved = seed(hub, plant__rate=31)  # someone else, after the person opened the file
    wait_for_file(sync.path, lambda t: '"plant.rate" = 31' in t)

    edited = old_buffer.replace('"plant.rate" = 30', '"plant.rate" = 99').replace('"Maxson"', '"North"')
    save_by_rename(sync.path, edited)
    assert wait_until(lambda: values(hub)["plant.name"] == "North", 10)
    assert values(hub)["plant.rate"] == 31
    note = sync.path.with_name("plant.toml.conflict")
    assert wait_until(note.exists, 5)
    text = note.read_text()
    assert '"plant.rate" = 99' in text
    assert f"the hub has 31 (revision {moved}, set by cli/ana at " in text and "it was 30" in text
    wait_for_file(sync.path, lambda t: '"plant.rate" = 31' in t and '"North"' in t)
    assert "refused 1 edit(s) from plant.toml: plant.rate changed in the hub" in caplog.text


def test_a_stale_buffer_does_not_undo_changes_it_did_not_touch(
    hub: HubProcess, start_sync: Callable[..., Running]
) -> None:
    """Saving an old buffer that changed one key leaves the newer values of the others alone."""
    seed(hub, plant__rate=30, plant__name="Maxson")
    sync = start_sync()
    old_buffer = wait_for_file(sync.path, lambda t: END_LINE in t)
    seed(hub, plant__rate=31)
    seed(hub, plant__gone=1)
    with hub.client() as client:
        client.unset("plant.gone")
    with hub.client() as client:
        last = client.status().rev
    wait_for_file(sync.path, lambda t: file_rev(sync.path) == last)
    save_by_truncate(sync.path, old_buffer.replace('"Maxson"', '"North"'))
    assert wait_until(lambda: values(hub) == {"plant.rate": 31, "plant.name": "North"}, 10), values(hub)
    assert sync.adapter.counters.refused == 0
    assert not sync.path.with_name("plant.toml.conflict").exists()


# --- bad saves ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("replace", "expected"),
    [
        ('"plant.rate" = 31 31', ":14:19: this is not valid TOML: "),
        ('"plant..rate" = 31', ":14:1: invalid key 'plant..rate': empty segment at position 6"),
        ('"plant.rate" = 2026-01-01', ":14:1: value of type date at $ is not allowed"),
        ('"other.rate" = 31', ":14:1: key 'other.rate' is outside the synced prefix 'plant.'"),
        ("plant.rate = 31", ':14:1: write the key in quotes: "plant.rate" = ...'),
    ],
)
def test_a_malformed_save_is_reported_with_line_and_column_and_left_alone(
    hub: HubProcess,
    start_sync: Callable[..., Running],
    caplog: pytest.LogCaptureFixture,
    replace: str,
    expected: str,
) -> None:
    """Nothing is applied, the file keeps the person's text (even when the hub changes), until it parses."""
    seed(hub, plant__rate=30)
    sync = start_sync()
    text = wait_for_file(sync.path, lambda t: END_LINE in t)
    assert text.split("\n")[13] == '"plant.rate" = 30'
    bad = text.replace('"plant.rate" = 30', replace)
    save_by_rename(sync.path, bad)
    assert wait_until(lambda: expected in caplog.text, 5), caplog.text
    assert "nothing was applied, and the file is left as it is until it parses" in caplog.text
    moved = seed(hub, plant__other=1)  # a hub change must not overwrite the person's broken save
    assert wait_until(lambda: sync.adapter.counters.seen_rev >= moved, 30)  # the adapter has it, and holds it back
    assert sync.quiet()
    assert sync.path.read_text() == bad and values(hub) == {"plant.rate": 30, "plant.other": 1}

    save_by_rename(sync.path, text.replace('"plant.rate" = 30', '"plant.rate" = 32'))
    assert wait_until(lambda: values(hub).get("plant.rate") == 32, 10)
    wait_for_file(sync.path, lambda t: '"plant.other" = 1' in t)


# --- the hub goes away ----------------------------------------------------------------------------


def test_a_save_while_the_hub_is_down_is_applied_when_it_is_back(
    hub: HubProcess, start_sync: Callable[..., Running]
) -> None:
    """The file is left alone while the hub is down; the save is applied, with its checks, on return."""
    seed(hub, plant__rate=30, plant__name="Maxson")
    sync = start_sync()
    text = wait_for_file(sync.path, lambda t: END_LINE in t)
    hub.kill()
    assert wait_until(lambda: not sync.adapter.live, 10)
    edited = text.replace('"plant.rate" = 30', '"plant.rate" = 40')
    save_by_truncate(sync.path, edited)
    assert wait_until(lambda: sync.adapter.pending == edited.encode(), 30)  # seen, and held for the hub
    assert sync.path.read_text() == edited
    hub.start()
    assert wait_until(lambda: values(hub).get("plant.rate") == 40, 15)
    wait_for_file(sync.path, lambda t: '"plant.rate" = 40' in t and file_rev(sync.path) > file_rev_of(text))
    assert sync.quiet()


def file_rev_of(text: str) -> int:
    return int(text.split("# revision:")[1].split("\n")[0])


def test_a_removed_file_is_written_again(hub: HubProcess, start_sync: Callable[..., Running]) -> None:
    seed(hub, plant__rate=30)
    sync = start_sync()
    wait_for_file(sync.path, lambda t: END_LINE in t)
    sync.path.unlink()
    wait_for_file(sync.path, lambda t: '"plant.rate" = 30' in t)
    assert values(hub) == {"plant.rate": 30}


# --- JSON -------------------------------------------------------------------------------------------


def test_json_format_round_trips_null_and_reports_errors_with_line_and_column(
    hub: HubProcess, start_sync: Callable[..., Running], caplog: pytest.LogCaptureFixture
) -> None:
    seed(hub, plant__rate=30, plant__off=None)
    sync = start_sync("plant.json")
    text = wait_for_file(sync.path, lambda t: '"plant.off": null' in t)
    save_by_rename(sync.path, text.replace('"plant.rate": 30', '"plant.rate": 30,,'))
    assert wait_until(lambda: "plant.json:12:22: this is not valid JSON" in caplog.text, 5), caplog.text
    save_by_rename(sync.path, text.replace('"plant.rate": 30', '"plant.rate": [1, null]'))
    assert wait_until(lambda: values(hub).get("plant.rate") == [1, None], 10)


# --- the command -----------------------------------------------------------------------------------


def run_command(*args: str, **popen: Any) -> Any:
    return subprocess.Popen([sys.executable, "-m", "statehub.cli", *args], text=True, env=cli_env(), **popen)


def test_sync_file_command_runs_until_sigterm(hub: HubProcess, tmp_path: Path) -> None:
    """The real command: writes the file, applies a save, logs it, and exits 0 on SIGTERM."""
    seed(hub, plant__rate=30)
    path = tmp_path / "state.toml"
    process = run_command(
        "sync-file", str(path), "--data-dir", str(hub.data_dir), "--interval", "0.05", stderr=subprocess.PIPE
    )
    try:
        text = wait_for_file(path, lambda t: END_LINE in t, 15)
        save_by_rename(path, text.replace('"plant.rate" = 30', '"plant.rate" = 7'))
        assert wait_until(lambda: values(hub).get("plant.rate") == 7, 10)
    finally:
        process.send_signal(signal.SIGTERM)
        _out, err = process.communicate(timeout=10)
    assert process.returncode == 0, err
    assert "applied 1 change(s) from state.toml at revision 2: plant.rate" in err


def test_sync_file_command_refuses_bad_options_with_one_error_line(tmp_path: Path) -> None:
    process = run_command(
        "sync-file", str(tmp_path / "x.toml"), "--prefix", "plant..", stderr=subprocess.PIPE
    )
    _out, err = process.communicate(timeout=30)
    assert (process.returncode, err) == (2, "error: invalid key 'plant.': empty segment at position 6\n")
    process = run_command("sync-file", str(tmp_path / "no" / "x.toml"), stderr=subprocess.PIPE)
    _out, err = process.communicate(timeout=30)
    assert process.returncode == 2 and "does not exist; create it first" in err


# --- pure parts ----------------------------------------------------------------------------------------

values_strategy = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(values_strategy)
def test_every_value_survives_toml_exactly(value: Any) -> None:
    """Strings with control characters, floats, nested nulls: written and read back unchanged."""
    read = from_toml(tomllib.loads(f'"k" = {toml_value(value)}\n')["k"])
    assert same_value(read, value)


def test_a_map_that_looks_like_the_escape_is_itself_escaped() -> None:
    value = {"$json": "[1]"}
    assert from_toml(tomllib.loads(f'"k" = {toml_value(value)}')["k"]) == value


def _item(key: str, value: Any, rev: int) -> Item:
    return Item(key=key, value=value, rev=rev, created_rev=rev, time=0.0, source="cli", user="ana")


def test_plan_sends_only_what_the_person_changed_with_the_right_expectations() -> None:
    current = {"p.a": _item("p.a", 1, 3), "p.b": _item("p.b", 2, 9), "p.c": _item("p.c", 3, 4)}
    base = {"p.a": 1, "p.b": 1, "p.c": 3}
    saved = {"p.a": 10, "p.b": 1, "p.new": True}  # changed a, left b (moved on), deleted c, added new
    plan = plan_save(saved, current, 5, base)
    assert [(op.op, op.key, op.value, op.expect) for op in plan.ops] == [
        ("set", "p.a", 10, 3),
        ("unset", "p.c", None, 4),
        ("set", "p.new", True, 0),
    ]
    assert plan.refused == []


def test_plan_refuses_an_edit_to_a_key_that_moved_and_treats_1_and_true_as_different() -> None:
    current = {"p.a": _item("p.a", 2, 9)}
    plan = plan_save({"p.a": True}, current, 5, {"p.a": 1})
    assert [(r.key, r.yours, r.theirs.value if r.theirs else None, r.base) for r in plan.refused] == [
        ("p.a", True, 2, 1)
    ]
    unknown = plan_save({"p.x": 1}, {}, None, None)
    assert unknown.ops == [] and unknown.refused[0].base is not ABSENT


def test_the_note_is_copyable_back_into_the_file() -> None:
    plan = plan_save({"p.a": 99}, {"p.a": _item("p.a", 31, 7)}, 5, {"p.a": 30})
    section = render_section("toml", "p.toml", 5, plan.refused, 0.0)
    assert (
        '\n"p.a" = 99\n#   the hub has 31 (revision 7, set by cli/ana at 1970-01-01 00:00:00Z); at revision 5 it was 30\n'
        in section
    )


def test_a_file_without_its_last_line_is_incomplete_and_one_without_a_header_is_refused() -> None:
    whole = render("toml", Header(3, "e", "p."), {"p.a": 1}, "x.conflict").decode()
    assert parse("toml", whole, "p.").values == {"p.a": 1}
    with pytest.raises(FileError) as cut:
        parse("toml", whole[: whole.index(END_LINE)], "p.")
    assert cut.value.incomplete
    with pytest.raises(FileError, match="the header lacks revision, epoch, prefix"):
        parse("toml", f'"p.a" = 1\n{END_LINE}\n', "p.")
    with pytest.raises(FileError, match="written for the prefix 'p.'"):
        parse("toml", whole, "q.")


def test_a_retried_save_whose_first_attempt_was_applied_is_no_conflict() -> None:
    """The hub holding exactly what was saved (the first attempt's answer was lost) is neither sent nor refused."""
    plan = Plan(ops=[Op(op="set", key="plant.rate", value=31.5, expect=3), Op(op="unset", key="plant.old", expect=2)])
    conflicts = [
        ConflictDetail(key="plant.rate", expected=3, rev=4, exists=True, value=31.5),  # our own, applied
        ConflictDetail(key="plant.old", expected=2, rev=5, exists=True, value="theirs"),  # someone else's
    ]
    refuse_conflicts(plan, conflicts, base={"plant.rate": 30, "plant.old": "mine"})
    assert plan.ops == []
    assert [(r.key, r.yours) for r in plan.refused] == [("plant.old", ABSENT)]


def test_a_save_landing_while_the_adapter_fsyncs_its_rewrite_is_still_read(tmp_path: Path) -> None:
    """A save made after the rewrite's rename but before the watcher records it is handed out, however late."""
    path = tmp_path / "plant.toml"
    path.write_bytes(b"old\n")
    watcher = FileWatcher(path, settle=0.0)
    assert watcher.poll(0.0) == b"old\n"
    ours, temp = b"ours\n", tmp_path / ".plant.toml.tmp"
    temp.write_bytes(ours)
    written = os.stat(temp)
    os.replace(temp, path)
    path.write_bytes(b"the person's save\n")  # in place, during our folder fsync
    long_ago = time.time() - 60  # older than any same-tick window: only the stat can tell
    os.utime(path, (long_ago, long_ago))
    watcher.wrote(ours, written)
    seen = [watcher.poll(t) for t in (1.0, 2.0, 3.0)]
    assert b"the person's save\n" in seen
