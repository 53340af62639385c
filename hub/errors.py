"""The statehub error tree and the stable wire codes it maps to.

    StatehubError              root; ``code`` is the wire code
    ├── InvalidRequest         "invalid": a bad key, value, name or limit; fix the input
    ├── NotFound               "not_found": the key does not exist
    ├── ConflictError          "conflict": a compare-and-set failed; ``conflicts`` says why
    ├── ProtocolError          "protocol": undecodable message or unsupported version
    ├── StorageError           "storage": the hub could not make the write durable; retry later
    └── HubUnavailable         (client side) no reply from the hub in time

Any other code a newer hub sends arrives as a plain StatehubError.  MirrorError (a
ValueError, not on the wire) is here too, so that every reader can catch it cheaply.
"""

from __future__ import annotations

from statehub.hub.protocol import ConflictDetail, Error


class StatehubError(Exception):
    code = "internal"

    def __init__(self, message: str, conflicts: list[ConflictDetail] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.conflicts = conflicts or []


class InvalidRequest(StatehubError):
    code = "invalid"


class NotFound(StatehubError):
    code = "not_found"


class ConflictError(StatehubError):
    code = "conflict"


class ProtocolError(StatehubError):
    code = "protocol"


class StorageError(StatehubError):
    code = "storage"


class HubUnavailable(StatehubError):
    code = "unavailable"


class MirrorError(ValueError):
    """The mirror file is missing, half-written or not in the expected format (not a wire error)."""


_BY_CODE: dict[str, type[StatehubError]] = {
    cls.code: cls
    for cls in (InvalidRequest, NotFound, ConflictError, ProtocolError, StorageError, HubUnavailable)
}


def error_from_reply(reply: Error) -> StatehubError:
    """Turn a wire Error into the exception a caller catches."""
    cls = _BY_CODE.get(reply.code, StatehubError)
    error = cls(reply.message, reply.conflicts)
    error.code = reply.code
    return error


def reply_from_error(error: StatehubError) -> Error:
    return Error(code=error.code, message=error.message, conflicts=error.conflicts)
