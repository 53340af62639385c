"""The statehub error tree: one class per way a caller acts differently.

    StatehubError            "internal"         exit 1   root; a bug in the hub, or a code newer than us
    ├── InvalidRequest       "invalid"          exit 2   a bad key, value, name, option or limit: fix the input
    ├── NotFound             "not_found"        exit 3   the key (snapshot, revision, ...) does not exist
    ├── ConflictError        "conflict"         exit 4   a compare-and-set failed; ``conflicts`` says why
    ├── ProtocolError        "protocol"         exit 1   undecodable message or unsupported version
    ├── StorageError         "storage"          exit 6   the hub could not make the write durable; nothing applied
    ├── HubUnavailable       "unavailable"      exit 5   (client side) the hub is not running or not answering
    │   └── MirrorError      "mirror"           exit 5   (client side) ... and the mirror cannot be read either
    ├── OutcomeUnknown       "unknown_outcome"  exit 7   (client side) a write was delivered but not answered
    │                                                    in time: it may be applied; repeating it is safe
    └── HubAlreadyRunning    "already_running"  exit 1   (hub side) another hub serves this data dir

Each class carries its wire ``code``, the CLI's ``exit_code`` and a default ``hint``
(what to do), which an instance may replace.  The codes and exit codes are a
contract shared with the Rust client: ``tests/vectors/errors.json`` holds the
table and both languages test against it.  Any other code a newer hub sends
arrives as a plain StatehubError that keeps the code it came with.
"""

from __future__ import annotations

from typing import ClassVar

from statehub.hub.protocol import ConflictDetail, Error


class StatehubError(Exception):
    code: ClassVar[str] = "internal"
    exit_code: ClassVar[int] = 1
    default_hint: ClassVar[str] = ""

    def __init__(
        self, message: str, conflicts: list[ConflictDetail] | None = None, *, hint: str | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.conflicts = conflicts or []
        self.hint = self.default_hint if hint is None else hint
        self.wire_code = self.code  # a code this client does not know keeps its own name here

    def __str__(self) -> str:
        return self.message


class InvalidRequest(StatehubError):
    code = "invalid"
    exit_code = 2


class NotFound(StatehubError):
    code = "not_found"
    exit_code = 3


class ConflictError(StatehubError):
    code = "conflict"
    exit_code = 4
    default_hint = "read the current value, then retry with --expect-rev"


class ProtocolError(StatehubError):
    code = "protocol"
    exit_code = 1


class StorageError(StatehubError):
    code = "storage"
    exit_code = 6
    default_hint = "check the hub's disk space and permissions, then retry"


class HubUnavailable(StatehubError):
    """No answer from a hub.  For a write: it never reached one, so nothing was written
    (a write that reached the hub and got no answer is OutcomeUnknown).

    ``not_running`` is True only on evidence that no hub runs (no hub.json, its
    pid gone, the connection refused): the one case where queueing a write for
    the hub's return helps.  A hub that runs but is silent, or that this user or
    this key may not reach, leaves it False.
    """

    code = "unavailable"
    exit_code = 5

    def __init__(
        self,
        message: str,
        conflicts: list[ConflictDetail] | None = None,
        *,
        hint: str | None = None,
        not_running: bool = False,
    ) -> None:
        super().__init__(message, conflicts, hint=hint)
        self.not_running = not_running


class MirrorError(HubUnavailable):
    """The mirror file is missing, half-written or not in the expected format."""

    code = "mirror"


class OutcomeUnknown(StatehubError):
    code = "unknown_outcome"
    exit_code = 7
    default_hint = (
        "the write may or may not have been applied; repeating the same command is safe "
        "(check with `statehub get` or `statehub history`)"
    )


class HubAlreadyRunning(StatehubError):
    code = "already_running"
    exit_code = 1


ERROR_CLASSES: tuple[type[StatehubError], ...] = (
    StatehubError,
    InvalidRequest,
    NotFound,
    ConflictError,
    ProtocolError,
    StorageError,
    HubUnavailable,
    MirrorError,
    OutcomeUnknown,
    HubAlreadyRunning,
)


def error_from_reply(reply: Error) -> StatehubError:
    """Turn a wire Error into the exception a caller catches."""
    cls = next((c for c in ERROR_CLASSES if c.code == reply.code), StatehubError)
    error = cls(reply.message, reply.conflicts)
    error.wire_code = reply.code
    return error


def reply_from_error(error: StatehubError) -> Error:
    return Error(code=error.wire_code, message=error.message, conflicts=error.conflicts)
