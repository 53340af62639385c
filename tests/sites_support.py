"""Helpers of the sites tests: uplink and follow-sites as real processes, and comparing a site with the centre."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path
from typing import Any

from statehub import Client, SiteOrigin
from statehub.testing import HubProcess

from .servers import statehub_command


class LinkProcess:
    """``statehub uplink`` or ``statehub follow-sites`` as a subprocess with its log in a file."""

    def __init__(self, data_dir: Path, args: list[str], log: Path) -> None:
        self.command = statehub_command(data_dir, *args)
        self.log = log
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> LinkProcess:
        env = {key: value for key, value in os.environ.items() if not key.startswith("STATEHUB_")}
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(self.command, stdout=log, stderr=subprocess.STDOUT, env=env)
        return self

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)

    def stop(self) -> int | None:
        """SIGTERM, and its exit code."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()
        return self.process.returncode

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def __enter__(self) -> LinkProcess:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def uplink(hub: HubProcess, url: str, site: str, folder: Path, *extra: str) -> LinkProcess:
    args = ["uplink", url, "--site", site, "--state-dir", str(folder / f"state-{site}"), *extra]
    return LinkProcess(hub.data_dir, args, folder / f"uplink-{site}-{url.partition(':')[0]}.log")


def follower(centre: HubProcess, url: str, folder: Path, *extra: str) -> LinkProcess:
    return LinkProcess(centre.data_dir, ["follow-sites", url, *extra], folder / "follow-sites.log")


def site_values(client: Client, prefix: str = "") -> dict[str, Any]:
    """Every key of a site (its fleet keys excepted: the centre owns them) and its value."""
    return {item.key: item.value for item in client.list(prefix).items if not item.key.startswith("fleet.")}


def central_values(client: Client, site: str) -> dict[str, Any]:
    """The keys of ``site`` as the centre holds them, under their site-side names."""
    under = f"sites.{site}."
    return {item.key.removeprefix(under): item.value for item in client.list(under).items}


def central_origins(client: Client, site: str) -> dict[str, SiteOrigin | None]:
    under = f"sites.{site}."
    return {item.key.removeprefix(under): item.origin for item in client.list(under).items}


def link_rev(client: Client, site: str) -> int:
    """The last site revision the centre applied (0: none yet)."""
    from statehub import NotFound

    try:
        return int(client.get(f"statehub.link.{site}").value["rev"])
    except NotFound:
        return 0
