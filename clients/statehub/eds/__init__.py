"""Ingesting Ovation EDS exports into the hub (``statehub ingest-eds``); see docs/eds.md.

Parsing is pure (text in, readings and bad rows out), one module per format:
long_csv, wide_csv, two_column, trend_json, and point_map for the point map.
keys holds the key scheme, timezones the daylight-saving rule, plan the
latest/replay/idempotency rules, ingest the part that talks to the hub, and
watch the drop-folder loop.
"""

from __future__ import annotations

from statehub.eds.formats import FORMATS, detect_format, parse_file, parse_text
from statehub.eds.ingest import BadRowsRefused, Options, Summary, ingest, parse_all
from statehub.eds.keys import escape_segment, point_key, split_point_key, unescape_segment
from statehub.eds.point_map import PointInfo, PointMap, read_point_map
from statehub.eds.records import BadRow, EdsInputError, ParseResult, Reading

__all__ = [
    "FORMATS",
    "BadRow",
    "BadRowsRefused",
    "EdsInputError",
    "Options",
    "ParseResult",
    "PointInfo",
    "PointMap",
    "Reading",
    "Summary",
    "detect_format",
    "escape_segment",
    "ingest",
    "parse_all",
    "parse_file",
    "parse_text",
    "point_key",
    "read_point_map",
    "split_point_key",
    "unescape_segment",
]
