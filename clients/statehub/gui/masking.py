"""Which values the GUI must never show, and what it shows instead.

The hub marks secrets (``Item.secret``, ``Version.secret``) and never sends
their values; the GUI masks those, and as a precaution also any key whose last
segment names a secret (``db.password``, ``api.token``) even if stored plain.  Every place the GUI turns a value
into text goes through ``shown_value``, so the table, the history and the
conflict dialog can never leak one.
"""

from __future__ import annotations

from typing import Any

MASK = "•••••• (secret)"
SECRET_NAMES = frozenset(
    {
        "password",
        "passwd",
        "secret",
        "token",
        "api_key",
        "apikey",
        "api-key",
        "private_key",
        "passphrase",
        "credentials",
    }
)


def is_secret(key: str, marked_secret: bool = False) -> bool:
    """True when ``key``'s value must be masked: marked so, or its last segment names a secret."""
    return marked_secret or key.rsplit(".", 1)[-1].lower() in SECRET_NAMES


def shown_value(key: str, text: str, marked_secret: bool = False) -> str:
    """``text`` (a value already formatted) or the mask, for ``key``."""
    return MASK if is_secret(key, marked_secret) else text


def mask_if_secret(key: str, value: Any) -> Any:
    """The value itself, or the mask string, for places that hold values rather than text."""
    return MASK if is_secret(key) else value
