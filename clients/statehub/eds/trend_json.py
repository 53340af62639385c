"""Tabular trend JSON, as the EDS REST API returns it for ``GET /trend/tabular?id=``.

The response is a list of chunks; chunk ``items[i]`` holds the samples of the
i-th point of the request, each ``[unix_ts, value, quality]``:

    [{"status": "LAST", "items": [[[1757763000, 48.93, "G"], ...], [...]]}]

The response does not name its points, so a file is one of:

- the bare response (a list of chunks, or one chunk): name the points with
  ``--point``, once per point, in the order of the request;
- ``{"request": <the POST /trend/tabular body>, "response": <the chunks>}``:
  the points are the request's ``items[i].pointId`` (``iess`` or ``sid``).

Timestamps are Unix seconds (instants; no daylight-saving question).  Quality
is one of the letters G, B, U, S, N, Q and is stored as given (with its status,
statehub.eds.quality); a sample may carry a fourth element, the Ovation alarm
word.  A sample with a null value is kept (its quality says why); a chunk whose
status is TIMEOUT or FAILURE means the export is incomplete and fails the file.
"""

from __future__ import annotations

import json
import math
from typing import Any
from zoneinfo import ZoneInfo

from statehub.eds import json_lines
from statehub.eds.quality import MAX_ALARM_WORD, QUALITY_LETTERS
from statehub.eds.records import BadRow, EdsInputError, ParseResult, PointKind, Reading
from statehub.eds.timezones import from_unix

FORMAT = "json"
FAILED_STATUSES = frozenset({"TIMEOUT", "FAILURE", "ERROR"})


def parse_trend_json(text: str, file: str, zone: ZoneInfo, points: list[str]) -> ParseResult:
    try:
        document = json_lines.load(text)
    except json.JSONDecodeError as exc:
        raise EdsInputError(file, exc.lineno, f"not valid JSON: {exc.msg} (column {exc.colno})") from None
    except RecursionError:
        raise EdsInputError(file, None, "not a trend file: JSON nested too deeply") from None
    chunks, named = _chunks_and_points(document.value, file)
    names = _point_names(named, points, file)
    result = ParseResult(file, FORMAT)
    for number, chunk in enumerate(chunks):
        line = document.line_of(chunks, number)
        for (name, kind), samples in zip(
            names, _chunk_items(chunk, number, line, len(names), file), strict=True
        ):
            for index, sample in enumerate(samples):
                result.rows += 1
                sample_line = document.line_of(samples, index)
                try:
                    result.readings.append(_reading(sample, name, kind, zone, file, sample_line))
                except ValueError as exc:
                    result.bad_rows.append(
                        BadRow(file, sample_line, f"sample {index} of point {name} in chunk {number}: {exc}")
                    )
    return result


def _chunks_and_points(value: Any, file: str) -> tuple[list[Any], list[tuple[str, PointKind]] | None]:
    if isinstance(value, list):
        return value, None
    if isinstance(value, dict) and "items" in value and "status" in value:
        return [value], None
    if (
        isinstance(value, dict)
        and isinstance(value.get("response"), list)
        and isinstance(value.get("request"), dict)
    ):
        return value["response"], _request_points(value["request"], file)
    raise EdsInputError(
        file, 1, "not a tabular trend file: expected a list of chunks {status, items}, or {request, response}"
    )


def _request_points(request: dict[str, Any], file: str) -> list[tuple[str, PointKind]]:
    items = request.get("items")
    if not isinstance(items, list) or not items:
        raise EdsInputError(file, None, "the request has no items: each item's pointId names a point")
    names: list[tuple[str, PointKind]] = []
    for index, item in enumerate(items):
        point_id = item.get("pointId") if isinstance(item, dict) else None
        if isinstance(point_id, dict) and isinstance(point_id.get("iess"), str) and point_id["iess"]:
            names.append((point_id["iess"], "iess"))
        elif isinstance(point_id, dict) and _is_integer(point_id.get("sid")):
            names.append((str(point_id["sid"]), "sid"))
        else:
            raise EdsInputError(file, None, f"request item {index} has no pointId with an iess or a sid")
    return names


def _point_names(
    named: list[tuple[str, PointKind]] | None, given: list[str], file: str
) -> list[tuple[str, PointKind]]:
    if named is None:
        if not given:
            raise EdsInputError(
                file,
                None,
                "this trend file does not name its points: give --point once per point, in request order",
            )
        return [(name, "given") for name in given]
    if given and given != [name for name, _kind in named]:
        raise EdsInputError(
            file, None, f"the file names its points {[n for n, _k in named]}, but --point gave {given}"
        )
    return named


def _chunk_items(chunk: Any, number: int, line: int, count: int, file: str) -> list[list[Any]]:
    if not isinstance(chunk, dict) or not isinstance(chunk.get("items"), list):
        raise EdsInputError(file, line, f"chunk {number} is not an object with an items list")
    status = chunk.get("status")
    if isinstance(status, str) and status.upper() in FAILED_STATUSES:
        raise EdsInputError(
            file, line, f"chunk {number} has status {status}: the EDS request did not finish; export again"
        )
    items: list[list[Any]] = chunk["items"]
    if len(items) != count or not all(isinstance(samples, list) for samples in items):
        raise EdsInputError(
            file,
            line,
            f"chunk {number} has {len(items)} sample lists; expected one list for each of {count} points",
        )
    return items


def _reading(sample: Any, name: str, kind: PointKind, zone: ZoneInfo, file: str, line: int) -> Reading:
    if not isinstance(sample, list) or len(sample) not in (3, 4):
        raise ValueError(f"{json.dumps(sample)} is not [unix_ts, value, quality] (or [..., alarm_word])")
    stamp, value, quality = sample[:3]
    alarm = sample[3] if len(sample) == 4 else None
    if alarm is not None and not (_is_integer(alarm) and 0 <= alarm <= MAX_ALARM_WORD):
        raise ValueError(f"alarm word {json.dumps(alarm)} is not an integer in 0..{MAX_ALARM_WORD}")
    if not _is_number(stamp):
        raise ValueError(f"timestamp {json.dumps(stamp)} is not Unix seconds")
    if value is not None and not _is_number(value):
        raise ValueError(f"value {json.dumps(value)} is not a number")
    if not isinstance(quality, str) or quality not in QUALITY_LETTERS:
        raise ValueError(f"quality {json.dumps(quality)} is not one of {', '.join(sorted(QUALITY_LETTERS))}")
    try:
        when = from_unix(stamp, zone)
    except (OverflowError, OSError, ValueError):
        raise ValueError(f"timestamp {stamp} is out of range") from None
    return Reading(name, kind, when, None if value is None else float(value), quality, file, line, alarm=alarm)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _is_integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
