"""One error tree: wire codes, exit codes and classes agree with the table Rust is held to."""

from __future__ import annotations

import json

import pytest

from statehub.hub import errors
from statehub.hub.protocol import Error
from tests.conftest import VECTORS

TABLE = json.loads((VECTORS / "errors.json").read_text())["errors"]
CODES = {cls.code for cls in errors.ERROR_CLASSES} - {"already_running"}


@pytest.mark.parametrize("row", TABLE, ids=[row["code"] for row in TABLE])
def test_every_code_has_its_class_and_exit_code(row: dict[str, object]) -> None:
    """Each code maps to the class and exit code in tests/vectors/errors.json."""
    cls = getattr(errors, str(row["python"]))
    assert cls.exit_code == row["exit"]
    if row["origin"] == "wire":
        raised = errors.error_from_reply(Error(code=str(row["code"]), message="m"))
        assert type(raised) is cls
        assert raised.exit_code == row["exit"]
        assert errors.reply_from_error(raised).code == row["code"]  # an unknown code survives the trip
    else:
        assert cls.code == row["code"]


def test_the_table_covers_every_class() -> None:
    """A class added to the tree without a row (and so without a Rust twin) fails here."""
    named = {row["python"] for row in TABLE}
    assert {cls.__name__ for cls in errors.ERROR_CLASSES} - {"HubAlreadyRunning"} == named


def test_every_error_is_a_statehub_error_and_input_errors_are_not_value_errors() -> None:
    """One root: catching StatehubError catches local validation, the mirror and the hub's refusals."""
    from statehub.hub.rules import check_key

    with pytest.raises(errors.StatehubError) as raised:
        check_key("plant..rate")
    assert type(raised.value) is errors.InvalidRequest
    assert raised.value.message == "invalid key 'plant..rate': empty segment at position 6"
    assert all(issubclass(cls, errors.StatehubError) for cls in errors.ERROR_CLASSES)


def test_a_hint_comes_from_the_class_unless_the_raiser_gives_one() -> None:
    assert "--expect-rev" in errors.ConflictError("c").hint
    assert errors.ConflictError("c", hint="do this").hint == "do this"
    assert errors.NotFound("n").hint == ""


def test_the_docs_show_the_same_table() -> None:
    """docs/clients.md's table of codes, exit codes, Python classes and Rust variants is errors.json's."""
    docs = (VECTORS.parent.parent / "docs" / "clients.md").read_text()
    section = docs.split("## Errors and exit codes", 1)[1].split("\n## ", 1)[0]
    shown = {
        tuple(cell.strip().strip("`") for cell in line.strip("|").split("|")[:4])
        for line in section.splitlines()
        if line.startswith("| `")
    }
    table = {(row["code"], str(row["exit"]), row["python"], row["rust"]) for row in TABLE if row["code"] in CODES}
    assert shown == table


def test_front_end_input_errors_are_invalid_requests() -> None:
    """An unusable EDS file, --strict with bad rows and a sync-file save that does not parse are bad input."""
    from statehub.eds.ingest import BadRowsRefused
    from statehub.eds.records import BadRow, EdsInputError
    from statehub.sync_file.document import FileError

    errors_raised = [
        EdsInputError("x.csv", 3, "bad header"),
        BadRowsRefused([BadRow("x.csv", 4, "not a number")]),
        FileError("no header", 1, 1),
    ]
    assert all(isinstance(error, errors.InvalidRequest) and error.exit_code == 2 for error in errors_raised)
    assert errors_raised[0].message == "x.csv:3: bad header"
