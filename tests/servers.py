"""Real brokers for the sites tests: Debian's nats-server (JetStream) and mosquitto, on free loopback ports.

Each runs as a subprocess with its own data dir in the test's temp dir and is
stopped by its PID (SIGKILL for the crash tests, SIGTERM otherwise).  A test
that needs a binary that is not installed is skipped, and says which package
provides it (CI installs both from scripts/debian-packages.txt).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from statehub.testing import wait_until


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


def binary(name: str, package: str) -> str:
    """The path of ``name``, or skip the test naming the Debian package to install."""
    found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/local/sbin:/usr/bin")
    if found is None:
        pytest.skip(f"{name} is not installed (Debian: apt-get install {package})")
    return found


class Server:
    """One broker process: start, SIGKILL, restart on the same port and data dir, stop."""

    def __init__(self, command: list[str], port: int, log: Path) -> None:
        self.command = command
        self.port = port
        self.log = log
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        raise NotImplementedError

    def start(self) -> Server:
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(self.command, stdout=log, stderr=subprocess.STDOUT)
        if not wait_until(
            lambda: accepts(self.port) or self.process is None or self.process.poll() is not None, 15
        ):
            raise AssertionError(
                f"{self.command[0]} did not listen on {self.port}: {self.log.read_text()[-2000:]}"
            )
        if self.process.poll() is not None:
            raise AssertionError(f"{self.command[0]} exited: {self.log.read_text()[-2000:]}")
        return self

    def kill(self) -> None:
        """SIGKILL, as a crash or a power cut would stop it."""
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()

    def __enter__(self) -> Server:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


class Nats(Server):
    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"


class Mosquitto(Server):
    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"


def nats_server(folder: Path) -> Nats:
    """nats-server with JetStream, its store in ``folder``, on a free loopback port."""
    path = binary("nats-server", "nats-server")
    port = free_port()
    store = folder / "jetstream"
    store.mkdir(parents=True, exist_ok=True)
    command = [path, "-js", "-sd", str(store), "-a", "127.0.0.1", "-p", str(port), "-n", f"test-{port}"]
    return Nats(command, port, folder / "nats-server.log")


def mosquitto(folder: Path) -> Mosquitto:
    """mosquitto listening on a free loopback port, persistence in ``folder``."""
    path = binary("mosquitto", "mosquitto")
    port = free_port()
    folder.mkdir(parents=True, exist_ok=True)
    config = folder / "mosquitto.conf"
    lines = [
        f"listener {port} 127.0.0.1",
        "allow_anonymous true",
        "persistence true",
        f"persistence_location {folder}/",
    ]
    if os.geteuid() == 0:
        lines.append(
            "user root"
        )  # as root, mosquitto would switch to the user 'mosquitto', who cannot write here
    config.write_text("\n".join(lines) + "\n")
    return Mosquitto([path, "-c", str(config)], port, folder / "mosquitto.log")


def statehub_command(data_dir: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "statehub.cli", "--data-dir", str(data_dir), *args]
