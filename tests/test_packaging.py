"""The package metadata ships every module the code has."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_every_python_package_is_listed_for_the_wheel() -> None:
    """A subpackage missing from pyproject would be absent from installs (and the Docker image)."""
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {"hub"} | {
        ".".join(("statehub", *init.parent.relative_to(ROOT / "clients" / "statehub").parts))
        for init in (ROOT / "clients" / "statehub").rglob("__init__.py")
    }
    assert found == listed
