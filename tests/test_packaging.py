"""The package metadata ships every module the code has, under one top-level name."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_every_python_package_is_listed_for_the_wheel() -> None:
    """A subpackage missing from pyproject would be absent from installs (and the Docker image)."""
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {"statehub.hub"} | {
        ".".join(("statehub", *init.parent.relative_to(ROOT / "clients" / "statehub").parts))
        for init in (ROOT / "clients" / "statehub").rglob("__init__.py")
    }
    assert found == listed


@pytest.mark.slow
def test_the_wheel_installs_only_the_statehub_package(tmp_path: Path) -> None:
    """No top-level `hub` (a PyPI name of its own, and any user's module): everything is under statehub."""
    source = tmp_path / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "target")
    shutil.copytree(ROOT / "hub", source / "hub", ignore=ignore)
    shutil.copytree(ROOT / "clients" / "statehub", source / "clients" / "statehub", ignore=ignore)
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path), str(source)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert built.returncode == 0, built.stderr
    (wheel,) = tmp_path.glob("statehub-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    top_level = {name.split("/")[0] for name in names if not name.split("/")[0].endswith(".dist-info")}
    assert top_level == {"statehub"}
    assert "statehub/hub/protocol.py" in names and "statehub/hub/py.typed" in names
