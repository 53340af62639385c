"""One request/reply channel to the hub, in the zguide's Lazy Pirate style.

A REQ socket is unusable after a request times out, so a Connection throws the
socket away on any timeout and opens a fresh one for the next request.  The
endpoint is looked up again each time, so a hub that restarted on new ports is
found without the caller doing anything.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import msgspec
import zmq

from statehub.hub.errors import HubUnavailable, ProtocolError, error_from_reply
from statehub.hub.paths import Layout, read_hub_info
from statehub.hub.protocol import Error, Reply, Request, reply_decoder
from statehub.remote import Remote, secure

SEND_TIMEOUT_MS = 200  # with IMMEDIATE, a send fails this fast when nothing is listening


@dataclass(frozen=True)
class Endpoints:
    rpc: str
    events: str


def find_endpoints(data_dir: Path, rpc: str | None = None, events: str | None = None) -> Endpoints | None:
    """The hub's endpoints: explicit ones, else those in hub.json; None when no hub announced itself."""
    if rpc and events:
        return Endpoints(rpc, events)
    info = read_hub_info(Layout(data_dir))
    if info is None:
        return None
    return Endpoints(rpc or info.rpc, events or info.events)


class Connection:
    """Sends requests and waits for replies.  Not thread-safe: one thread uses it."""

    def __init__(
        self,
        context: zmq.Context[zmq.Socket[bytes]],
        data_dir: Path,
        *,
        rpc: str | None = None,
        timeout: float = 0.5,
        remote: Remote | None = None,
    ) -> None:
        self.data_dir = data_dir
        self.timeout = timeout
        self._remote = remote
        self._explicit_rpc = rpc or (remote.rpc if remote is not None else None)
        self._context = context
        self._socket: zmq.Socket[bytes] | None = None
        self._endpoint = ""
        self._encode = msgspec.msgpack.Encoder().encode
        self._decode = reply_decoder().decode

    @property
    def endpoint(self) -> str:
        return self._endpoint or self._explicit_rpc or str(Layout(self.data_dir).ipc_endpoint("rpc"))

    def request(self, message: Request, *, timeout: float | None = None) -> Reply:
        """Send one request and return its reply; raise the reply's error as an exception.

        Raises HubUnavailable when the hub does not answer within ``timeout``.
        """
        reply = self._round_trip(self._encode(message), self.timeout if timeout is None else timeout)
        if isinstance(reply, Error):
            raise error_from_reply(reply)
        return reply

    def _round_trip(self, body: bytes, timeout: float) -> Reply:
        sock = self._open()
        try:
            sock.send(body)
        except zmq.Again:
            self._reset()
            raise self._unavailable(timeout) from None
        if not sock.poll(int(timeout * 1000), zmq.POLLIN):
            self._reset()
            raise self._unavailable(timeout)
        data = sock.recv()
        try:
            return self._decode(data)
        except msgspec.MsgspecError as exc:
            raise ProtocolError(f"the hub sent a reply this client cannot read: {exc}") from exc

    def _open(self) -> zmq.Socket[bytes]:
        if self._socket is not None:
            return self._socket
        rpc = self._explicit_rpc or self._announced_rpc()
        sock = self._context.socket(zmq.REQ)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.IMMEDIATE, 1)
        sock.setsockopt(zmq.SNDTIMEO, SEND_TIMEOUT_MS)
        secure(sock, self._remote)
        sock.connect(rpc)
        self._socket, self._endpoint = sock, rpc
        return sock

    def _announced_rpc(self) -> str:
        info = read_hub_info(Layout(self.data_dir))
        if info is None:
            raise HubUnavailable(
                f"the hub is not running (no {Layout(self.data_dir).hub_file}); "
                "start it with `statehub serve`"
            )
        return info.rpc

    def _reset(self) -> None:
        if self._socket is not None:
            self._socket.close(linger=0)
            self._socket = None

    def _unavailable(self, timeout: float) -> HubUnavailable:
        hint = self._remote.silence_hint() if self._remote is not None else "start it with `statehub serve`"
        return HubUnavailable(f"no reply from the hub at {self.endpoint} within {timeout:g} s; {hint}")

    def close(self) -> None:
        self._reset()
