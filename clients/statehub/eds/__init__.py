"""Ingesting Ovation EDS exports into the hub (``statehub ingest-eds``); see docs/eds.md.

Parsing is pure (text in, readings and bad rows out), one module per format:
long_csv, wide_csv, two_column, trend_json, and point_map for the point map.
keys holds the readable key scheme and plants which plant a point belongs to;
quality the status a reading gets; timezones the daylight-saving rule; plan the
latest/replay/idempotency rules; ingest the part that talks to the hub; watch
the drop-folder loop; migrate renames the escaped keys of earlier versions;
trend reads a point's readings back.
"""

from __future__ import annotations

from statehub.eds.formats import FORMATS, detect_format, parse_file, parse_text
from statehub.eds.ingest import BadRowsRefused, Options, Summary, ingest, parse_all
from statehub.eds.keys import plant_segment, point_key, split_iess
from statehub.eds.point_map import PointInfo, PointMap, read_point_map
from statehub.eds.quality import status_of
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
    "ingest",
    "parse_all",
    "parse_file",
    "parse_text",
    "plant_segment",
    "point_key",
    "read_point_map",
    "split_iess",
    "status_of",
]
