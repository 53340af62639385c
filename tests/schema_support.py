"""The plant schema of tests/vectors/schema.json, for the tests that run it on a real hub."""

from __future__ import annotations

import json

from .conftest import VECTORS


def plant_schema() -> str:
    """The main schema text of the docs' plant example (the vectors keep it as lines)."""
    table = json.loads((VECTORS / "schema.json").read_text(encoding="utf-8"))
    return "\n".join(table["schemas"]["plant"]["statehub.schema"]) + "\n"


SMALL = """\
[schema]
format = 1

[unknown]
"plant." = "refuse"
"eds." = "warn"

[keys."plant.*.rate"]
type = "integer"
min = 0
max = 500
default = 120
unit = "m3/h"
description = "Flow setpoint of one train."

[keys."plant.mode"]
type = "enum"
values = ["auto", "manual"]

[keys."plant.token"]
type = "string"
secret = true

[keys."eds.*.*"]
type = "table"
writable_by = ["eds"]

[keys."service.*.heartbeat"]
type = "number"
ttl = 1.5
"""
