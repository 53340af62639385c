"""Network access: the CURVE-authenticated ROUTER and XPUB of ``--listen``, and who gets in.

The local ipc/loopback sockets need no credentials: the filesystem (a 0700 data
dir) or the loopback interface bounds who reaches them.  A ``--listen`` socket
faces a network, so it is a CURVE server: traffic is encrypted, the client must
know the hub's public key, and the hub admits only the client public keys in
its allow-list folder.  Admission is decided over ZAP (ZeroMQ's authentication
protocol, RFC 27) by the Gatekeeper thread, which also watches the sockets'
monitor events so refusals that never reach ZAP (a client without CURVE, or one
given the wrong server key) are logged too.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field

import zmq
from zmq.utils.z85 import encode as z85_encode

from statehub.hub.curve import AllowList, allow_list_dir, curve_dir, require_curve, server_keypair
from statehub.hub.errors import InvalidRequest
from statehub.hub.log_limit import RateLimitedLog
from statehub.hub.paths import Layout, check_tcp_endpoint, events_endpoint_for
from statehub.hub.sockets import bind, configure_router, configure_xpub
from statehub.hub.zmq_events import monitor_event

log = logging.getLogger(__name__)

ZAP_ENDPOINT = "inproc://zeromq.zap.01"  # fixed by RFC 27: libzmq asks here
ZAP_DOMAIN = b"statehub"
POLL_MS = 200  # how long the gatekeeper waits before looking at its stop flag
_WATCHED_EVENTS = zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL

_NO_CURVE = "the client does not use CURVE (a plain ZeroMQ client, or wrong port)"
_WRONG_SERVER_KEY = "the client's handshake does not decrypt: it was given a wrong server key"
_PROTOCOL_ERRORS: dict[int, str] = {
    int(zmq.PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH): _NO_CURVE,
    int(zmq.PROTOCOL_ERROR_ZMTP_CRYPTOGRAPHIC): _WRONG_SERVER_KEY,
}


def make_curve_server(sock: zmq.Socket[bytes], secret: bytes) -> None:
    sock.setsockopt(zmq.CURVE_SERVER, 1)
    sock.setsockopt(zmq.CURVE_SECRETKEY, secret)
    sock.setsockopt(zmq.ZAP_DOMAIN, ZAP_DOMAIN)
    # Fail closed: should the gatekeeper be missing, libzmq refuses instead of admitting all.
    sock.setsockopt(zmq.ZAP_ENFORCE_DOMAIN, 1)
    sock.setsockopt(zmq.TCP_KEEPALIVE, 1)  # notice remote peers that vanished without a FIN


@dataclass
class RemoteListeners:
    """The bound --listen sockets (owned by the hub's server thread) and their gatekeeper."""

    router: zmq.Socket[bytes]
    xpub: zmq.Socket[bytes]
    gatekeeper: Gatekeeper
    server_public: str
    endpoints: dict[str, str] = field(default_factory=dict)

    def close(self) -> None:
        self.gatekeeper.stop()
        self.router.close(linger=0)
        self.xpub.close(linger=0)


def open_listeners(
    context: zmq.Context[zmq.Socket[bytes]],
    layout: Layout,
    rpc: str,
    events: str | None,
) -> RemoteListeners:
    """Bind the CURVE ROUTER at ``rpc`` and XPUB at ``events``, with the options of the local pair."""
    require_curve()
    check_tcp_endpoint(rpc, "--listen")
    events = events or events_endpoint_for(rpc)
    check_tcp_endpoint(events, "--listen-events")
    try:
        keys, created = server_keypair(layout)
    except OSError as exc:
        raise InvalidRequest(
            f"cannot make the hub's key pair in {curve_dir(layout)}: {exc.strerror or exc}"
        ) from exc
    if created:
        log.info(
            "made the hub's CURVE key pair in %s (public key %s)",
            layout.data_dir / "curve",
            keys.public.decode(),
        )
    # The ZAP handler binds before any CURVE socket exists, so no handshake can come first.
    gatekeeper = Gatekeeper(context, AllowList(allow_list_dir(layout)))
    router, xpub = context.socket(zmq.ROUTER), context.socket(zmq.XPUB)
    listeners = RemoteListeners(router, xpub, gatekeeper, keys.public.decode())
    try:
        configure_router(router)
        configure_xpub(xpub)
        for sock in (router, xpub):
            make_curve_server(sock, keys.secret)
        listeners.endpoints["listen_rpc"] = bind(router, rpc)
        listeners.endpoints["listen_events"] = bind(xpub, events)
        gatekeeper.watch(router, listeners.endpoints["listen_rpc"])
        gatekeeper.watch(xpub, listeners.endpoints["listen_events"])
        gatekeeper.start()
    except BaseException:
        listeners.close()
        raise
    return listeners


class Gatekeeper:
    """Answers ZAP requests against the allow-list and logs every refusal, in a thread of its own.

    Its sockets (the ZAP REP and one monitor PAIR per watched socket) are made in
    the hub's thread before ``start()`` and used only by the gatekeeper thread after.
    """

    def __init__(self, context: zmq.Context[zmq.Socket[bytes]], allow_list: AllowList) -> None:
        self._allow_list = allow_list
        self._zap = context.socket(zmq.REP)
        self._zap.setsockopt(zmq.LINGER, 0)
        try:
            self._zap.bind(ZAP_ENDPOINT)
        except zmq.ZMQError:
            self._zap.close()
            raise
        self._monitors: dict[zmq.Socket[bytes], str] = {}
        # A refused client retries every 100 ms: each cause is logged at once, then once a minute.
        self._refusals = RateLimitedLog(log)
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="statehub-gatekeeper", daemon=True)

    def watch(self, sock: zmq.Socket[bytes], endpoint: str) -> None:
        self._monitors[sock.get_monitor_socket(_WATCHED_EVENTS)] = endpoint

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join()
        else:  # never started: the sockets are still ours to close
            self._close_sockets()

    def _run(self) -> None:
        poller = zmq.Poller()
        for sock in (self._zap, *self._monitors):
            poller.register(sock, zmq.POLLIN)
        try:
            while not self._stopping.is_set():
                for sock, _ in poller.poll(POLL_MS):
                    if sock is self._zap:
                        self._answer(self._zap.recv_multipart())
                    else:
                        self._on_event(sock)
        finally:
            self._close_sockets()

    def _close_sockets(self) -> None:
        self._zap.close(linger=0)
        for monitor in self._monitors:
            monitor.close(linger=0)

    def _answer(self, frames: list[bytes]) -> None:
        if len(frames) < 6:
            log.error("malformed ZAP request of %d frames from libzmq; refusing it", len(frames))
            if len(frames) >= 2:
                self._zap.send_multipart([b"1.0", frames[1], b"400", b"malformed request", b"", b""])
            return
        version, request_id, domain, address, _identity, mechanism = frames[:6]
        try:
            status, user = self._decide(domain, address.decode("ascii", "replace"), mechanism, frames[6:])
        except Exception:  # the door must answer; an unanswered handshake would hang the client
            log.exception("internal error deciding a connection; refusing it")
            status, user = b"500", ""
        text = {b"200": b"OK", b"400": b"key not allowed"}.get(status, b"internal error")
        self._zap.send_multipart([version, request_id, status, text, user.encode(), b""])

    def _decide(
        self, domain: bytes, address: str, mechanism: bytes, credentials: list[bytes]
    ) -> tuple[bytes, str]:
        if (
            domain != ZAP_DOMAIN
            or mechanism != b"CURVE"
            or len(credentials) != 1
            or len(credentials[0]) != 32
        ):
            self._refuse(f"unexpected {mechanism.decode('ascii', 'replace')} request", f"from {address}")
            return b"400", ""
        public = z85_encode(credentials[0])
        name = self._allow_list.name_of(public)
        if name is None:
            self._refuse(
                f"its public key is not allow-listed (to admit it: statehub keys add NAME -- '{public.decode()}')",
                f"with key {public.decode()} from {address}",
            )
            return b"400", ""
        log.info("admitted remote client %r from %s", name, address)
        return b"200", name

    def _on_event(self, monitor: zmq.Socket[bytes]) -> None:
        event, value = monitor_event(monitor.recv_multipart())
        if event == zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL:
            cause = _PROTOCOL_ERRORS.get(value, f"ZeroMQ handshake protocol error 0x{value:08x}")
        else:
            cause = (
                "the handshake failed without detail from libzmq (typically a client that does not use CURVE)"
            )
        # libzmq's stable monitor API names only our own endpoint, not the peer's address.
        self._refuse(cause, f"on {self._monitors[monitor]}")

    def _refuse(self, cause: str, who: str) -> None:
        self._refusals.report((cause, who), logging.WARNING, f"refused a remote client {who}: {cause}")
