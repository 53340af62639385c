"""The EDS key scheme: readable keys, which plant a point goes to, and the escaped scheme the migration reads."""

from __future__ import annotations

import re
from datetime import datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from statehub.eds import legacy_keys
from statehub.eds.keys import default_plant, plant_segment, point_key, split_iess, tag_segment
from statehub.eds.plants import Placement, Plants, Setting
from statehub.eds.records import EdsInputError, Reading
from statehub.hub.rules import check_key

from .eds_support import CHICAGO, SHIPPED_PLANTS, named

WHEN = datetime(2025, 5, 1, 12, tzinfo=CHICAGO)


def reading(point: str, kind: str = "iess") -> Reading:
    return Reading(point, kind, WHEN, 1.0, None, "f.csv", 3)  # type: ignore[arg-type]


# --- readable keys ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "tag", "suffix"),
    [
        ("FI-405/415.UNIT1@NET1", "FI-405/415", "UNIT1@NET1"),
        ("M100FI.UNIT0@NET0", "M100FI", "UNIT0@NET0"),
        ("A.B.UNIT3@NET7", "A.B", "UNIT3@NET7"),
        ("2308", "2308", None),
        ("FLOW.TOTAL", "FLOW.TOTAL", None),
    ],
)
def test_an_iess_splits_into_its_tag_and_unit_network_suffix(name: str, tag: str, suffix: str | None) -> None:
    """TAG.UNIT@NETWORK splits at the last dot; a name without such an ending is all tag."""
    assert split_iess(name) == (tag, suffix)


def test_the_point_the_issue_names_gets_the_key_an_engineer_reads() -> None:
    """FI-405/415 of Stiles is eds.stiles.FI-405/415; under another plant it keeps its suffix."""
    assert point_key("stiles", "FI-405/415") == "eds.stiles.FI-405/415"
    assert point_key("maxson", "FI-405/415", "UNIT1@NET1") == "eds.maxson.FI-405/415=UNIT1-NET1"


@pytest.mark.parametrize(
    ("name", "segment"), [("Maxson", "maxson"), ("M.C. Stiles", "m-c-stiles"), (" WWTF ", "wwtf"), ("north_2", "north_2")]
)
def test_plant_names_become_lower_case_segments(name: str, segment: str) -> None:
    """Plant names fold to one lower-case segment, so Maxson and MAXSON are one plant."""
    assert plant_segment(name) == segment


def test_a_plant_name_without_letters_or_digits_is_refused() -> None:
    """A plant name that leaves nothing for a key is refused, naming it."""
    with pytest.raises(ValueError, match="'@@@' has no letter or digit"):
        plant_segment("@@@")


@given(st.text(min_size=1, max_size=60))
def test_any_tag_makes_a_valid_key_segment(tag: str) -> None:
    """Whatever a tag holds, its segment is made of key characters only."""
    segment = tag_segment(tag)
    assert re.fullmatch(r"[A-Za-z0-9_/=-]+", segment)
    check_key(f"eds.p.{segment}")


def test_a_name_too_long_for_a_key_is_refused_naming_the_limit() -> None:
    """A tag that would make a key over 256 characters is refused with the limit."""
    with pytest.raises(ValueError, match="limit is 256"):
        point_key("maxson", "T" * 300)


def test_a_suffix_nobody_names_is_its_own_plant() -> None:
    """UNIT1@NET1 with no setting is the plant unit1-net1 (the documented default)."""
    assert default_plant("UNIT1@NET1") == "unit1-net1"


