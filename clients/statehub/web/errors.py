"""HTTP answers for errors: the hub's error tree mapped to status codes, and the web's own refusals.

A body is always ``{"error": {"code", "message", "hint"}}``; ``code`` is the
hub's wire code (``invalid``, ``not_found``, ``conflict``, ``unavailable`` ...)
or one of the web's: ``unauthorized``, ``forbidden``, ``secret``,
``cross_origin``, ``unsupported_media_type``, ``too_large``.
"""

from __future__ import annotations

from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from statehub import (
    ConflictError,
    HubUnavailable,
    InvalidRequest,
    NotFound,
    OutcomeUnknown,
    ProtocolError,
    StatehubError,
    StorageError,
)

HTTP_STATUS: tuple[tuple[type[StatehubError], int], ...] = (
    (InvalidRequest, 400),
    (NotFound, 404),
    (ConflictError, 409),
    (HubUnavailable, 503),  # and MirrorError
    (StorageError, 503),
    (OutcomeUnknown, 504),
    (ProtocolError, 502),
)


class Refused(Exception):
    """A request the web server itself turns away (access, media type, size)."""

    def __init__(self, status: int, code: str, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.hint = hint


def error_body(error: StatehubError) -> dict[str, Any]:
    return {"error": {"code": error.wire_code, "message": error.message, "hint": error.hint}}


def http_status(error: StatehubError) -> int:
    return next((status for cls, status in HTTP_STATUS if isinstance(error, cls)), 500)


async def statehub_error(request: Request, exc: Exception) -> Response:
    if not isinstance(exc, StatehubError):  # registered for StatehubError only: anything else is a bug
        raise exc
    headers = {"Cache-Control": "no-store"}
    if isinstance(exc, HubUnavailable):
        headers["Retry-After"] = "2"
    return JSONResponse(error_body(exc), http_status(exc), headers=headers)


async def refused(request: Request, exc: Exception) -> Response:
    if not isinstance(exc, Refused):
        raise exc
    headers = {"Cache-Control": "no-store"}
    if exc.status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="statehub"'
    body = {"error": {"code": exc.code, "message": exc.message, "hint": exc.hint}}
    return JSONResponse(body, exc.status, headers=headers)


async def http_error(request: Request, exc: Exception) -> Response:
    """Starlette's own refusals (no such route, wrong method) in the same JSON shape."""
    if not isinstance(exc, HTTPException):
        raise exc
    code = {404: "no_route", 405: "method_not_allowed"}.get(exc.status_code, "http")
    message = f"{request.method} {request.url.path}: {exc.detail}"
    hint = "see docs/http.md for the endpoints" if exc.status_code in (404, 405) else ""
    return JSONResponse(
        {"error": {"code": code, "message": message, "hint": hint}}, exc.status_code, headers=exc.headers
    )
