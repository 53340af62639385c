"""Shared fixtures: real hub processes in temp data dirs, the CLI as a real subprocess."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from statehub.testing import HubProcess

VECTORS = Path(__file__).parent / "vectors"
SCRIPTS = Path(__file__).resolve().parent.parent / "scripts"


def load_script(name: str) -> ModuleType:
    """Import scripts/NAME.py (scripts are not a package) so tests share its code."""
    spec = importlib.util.spec_from_file_location(f"statehub_script_{name}", SCRIPTS / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session", autouse=True)
def bytecode_cache_for_subprocesses(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Let the hubs and CLIs the tests start cache their bytecode, in a folder of this session's own.

    With PYTHONDONTWRITEBYTECODE set (as in containers), every one of the suite's thousands of
    Python subprocesses would compile statehub's modules from source again: ~100 ms of CPU per
    hub start or CLI run.  A cache prefix in the session's temp dir keeps the source tree free of
    bytecode, as the variable asks, and compiles each module once.
    """
    if not os.environ.get("PYTHONDONTWRITEBYTECODE") or os.environ.get("PYTHONPYCACHEPREFIX"):
        yield  # bytecode is cached already, in the tree or where the user chose
        return
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("PYTHONDONTWRITEBYTECODE")
        patch.setenv("PYTHONPYCACHEPREFIX", str(tmp_path_factory.getbasetemp() / "pycache"))
        yield


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def hub(data_dir: Path) -> Iterator[HubProcess]:
    with HubProcess(data_dir) as process:
        yield process


def cli_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STATEHUB_")}
    env.update(extra)
    return env


def run_cli(
    data_dir: Path, *args: str, timeout: float = 30, env: dict[str, str] | None = None, input: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``statehub --data-dir DATA_DIR ARGS`` as a real process."""
    return subprocess.run(
        [sys.executable, "-m", "statehub.cli", "--data-dir", str(data_dir), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env if env is not None else cli_env(),
        input=input,
    )
