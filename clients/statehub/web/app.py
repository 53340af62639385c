"""The ASGI application of ``statehub web``: routes, headers, and the follower's lifetime.

``create_app(options)`` builds it; ``statehub.web.command`` serves it with uvicorn.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from statehub import StatehubError, check_prefix
from statehub.web import api
from statehub.web.access import COOKIE, Policy, TokenBook, bearer, is_loopback, tokens_path
from statehub.web.errors import Refused, http_error, refused, statehub_error
from statehub.web.feed import Feed, parse_event_id
from statehub.web.follower import Follower
from statehub.web.hub_link import HubCalls
from statehub.web.server_state import ServerState, WebOptions
from statehub.web.sse import EventStream

STATIC = Path(__file__).parent / "static"

# The page loads only its own files: no inline script, no other origin, no framing.
PAGE_HEADERS = [
    (
        b"content-security-policy",
        b"default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'",
    ),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
]


async def index(request: Request) -> Response:
    return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})


async def events(request: Request) -> Response:
    state: ServerState = request.app.state.web
    state.admit(request, write=False)
    prefix = request.query_params.get("prefix", "")
    check_prefix(prefix)
    # A browser's own reconnect sends the header; a page that opens a new EventSource passes the query.
    last = parse_event_id(request.headers.get("last-event-id") or request.query_params.get("last_event_id"))
    stream = EventStream(state.feed, prefix, last, state.options.heartbeat)
    headers = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
    return StreamingResponse(stream, media_type="text/event-stream", headers=headers)


async def open_session(request: Request) -> Response:
    """Keep the token in a cookie for this browser's reads (EventSource cannot send a header)."""
    state: ServerState = request.app.state.web
    token = bearer(request.headers.get("authorization"))
    if token is None:
        raise Refused(400, "invalid", "send the token as Authorization: Bearer TOKEN")
    caller = state.admit(request, write=False)
    response = JSONResponse({"name": caller.name, "role": caller.role})
    response.set_cookie(COOKIE, token, httponly=True, samesite="strict", secure=request.url.scheme == "https")
    return response


async def close_session(request: Request) -> Response:
    response = JSONResponse({"name": None, "role": None})
    response.delete_cookie(COOKIE, httponly=True, samesite="strict")
    return response


class SecurityHeaders:
    """Adds PAGE_HEADERS to every response (plain ASGI: streaming responses pass straight through)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *PAGE_HEADERS]
            await send(message)

        await self.app(scope, receive, send_with_headers)


def create_app(options: WebOptions) -> Starlette:
    feed = Feed(log_size=options.log_size, queue_size=options.queue_size)
    hub = HubCalls(options.settings)
    policy = Policy(options.anonymous, TokenBook(tokens_path(options.data_dir)))
    state = ServerState(options, feed, hub, policy)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        state.loop = asyncio.get_running_loop()
        follower = Follower(options.settings, feed, state.loop)
        follower.start()
        try:
            yield
        finally:
            feed.close()
            follower.stop()
            hub.close()

    routes = [
        Route("/", index),
        Route("/api/keys", api.list_keys),
        # Keys may hold '/' (eds.stiles.FI-405/415), so KEY is a path; /history is matched first.
        Route("/api/keys/{key:path}/history", api.key_history),
        Route("/api/keys/{key:path}", api.get_key, methods=["GET", "HEAD"]),
        Route("/api/keys/{key:path}", api.put_key, methods=["PUT"]),
        Route("/api/keys/{key:path}", api.delete_key, methods=["DELETE"]),
        Route("/api/txn", api.txn, methods=["POST"]),
        Route("/api/events", events),
        Route("/api/status", api.status),
        Route("/api/schema", api.schema),
        Route("/api/whoami", api.whoami),
        Route("/api/session", open_session, methods=["POST"]),
        Route("/api/session", close_session, methods=["DELETE"]),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    middleware = [Middleware(SecurityHeaders)]
    if is_loopback(options.host):
        # A page elsewhere that rebinds its DNS name to 127.0.0.1 sends its own Host: refuse it.
        hosts = ["127.0.0.1", "localhost", "::1", "[::1]"]
        middleware.append(Middleware(TrustedHostMiddleware, allowed_hosts=hosts))
    handlers: dict[Any, Any] = {StatehubError: statehub_error, Refused: refused, HTTPException: http_error}
    app = Starlette(routes=routes, middleware=middleware, exception_handlers=handlers, lifespan=lifespan)
    app.state.web = state
    return app
