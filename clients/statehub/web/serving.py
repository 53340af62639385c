"""Run the web app under uvicorn on a socket bound here, and stop it promptly.

Binding here rather than in uvicorn gives a clear error for a busy port and the
real port when 0 was asked for; the banner (``READY_MARK``) names the address
once it is bound, and tests wait for it.
"""

from __future__ import annotations

import logging
import socket
from typing import Any

import uvicorn

from statehub.web.app import create_app
from statehub.web.server_state import ServerState, WebOptions

READY_MARK = "statehub web: serving "

log = logging.getLogger("statehub.web")


class CannotListen(Exception):
    pass


class _Server(uvicorn.Server):
    """uvicorn's server, ending every event stream as soon as a stop is asked for.

    Otherwise uvicorn waits out its graceful-shutdown timeout on streams that never end.
    """

    def handle_exit(self, sig: int, frame: Any) -> None:
        app: Any = self.config.app
        state: ServerState = app.state.web
        state.close_streams_soon()
        super().handle_exit(sig, frame)


def serve(options: WebOptions) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    listener = listen(options.host, options.port)
    host, port = listener.getsockname()[:2]
    app = create_app(options)
    config = uvicorn.Config(
        app,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=3,
        lifespan="on",
        server_header=False,
    )
    who = {"write": "may read and write", "read": "may only read", None: "need a token"}[options.anonymous]
    shown = f"[{host}]" if ":" in host else host
    log.info(
        "%shttp://%s:%d/ (data dir %s; callers without a token %s)",
        READY_MARK,
        shown,
        port,
        options.data_dir,
        who,
    )
    _Server(config).run(sockets=[listener])


def listen(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    listener = socket.socket(family, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind((host, port))
    except OSError as exc:
        listener.close()
        raise CannotListen(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    listener.listen(128)
    return listener
