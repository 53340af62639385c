"""The EDS key scheme: names map to key segments losslessly and reversibly."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from statehub.eds.keys import escape_segment, point_key, split_point_key, unescape_segment
from statehub.hub.rules import check_key


def test_an_iess_name_maps_to_the_documented_segment() -> None:
    """`-` `/` `.` `@` are escaped as -XX of their byte; letters, digits and _ stay."""
    assert escape_segment("FI-405/415.UNIT1@NET1") == "FI-2D405-2F415-2EUNIT1-40NET1"
    assert escape_segment("M100FI.UNIT0@NET0") == "M100FI-2EUNIT0-40NET0"
    assert escape_segment("plant_1") == "plant_1"
    assert escape_segment("Stiles WWTP") == "Stiles-20WWTP"
    assert escape_segment("Débit") == "D-C3-A9bit"


def test_point_key_is_eds_plant_point_and_splits_back() -> None:
    key = point_key("Maxson", "FI-405/415.UNIT1@NET1")
    assert key == "eds.Maxson.FI-2D405-2F415-2EUNIT1-40NET1"
    assert split_point_key(key) == ("Maxson", "FI-405/415.UNIT1@NET1")


@given(st.text(min_size=1, max_size=60))
def test_any_name_round_trips_through_a_valid_segment(name: str) -> None:
    segment = escape_segment(name)
    assert re.fullmatch(r"[A-Za-z0-9_-]+", segment)  # a valid key segment (length is point_key's concern)
    if len(segment) <= 256:
        check_key(segment)
    assert unescape_segment(segment) == name


@given(st.text(min_size=1, max_size=20), st.text(min_size=1, max_size=20))
def test_distinct_names_never_share_a_segment(a: str, b: str) -> None:
    if a != b:
        assert escape_segment(a) != escape_segment(b)


@given(st.from_regex(r"[A-Za-z0-9_]{0,5}(-[0-9A-F]{2}[A-Za-z0-9_]{0,3}){0,4}", fullmatch=True).filter(bool))
def test_every_segment_that_decodes_encodes_back_to_itself(segment: str) -> None:
    """unescape accepts only canonical segments, so the two functions are inverse bijections."""
    try:
        name = unescape_segment(segment)
    except ValueError:
        return
    assert escape_segment(name) == segment


@pytest.mark.parametrize(
    ("segment", "reason"),
    [
        ("a-2e", "upper-case hex"),
        ("a-4", "upper-case hex"),
        ("-41", "not canonical"),  # 'A' is never escaped
        ("-FF", "not UTF-8"),
        ("a.b", "never part of an escaped name"),
    ],
)
def test_non_canonical_segments_are_refused_with_the_reason(segment: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        unescape_segment(segment)


def test_a_name_too_long_for_a_key_is_refused_naming_the_limit() -> None:
    with pytest.raises(ValueError, match="limit is 256"):
        point_key("Maxson", "/" * 100)
