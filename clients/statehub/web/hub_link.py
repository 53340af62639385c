"""How the web process reaches the hub: the client settings, and blocking calls off the event loop.

A statehub ``Client`` owns ZeroMQ sockets, which must stay in one thread, and
its calls block.  ``HubCalls`` runs them on a few long-lived worker threads,
each keeping its own Clients (one per user the writes are attributed to), so a
request costs a round trip to the hub and never a new socket.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from statehub import Client

T = TypeVar("T")

SOURCE = "web"  # the source every write from the web carries


@dataclass(frozen=True)
class HubSettings:
    """Where the hub is, as the CLI's options say it (data dir, timeout, or a remote hub)."""

    data_dir: str | None = None
    timeout: float = 0.5
    hub: str | None = None
    hub_events: str | None = None
    server_key: str | None = None

    def client(self, user: str | None = None) -> Client:
        from statehub import Client

        return Client(
            self.data_dir,
            timeout=self.timeout,
            source=SOURCE,
            user=user,
            hub=self.hub,
            events=self.hub_events,
            server_key=self.server_key,
        )


class HubCalls:
    """Run ``call(client)`` on a worker thread with that thread's Client for ``user``."""

    def __init__(self, settings: HubSettings, workers: int = 4) -> None:
        self._settings = settings
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="statehub-web-hub")
        self._local = threading.local()
        self._opened: list[Client] = []
        self._lock = threading.Lock()  # guards _opened, appended from the workers

    async def run(self, user: str | None, call: Callable[[Client], T]) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._call, user, call)

    def _call(self, user: str | None, call: Callable[[Client], T]) -> T:
        clients: dict[str | None, Client] | None = getattr(self._local, "clients", None)
        if clients is None:
            clients = self._local.clients = {}
        client = clients.get(user)
        if client is None:
            client = clients[user] = self._settings.client(user)
            with self._lock:
                self._opened.append(client)
        return call(client)

    def close(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)
        with self._lock:
            opened, self._opened = self._opened, []
        for client in opened:
            client.close()
