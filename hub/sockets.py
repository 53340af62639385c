"""The options every hub socket gets, and binding with a clear error.

The local pair and the ``--listen`` pair (``hub.access``) are configured by
the same two functions, so a remote client meets the same limits as a local one.
"""

from __future__ import annotations

import zmq

from statehub.hub.errors import InvalidRequest
from statehub.hub.protocol import MAX_MESSAGE_BYTES

PUBLISH_HWM = 10_000  # per subscriber; beyond it ZeroMQ drops and subscribers resync
# Subscribers only send subscriptions, and need only "" (a key prefix at most: 256 bytes).  A frame
# over this drops the peer before libzmq stores anything; it must still fit the handshake's
# commands (a CURVE INITIATE is ~300 bytes) and a CURVE-boxed subscription (33 bytes more).
MAX_SUBSCRIPTION_BYTES = 512
SUBSCRIPTIONS_QUEUED = 8  # per peer, before libzmq stops reading its socket


def configure_router(router: zmq.Socket[bytes]) -> None:
    """A request ROUTER: replies to vanished peers fail loudly, oversized frames drop the peer."""
    router.setsockopt(zmq.ROUTER_MANDATORY, 1)
    # libzmq drops a peer whose single frame exceeds this; smaller oversized
    # messages get a clear error reply from the hub instead.
    router.setsockopt(zmq.MAXMSGSIZE, 4 * MAX_MESSAGE_BYTES)
    router.setsockopt(zmq.LINGER, 0)


def configure_xpub(xpub: zmq.Socket[bytes]) -> None:
    """A change-stream XPUB: every subscription handed up (for welcomes) and applied by the hub, a bounded queue per subscriber."""
    xpub.setsockopt(zmq.XPUB_MANUAL, 1)  # hub.subscriptions subscribes each peer to "" itself
    # libzmq stores a peer's queued subscriptions before the hub sees the first: keep that queue short.
    xpub.setsockopt(zmq.RCVHWM, SUBSCRIPTIONS_QUEUED)
    xpub.setsockopt(zmq.SNDHWM, PUBLISH_HWM)
    xpub.setsockopt(zmq.MAXMSGSIZE, MAX_SUBSCRIPTION_BYTES)
    xpub.setsockopt(zmq.LINGER, 0)


def bind(sock: zmq.Socket[bytes], endpoint: str) -> str:
    """Bind ``endpoint``; return the endpoint bound (a ``*`` port resolved)."""
    try:
        sock.bind(endpoint)
    except zmq.ZMQError as exc:
        raise InvalidRequest(f"cannot bind {endpoint}: {exc}") from exc
    return str(sock.getsockopt_string(zmq.LAST_ENDPOINT))
