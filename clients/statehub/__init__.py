"""statehub: the Python client of the statehub hub.

    from statehub import Client
    with Client() as hub:
        hub.set("plant.rate", 30)
        print(hub.get("plant.rate").value)
        for event in hub.subscribe("plant."):
            print(event)

Public names are loaded on first use, so importing statehub costs next to nothing.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_WHERE = {
    "Client": "statehub.client",
    "Reading": "statehub.client",
    "Listing": "statehub.client",
    "Origin": "statehub.client",
    "Subscription": "statehub.subscription",
    "SubscriptionThread": "statehub.subscription",
    "Update": "statehub.subscription",
    "Synced": "statehub.subscription",
    "HubDown": "statehub.subscription",
    "Explanation": "statehub.waterfall",
    "MISSING": "statehub.waterfall",
    "env_name": "statehub.waterfall",
    "Op": "statehub.hub.protocol",
    "Item": "statehub.hub.protocol",
    "Changed": "statehub.hub.protocol",
    "Committed": "statehub.hub.protocol",
    "Version": "statehub.hub.protocol",
    "HubStatus": "statehub.hub.protocol",
    "StatehubError": "statehub.hub.errors",
    "InvalidRequest": "statehub.hub.errors",
    "NotFound": "statehub.hub.errors",
    "ConflictError": "statehub.hub.errors",
    "ProtocolError": "statehub.hub.errors",
    "StorageError": "statehub.hub.errors",
    "HubUnavailable": "statehub.hub.errors",
}

__all__ = ["__version__", *_WHERE]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'statehub' has no attribute {name!r}")
    return getattr(import_module(module), name)


if TYPE_CHECKING:
    from statehub.client import Client, Listing, Origin, Reading
    from statehub.hub.errors import (
        ConflictError,
        HubUnavailable,
        InvalidRequest,
        NotFound,
        ProtocolError,
        StatehubError,
        StorageError,
    )
    from statehub.hub.protocol import Changed, Committed, HubStatus, Item, Op, Version
    from statehub.subscription import HubDown, Subscription, SubscriptionThread, Synced, Update
    from statehub.waterfall import MISSING, Explanation, env_name
