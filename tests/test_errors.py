"""One error tree: wire codes, exit codes and classes agree with the table Rust is held to."""

from __future__ import annotations

import json

import pytest

from statehub.hub import errors
from statehub.hub.protocol import Error
from tests.conftest import VECTORS

TABLE = json.loads((VECTORS / "errors.json").read_text())["errors"]


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
