"""What one running web server holds: its options, the Feed, the hub calls, the access policy.

Kept on the Starlette app (``app.state.web``), never at module level.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from starlette.requests import Request

from statehub.web.access import COOKIE, Caller, Policy, Role
from statehub.web.errors import Refused
from statehub.web.feed import Feed
from statehub.web.hub_link import HubCalls, HubSettings


@dataclass(frozen=True)
class WebOptions:
    """How ``statehub web`` serves (the command's options)."""

    settings: HubSettings
    data_dir: Path  # where web-tokens.json is
    host: str = "127.0.0.1"
    port: int = 8080
    anonymous: Role | None = "write"
    heartbeat: float = 5.0  # seconds between SSE heartbeats
    log_size: int = 10_000  # changes kept for streams that resume
    queue_size: int = 1_000  # messages a stream may fall behind before it is dropped


class ServerState:
    def __init__(self, options: WebOptions, feed: Feed, hub: HubCalls, policy: Policy) -> None:
        self.options = options
        self.feed = feed
        self.hub = hub
        self.policy = policy
        self.loop: asyncio.AbstractEventLoop | None = None  # set when the app starts

    def close_streams_soon(self) -> None:
        """From any thread (a signal handler): end every event stream."""
        if self.loop is not None:
            self.loop.call_soon_threadsafe(self.feed.close)

    def admit(self, request: Request, *, write: bool, allow_anonymous_none: bool = False) -> Caller:
        """The caller, if they may do this; else a Refused (401, 403) naming what to do."""
        if write or request.method not in ("GET", "HEAD"):
            _refuse_cross_origin(request)
        caller = self.policy.caller(
            request.headers.get("authorization"), request.cookies.get(COOKIE), is_write=write
        )
        if caller is None:
            raise Refused(
                401,
                "unauthorized",
                "the token is not valid (revoked, or mistyped)",
                "ask for a new one: `statehub web token create NAME`",
            )
        if caller.role is None and not allow_anonymous_none:
            raise Refused(
                401,
                "unauthorized",
                "this server needs a token",
                "send Authorization: Bearer TOKEN; make one with `statehub web token create NAME`",
            )
        if write and not caller.may_write:
            who = f"the token {caller.name!r}" if caller.name else "anonymous callers"
            raise Refused(
                403,
                "forbidden",
                f"{who} may only read here",
                "use a read-write token (`statehub web token create NAME --role write`)",
            )
        return caller

    def may_anyone_write(self) -> bool:
        return self.options.anonymous == "write" or any(
            record.role == "write" for record in self.policy.book.records()
        )

    def refuse_secret_write(self, keys: Iterable[str]) -> None:
        """A secret's plaintext never crosses HTTP, in either direction."""
        for key in keys:
            item = self.feed.items.get(key)
            if item is not None and item.secret:
                raise Refused(
                    403,
                    "secret",
                    f"{key!r} is a secret; secrets are never written over HTTP",
                    "set it on the hub's machine: `statehub secret set KEY`",
                )


def _refuse_cross_origin(request: Request) -> None:
    """Writes only from this server's own page or from non-browser clients (curl sends neither header)."""
    site = request.headers.get("sec-fetch-site")
    if site is not None and site not in ("same-origin", "none"):
        raise Refused(403, "cross_origin", f"a write from another site ({site}) is refused")
    origin = request.headers.get("origin")
    if origin is not None and urlsplit(origin).netloc != request.headers.get("host", ""):
        raise Refused(403, "cross_origin", f"a write from another origin ({origin}) is refused")
