"""The sites wire: subjects, message ids, MQTT topics, cursor files (pure functions, no servers)."""

from __future__ import annotations

from pathlib import Path

import pytest

from statehub import InvalidRequest, StatehubError
from statehub.sites.state import Cursor, default_state_dir, load_cursor, save_cursor
from statehub.sites.wire import (
    Heartbeat,
    SiteChange,
    check_site,
    decode,
    decode_heartbeat,
    decode_link,
    encode,
    encode_heartbeat,
    heartbeat_subject,
    message_id,
    mqtt_topic,
    site_subject,
)


def test_a_key_becomes_a_subject_under_its_site() -> None:
    """Keys are dot-separated like NATS subjects: statehub.site.<site>.<key>; a site with no keys has its own."""
    assert site_subject("north", "plant.rate") == "statehub.site.north.plant.rate"
    assert site_subject("north", "") == "statehub.site.north"


def test_the_message_id_names_site_epoch_revision_and_part() -> None:
    """The same part of the same revision always gets the same id, so JetStream drops a resend."""
    change = SiteChange(site="north", epoch="e1", rev=41, index=2, count=3, prev=40, op="set", key="a")
    assert message_id(change) == "north:e1:41:2"
    assert decode(encode(change)) == change


def test_mqtt_topics_turn_dots_into_slashes_and_escape_slashes_inside_a_segment() -> None:
    """A '/' inside a segment is %2F and '%' is %25, so a topic maps back to exactly one key."""
    assert mqtt_topic("north", "plant.rate") == "statehub/north/plant/rate"
    assert mqtt_topic("north", "eds.flow/in.a%b") == "statehub/north/eds/flow%2Fin/a%25b"


@pytest.mark.parametrize("site", ["", "a.b", "north east"])
def test_a_site_name_is_one_key_segment(site: str) -> None:
    """A site name becomes sites.<site>. and a subject token: no dots, no spaces."""
    with pytest.raises(InvalidRequest):
        check_site(site)


def test_a_link_record_that_is_not_one_reads_as_none() -> None:
    """A link record someone overwrote by hand starts the site afresh instead of crashing the follower."""
    assert decode_link({"site": "n", "epoch": "e", "rev": 3, "time": 1.0, "applied": 2.0}) is not None
    assert decode_link("garbage") is None


def test_the_cursor_survives_a_restart_and_a_damaged_one_is_refused(tmp_path: Path) -> None:
    """The cursor file round-trips; a damaged file is an error naming it, never a silent restart from zero."""
    path = tmp_path / "nats-north.cursor.json"
    assert load_cursor(path).is_new
    save_cursor(path, Cursor(epoch="e1", rev=41, published=40))
    assert load_cursor(path) == Cursor(epoch="e1", rev=41, published=40)
    path.write_text("{not json")
    with pytest.raises(StatehubError, match="damaged"):
        load_cursor(path)


def test_the_state_dir_defaults_under_the_data_dir(tmp_path: Path) -> None:
    """A writable data dir keeps the uplink's state beside the store."""
    assert default_state_dir(tmp_path) == tmp_path / "uplink"


def test_a_resync_travels_in_chunks_of_keys_and_an_empty_site_in_one_empty_chunk() -> None:
    """A snapshot of many keys is a few messages (not one per key); a site with no keys still sends one."""
    from statehub import Item
    from statehub.sites.uplink_nats import snapshot_chunks

    items = [Item(key=f"k{i}", value=i, rev=i + 1, created_rev=1, time=1.0) for i in range(1200)]
    chunks = snapshot_chunks(items)
    assert [len(chunk) for chunk in chunks] == [500, 500, 200]
    assert [entry.key for chunk in chunks for entry in chunk] == [item.key for item in items]
    big = [Item(key=f"b{i}", value="x" * 100_000, rev=1, created_rev=1, time=1.0) for i in range(6)]
    assert [len(chunk) for chunk in snapshot_chunks(big)] == [2, 2, 2]
    assert snapshot_chunks([]) == [[]]


@pytest.mark.parametrize(
    "command",
    [["uplink", "nats://127.0.0.1:4222", "--site", "north"], ["follow-sites", "nats://127.0.0.1:4222"]],
)
def test_without_the_sites_extra_the_commands_say_what_to_install(tmp_path: Path, command: list[str]) -> None:
    """With nats-py missing, uplink and follow-sites exit 1 naming pip install 'statehub[sites]'."""
    import subprocess
    import sys

    script = (
        "import sys; sys.modules['nats'] = None; sys.argv = ['statehub', *sys.argv[1:]]\n"
        "from statehub.cli import main; main()"
    )
    result = subprocess.run(
        [sys.executable, "-c", script, "--data-dir", str(tmp_path), *command],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 1, result.stderr
    assert "needs the sites extra (nats is not installed)" in result.stderr
    assert "hint: pip install 'statehub[sites]'" in result.stderr


def test_a_heartbeat_round_trips_and_a_link_record_from_before_heartbeats_still_reads() -> None:
    """Heartbeat survives MessagePack; a stored record without ``heartbeat`` decodes with None there."""
    beat = Heartbeat(site="north", epoch="e1", rev=41, hub_rev=42, time=1.5, every=30.0)
    assert decode_heartbeat(encode_heartbeat(beat)) == beat
    assert heartbeat_subject("north") == "statehub.heartbeat.north"
    old = {"site": "north", "epoch": "e1", "rev": 41, "time": 1.0, "applied": 2.0, "resyncs": 1}
    record = decode_link(old)
    assert record is not None and record.heartbeat is None and record.rev == 41
