"""statehub.web as shipped: its files are in the wheel, it loads nothing from elsewhere, the core never imports it."""

from __future__ import annotations

import fnmatch
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WEB = ROOT / "clients" / "statehub" / "web"


def test_every_static_file_is_package_data() -> None:
    """The page, its script, styles and the vendored chart library are all matched by pyproject's package-data."""
    patterns = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["statehub.web"]
    files = [p.relative_to(WEB).as_posix() for p in (WEB / "static").rglob("*") if p.is_file() and "__pycache__" not in p.parts]
    assert "static/index.html" in files and "static/vendor/uplot/uPlot.iife.min.js" in files
    unshipped = [f for f in files if not any(fnmatch.fnmatch(f, pattern) for pattern in patterns)]
    assert unshipped == []


def test_the_page_loads_nothing_from_another_origin() -> None:
    """No CDN: every script and stylesheet the page names is served by statehub web itself."""
    page = (WEB / "static" / "index.html").read_text()
    assert "http://" not in page and "https://" not in page and "//" not in page.replace("<!--", "")
    for name in ("app.js", "app.css"):
        text = (WEB / "static" / name).read_text()
        assert "http://" not in text and "https://" not in text, name


def test_the_vendored_chart_library_keeps_its_license() -> None:
    """uPlot is MIT: its LICENSE and where it came from sit beside it."""
    vendor = WEB / "static" / "vendor" / "uplot"
    assert "MIT License" in (vendor / "LICENSE").read_text()
    assert "npm pack uplot@" in (vendor / "README.md").read_text()


def test_the_cli_does_not_import_the_web_stack() -> None:
    """`statehub` starts without Starlette or uvicorn: the web extra loads only for `statehub web`."""
    code = "import sys, statehub.cli; print(sorted(m for m in ('starlette', 'uvicorn', 'statehub.web.app') if m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
