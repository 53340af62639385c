"""EDS quality: letters and alarm words normalised to good / uncertain / bad, read from every format that has them."""

from __future__ import annotations

import json

import pytest

from statehub.eds.formats import parse_text
from statehub.eds.quality import ALARM_BITS, alarm_names, parse_alarm_word, status_of
from statehub.eds.resolve import record

from .eds_support import CHICAGO, named


@pytest.mark.parametrize(
    ("letter", "status"),
    [("G", "good"), ("U", "uncertain"), ("S", "uncertain"), ("Q", "uncertain"), ("B", "bad"), ("N", "bad")],
)
def test_each_quality_letter_has_its_documented_status(letter: str, status: str) -> None:
    """The mapping of docs/eds.md: G good; U, S, Q uncertain; B, N bad."""
    assert status_of(letter, 1.0) == status


def test_a_sample_without_a_value_is_bad_whatever_its_letter() -> None:
    """No value is never a good reading."""
    assert status_of("G", None) == "bad"
    assert status_of(None, None) == "bad"


def test_without_a_letter_the_status_is_unknown_not_guessed() -> None:
    """CSV exports carry no quality: their status is null, not good."""
    assert status_of(None, 3.5) is None


def test_the_worst_of_the_letter_and_the_alarm_bits_wins() -> None:
    """A HIGH alarm keeps a good reading good; a SENSOR alarm makes it bad; TIME_OUT makes it uncertain."""
    high, sensor, timeout = 1 << 2, 1 << 1, 1 << 15
    assert status_of("G", 1.0, high) == "good"
    assert status_of("G", 1.0, high | sensor) == "bad"
    assert status_of("G", 1.0, timeout) == "uncertain"
    assert status_of(None, 1.0, timeout) == "uncertain"
    assert status_of(None, 1.0, 0) is None


def test_alarm_words_are_listed_by_name_in_bit_order() -> None:
    """Every set bit is named; bits without a known alarm type are named BIT<n>."""
    assert alarm_names((1 << 1) | (1 << 20)) == ["SENSOR", "HIGH_HIGH"]
    assert alarm_names(1 << 30) == ["BIT30"]
    assert len({name for _bit, name, _letter in ALARM_BITS}) == len(ALARM_BITS) == 23


@pytest.mark.parametrize(("text", "word"), [("0", 0), ("8194", 8194), ("0x2002", 8194), (" 4 ", 4)])
def test_alarm_words_read_as_decimal_or_hex(text: str, word: int) -> None:
    """An alarm word column holds a decimal or 0x-hex integer."""
    assert parse_alarm_word(text) == word


@pytest.mark.parametrize(("text", "message"), [("high", "is not an integer"), ("-1", "outside 0..4294967295")])
def test_a_bad_alarm_word_names_the_text(text: str, message: str) -> None:
    """A column that is not an alarm word says so with its text."""
    with pytest.raises(ValueError, match=message):
        parse_alarm_word(text)


def test_a_long_export_with_quality_and_stat_columns_carries_them_into_the_record() -> None:
    """Long CSV: an optional quality letter and stat alarm word per row; a bad one is a bad row."""
    text = (
        "timestamp,sid,value,quality,stat\n"
        "2025-05-01T12:00:00,2308,51.5,G,4\n"
        "2025-05-01T12:05:00,2308,0,B,2\n"
        "2025-05-01T12:10:00,2308,52,X,0\n"
        "2025-05-01T12:15:00,2308,53,,\n"
    )
    result = parse_text(text, "l.csv", "long", CHICAGO, [])
    assert [str(bad) for bad in result.bad_rows] == ["l.csv:4: quality 'X' is not one of B, G, N, Q, S, U"]
    grouped = named(result.readings, plant="Maxson")
    [(key, readings)] = grouped.readings.items()
    records = [record(reading, grouped.points[key]) for reading in readings]
    assert [(r["quality"], r["status"], r.get("alarms")) for r in records] == [
        ("G", "good", ["HIGH"]),
        ("B", "bad", ["SENSOR"]),
        (None, None, None),
    ]
    assert records[0]["alarm"] == 4 and "alarm" not in records[2]


def test_a_trend_sample_may_carry_an_alarm_word() -> None:
    """Trend JSON samples are [ts, value, quality] or [ts, value, quality, alarm_word]."""
    chunks = [{"status": "LAST", "items": [[[1757761200, 3.2, "G", 32768], [1757761500, 3.3, "G"], [1757761800, 3.4, "G", "x"]]]}]
    result = parse_text(json.dumps(chunks, indent=1), "t.json", "json", CHICAGO, ["M310LI.UNIT0@NET0"])
    assert [(r.quality, r.alarm) for r in result.readings] == [("G", 32768), ("G", None)]
    assert [bad.reason for bad in result.bad_rows] == [
        'sample 2 of point M310LI.UNIT0@NET0 in chunk 0: alarm word "x" is not an integer in 0..4294967295'
    ]
    grouped = named(result.readings)
    first = record(grouped.readings["eds.maxson.M310LI"][0], grouped.points["eds.maxson.M310LI"])
    assert (first["status"], first["alarms"]) == ("uncertain", ["TIME_OUT"])