# --- plants -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("plants", "suffix", "zd", "placement"),
    [
        (Plants(by_suffix=SHIPPED_PLANTS), "UNIT1@NET1", None, Placement("stiles", "the default eds.plants.UNIT1-NET1", False)),
        (Plants(forced="Stiles", by_suffix=SHIPPED_PLANTS), "UNIT1@NET1", None, Placement("stiles", "--plant", False)),
        (Plants(forced="Maxson", by_suffix=SHIPPED_PLANTS), "UNIT1@NET1", None, Placement("maxson", "--plant", True)),
        (Plants(by_suffix=SHIPPED_PLANTS), "UNIT1@NET1", "WWTF", Placement("stiles", "the default eds.plants.UNIT1-NET1", False)),
        (Plants(), "UNIT1@NET1", "WWTF", Placement("wwtf", "the point map's zd", False)),
        (Plants(default=Setting("North", "the setting eds.plant")), None, None, Placement("north", "the setting eds.plant", False)),
        (Plants(), "UNIT5@NET2", None, Placement("unit5-net2", "its suffix UNIT5@NET2 (no setting eds.plants.UNIT5-NET2)", False)),
    ],
)
def test_each_point_goes_to_the_first_plant_the_rules_name(
    plants: Plants, suffix: str | None, zd: str | None, placement: Placement
) -> None:
    """--plant, then eds.plants.<UNIT-NET>, the map's zd, eds.plant, the suffix: and the suffix stays only
    when a setting gives it to another plant."""
    assert plants.place(suffix, zd) == placement


def test_a_point_without_any_plant_is_refused_before_anything_is_written() -> None:
    """A SID with no map, no --plant and no eds.plant stops the ingest naming the ways to give a plant."""
    with pytest.raises(EdsInputError, match="no plant for point 2308: give --plant NAME"):
        named([reading("2308", "sid")], by_suffix={})


def test_two_points_that_would_share_a_key_are_refused() -> None:
    """Two different points never go under one key: the ingest stops and names both."""
    readings = [reading("FI.UNIT0@NET0"), reading("FI.UNIT7@NET7")]
    with pytest.raises(EdsInputError, match="points FI.UNIT0@NET0 and FI.UNIT7@NET7 would both be stored under eds.maxson.FI"):
        named(readings, default=Setting("maxson", "the setting eds.plant"))


def test_a_wide_export_of_unit1_points_names_every_key_without_flags() -> None:
    """With the shipped settings, .UNIT1@NET1 points go to eds.stiles.<tag> and .UNIT0@NET0 ones to eds.maxson.<tag>."""
    grouped = named([reading("FI-405/415.UNIT1@NET1"), reading("M100FI.UNIT0@NET0"), reading("LI-12.UNIT1@NET1")])
    assert sorted(grouped.readings) == ["eds.maxson.M100FI", "eds.stiles.FI-405/415", "eds.stiles.LI-12"]
    assert [(p["plant"], p["points"]) for p in grouped.plants()] == [("maxson", 1), ("stiles", 2)]


# --- the escaped scheme of earlier versions (what eds migrate-keys reads) ----------------------


def test_an_escaped_key_splits_back_into_plant_and_point() -> None:
    """The escaped scheme wrote '-' '/' '.' '@' as -XX of their byte; the migration reads it back."""
    key = legacy_keys.point_key("Maxson", "FI-405/415.UNIT1@NET1")
    assert key == "eds.Maxson.FI-2D405-2F415-2EUNIT1-40NET1"
    assert legacy_keys.split_point_key(key) == ("Maxson", "FI-405/415.UNIT1@NET1")


@given(st.text(min_size=1, max_size=60))
def test_any_name_round_trips_through_the_escaped_scheme(name: str) -> None:
    """escape and unescape are inverses, which is what lets the migration recognise escaped keys."""
    assert legacy_keys.unescape_segment(legacy_keys.escape_segment(name)) == name


@pytest.mark.parametrize(
    ("segment", "reason"),
    [
        ("a-2e", "upper-case hex"),
        ("-41", "not canonical"),  # 'A' was never escaped
        ("-FF", "not UTF-8"),
        ("FI-405/415", "never part of an escaped name"),  # a readable key is not an escaped one
    ],
)
def test_segments_the_escaped_scheme_never_made_are_not_taken_for_escaped(segment: str, reason: str) -> None:
    """Only canonical escaped segments decode, so readable keys are never mistaken for escaped ones."""
    with pytest.raises(ValueError, match=reason):
        legacy_keys.unescape_segment(segment)
