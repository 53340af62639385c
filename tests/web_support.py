"""Shared by the web tests: a real `statehub web` process, an SSE reader, and a headless Chromium."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import httpx

from statehub.testing import wait_until
from tests.conftest import cli_env

READY = re.compile(r"statehub web: serving (http://\S+/)")
SCREENSHOTS = Path(__file__).resolve().parent.parent / ".venv" / "web-screenshots"


class WebProcess:
    """``statehub web --port 0`` on loopback against the hub of ``data_dir``; ``url`` once it serves."""

    def __init__(self, data_dir: Path, *args: str, heartbeat: float = 0.5) -> None:
        self.data_dir = data_dir
        self.args = ["--heartbeat", str(heartbeat), *args]
        self.process: subprocess.Popen[str] | None = None
        self.url = ""
        self.log_lines: list[str] = []
        self._ready = threading.Event()
        self._reader: threading.Thread | None = None

    def command(self) -> list[str]:
        return [sys.executable, "-m", "statehub.cli", "--data-dir", str(self.data_dir), "--timeout", "2", "web", "--port", "0", *self.args]

    def start(self, timeout: float = 20.0) -> WebProcess:
        self._ready.clear()
        self.process = subprocess.Popen(
            self.command(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=cli_env(PYTHONUNBUFFERED="1")
        )
        self._reader = threading.Thread(target=self._read, args=(self.process.stderr,), daemon=True)
        self._reader.start()
        if not self._ready.wait(timeout):
            self.kill()
            raise RuntimeError(f"statehub web did not start within {timeout} s; log:\n{self.log}")
        return self

    def _read(self, stream: IO[str] | None) -> None:
        assert stream is not None
        for line in stream:
            self.log_lines.append(line)
            found = READY.search(line)
            if found:
                self.url = found.group(1)
                self._ready.set()

    @property
    def log(self) -> str:
        return "".join(self.log_lines)

    def kill(self) -> None:
        """SIGKILL, by PID, and release its log pipe."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(15)
        if self._reader is not None:
            self._reader.join(15)
        if self.process.stderr is not None:
            self.process.stderr.close()

    def terminate(self, timeout: float = 15.0) -> int:
        """SIGTERM and wait: a clean stop."""
        assert self.process is not None
        self.process.terminate()
        code = self.process.wait(timeout)
        self.kill()
        return code

    def http(self, **options: Any) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=10.0, **options)

    def wait_following(self, timeout: float = 15.0, token: str | None = None) -> None:
        """Until the web server follows the hub (its status says live)."""
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        with self.http(headers=headers) as http:
            assert wait_until(lambda: http.get("/api/status").json()["state"] == "live", timeout), self.log

    def __enter__(self) -> WebProcess:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.kill()


@dataclass
class SseEvent:
    event: str
    data: Any
    id: str | None = None


@dataclass
class SseReader:
    """Reads one event stream in a thread and keeps every event and its raw bytes."""

    url: str
    headers: dict[str, str] = field(default_factory=dict)
    events: list[SseEvent] = field(default_factory=list)
    raw: bytearray = field(default_factory=bytearray)
    status_code: int = 0
    ended: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            with httpx.stream("GET", self.url, headers=self.headers, timeout=httpx.Timeout(10.0, read=30.0)) as response:
                self.status_code = response.status_code
                buffer = ""
                for text in response.iter_text():
                    self.raw.extend(text.encode())
                    buffer += text
                    while "\n\n" in buffer:
                        block, buffer = buffer.split("\n\n", 1)
                        self._parse(block)
                    if self._stop.is_set():
                        return
        except httpx.HTTPError:
            pass
        finally:
            self.ended.set()

    def _parse(self, block: str) -> None:
        fields: dict[str, str] = {}
        for line in block.split("\n"):
            if line.startswith(":") or ":" not in line:
                continue
            name, _, value = line.partition(":")
            fields[name] = value.removeprefix(" ")
        if "data" in fields:
            self.events.append(SseEvent(fields.get("event", "message"), json.loads(fields["data"]), fields.get("id")))

    def of(self, kind: str) -> list[SseEvent]:
        return [event for event in list(self.events) if event.event == kind]

    def changed_keys(self) -> list[tuple[int, str]]:
        return [(change["rev"], change["key"]) for event in self.of("change") for change in event.data["changes"]]

    def state(self) -> dict[str, Any]:
        """The values a page holds after applying every event so far: resyncs replace, changes apply."""
        values: dict[str, Any] = {}
        for event in list(self.events):
            if event.event == "resync":
                values = {item["key"]: item["value"] for item in event.data["items"]}
            elif event.event == "change":
                for change in event.data["changes"]:
                    if change["op"] == "set":
                        values[change["key"]] = change["value"]
                    else:
                        values.pop(change["key"], None)
        return values

    def last_id(self) -> str | None:
        return next((event.id for event in reversed(list(self.events)) if event.id), None)

    def close(self) -> None:
        self._stop.set()


def chromium_paths() -> tuple[str, str] | None:
    browser = shutil.which("chromium")
    driver = shutil.which("chromedriver")
    return (browser, driver) if browser and driver else None


def chromium(user_data_dir: Path, width: int = 1400, height: int = 900) -> Any:
    """Headless Debian Chromium through its own chromedriver: no download, no network beyond loopback."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    paths = chromium_paths()
    assert paths is not None
    browser, driver = paths
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-extensions",
        "--disable-default-apps",
        "--no-first-run",
        "--no-default-browser-check",
        "--metrics-recording-only",
        "--password-store=basic",
        f"--user-data-dir={user_data_dir}",
        f"--window-size={width},{height}",
    ):
        options.add_argument(flag)
    return webdriver.Chrome(options=options, service=Service(executable_path=driver))


def screenshot(driver: Any, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    driver.save_screenshot(str(path))
    return path


def stop(processes: Iterator[Any]) -> None:
    for process in processes:
        process.kill()
