"""Parsing every EDS format: the real samples, constructed files, bad rows and unusable files."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from statehub.eds.formats import detect_format, parse_file, parse_text
from statehub.eds.point_map import parse_point_csv, parse_points_export, read_point_map
from statehub.eds.records import EdsInputError

from .eds_support import CHICAGO, EDS_DATA, LONG_SAMPLE, POINT_MAP, long_csv, wide_csv, write


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


# --- long ---------------------------------------------------------------------------


def test_the_real_long_sample_parses_every_row_with_its_line() -> None:
    result = parse_file(LONG_SAMPLE, "auto", CHICAGO, [])
    assert (result.format, result.rows, len(result.readings), result.bad_rows) == ("long", 354, 354, [])
    first = result.readings[0]
    assert (first.point, first.point_kind, first.value, first.line, first.desc) == (
        "2308",
        "sid",
        51.56,
        2,
        "INFLU",
    )
    assert first.time.isoformat() == "2025-04-30T12:05:00-05:00"  # CDT: naive plant time made explicit
    assert first.utc == utc("2025-04-30T17:05:00")
    assert {r.point for r in result.readings} == {"2308", "8528"}


def test_long_rows_ending_with_empty_fields_are_read() -> None:
    text = long_csv([("2025-01-10T08:00:00", 2308, "1.5")], trailing=",,,")
    result = parse_text(text, "t.csv", "auto", CHICAGO, [])
    assert [(r.value, r.time.isoformat()) for r in result.readings] == [(1.5, "2025-01-10T08:00:00-06:00")]


def test_long_bad_rows_name_line_and_reason_and_good_rows_still_count() -> None:
    text = "\n".join(
        [
            "timestamp,sid,shortdesc,rjn_siteid,rjn_entityid,value",
            "2025-01-10T08:00:00,2308,INFLU,S,1,1.5",
            "2025-01-10T08:05:00,23x8,INFLU,S,1,1.6",
            "2025-01-10T08:10:00,2308,INFLU,S,1,abc",
            "yesterday,2308,INFLU,S,1,1.7",
            "2025-01-10T08:15:00,2308,INFLU,S,1",
            "2025-01-10T08:20:00,2308,INFLU,S,1,nan",
            "2025-01-10T08:25:00,2308,INFLU,S,1,",
            "2025-01-10T08:30:00,2308,INFLU,S,1,1.8",
        ]
    )
    result = parse_text(text, "x.csv", "long", CHICAGO, [])
    assert [r.value for r in result.readings] == [1.5, 1.8]
    assert [str(bad) for bad in result.bad_rows] == [
        "x.csv:3: sid '23x8' is not a point number",
        "x.csv:4: value 'abc' is not a number",
        "x.csv:5: 'yesterday' is not a timestamp (expected YYYY-MM-DDTHH:MM:SS)",
        "x.csv:6: expected 6 fields (timestamp,sid,shortdesc,rjn_siteid,rjn_entityid,value), found 5",
        "x.csv:7: value 'nan' is not a number",
        "x.csv:8: the value is empty",
    ]
    assert result.rows == 8


def test_a_long_file_without_a_value_column_is_refused_at_its_header() -> None:
    with pytest.raises(EdsInputError, match=r"^x.csv:1: the header has no value column"):
        parse_text("timestamp,sid,shortdesc\n2025-01-10T08:00:00,1,A\n", "x.csv", "long", CHICAGO, [])


# --- wide ---------------------------------------------------------------------------


def test_the_wide_example_reads_iess_columns_bom_and_empty_cells() -> None:
    result = parse_file(EDS_DATA / "wide_trend.csv", "auto", CHICAGO, [])
    assert result.format == "wide"
    assert (result.rows, len(result.readings), result.bad_rows) == (5, 9, [])
    by_point: dict[str, list[tuple[int, float | None]]] = {}
    for reading in result.readings:
        by_point.setdefault(reading.point, []).append((reading.line, reading.value))
    assert by_point["FI-405/415.UNIT1@NET1"] == [(3, 12.5), (4, 12.75), (5, 13.0), (7, 13.25)]  # line 6 empty
    assert by_point["M100FI.UNIT0@NET0"][-1] == (7, 51.9)
    assert {r.point_kind for r in result.readings} == {"iess"}


def test_a_bad_wide_cell_is_reported_alone_and_its_row_neighbours_count() -> None:
    text = wide_csv(["A.UNIT0@NET0", "B.UNIT0@NET0"], [(datetime(2025, 1, 10, 8), ["1.5", "oops"])])
    result = parse_text(text, "w.csv", "auto", CHICAGO, [])
    assert [(r.point, r.value) for r in result.readings] == [("A.UNIT0@NET0", 1.5)]
    assert [str(b) for b in result.bad_rows] == [
        "w.csv:3: column 4 (B.UNIT0@NET0): value 'oops' is not a number"
    ]


def test_a_wide_row_whose_date_and_time_disagree_is_a_bad_row() -> None:
    text = wide_csv(["A"], [(datetime(2025, 1, 10, 8), ["1"])]).replace("1/10/2025", "1/11/2025")
    result = parse_text(text, "w.csv", "wide", CHICAGO, [])
    assert [str(b) for b in result.bad_rows] == [
        "w.csv:3: the date column says 1/11/2025 but the time column says 2025-01-10T08:00:00"
    ]


def test_a_wide_second_header_naming_another_point_is_refused() -> None:
    text = wide_csv(["A", "B"], []).replace("VALUE(\\B\\)", "VALUE(\\C\\)")
    with pytest.raises(EdsInputError, match=r"^w.csv:2: column 4 is .*the first row names \\B\\ there"):
        parse_text(text, "w.csv", "wide", CHICAGO, [])


# --- two-column ---------------------------------------------------------------------------


def test_the_two_column_example_needs_the_point_from_the_command_line() -> None:
    result = parse_file(EDS_DATA / "two_column.csv", "auto", CHICAGO, ["M310LI.UNIT0@NET0"])
    assert result.format == "two-column"
    assert [(r.point, r.point_kind, r.value) for r in result.readings][0] == (
        "M310LI.UNIT0@NET0",
        "given",
        7.25,
    )
    with pytest.raises(EdsInputError, match="give --point exactly once"):
        parse_file(EDS_DATA / "two_column.csv", "auto", CHICAGO, [])


def test_two_column_timestamps_with_an_offset_keep_it() -> None:
    result = parse_text(
        "2025-07-01T12:00:00+02:00,5\n2025-07-01T12:00:00Z,6\n", "t.csv", "two-column", CHICAGO, ["P"]
    )
    assert [r.utc for r in result.readings] == [utc("2025-07-01T10:00:00"), utc("2025-07-01T12:00:00")]
    assert result.readings[0].time.isoformat() == "2025-07-01T12:00:00+02:00"


# --- tabular trend JSON ---------------------------------------------------------------------


def test_the_trend_json_example_names_points_from_its_request() -> None:
    path = EDS_DATA / "tabular_trend.json"
    result = parse_file(path, "auto", CHICAGO, [])
    assert result.format == "json"
    assert (result.rows, len(result.readings), result.bad_rows) == (7, 7, [])
    first = result.readings[0]
    assert (first.point, first.point_kind, first.value, first.quality) == (
        "M100FI.UNIT0@NET0",
        "iess",
        48.93896783431371,
        "G",
    )
    assert first.utc == datetime.fromtimestamp(1757761200, UTC)
    null_sample = [r for r in result.readings if r.value is None]
    assert [(r.quality, r.utc) for r in null_sample] == [("B", datetime.fromtimestamp(1757762100, UTC))]
    lines = path.read_text().splitlines()
    assert lines[first.line - 1].strip() == "["  # the line where the sample's array starts
    assert lines[first.line].strip() == "1757761200,"


def test_bare_trend_json_takes_point_names_from_the_command_line_in_order() -> None:
    text = json.dumps([{"status": "LAST", "items": [[[1700000000, 1.0, "G"]], [[1700000000, 2.0, "Q"]]]}])
    result = parse_text(text, "t.json", "auto", CHICAGO, ["A", "B"])
    assert [(r.point, r.value, r.quality) for r in result.readings] == [("A", 1.0, "G"), ("B", 2.0, "Q")]
    with pytest.raises(EdsInputError, match="does not name its points: give --point once per point"):
        parse_text(text, "t.json", "auto", CHICAGO, [])
    with pytest.raises(
        EdsInputError, match="chunk 0 has 2 sample lists; expected one list for each of 1 points"
    ):
        parse_text(text, "t.json", "auto", CHICAGO, ["A"])


def test_bad_trend_samples_are_reported_with_their_line() -> None:
    text = '[{"status": "LAST", "items": [[\n[1700000000, 1.0, "G"],\n[1700000300, 2.0, "X"],\n[1700000600, "abc", "G"],\n[1700000900, 3.0]\n]]}]'
    result = parse_text(text, "t.json", "json", CHICAGO, ["A"])
    assert [r.value for r in result.readings] == [1.0]
    assert [str(b) for b in result.bad_rows] == [
        't.json:3: sample 1 of point A in chunk 0: quality "X" is not one of B, G, N, Q, S, U',
        't.json:4: sample 2 of point A in chunk 0: value "abc" is not a number',
        "t.json:5: sample 3 of point A in chunk 0: [1700000900, 3.0] is not [unix_ts, value, quality] (or [..., alarm_word])",
    ]


def test_a_trend_chunk_that_timed_out_fails_the_file() -> None:
    text = json.dumps([{"status": "TIMEOUT", "items": []}])
    with pytest.raises(EdsInputError, match="chunk 0 has status TIMEOUT: the EDS request did not finish"):
        parse_text(text, "t.json", "json", CHICAGO, ["A"])


def test_broken_json_is_refused_with_its_line() -> None:
    with pytest.raises(EdsInputError, match=r"^t.json:3: not valid JSON"):
        parse_text('[\n{"status": "LAST",\n "items": [}]', "t.json", "json", CHICAGO, ["A"])


# --- point maps -------------------------------------------------------------------------------


def test_the_real_point_map_resolves_sid_idcs_and_iess() -> None:
    points = read_point_map(POINT_MAP)
    by_sid = points.find("2308", "sid")
    assert by_sid is not None and (by_sid.iess, by_sid.idcs, by_sid.zd, by_sid.desc) == (
        "M100FI.UNIT0@NET0",
        "M100FI",
        "Maxson",
        "INFLU",
    )
    assert (
        points.find("FI8001", "given")
        == points.find("8528", "sid")
        == points.find("FI8001.UNIT0@NET0", "iess")
    )
    assert points.find("9999", "sid") is None


def test_the_points_export_text_reads_quoted_and_unquoted_attributes() -> None:
    points = read_point_map(EDS_DATA / "points_export.txt")
    well = points.find("2382", "sid")
    assert well is not None
    assert (well.iess, well.desc, well.units, well.zd) == (
        "M310LI.UNIT0@NET0",
        "WET WELL 'A' LEVEL",
        "FT",
        "Maxson",
    )
    influent = points.find("M100FI", "given")
    assert influent is not None and (influent.sid, influent.units) == (2308, "MGD")


def test_a_points_export_line_that_cannot_be_read_names_its_line() -> None:
    with pytest.raises(EdsInputError, match=r"^p.txt:2: cannot read an attribute NAME=value at"):
        parse_points_export("POINT SID=1 IESS='A'\nPOINT SID=2 IESS='B' DESC='unterminated\n", "p.txt")


def test_a_point_map_mapping_one_sid_twice_is_refused() -> None:
    with pytest.raises(EdsInputError, match=r"^m.csv:3: sid 1 is already mapped at line 2"):
        parse_point_csv("zd,iess,sid\nP,A.U@N,1\nP,B.U@N,1\n", "m.csv")


def test_a_sid_shared_by_two_plants_needs_the_plant_to_choose() -> None:
    points = parse_point_csv("zd,iess,sid\nMaxson,A.U@N,1\nStiles,B.U@N,1\n", "m.csv")
    with pytest.raises(EdsInputError, match="names 2 points .*give --plant to choose"):
        points.find("1", "sid")
    found = points.find("1", "sid", plant="stiles")
    assert found is not None and found.iess == "B.U@N"


# --- detection and unusable files ----------------------------------------------------------------


def test_formats_are_detected_from_content() -> None:
    assert detect_format(LONG_SAMPLE.read_text(), "live.csv") == "long"
    assert detect_format('[{"status": "LAST"}]', "x.txt") == "json"
    assert detect_format("2025-01-01T00:00:00,1\n", "x.csv") == "two-column"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "x.csv: the file is empty"),
        (b"zd,idcs,iess,sid\n", "x.csv:1: this is a point map, not readings: pass it with --points"),
        (b"hello,world,again\n", "x.csv:1: cannot tell the format from 'hello,world,again': give --format"),
        (
            b"timestamp,sid,value\n2025-01-01T00:00:00,1,caf\xe9\n",
            "x.csv:2: not UTF-8 text: byte 0xE9 at offset 45",
        ),
    ],
)
def test_unusable_files_are_refused_naming_file_line_and_reason(
    tmp_path: Path, content: bytes, message: str
) -> None:
    path = tmp_path / "x.csv"
    path.write_bytes(content)
    with pytest.raises(EdsInputError) as refused:
        parse_file(path, "auto", CHICAGO, [])
    assert refused.value.message.replace(str(tmp_path) + "/", "").startswith(message)


def test_a_missing_file_is_refused_with_its_name(tmp_path: Path) -> None:
    with pytest.raises(EdsInputError, match="cannot read the file: No such file or directory"):
        parse_file(tmp_path / "nope.csv", "auto", CHICAGO, [])


def test_an_excel_bom_is_dropped_before_parsing(tmp_path: Path) -> None:
    """The BOM of an Excel export is dropped before parsing, whatever the format."""
    path = write(tmp_path / "w.csv", wide_csv(["A"], [(datetime(2025, 1, 1), ["1"])]))
    assert path.read_bytes().startswith(b"\xef\xbb\xbf")
    assert parse_file(path, "auto", CHICAGO, []).readings[0].point == "A"
