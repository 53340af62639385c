"""Run a real hub process for tests and wait until it is ready.

    with HubProcess(tmp_path) as hub:
        hub.client().set("a", 1)
        hub.kill()          # SIGKILL
        hub.start()         # same data dir, new process

Readiness is a handshake: the hub logs its "serving" banner only after it has
bound its sockets and written hub.json.  A hub that exits before that is
reported at once, with its log.

``STATEHUB_TEST_TCP=1`` in the environment runs every HubProcess on loopback
tcp (``serve --tcp``) instead of ipc, as on Windows: ``STATEHUB_TEST_TCP=1
scripts/test`` runs the whole suite that way.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO, Any

READY_MARK = " ready: serving "
ENV_TCP = "STATEHUB_TEST_TCP"


class HubProcess:
    def __init__(self, data_dir: Path, *, heartbeat: float = 0.2, args: list[str] | None = None) -> None:
        self.data_dir = Path(data_dir)
        self.heartbeat = heartbeat
        self.args = args or []
        self.process: subprocess.Popen[str] | None = None
        self.log_lines: list[str] = []
        self._ready = threading.Event()
        self._settled = threading.Event()  # ready, or its log ended (the hub exited)
        self._reader: threading.Thread | None = None

    @property
    def log(self) -> str:
        return "".join(self.log_lines)

    def command(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "statehub.hub",
            "--data-dir",
            str(self.data_dir),
            "--heartbeat",
            str(self.heartbeat),
            *self._tcp_unless_chosen(),
            *self.args,
        ]

    def _tcp_unless_chosen(self) -> list[str]:
        """``--tcp`` when $STATEHUB_TEST_TCP asks for it and the test chose no endpoints itself."""
        chosen = any(arg.split("=")[0] in ("--tcp", "--rpc", "--events") for arg in self.args)
        return ["--tcp"] if os.environ.get(ENV_TCP) == "1" and not chosen else []

    def start(self, timeout: float = 15.0) -> HubProcess:
        """Start the hub and return once it serves; raise with its log as soon as it exits instead."""
        self._ready.clear()
        self._settled.clear()
        self.log_lines = []
        self.process = subprocess.Popen(
            self.command(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        self._reader = threading.Thread(target=self._read_log, args=(self.process.stderr,), daemon=True)
        self._reader.start()
        self._settled.wait(timeout)
        if not self._ready.is_set():
            try:
                exited: int | None = self.process.wait(timeout=5)  # its log ended: it is exiting
            except subprocess.TimeoutExpired:
                exited = None
            self.kill()
            why = f"exited with {exited}" if exited is not None else f"not ready within {timeout} s"
            raise RuntimeError(f"hub {why}; log:\n{self.log}")
        return self

    def _read_log(self, stream: IO[str] | None) -> None:
        if stream is None:
            raise RuntimeError("the hub's stderr is not a pipe")
        for line in stream:
            self.log_lines.append(line)
            if READY_MARK in line:
                self._ready.set()
                self._settled.set()
        self._settled.set()

    def client(self, **options: Any) -> Any:
        """A Client of this hub; its timeout (5 s unless given) is generous: a busy machine is no hub down."""
        from statehub.client import Client

        options.setdefault("timeout", 5.0)
        return Client(self.data_dir, **options)

    def kill(self) -> None:
        """SIGKILL: no clean shutdown at all, as in a crash or power cut."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
        self.wait()

    def terminate(self, timeout: float = 15.0) -> int:
        """SIGTERM and wait; return the exit code."""
        self._started().send_signal(signal.SIGTERM)
        return self.wait(timeout)

    def wait(self, timeout: float = 15.0) -> int:
        if self.process is None:
            return 0
        # Its log ends as it exits: the reader's join returns at that moment, where Popen.wait with
        # a timeout polls in sleeps growing to 50 ms (~30 ms late on average at each stop).
        deadline = time.monotonic() + timeout
        if self._reader is not None:
            self._reader.join(timeout)
        code = self.process.wait(max(0.0, deadline - time.monotonic()))
        if self.process.stderr is not None:
            self.process.stderr.close()
        return code

    @property
    def pid(self) -> int:
        return self._started().pid

    def _started(self) -> subprocess.Popen[str]:
        if self.process is None:
            raise RuntimeError("this HubProcess was never started: call start() first")
        return self.process

    def __enter__(self) -> HubProcess:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.kill()


def wait_until(predicate: Any, timeout: float = 10.0, interval: float = 0.01) -> bool:
    """Poll ``predicate`` until it is true or ``timeout`` passes; bounded in time and count."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())


def mirror_rev(data_dir: Path) -> int:
    """The revision of the hub's mirror in ``data_dir``; -1 while the hub has not written one yet."""
    from statehub.hub.errors import MirrorError
    from statehub.hub.mirror import read_mirror
    from statehub.hub.paths import Layout

    try:
        return read_mirror(Layout(data_dir).mirror).rev
    except MirrorError:
        return -1
