"""Keeping keys alive: a background thread that writes a client's keys before their ttl runs out.

A key with a ttl (docs/schema.md, "Liveness") is removed by the hub when it has
not been written for that long.  A service keeps its own keys alive with
``Client.keepalive``, so "which services are running" is live state that
cleans itself up when a service stops or dies, like an etcd lease or MQTT's
last will.  The thread owns a Client of its own (sockets stay in one thread).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from statehub.hub.errors import ConflictError, HubUnavailable, NotFound, StatehubError
from statehub.hub.protocol import Op
from statehub.hub.rules import check_key, check_prefix

if TYPE_CHECKING:
    from statehub.client import Client

log = logging.getLogger(__name__)


class Keepalive:
    """Writes keys every ``interval`` seconds until ``stop()``; made by ``Client.keepalive``."""

    def __init__(
        self,
        client: Client,
        keys: str | Iterable[str],
        interval: float,
        *,
        ttl: float | None = None,
        value: Callable[[str], Any] | None = None,
    ) -> None:
        if not interval > 0:
            raise ValueError(f"keepalive interval must be > 0 seconds, got {interval!r}")
        self._keys = [keys] if isinstance(keys, str) else list(keys)
        for key in self._keys:
            check_prefix(key) if key.endswith(".") else check_key(key)
        self._client = client
        self._interval = interval
        self._ttl = ttl
        self._value = value
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="statehub-keepalive", daemon=True)
        self.beats = 0  # beats that reached the hub
        self.last_error: StatehubError | None = None

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """End the heartbeat (the beat under way finishes) and close its client."""
        self._stopping.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def __enter__(self) -> Keepalive:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def is_running(self) -> bool:
        return self._thread.is_alive()

    def _run(self) -> None:
        try:
            while not self._stopping.is_set():
                self.beat()
                self._stopping.wait(self._interval)
        finally:
            self._client.close()

    def beat(self) -> None:
        """Write every key once now (the thread calls this each interval)."""
        try:
            ops = self._ops()
            if ops:
                self._client.txn(ops)
            self.beats += 1
            self.last_error = None
        except ConflictError:
            self.beats += 1  # someone else wrote one of them meanwhile: it is alive anyway
        except StatehubError as exc:
            if not isinstance(exc, HubUnavailable) or self.last_error is None:
                log.warning("keepalive of %s failed: %s", ", ".join(self._keys), exc.message)
            self.last_error = exc

    def _ops(self) -> list[Op]:
        ops: list[Op] = []
        for key in self._keys:
            if key.endswith("."):
                mine = self._client.list(key).items
                for item in mine:
                    if item.source == self._client.source and (self._value is not None or not item.secret):
                        ops.append(self._op(item.key, item.value, item.rev))
            elif self._value is not None:
                ops.append(Op(op="set", key=key, value=self._value(key), ttl=self._ttl))
            else:
                try:
                    item = self._client.get(key).item
                except NotFound:
                    continue  # expired, or never written: nothing to rewrite
                if not item.secret:  # a secret's placeholder written back changes nothing, so renews nothing
                    ops.append(self._op(key, item.value, item.rev))
        return ops

    def _op(self, key: str, current: Any, rev: int) -> Op:
        if self._value is not None:
            return Op(op="set", key=key, value=self._value(key), ttl=self._ttl)
        return Op(
            op="set", key=key, value=current, expect=rev, ttl=self._ttl
        )  # the same again, if nobody wrote since
